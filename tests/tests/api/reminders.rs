//! Reminders as people get them: a volunteer who takes a visit hears at once, the evening
//! before and before it starts; the family hears who is coming (surname and team) and the
//! day before; giving the visit back takes it all back; coordinators of the family's region
//! (and no other) hear of visits nobody took, missed visits, low ratings and risk signs;
//! the daily jobs run twice queue nothing twice; no message names the family.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use entity::{FamilyCategory, UserStatus, app_user, family_member, notification, team, volunteer};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder,
};
use serde_json::{Value, json};
use server::notify::{dispatch::run_batch, produce, remind};
use tests::{
    visits::{VisitSpec, VolunteerSpec},
    *,
};
use uuid::Uuid;

const HOME: (f64, f64) = (31.31, 116.60);
const HEAD: &str = "钱秀英";

fn no_families() -> Options {
    Options {
        demo_families: Some(0),
        ..Options::default()
    }
}

/// A bereaved family in 杨柳村 whose mother uses the app; (family, mother's account, her
/// token).
async fn family(app: &TestApp) -> (Uuid, Uuid, String) {
    let db = &app.state.db;
    let family = app
        .family_at("杨柳村", FamilyCategory::Bereaved, HEAD, Some(HOME))
        .await;
    let now = Utc::now();
    let user = Uuid::now_v7();
    app_user::ActiveModel {
        id: Set(user),
        name: Set(HEAD.into()),
        phone: Set(Some(format!("137{:08}", user.as_u128() % 100_000_000))),
        openid: Set(None),
        unionid: Set(None),
        status: Set(UserStatus::Active),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    family_member::ActiveModel {
        id: Set(Uuid::now_v7()),
        family_id: Set(family),
        name: Set(HEAD.into()),
        relation: Set(entity::MemberRelation::Mother),
        gender: Set(Some("female".into())),
        phone: Set(None),
        id_number_enc: Set(None),
        id_number_masked: Set(None),
        birth_calendar: Set(entity::BirthCalendar::Solar),
        birth_year: Set(Some(1952)),
        birth_month: Set(Some(3)),
        birth_day: Set(Some(8)),
        birth_leap_month: Set(false),
        deceased: Set(false),
        death_date: Set(None),
        primary_contact: Set(true),
        user_id: Set(Some(user)),
        created_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    let token = server::auth::issue_tokens(&app.state, db, user, None)
        .await
        .unwrap()
        .access_token;
    (family, user, token)
}

/// A volunteer living near the family, in the team 暖心服务队.
async fn volunteer_in_team(app: &TestApp) -> tests::visits::TestVolunteer {
    let db = &app.state.db;
    let v = app
        .volunteer(VolunteerSpec::at(HOME.0 + 0.01, HOME.1))
        .await;
    let village: Uuid = app.region("杨柳村").await.parse().unwrap();
    let team_id = Uuid::now_v7();
    team::ActiveModel {
        id: Set(team_id),
        name: Set("暖心服务队".into()),
        region_id: Set(village),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .unwrap();
    let mut row = volunteer::Entity::find_by_id(v.volunteer_id)
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    row.team_id = Set(Some(team_id));
    row.update(db).await.unwrap();
    v
}

/// `days` from today at `h:m`, Beijing time.
fn local(app: &TestApp, days: i64, h: u32, m: u32) -> DateTime<Utc> {
    let day = app.state.today() + Duration::days(days);
    app.state
        .tz
        .from_local_datetime(&day.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap()))
        .unwrap()
        .with_timezone(&Utc)
}

async fn outbox(app: &TestApp, to: Uuid) -> Vec<notification::Model> {
    notification::Entity::find()
        .filter(notification::Column::RecipientId.eq(to))
        .order_by_asc(notification::Column::NextAttemptAt)
        .all(&app.state.db)
        .await
        .unwrap()
}

fn of<'a>(rows: &'a [notification::Model], template: &str) -> Vec<&'a notification::Model> {
    rows.iter().filter(|r| r.template == template).collect()
}

