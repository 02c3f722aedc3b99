//! Reaching people beyond WeChat, as they notice it: an SMS for a family that agreed to
//! SMS, a phone call by the family's cadre for one that did not, the per-number SMS
//! limits, replies 1/2/3 by SMS, quiet hours, the daily cap and its digest, reminders too
//! late after downtime, no good wishes on a bereaved family's sad days, and dead letters
//! for coordinators. WeChat and the SMS provider are the fake servers, over real HTTP.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use entity::{
    BirthCalendar, FamilyCategory, MemberRelation, UserStatus, app_user, family, family_member,
    notification, pairing, visit_record, visit_request, visit_task,
};
use miniapp_stub::{SmsFault, TEMPLATE_VISIT_NOTICE as TPL};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter,
};
use serde_json::{Value, json};
use server::{
    config::Config,
    notify::dispatch::{Stats, run_batch},
};
use tests::{visits::VisitSpec, *};
use uuid::Uuid;

const TZ: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

/// Tomorrow at this local time: tests choose their moment, whatever the clock says.
fn tomorrow_at(h: u32, m: u32) -> DateTime<Utc> {
    let day = Utc::now().with_timezone(&TZ).date_naive() + Duration::days(1);
    TZ.from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// A family member who once bound WeChat (so has an openid, but no grants).
struct Member {
    family: Uuid,
    user: Uuid,
    phone: String,
}

/// A bereaved family in `village` that agreed to SMS or not.
async fn family_consenting(
    app: &TestApp,
    village: &str,
    consent_sms: bool,
    at: Option<(f64, f64)>,
) -> Uuid {
    let db = &app.state.db;
    let family = app
        .family_at(village, FamilyCategory::Bereaved, "钱秀英", at)
        .await;
    let mut f = family::Entity::find_by_id(family)
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    f.consent_sms = Set(consent_sms);
    f.update(db).await.unwrap();
    family
}

async fn member(app: &TestApp, village: &str, consent_sms: bool, phone: &str) -> Member {
    let db = &app.state.db;
    let family = family_consenting(app, village, consent_sms, None).await;
    let user = Uuid::now_v7();
    let now = Utc::now();
    let openid = format!("o-{}", user.simple());
    app_user::ActiveModel {
        id: Set(user),
        name: Set("钱秀英".into()),
        phone: Set(Some(phone.into())),
        openid: Set(Some(openid.clone())),
        unionid: Set(None),
        status: Set(UserStatus::Active),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    app.wechat.mint_code(&openid, None);
    add_member(
        app,
        family,
        MemberRelation::Mother,
        Some(user),
        Some(phone),
        None,
    )
    .await;
    Member {
        family,
        user,
        phone: phone.into(),
    }
}

async fn add_member(
    app: &TestApp,
    family: Uuid,
    relation: MemberRelation,
    user: Option<Uuid>,
    phone: Option<&str>,
    lost: Option<(NaiveDate, NaiveDate)>,
) {
    family_member::ActiveModel {
        id: Set(Uuid::now_v7()),
        family_id: Set(family),
        name: Set(if lost.is_some() {
            "钱小明"
        } else {
            "钱秀英"
        }
        .into()),
        relation: Set(relation),
        gender: Set(None),
        phone: Set(phone.map(str::to_string)),
        id_number_enc: Set(None),
        id_number_masked: Set(None),
        birth_calendar: Set(BirthCalendar::Solar),
        birth_year: Set(lost.map(|(b, _)| b.year())),
        birth_month: Set(lost.map(|(b, _)| b.month() as i32)),
        birth_day: Set(lost.map(|(b, _)| b.day() as i32)),
        birth_leap_month: Set(false),
        deceased: Set(lost.is_some()),
        death_date: Set(lost.map(|(_, d)| d)),
        primary_contact: Set(user.is_some()),
        user_id: Set(user),
        created_at: Set(Utc::now()),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
}

/// The family's 一帮一 cadre: the demo cadre of 桃源镇.
async fn pair(app: &TestApp, family: Uuid) -> Uuid {
    let cadre = app.user_id(people::TAOYUAN_CADRE).await;
    pairing::ActiveModel {
        id: Set(Uuid::now_v7()),
        family_id: Set(family),
        cadre_id: Set(cadre),
        leader_id: Set(None),
        started_on: Set(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()),
        ended_on: Set(None),
        created_at: Set(Utc::now()),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    cadre
}

/// Queues a message as its cause does, due at `at`.
async fn queue(app: &TestApp, to: Uuid, template: &str, payload: Value, at: DateTime<Utc>) -> Uuid {
    let id = Uuid::now_v7();
    notification::ActiveModel {
        id: Set(id),
        recipient_id: Set(to),
        template: Set(template.into()),
        payload: Set(payload),
        dedupe_key: Set(format!("test:{id}")),
        status: Set(notification::PENDING.into()),
        channel: Set(None),
        attempts: Set(0),
        next_attempt_at: Set(at),
        sent_at: Set(None),
        last_error: Set(None),
        read_at: Set(None),
        inbox_at: Set(None),
        due_at: Set(None),
        trail: Set(None),
        created_at: Set(Utc::now()),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    id
}

async fn row(app: &TestApp, id: Uuid) -> notification::Model {
    notification::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
}

async fn dispatch_at(app: &TestApp, now: DateTime<Utc>) -> Stats {
    run_batch(&app.state, now).await.unwrap()
}

fn sms_to(app: &TestApp, phone: &str) -> usize {
    app.wechat
        .sms_outbox()
        .iter()
        .filter(|s| s.phone == phone)
        .count()
}

fn trail_of(r: &notification::Model) -> String {
    r.trail.as_ref().map(Value::to_string).unwrap_or_default()
}

fn app_with(configure: fn(&mut Config)) -> Options {
    Options {
        demo_families: Some(0),
        configure: Some(configure),
        ..Options::default()
    }
}

fn plain() -> Options {
    Options {
        demo_families: Some(0),
        ..Options::default()
    }
}

/// A coming visit of the family.
async fn coming_visit(app: &TestApp, family: Uuid) -> Uuid {
    app.visit(VisitSpec::new(family, Utc::now() + Duration::days(3), 24))
        .await
}

#[tokio::test]
async fn without_a_grant_a_consenting_family_gets_an_sms_and_another_a_call_from_its_cadre() {
    let app = spawn_app_with(plain()).await;
    let agreed = member(&app, "杨柳村", true, "13911110001").await;
    let refused = member(&app, "杨柳村", false, "13911110002").await;
    let cadre = pair(&app, refused.family).await;
    let now = tomorrow_at(10, 0);
    let v1 = coming_visit(&app, agreed.family).await;
    let v2 = coming_visit(&app, refused.family).await;
    let by_sms = queue(
        &app,
        agreed.user,
        "visit_cancelled",
        json!({"task_id": v1}),
        now,
    )
    .await;
    let by_call = queue(
        &app,
        refused.user,
        "visit_cancelled",
        json!({"task_id": v2}),
        now,
    )
    .await;

    let stats = dispatch_at(&app, now).await;
    assert_eq!(
        (stats.sms, stats.call, stats.wechat),
        (1, 1, 0),
        "{stats:?}"
    );

    // The SMS: to the member's number, the reply template (it is about a visit), short and
    // masked: no name, no category, no place.
    let sent = app.wechat.sms_outbox();
    assert_eq!(sent.len(), 1);
    let sms = &sent[0];
    assert_eq!(sms.phone, agreed.phone);
    assert_eq!(sms.template_code, "SMS_REPLY");
    let shown = format!("{:?}", sms.params);
    for secret in ["钱", "失独", "杨柳村"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let r = row(&app, by_sms).await;
    assert_eq!(
        (r.status.as_str(), r.channel.as_deref()),
        ("sent", Some("sms"))
    );
    let trail = trail_of(&r);
    assert!(
        trail.contains("no WeChat grant left") && trail.contains("\"sent\""),
        "{trail}"
    );

    // No SMS for the family that did not agree: its cadre calls.
    assert_eq!(sms_to(&app, &refused.phone), 0);
    let r = row(&app, by_call).await;
    assert_eq!(r.channel.as_deref(), Some("call"));
    assert!(
        trail_of(&r).contains("not agreed to SMS"),
        "{}",
        trail_of(&r)
    );
    let call = visit_task::Entity::find()
        .filter(visit_task::Column::FamilyId.eq(refused.family))
        .filter(visit_task::Column::Kind.eq("message_call"))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a phone-call visit");
    assert_eq!(call.assigned_cadre_id, Some(cadre));
    assert_eq!(call.channel, "phone_call");
    // The cadre finds it among their visits.
    let token = app.token_for(people::TAOYUAN_CADRE).await;
    let mine = app.get("/api/me/visits", Some(&token)).await.ok();
    assert!(mine.to_string().contains(&call.id.to_string()), "{mine}");
    // The family's own list shows its visits, not the cadre's errand.
    let family = app.token_for(&refused.phone).await;
    let theirs = app.get("/api/family/visits", Some(&family)).await.ok();
    assert!(theirs.to_string().contains(&v2.to_string()), "{theirs}");
    assert!(
        !theirs.to_string().contains(&call.id.to_string()),
        "{theirs}"
    );

    // Both messages are in the families' inboxes; nothing is sent twice.
    for id in [by_sms, by_call] {
        assert!(row(&app, id).await.inbox_at.is_some());
    }
    assert_eq!(dispatch_at(&app, now + Duration::hours(1)).await.taken, 0);
    assert_eq!(app.wechat.sms_outbox().len(), 1);
}

#[tokio::test]
async fn sms_limits_per_number_hold() {
    let app = spawn_app_with(app_with(|c| c.notify.sms.per_day = 2)).await;
    let m = member(&app, "杨柳村", true, "13911110003").await;
    pair(&app, m.family).await;
    let now = tomorrow_at(10, 0);
    let ids = [
        queue(&app, m.user, "visit_cancelled", json!({}), now).await,
        queue(&app, m.user, "visit_cancelled", json!({}), now).await,
        queue(&app, m.user, "visit_cancelled", json!({}), now).await,
    ];

    // One a minute: the others wait.
    let stats = dispatch_at(&app, now).await;
    assert_eq!((stats.sms, stats.deferred), (1, 2), "{stats:?}");
    assert_eq!(sms_to(&app, &m.phone), 1);
    let waiting = row(&app, ids[1]).await;
    assert_eq!(waiting.status, "pending");
    assert_eq!(waiting.next_attempt_at, now + Duration::minutes(1));

    // A minute later the second goes; that makes two today, this deployment's daily
    // limit, so the third goes to the family's cadre instead.
    let later = now + Duration::minutes(1);
    let stats = dispatch_at(&app, later).await;
    assert_eq!((stats.sms, stats.call), (1, 1), "{stats:?}");
    assert_eq!(sms_to(&app, &m.phone), 2);
    assert_eq!(row(&app, ids[2]).await.channel.as_deref(), Some("call"));
    assert!(trail_of(&row(&app, ids[2]).await).contains("limit"));
}

#[tokio::test]
async fn a_provider_failure_is_retried_and_a_refusal_falls_through_to_the_cadre() {
    let app = spawn_app_with(plain()).await;
    let m = member(&app, "杨柳村", true, "13911110004").await;
    pair(&app, m.family).await;
    let now = tomorrow_at(10, 0);
    let id = queue(&app, m.user, "visit_cancelled", json!({}), now).await;
    app.wechat.inject_sms_fault(SmsFault {
        code: Some("isp.SYSTEM_ERROR".into()),
        http_status: None,
        times: 1,
    });
    assert_eq!(dispatch_at(&app, now).await.retried, 1);
    assert_eq!(row(&app, id).await.status, "pending");
    assert_eq!(dispatch_at(&app, now + Duration::hours(1)).await.sms, 1);
    assert_eq!(sms_to(&app, &m.phone), 1);

    // The number opted out at the operator: the cadre calls.
    let other = queue(&app, m.user, "visit_cancelled", json!({}), now).await;
    app.wechat.inject_sms_fault(SmsFault {
        code: Some("isv.BLACK_KEY_CONTROL_LIMIT".into()),
        http_status: None,
        times: 1,
    });
    assert_eq!(dispatch_at(&app, now + Duration::hours(2)).await.call, 1);
    assert!(trail_of(&row(&app, other).await).contains("BLACK_KEY"));
}

async fn reply(app: &TestApp, phone: &str, text: &str) -> Reply {
    let resp = app
        .http
        .post(app.url("/api/sms/inbound"))
        .header("X-Sms-Secret", SMS_INBOUND_SECRET)
        .json(&json!({"mobile": format!("+86{phone}"), "text": text, "time": 1700000000}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    Reply {
        status,
        body: resp.json().await.unwrap_or(Value::Null),
    }
}

/// A visit the volunteer reported, waiting for the family's confirmation.
async fn reported_visit(app: &TestApp, family: Uuid) -> Uuid {
    let id = app
        .visit(VisitSpec::new(family, Utc::now() - Duration::hours(3), 24))
        .await;
    let reporter = app.user_id(people::VOLUNTEER).await;
    let task = app.visit_row(id).await;
    let mut t = app.hold(&task, &[reporter]).await.into_active_model();
    t.status = Set(visit_task::status::REPORTED.into());
    t.update(&app.state.db).await.unwrap();
    visit_record::ActiveModel {
        id: Set(Uuid::now_v7()),
        task_id: Set(id),
        reporter_id: Set(reporter),
        checkin_at: Set(Some(Utc::now() - Duration::hours(2))),
        checkin_lat: Set(None),
        checkin_lng: Set(None),
        checkin_method: Set(Some("code".into())),
        checkout_at: Set(Some(Utc::now() - Duration::hours(1))),
        services: Set(Default::default()),
        cash_fen: Set(0),
        goods: Set(String::new()),
        bp_systolic: Set(None),
        bp_diastolic: Set(None),
        bp_member_id: Set(None),
        mood: Set(None),
        risk_signs: Set(Default::default()),
        needs: Set(Default::default()),
        notes: Set(String::new()),
        submitted_at: Set(Some(Utc::now() - Duration::hours(1))),
        confirmed_at: Set(None),
        confirm_method: Set(None),
        rating: Set(None),
        comment: Set(None),
        created_at: Set(Utc::now()),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn a_family_answers_by_sms_1_confirms_3_asks_to_move_and_garbage_does_nothing() {
    let app = spawn_app_with(Options {
        demo_families: Some(2),
        ..plain()
    })
    .await;
    let m = member(&app, "杨柳村", true, "13911110005").await;
    let reported = reported_visit(&app, m.family).await;
    let now = tomorrow_at(10, 0);
    queue(
        &app,
        m.user,
        "visit_please_confirm",
        json!({"task_id": reported}),
        now,
    )
    .await;
    assert_eq!(dispatch_at(&app, now).await.sms, 1);

    // Without the provider's secret: refused, nothing done.
    let anonymous = app
        .post(
            "/api/sms/inbound",
            None,
            json!({"mobile": m.phone, "text": "1"}),
        )
        .await;
    assert_eq!(anonymous.status.as_u16(), 401);

    // Garbage: 200 (the provider must not retry), nothing done, audited.
    assert_eq!(reply(&app, &m.phone, "好的谢谢").await.ok()["result"], 0);
    assert_eq!(reply(&app, "13999999999", "1").await.ok()["result"], 0);
    assert_eq!(app.visit_row(reported).await.status, "reported");
    assert_eq!(app.audit_count("sms_reply_ignored").await, 2);

    // "1": the visit is confirmed, as the app's button does.
    reply(&app, &m.phone, "1").await.ok();
    assert_eq!(app.visit_row(reported).await.status, "confirmed");
    let record = visit_record::Entity::find()
        .filter(visit_record::Column::TaskId.eq(reported))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.confirm_method.as_deref(), Some("family"));
    assert_eq!(app.audit_count("sms_reply").await, 1);

    // A coming visit, then "３" (full width): a move request for the coordinator, and the
    // holder is told.
    let coming = coming_visit(&app, m.family).await;
    let volunteer = app.user_id(people::VOLUNTEER).await;
    app.hold(&app.visit_row(coming).await, &[volunteer]).await;
    queue(
        &app,
        m.user,
        "visit_coming",
        json!({"task_id": coming}),
        now,
    )
    .await;
    assert_eq!(dispatch_at(&app, now + Duration::minutes(5)).await.sms, 1);
    reply(&app, &m.phone, "３").await.ok();
    let task = app.visit_row(coming).await;
    assert!(task.needs_attention, "flagged for a coordinator");
    let asked = visit_request::Entity::find()
        .filter(visit_request::Column::TaskId.eq(coming))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a move request");
    assert_eq!(asked.kind, "move");
    let told = notification::Entity::find()
        .filter(notification::Column::RecipientId.eq(volunteer))
        .filter(notification::Column::Template.eq("visit_move_requested"))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(told, 1);
    // Twice is once.
    reply(&app, &m.phone, "3").await.ok();
    assert_eq!(app.audit_count("sms_reply_ignored").await, 3);
}

#[tokio::test]
async fn quiet_hours_delay_messages_but_not_emergencies() {
    let app = spawn_app_with(app_with(|c| {
        c.notify.quiet_start = "21:00".into();
        c.notify.quiet_end = "08:00".into();
    }))
    .await;
    let m = member(&app, "杨柳村", true, "13911110006").await;
    let night = tomorrow_at(22, 30);
    let usual = queue(&app, m.user, "visit_cancelled", json!({}), night).await;
    let stats = dispatch_at(&app, night).await;
    assert_eq!((stats.deferred, stats.sms), (1, 0), "{stats:?}");
    let r = row(&app, usual).await;
    assert_eq!(r.status, "pending");
    let morning = night + Duration::hours(9) + Duration::minutes(30);
    assert_eq!(r.next_attempt_at, morning, "at 08:00");
    // In the inbox already, for whoever looks at night.
    assert!(r.inbox_at.is_some());

    // An emergency goes at once.
    let urgent = queue(
        &app,
        m.user,
        "help_emergency",
        json!({"emergency": true}),
        night,
    )
    .await;
    assert_eq!(dispatch_at(&app, night + Duration::minutes(1)).await.sms, 1);
    assert_eq!(row(&app, urgent).await.channel.as_deref(), Some("sms"));

    assert_eq!(dispatch_at(&app, morning).await.sms, 1);
    assert_eq!(sms_to(&app, &m.phone), 2);
}

#[tokio::test]
async fn a_familys_own_quiet_hours_hold_its_messages_too_but_not_emergencies() {
    let app = spawn_app_with(app_with(|c| {
        c.notify.quiet_start = "21:00".into();
        c.notify.quiet_end = "08:00".into();
    }))
    .await;
    let m = member(&app, "杨柳村", true, "13911110016").await;
    // The coordinator records the family's wish: nothing from 20:00 to 09:30.
    let token = app.token_for(people::TAOYUAN).await;
    app.patch(
        &format!("/api/families/{}", m.family),
        Some(&token),
        json!({"preferences": {"quiet_from": "20:00", "quiet_to": "09:30"}}),
    )
    .await
    .ok();
    let (volunteer, openid) = volunteer_on_wechat(&app).await;

    let evening = tomorrow_at(20, 15);
    let to_family = queue(&app, m.user, "visit_cancelled", json!({}), evening).await;
    let to_volunteer = queue(&app, volunteer, "visit_cancelled", json!({}), evening).await;
    let stats = dispatch_at(&app, evening).await;
    assert_eq!((stats.deferred, stats.wechat), (1, 1), "{stats:?}");
    // The volunteer keeps the association's hours only; the family waits for its own end.
    assert_eq!(row(&app, to_volunteer).await.status, "sent");
    assert_eq!(app.wechat.sent_counts()[&(openid, TPL.to_string())], 1);
    let r = row(&app, to_family).await;
    assert_eq!(r.status, "pending");
    let family_morning = tomorrow_at(9, 30) + Duration::days(1);
    assert_eq!(r.next_attempt_at, family_morning);

    // An emergency still goes at once.
    let urgent = queue(
        &app,
        m.user,
        "help_emergency",
        json!({"emergency": true}),
        evening,
    )
    .await;
    assert_eq!(
        dispatch_at(&app, evening + Duration::minutes(1)).await.sms,
        1
    );
    assert_eq!(row(&app, urgent).await.channel.as_deref(), Some("sms"));

    // 08:00 ends the association's hours, not the family's.
    let eight = tomorrow_at(8, 0) + Duration::days(1);
    assert_eq!(dispatch_at(&app, eight).await.taken, 0);
    assert_eq!(sms_to(&app, &m.phone), 1);
    assert_eq!(dispatch_at(&app, family_morning).await.sms, 1);
    assert_eq!(row(&app, to_family).await.channel.as_deref(), Some("sms"));
    assert_eq!(sms_to(&app, &m.phone), 2);
}

/// A volunteer on WeChat with plenty of grants.
async fn volunteer_on_wechat(app: &TestApp) -> (Uuid, String) {
    let v = app
        .volunteer(tests::visits::VolunteerSpec::at(31.30, 116.60))
        .await;
    let openid = format!("o-{}", v.user_id.simple());
    let mut user = app_user::Entity::find_by_id(v.user_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    user.openid = Set(Some(openid.clone()));
    user.update(&app.state.db).await.unwrap();
    app.wechat.mint_code(&openid, None);
    app.wechat.grant_credits(&openid, TPL, 5);
    for _ in 0..5 {
        app.post(
            "/api/me/subscriptions",
            Some(&v.token),
            json!({"accepted": [TPL]}),
        )
        .await
        .ok();
    }
    (v.user_id, openid)
}

#[tokio::test]
async fn past_the_daily_cap_messages_wait_in_the_inbox_for_one_digest_next_morning() {
    let app = spawn_app_with(app_with(|c| {
        c.notify.daily_cap = 2;
        c.notify.quiet_start = "21:00".into();
        c.notify.quiet_end = "08:00".into();
    }))
    .await;
    let (user, openid) = volunteer_on_wechat(&app).await;
    let now = tomorrow_at(10, 0);
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(queue(&app, user, "visit_cancelled", json!({}), now).await);
    }
    let stats = dispatch_at(&app, now).await;
    assert_eq!((stats.wechat, stats.capped), (2, 2), "{stats:?}");
    let capped = row(&app, ids[3]).await;
    assert_eq!(capped.channel.as_deref(), Some("inbox"));
    assert!(capped.last_error.unwrap().contains("daily cap"));

    // One digest, the next morning at 08:00.
    let digests = notification::Entity::find()
        .filter(notification::Column::RecipientId.eq(user))
        .filter(notification::Column::Template.eq("digest"))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(digests.len(), 1);
    let at = digests[0].next_attempt_at;
    assert_eq!(at, tomorrow_at(8, 0) + Duration::days(1));
    assert_eq!(dispatch_at(&app, at - Duration::minutes(1)).await.taken, 0);
    assert_eq!(dispatch_at(&app, at).await.wechat, 1);
    let sent = app.wechat.sent_counts()[&(openid, TPL.to_string())];
    assert_eq!(sent, 3);
    assert_eq!(
        app.wechat.outbox().last().unwrap().data["thing1"],
        "新消息汇总"
    );
}

#[tokio::test]
async fn a_reminder_too_late_after_downtime_is_dropped_with_its_reason_news_is_not() {
    let app = spawn_app_with(plain()).await;
    let (user, _) = volunteer_on_wechat(&app).await;
    let now = tomorrow_at(10, 0);
    let was_due = now - Duration::hours(3);
    let reminder = queue(&app, user, "visit_hours_before", json!({}), was_due).await;
    let news = queue(&app, user, "visit_cancelled", json!({}), was_due).await;
    let fresh = queue(
        &app,
        user,
        "visit_hours_before",
        json!({}),
        now - Duration::minutes(20),
    )
    .await;

    let stats = dispatch_at(&app, now).await;
    // The late reminder is dropped; the news and the fresh reminder are delivered
    // (by WeChat or to the inbox, as the test deployment's templates allow).
    assert_eq!(
        (stats.dropped, stats.wechat + stats.inbox),
        (1, 2),
        "{stats:?}"
    );
    let r = row(&app, reminder).await;
    assert_eq!(r.status, "dropped");
    let why = r.last_error.unwrap();
    assert!(
        why.contains("too late") && why.contains("180 minutes"),
        "{why}"
    );
    assert_eq!(row(&app, news).await.channel.as_deref(), Some("wechat"));
    assert_eq!(row(&app, fresh).await.status, "sent");
}

#[tokio::test]
async fn no_good_wishes_on_the_childs_birthday_and_other_messages_speak_gently() {
    let app = spawn_app_with(plain()).await;
    let now = tomorrow_at(10, 0);
    let today = now.with_timezone(&TZ).date_naive();
    let grieving = member(&app, "杨柳村", true, "13911110007").await;
    add_member(
        &app,
        grieving.family,
        MemberRelation::Child,
        None,
        None,
        Some((
            // Born on this day (1992 has a 29 February too).
            NaiveDate::from_ymd_opt(1992, today.month(), today.day()).unwrap(),
            NaiveDate::from_ymd_opt(2015, 6, 1).unwrap(),
        )),
    )
    .await;
    let other = member(&app, "杨柳村", true, "13911110008").await;

    let wishes = queue(&app, grieving.user, "festival_greeting", json!({}), now).await;
    let news = queue(&app, grieving.user, "visit_cancelled", json!({}), now).await;
    let elsewhere = queue(&app, other.user, "festival_greeting", json!({}), now).await;
    let stats = dispatch_at(&app, now).await;
    assert_eq!((stats.dropped, stats.sms), (1, 2), "{stats:?}");

    let r = row(&app, wishes).await;
    assert_eq!(r.status, "dropped");
    assert!(r.last_error.unwrap().contains("孩子的生日"));
    assert_eq!(sms_to(&app, &grieving.phone), 1);
    let sent = app.wechat.sms_outbox();
    let gentle = sent.iter().find(|s| s.phone == grieving.phone).unwrap();
    assert_eq!(gentle.params["title"], "暖心关怀");
    assert_eq!(row(&app, news).await.channel.as_deref(), Some("sms"));
    // Another family hears the greeting as usual.
    let usual = sent.iter().find(|s| s.phone == other.phone).unwrap();
    assert_eq!(usual.params["title"], "节日问候");
    assert_eq!(row(&app, elsewhere).await.channel.as_deref(), Some("sms"));
}

#[tokio::test]
async fn dead_letters_are_listed_within_the_coordinators_region_and_can_be_sent_again() {
    let app = spawn_app().await;
    let now = tomorrow_at(10, 0);
    let east = member(&app, "杨柳村", false, "13911110009").await;
    let west = member(&app, "丰收村", false, "13911110010").await;
    let mut dead = Vec::new();
    for m in [&east, &west] {
        let openid = app_user::Entity::find_by_id(m.user)
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap()
            .openid
            .unwrap();
        app.wechat.grant_credits(&openid, TPL, 2);
        server::notify::ledger::add(&app.state.db, m.user, &[TPL.to_string()])
            .await
            .unwrap();
        let id = queue(&app, m.user, "visit_cancelled", json!({}), now).await;
        app.http
            .post(format!("{}/__fake/faults", app.wechat.base_url()))
            .json(&json!({"route": "send", "errcode": 47003}))
            .send()
            .await
            .unwrap();
        assert_eq!(dispatch_at(&app, now).await.dead, 1);
        dead.push(id);
    }

    let east_token = app.token_for(people::EAST_COUNTY).await;
    let west_token = app.token_for(people::WEST_COUNTY).await;
    let admin = app.token_for(people::ADMIN).await;
    let list = app
        .get("/api/notifications/dead", Some(&east_token))
        .await
        .ok();
    assert_eq!(list["total"], 1, "{list}");
    let item = &list["items"][0];
    assert_eq!(item["id"], dead[0].to_string());
    assert_eq!(item["recipient"], "钱*");
    assert!(item["error"].as_str().unwrap().contains("47003"));
    assert_eq!(item["trail"][0]["channel"], "wechat");
    assert!(!list.to_string().contains("秀英"), "masked: {list}");
    let list = app
        .get("/api/notifications/dead", Some(&west_token))
        .await
        .ok();
    assert_eq!(list["items"][0]["id"], dead[1].to_string());
    let list = app.get("/api/notifications/dead", Some(&admin)).await.ok();
    assert_eq!(list["total"], 2);

    // Bad input names the field.
    app.get("/api/notifications/dead?page=0", Some(&east_token))
        .await
        .invalid("page");
    app.get("/api/notifications/dead?per_page=500", Some(&east_token))
        .await
        .invalid("per_page");
    let bad_id = app
        .post(
            "/api/notifications/not-an-id/retry",
            Some(&east_token),
            json!({}),
        )
        .await;
    assert!(bad_id.status.is_client_error(), "{bad_id:?}");
    assert!(bad_id.body.to_string().contains("id"), "{bad_id:?}");

    // Another region's dead letter is not there for this coordinator.
    app.post(
        &format!("/api/notifications/{}/retry", dead[1]),
        Some(&east_token),
        json!({}),
    )
    .await
    .error(404, "not_found");

    // Sent again once fixed: it goes out, and the retry is audited.
    let again = app
        .post(
            &format!("/api/notifications/{}/retry", dead[0]),
            Some(&east_token),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(again["status"], "pending");
    app.post(
        &format!("/api/notifications/{}/retry", dead[0]),
        Some(&east_token),
        json!({}),
    )
    .await
    .error(409, "not_dead");
    assert_eq!(app.audit_count("notification_retry").await, 1);
    assert_eq!(
        dispatch_at(&app, now + Duration::minutes(1)).await.wechat,
        1
    );
    let r = row(&app, dead[0]).await;
    assert_eq!(
        (r.status.as_str(), r.channel.as_deref()),
        ("sent", Some("wechat"))
    );
    assert!(trail_of(&r).contains("sent again by a coordinator"));
    let list = app
        .get("/api/notifications/dead", Some(&east_token))
        .await
        .ok();
    assert_eq!(list["total"], 0);
}

/// A family in 杨柳村 at a place near the volunteers, none of whose members uses the app;
/// the mother has a phone.
async fn family_without_the_app(app: &TestApp, consent_sms: bool, phone: &str) -> Uuid {
    let family = family_consenting(app, "杨柳村", consent_sms, Some((31.301, 116.601))).await;
    add_member(app, family, MemberRelation::Mother, None, Some(phone), None).await;
    family
}

#[tokio::test]
async fn a_family_nobody_of_which_uses_the_app_hears_who_is_coming_by_sms_or_from_its_cadre() {
    let app = spawn_app_with(plain()).await;
    let by_sms = family_without_the_app(&app, true, "13911110031").await;
    let by_call = family_without_the_app(&app, false, "13911110032").await;
    let cadre = pair(&app, by_call).await;
    let volunteer = app
        .volunteer(tests::visits::VolunteerSpec::at(31.30, 116.60))
        .await;
    let mut visits = Vec::new();
    for (day, family) in [(3, by_sms), (4, by_call)] {
        let visit = app
            .visit(VisitSpec::new(family, Utc::now() + Duration::days(day), 24))
            .await;
        app.post(
            &format!("/api/visits/{visit}/claims"),
            Some(&volunteer.token),
            json!({}),
        )
        .await
        .ok();
        visits.push(visit);
    }

    let stats = dispatch_at(&app, Utc::now()).await;
    // The volunteer's two confirmations, and one "who is coming" for each family.
    assert_eq!((stats.sms, stats.call), (1, 1), "{stats:?}");
    let sent = app.wechat.sms_outbox();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].phone, "13911110031");
    let call = visit_task::Entity::find()
        .filter(visit_task::Column::FamilyId.eq(by_call))
        .filter(visit_task::Column::Kind.eq("message_call"))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the cadre's call");
    assert_eq!(call.assigned_cadre_id, Some(cadre));

    // One household account for each family.
    let households: u64 = entity::family_household::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(households, 2);

    // The family answers the SMS with "2": it does not need the visit, as the app's
    // button says it.
    reply(&app, "13911110031", "2").await.ok();
    let asked = visit_request::Entity::find()
        .filter(visit_request::Column::TaskId.eq(visits[0]))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a decline");
    assert_eq!(asked.kind, visit_request::DECLINE);
}