async fn inbox(app: &TestApp, token: &str) -> Vec<Value> {
    app.get("/api/me/inbox", Some(token)).await.ok()["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn titles(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_string())
        .collect()
}

/// Nothing a locked screen shows names the family, its category or its grief.
fn says_nothing_sensitive(items: &[Value]) {
    for i in items {
        let text = format!("{} {}", i["title"], i["body"]);
        for word in [HEAD, "失独", "伤残", "去世", "特扶"] {
            assert!(!text.contains(word), "{text} says {word}");
        }
    }
}

#[tokio::test]
async fn a_claim_confirms_reminds_and_tells_the_family_who_is_coming() {
    let app = spawn_app_with(no_families()).await;
    let (family, mother, mother_token) = family(&app).await;
    let v = volunteer_in_team(&app).await;
    let start = local(&app, 3, 14, 30);
    let id = app.visit(VisitSpec::new(family, start, 2)).await;

    app.post(
        &format!("/api/visits/{id}/claims"),
        Some(&v.token),
        json!({}),
    )
    .await
    .ok();

    let mine = outbox(&app, v.user_id).await;
    assert_eq!(of(&mine, remind::CLAIM_CONFIRMED).len(), 1);
    let evening = of(&mine, remind::EVENING_BEFORE);
    assert_eq!(evening.len(), 1);
    assert_eq!(evening[0].next_attempt_at, local(&app, 2, 18, 0));
    let before = of(&mine, remind::HOURS_BEFORE);
    assert_eq!(before[0].next_attempt_at, local(&app, 3, 12, 30));
    assert_eq!(before[0].payload["task_id"], json!(id));
    assert_eq!(before[0].payload["window_start"], json!(start.to_rfc3339()));

    let theirs = outbox(&app, mother).await;
    let coming = of(&theirs, remind::VISIT_COMING);
    assert_eq!(coming.len(), 1);
    assert_eq!(coming[0].payload["volunteer"], "测*");
    assert_eq!(coming[0].payload["team"], "暖心服务队");
    assert_eq!(
        of(&theirs, remind::FAMILY_DAY_BEFORE)[0].next_attempt_at,
        local(&app, 2, 10, 0)
    );

    // Now: the confirmation and who is coming; the reminders wait for their time.
    run_batch(&app.state, Utc::now()).await.unwrap();
    let v_inbox = inbox(&app, &v.token).await;
    assert_eq!(titles(&v_inbox), ["认领成功"]);
    let m_inbox = inbox(&app, &mother_token).await;
    assert_eq!(titles(&m_inbox), ["有人来看望您"]);
    let body = m_inbox[0]["body"].as_str().unwrap();
    assert!(body.contains("志愿者测*（暖心服务队）"), "{body}");
    assert!(body.contains("14:30"), "{body}");

    // The family's morning the day before, the evening before, and two hours before
    // (each while still on time: a reminder late beyond its tolerance is dropped).
    run_batch(&app.state, local(&app, 2, 10, 1)).await.unwrap();
    run_batch(&app.state, local(&app, 2, 18, 1)).await.unwrap();
    run_batch(&app.state, local(&app, 3, 12, 31)).await.unwrap();
    let v_inbox = inbox(&app, &v.token).await;
    assert_eq!(
        titles(&v_inbox),
        ["走访就要开始了", "明天有走访", "认领成功"]
    );
    let m_inbox = inbox(&app, &mother_token).await;
    assert_eq!(titles(&m_inbox), ["明天有人来看望您", "有人来看望您"]);
    says_nothing_sensitive(&v_inbox);
    says_nothing_sensitive(&m_inbox);
}

#[tokio::test]
async fn giving_a_visit_back_takes_its_reminders_back_and_taking_it_again_restores_them() {
    let app = spawn_app_with(no_families()).await;
    let (family, mother, _) = family(&app).await;
    let v = volunteer_in_team(&app).await;
    let id = app
        .visit(VisitSpec::new(family, local(&app, 4, 0, 0), 24))
        .await;
    let claim = format!("/api/visits/{id}/claims");
    app.post(&claim, Some(&v.token), json!({})).await.ok();
    app.delete(&format!("{claim}/mine"), Some(&v.token))
        .await
        .ok();

    let pending = |rows: &[notification::Model]| {
        rows.iter()
            .filter(|r| r.status == notification::PENDING)
            .count()
    };
    let mine = outbox(&app, v.user_id).await;
    assert_eq!(mine.len(), 3);
    assert_eq!(pending(&mine), 0, "{mine:?}");
    assert!(
        mine.iter()
            .all(|r| r.last_error.as_deref() == Some("the volunteer no longer holds the visit"))
    );
    let theirs = outbox(&app, mother).await;
    assert_eq!(theirs.len(), 2);
    assert_eq!(pending(&theirs), 0);
    // Nothing of it reaches anyone.
    let stats = run_batch(&app.state, local(&app, 4, 9, 0)).await.unwrap();
    assert_eq!(stats.taken, 0);

    // Taken again: the same reminders are due again, with a new confirmation.
    app.post(&claim, Some(&v.token), json!({})).await.ok();
    let mine = outbox(&app, v.user_id).await;
    assert_eq!(of(&mine, remind::CLAIM_CONFIRMED).len(), 2);
    assert_eq!(pending(&mine), 3);
    let whole_day = of(&mine, remind::HOURS_BEFORE);
    assert_eq!(whole_day.len(), 1);
    assert_eq!(whole_day[0].next_attempt_at, local(&app, 4, 8, 0));
    assert_eq!(pending(&outbox(&app, mother).await), 2);
}

#[tokio::test]
async fn the_coordinators_of_the_familys_region_hear_of_unclaimed_visits_once_a_day() {
    let app = spawn_app_with(no_families()).await;
    let db = &app.state.db;
    let (family, _, _) = family(&app).await;
    let v = app
        .volunteer(VolunteerSpec::at(HOME.0, HOME.1 + 0.01))
        .await;
    let far = app.volunteer(VolunteerSpec::at(HOME.0 + 1.0, HOME.1)).await;
    app.visit(VisitSpec::new(family, local(&app, 2, 0, 0), 24))
        .await;
    // Not yet within the three days.
    app.visit(VisitSpec::new(family, local(&app, 10, 0, 0), 24))
        .await;
    // A village with no coordinator of its own: its township's hears.
    let plain = app
        .family_at("和平社区", FamilyCategory::Bereaved, "孙桂兰", Some(HOME))
        .await;
    app.visit(VisitSpec::new(plain, local(&app, 2, 0, 0), 24))
        .await;

    let c = &app.state.config.reminders;
    let tz = app.state.tz;
    let first = produce::daily(db, c, tz, Utc::now()).await.unwrap();
    let again = produce::daily(db, c, tz, Utc::now()).await.unwrap();
    assert!(first.digests >= 1);
    assert_eq!(again, first, "the same day's run computes the same");

    // The nearest coordinator over each family hears, of that family's visit only; the
    // county and the city, above them, do not hear of every village.
    let yangliu = app.user_id(people::YANGLIU).await;
    let taoyuan = app.user_id(people::TAOYUAN).await;
    let east = app.user_id(people::EAST_COUNTY).await;
    let city = app.user_id(people::CITY).await;
    let west = app.user_id(people::WEST_COUNTY).await;
    for coordinator in [yangliu, taoyuan] {
        let rows = outbox(&app, coordinator).await;
        let unclaimed = of(&rows, remind::VISITS_UNCLAIMED);
        assert_eq!(unclaimed.len(), 1, "one a day, however often the job runs");
        assert_eq!(unclaimed[0].payload["count"], 1);
    }
    for above in [east, city] {
        assert!(of(&outbox(&app, above).await, remind::VISITS_UNCLAIMED).is_empty());
    }
    assert!(outbox(&app, west).await.is_empty(), "another county's");

    // The volunteer near the families hears of the new visits once; the far one not.
    let digest = outbox(&app, v.user_id).await;
    assert_eq!(of(&digest, remind::NEW_VISITS).len(), 1);
    assert_eq!(digest[0].payload["count"], 3);
    assert!(outbox(&app, far.user_id).await.is_empty());

    run_batch(&app.state, Utc::now()).await.unwrap();
    let token = app.token_for(people::TAOYUAN).await;
    let items = inbox(&app, &token).await;
    assert_eq!(titles(&items), ["走访待认领"]);
    says_nothing_sensitive(&items);
}

#[tokio::test]
async fn missed_visits_low_ratings_and_risk_signs_reach_the_coordinators_once() {
    let app = spawn_app_with(no_families()).await;
    let db = &app.state.db;
    let tz = app.state.tz;
    let (family, mother, mother_token) = family(&app).await;
    let v = app.volunteer(VolunteerSpec::at(HOME.0, HOME.1)).await;
    // 杨柳村 has a coordinator of its own: they hear, not the township's above them.
    let yangliu = app.user_id(people::YANGLIU).await;
    let taoyuan = app.user_id(people::TAOYUAN).await;
    let west = app.user_id(people::WEST_COUNTY).await;

    // A visit under way now: check-in at the door, a report with a risk sign, the
    // family's confirmation with one star.
    let now = Utc::now();
    let id = app
        .visit(VisitSpec::new(family, now - Duration::hours(1), 24))
        .await;
    app.hold(&app.visit_row(id).await, &[v.user_id]).await;
    app.post(
        &format!("/api/visits/{id}/checkin"),
        Some(&v.token),
        json!({"lat": HOME.0, "lng": HOME.1}),
    )
    .await
    .ok();
    app.post(
        &format!("/api/visits/{id}/report"),
        Some(&v.token),
        json!({"services": ["companionship"], "risk_signs": ["alone_unattended"]}),
    )
    .await
    .ok();
    let asked = outbox(&app, mother).await;
    assert_eq!(of(&asked, remind::PLEASE_CONFIRM).len(), 1);
    app.post(
        &format!("/api/family/visits/{id}/confirm"),
        Some(&mother_token),
        json!({"rating": 1}),
    )
    .await
    .ok();

    // A visit nobody did, its window over.
    let gone = app
        .visit(VisitSpec::new(family, now - Duration::days(2), 24))
        .await;
    assert_eq!(produce::mark_missed(db, tz, Utc::now()).await.unwrap(), 1);
    assert_eq!(produce::mark_missed(db, tz, Utc::now()).await.unwrap(), 0);

    let rows = outbox(&app, yangliu).await;
    assert_eq!(of(&rows, remind::RISK_SIGNS).len(), 1);
    assert_eq!(of(&rows, remind::LOW_RATING)[0].payload["rating"], 1);
    let missed = of(&rows, remind::VISIT_MISSED);
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0].payload["task_id"], json!(gone));
    assert!(outbox(&app, west).await.is_empty());
    assert!(outbox(&app, taoyuan).await.is_empty());

    run_batch(&app.state, Utc::now()).await.unwrap();
    let items = inbox(&app, &app.token_for(people::YANGLIU).await).await;
    let mut seen = titles(&items);
    seen.sort();
    assert_eq!(seen, ["家庭评价偏低", "走访发现需关注的情况", "走访未完成"]);
    says_nothing_sensitive(&items);
    // The family was asked to confirm, and confirmed before the message went: it is
    // dropped, not sent.
    let asked = outbox(&app, mother).await;
    let please = of(&asked, remind::PLEASE_CONFIRM);
    assert_eq!(please[0].status, notification::DROPPED);
}

#[tokio::test]
async fn a_help_request_is_acknowledged_and_alerts_the_coordinators_as_an_emergency() {
    let app = spawn_app_with(no_families()).await;
    let db = &app.state.db;
    let (family, mother, _) = family(&app).await;
    let now = Utc::now();
    let h = entity::help_request::ActiveModel {
        id: Set(Uuid::now_v7()),
        family_id: Set(family),
        requester_id: Set(Some(mother)),
        kind: Set("fall".into()),
        message: Set("老人摔倒了".into()),
        status: Set("open".into()),
        acknowledged_at: Set(None),
        acknowledged_by: Set(None),
        resolved_at: Set(None),
        created_at: Set(now),
        escalation_level: Set(0),
        escalated_at: Set(None),
        resolved_by: Set(None),
        resolution: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    let tz = app.state.tz;
    let claim = Duration::minutes(2);
    assert!(
        !produce::help_requested(db, tz, &h, claim)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        produce::help_requested(db, tz, &h, claim)
            .await
            .unwrap()
            .is_empty()
    );
    let ack = outbox(&app, mother).await;
    assert_eq!(ack[0].template, remind::HELP_RECEIVED);
    // 杨柳村 has a coordinator of its own: the nearest tier hears first.
    let alert = outbox(&app, app.user_id(people::YANGLIU).await).await;
    assert_eq!(alert[0].template, remind::HELP_EMERGENCY);
    assert_eq!(alert[0].payload["emergency"], true);
    assert!(!alert[0].payload.to_string().contains("摔倒"));
}

/// A visit of `family` in three days at 14:30 for two hours, claimed by a volunteer of a
/// team: the volunteer and the visit.
async fn claimed_visit(app: &TestApp, family: Uuid) -> (tests::visits::TestVolunteer, Uuid) {
    let v = volunteer_in_team(app).await;
    let id = app
        .visit(VisitSpec::new(family, local(app, 3, 14, 30), 2))
        .await;
    app.post(
        &format!("/api/visits/{id}/claims"),
        Some(&v.token),
        json!({}),
    )
    .await
    .ok();
    (v, id)
}

#[tokio::test]
async fn a_visit_the_coordinator_moves_tells_its_holder_and_its_reminders_follow() {
    let app = spawn_app_with(no_families()).await;
    let (family, mother, mother_token) = family(&app).await;
    let (v, id) = claimed_visit(&app, family).await;
    run_batch(&app.state, Utc::now()).await.unwrap();

    // The family asks for another day; the coordinator moves the visit to it.
    app.post(
        &format!("/api/family/visits/{id}/move"),
        Some(&mother_token),
        json!({"reason": "那天要去医院", "preferred_dates": [app.state.today() + Duration::days(5)]}),
    )
    .await
    .ok();
    let token = app.token_for(people::TAOYUAN).await;
    let (start, end) = (local(&app, 5, 10, 0), local(&app, 5, 12, 0));
    let moved = app
        .post(
            &format!("/api/visits/{id}/reschedule"),
            Some(&token),
            json!({"window_start": start, "window_end": end, "reason": "按家庭的意愿改期"}),
        )
        .await
        .ok();
    assert_eq!(moved["status"], "claimed");
    let task = entity::visit_task::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((task.window_start, task.window_end), (start, end));
    assert!(!task.needs_attention, "the family's request is dealt with");

    // The volunteer hears of the new time at once; the old reminders are gone and new
    // ones wait for the new time.
    let mine = outbox(&app, v.user_id).await;
    let pending = |t: &str| -> Vec<DateTime<Utc>> {
        of(&mine, t)
            .iter()
            .filter(|r| r.status == notification::PENDING)
            .map(|r| r.next_attempt_at)
            .collect()
    };
    assert_eq!(pending(remind::EVENING_BEFORE), [local(&app, 4, 18, 0)]);
    assert_eq!(pending(remind::HOURS_BEFORE), [local(&app, 5, 8, 0)]);
    assert_eq!(of(&mine, remind::VISIT_MOVED).len(), 1);
    let theirs = outbox(&app, mother).await;
    let day_before: Vec<_> = of(&theirs, remind::FAMILY_DAY_BEFORE)
        .into_iter()
        .filter(|r| r.status == notification::PENDING)
        .collect();
    assert_eq!(day_before.len(), 1);
    assert_eq!(day_before[0].next_attempt_at, local(&app, 4, 10, 0));

    run_batch(&app.state, Utc::now()).await.unwrap();
    let v_inbox = inbox(&app, &v.token).await;
    assert_eq!(
        titles(&v_inbox),
        ["走访时间有变", "家庭希望改期", "认领成功"]
    );
    let body = v_inbox[0]["body"].as_str().unwrap();
    let day = start
        .with_timezone(&app.state.tz)
        .format("%-m月%-d日")
        .to_string();
    assert!(body.contains(&day) && body.contains("10:00"), "{body}");
    says_nothing_sensitive(&v_inbox);
    // The family hears the new time, with who is coming.
    let f_inbox = inbox(&app, &mother_token).await;
    assert_eq!(f_inbox[0]["title"], "看望时间有变");
    let told = f_inbox[0]["body"].as_str().unwrap();
    assert!(
        told.contains(&day) && told.contains("10:00") && told.contains("志愿者"),
        "{told}"
    );
    says_nothing_sensitive(&f_inbox);

    // The old window's moments pass quietly; the new ones remind.
    for at in [local(&app, 2, 18, 1), local(&app, 3, 12, 31)] {
        assert_eq!(run_batch(&app.state, at).await.unwrap().taken, 0);
    }
    assert_eq!(inbox(&app, &v.token).await.len(), 3);
    run_batch(&app.state, local(&app, 4, 18, 1)).await.unwrap();
    run_batch(&app.state, local(&app, 5, 8, 1)).await.unwrap();
    assert_eq!(
        titles(&inbox(&app, &v.token).await),
        [
            "走访就要开始了",
            "明天有走访",
            "走访时间有变",
            "家庭希望改期",
            "认领成功"
        ]
    );
    // The family may ask about the new time again, once.
    let again = format!("/api/family/visits/{id}/move");
    app.post(
        &again,
        Some(&mother_token),
        json!({"reason": "还是不方便", "preferred_dates": [app.state.today() + Duration::days(6)]}),
    )
    .await
    .ok();
    app.post(
        &again,
        Some(&mother_token),
        json!({"reason": "还是不方便", "preferred_dates": [app.state.today() + Duration::days(6)]}),
    )
    .await
    .error(409, "already_requested");
}

#[tokio::test]
async fn a_reminder_for_a_window_the_visit_left_is_dropped_when_its_time_comes() {
    let app = spawn_app_with(no_families()).await;
    let (family, _, _) = family(&app).await;
    let (v, id) = claimed_visit(&app, family).await;
    // Moved a day by a way that queued nothing (a direct correction of the row).
    let db = &app.state.db;
    let mut task = entity::visit_task::Entity::find_by_id(id)
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    task.window_start = Set(local(&app, 4, 14, 30));
    task.window_end = Set(local(&app, 4, 16, 30));
    task.update(db).await.unwrap();

    // Nothing queued for the old window reaches anyone: the volunteer's confirmation and
    // evening reminder, the family's word of who is coming and its day-before reminder.
    let stats = run_batch(&app.state, local(&app, 2, 18, 1)).await.unwrap();
    assert_eq!((stats.taken, stats.dropped), (4, 4), "{stats:?}");
    let evening = &of(&outbox(&app, v.user_id).await, remind::EVENING_BEFORE)[0].clone();
    assert_eq!(evening.status, notification::DROPPED);
    assert!(
        evening.last_error.as_deref().unwrap().contains("moved"),
        "{:?}",
        evening.last_error
    );
}

#[tokio::test]
async fn moving_a_visit_needs_a_sensible_window_a_reason_and_a_visit_ahead() {
    let app = spawn_app_with(no_families()).await;
    let (family, _, _) = family(&app).await;
    let id = app
        .visit(VisitSpec::new(family, local(&app, 3, 14, 30), 2))
        .await;
    let token = app.token_for(people::TAOYUAN).await;
    let path = format!("/api/visits/{id}/reschedule");
    let (start, end) = (local(&app, 5, 10, 0), local(&app, 5, 12, 0));
    let good = json!({"window_start": start, "window_end": end, "reason": "改期"});
    let cases: Vec<(&str, Value)> = vec![
        (
            "reason",
            json!({"window_start": start, "window_end": end, "reason": " "}),
        ),
        (
            "window_end",
            json!({"window_start": end, "window_end": start, "reason": "改期"}),
        ),
        (
            "window_end",
            json!({"window_start": start, "window_end": start + Duration::days(93), "reason": "改期"}),
        ),
        (
            "window_end",
            json!({"window_start": Utc::now() - Duration::days(2), "window_end": Utc::now() - Duration::days(1), "reason": "改期"}),
        ),
    ];
    for (field, body) in cases {
        app.post(&path, Some(&token), body).await.invalid(field);
    }
    app.post(
        &path,
        Some(&token),
        json!({"window_start": "soon", "window_end": end, "reason": "改期"}),
    )
    .await
    .invalid("window_start");
    app.post("/api/visits/nope/reschedule", Some(&token), good.clone())
        .await
        .invalid("id");
    // Nothing moved.
    let task = entity::visit_task::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(task.window_start, local(&app, 3, 14, 30));

    // A visit no longer ahead cannot be moved.
    let mut row = task.into_active_model();
    row.status = Set("cancelled".into());
    row.update(&app.state.db).await.unwrap();
    app.post(&path, Some(&token), good)
        .await
        .error(409, "visit_not_open");
}
