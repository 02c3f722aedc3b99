//! Events as coordinators, families and volunteers live them: a collective birthday for
//! February invites the families whose birthdays fall then (a lunar 腊月 birthday on its
//! lunar day, in February), families accept while there are places, volunteers sign up
//! once each while there are places, and afterwards the coordinator records who came.

use chrono::{Duration, Utc};
use entity::{BirthCalendar, event, event_invitation, family, notification, volunteer};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter,
};
use serde_json::{Value, json};
use tests::{visits::VolunteerSpec, *};
use uuid::Uuid;

fn plain() -> Options {
    Options {
        demo_families: Some(0),
        ..Options::default()
    }
}

async fn new_event(app: &TestApp, token: &str, region: &str, extra: Value) -> Value {
    let mut body = json!({
        "region_id": app.region(region).await,
        "kind": "birthday",
        "title": "二月集体生日会",
        "location": "桃源镇文化站",
        "starts_at": Utc::now() + Duration::days(30),
        "ends_at": Utc::now() + Duration::days(30) + Duration::hours(3),
        "capacity": 1,
        "birthday_month": 2,
    });
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    app.post("/api/events", Some(token), body).await.ok()
}

#[tokio::test]
async fn a_collective_birthday_invites_the_families_of_the_month_and_fills_its_places() {
    let app = spawn_app_with(plain()).await;
    // 腊月廿三 of lunar 2025 is 10 February 2026.
    let lunar = app
        .member_of_new_family(
            "杨柳村",
            "钱秀英",
            "13711110001",
            Some((BirthCalendar::Lunar, 12, 23, false)),
        )
        .await;
    let solar = app
        .member_of_new_family(
            "和平社区",
            "孙桂兰",
            "13711110002",
            Some((BirthCalendar::Solar, 2, 14, false)),
        )
        .await;
    app.member_of_new_family(
        "杨柳村",
        "李淑珍",
        "13711110003",
        Some((BirthCalendar::Solar, 3, 1, false)),
    )
    .await;
    // A family that asked for no festive contact is not offered.
    let quiet = app
        .member_of_new_family(
            "杨柳村",
            "赵玉兰",
            "13711110004",
            Some((BirthCalendar::Solar, 2, 20, false)),
        )
        .await;
    let mut f = family::Entity::find_by_id(quiet.family)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    f.do_not_disturb = Set(json!({"no_festive_visits": true}));
    f.update(&app.state.db).await.unwrap();

    let coordinator = app.token_for(people::TAOYUAN).await;
    let offered = app
        .get(
            "/api/events/birthday-families?year=2026&month=2",
            Some(&coordinator),
        )
        .await
        .ok();
    assert_eq!(offered["total"], 2, "{offered}");
    let by_family = |id: Uuid| {
        offered["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["family_id"] == id.to_string())
            .cloned()
            .unwrap_or_else(|| panic!("{id} not offered: {offered}"))
    };
    assert_eq!(by_family(lunar.family)["birthdays"], json!(["2026-02-10"]));
    assert_eq!(by_family(lunar.family)["lunar"], true);
    assert_eq!(by_family(solar.family)["birthdays"], json!(["2026-02-14"]));

    let e = new_event(
        &app,
        &coordinator,
        "桃源镇",
        json!({"description": "请带上身份证，有车接送"}),
    )
    .await;
    let id = e["id"].as_str().unwrap().to_string();
    let invited = app
        .post(
            &format!("/api/events/{id}/invitations"),
            Some(&coordinator),
            json!({"family_ids": [lunar.family, solar.family]}),
        )
        .await
        .ok();
    assert_eq!(
        (invited["invited"].clone(), invited["already"].clone()),
        (json!(2), json!(0))
    );
    let again = app
        .post(
            &format!("/api/events/{id}/invitations"),
            Some(&coordinator),
            json!({"family_ids": [lunar.family]}),
        )
        .await
        .ok();
    assert_eq!(again["already"], 1);
    // Each family hears once.
    let told = notification::Entity::find()
        .filter(notification::Column::RecipientId.eq(lunar.user))
        .filter(notification::Column::Template.eq("event_invitation"))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(told, 1);

    // One place: the first to accept takes it; a decline frees it.
    let mine = app.get("/api/family/events", Some(&lunar.token)).await.ok();
    assert_eq!(mine["items"][0]["reply"], "invited");
    // The family reads what the coordinator wrote about it (what to bring).
    assert_eq!(mine["items"][0]["description"], "请带上身份证，有车接送");
    app.post(
        &format!("/api/family/events/{id}/reply"),
        Some(&lunar.token),
        json!({"accept": true}),
    )
    .await
    .ok();
    app.post(
        &format!("/api/family/events/{id}/reply"),
        Some(&solar.token),
        json!({"accept": true}),
    )
    .await
    .error(409, "full");
    app.post(
        &format!("/api/family/events/{id}/reply"),
        Some(&lunar.token),
        json!({"accept": false}),
    )
    .await
    .ok();
    let replied = app
        .post(
            &format!("/api/family/events/{id}/reply"),
            Some(&solar.token),
            json!({"accept": true}),
        )
        .await
        .ok();
    assert_eq!(replied["reply"], "accepted");
    let e = app
        .get(&format!("/api/events/{id}"), Some(&coordinator))
        .await
        .ok();
    assert_eq!(e["accepted"], 1);
    let list = app
        .get(&format!("/api/events/{id}/invitations"), Some(&coordinator))
        .await
        .ok();
    assert_eq!(list["total"], 2);
    // A family not invited cannot reply.
    let other = app
        .member_of_new_family("杨柳村", "吴桂芳", "13711110005", None)
        .await;
    app.post(
        &format!("/api/family/events/{id}/reply"),
        Some(&other.token),
        json!({"accept": true}),
    )
    .await
    .error(404, "not_found");
}

#[tokio::test]
async fn volunteers_sign_up_once_while_places_last_and_attendance_is_recorded_afterwards() {
    let app = spawn_app_with(plain()).await;
    let coordinator = app.token_for(people::TAOYUAN).await;
    let fam = app
        .member_of_new_family("杨柳村", "钱秀英", "13711110001", None)
        .await;
    let e = new_event(
        &app,
        &coordinator,
        "桃源镇",
        json!({"kind": "festival", "birthday_month": null, "title": "重阳联欢", "capacity": 20, "volunteer_slots": 1}),
    )
    .await;
    let id = e["id"].as_str().unwrap().to_string();
    app.post(
        &format!("/api/events/{id}/invitations"),
        Some(&coordinator),
        json!({"family_ids": [fam.family]}),
    )
    .await
    .ok();

    let vs = app.volunteers(2, VolunteerSpec::at(31.31, 116.60)).await;
    let open = app
        .get("/api/volunteer/events", Some(&vs[0].token))
        .await
        .ok();
    assert_eq!(open["total"], 1);
    assert_eq!(open["items"][0]["signed_up"], false);
    let signed = app
        .post(
            &format!("/api/events/{id}/signup"),
            Some(&vs[0].token),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(signed["volunteers"], 1);
    assert_eq!(signed["signed_up"], true);
    app.post(
        &format!("/api/events/{id}/signup"),
        Some(&vs[0].token),
        json!({}),
    )
    .await
    .error(409, "already_signed_up");
    app.post(
        &format!("/api/events/{id}/signup"),
        Some(&vs[1].token),
        json!({}),
    )
    .await
    .error(409, "full");
    app.delete(&format!("/api/events/{id}/signup"), Some(&vs[0].token))
        .await
        .ok();
    app.post(
        &format!("/api/events/{id}/signup"),
        Some(&vs[1].token),
        json!({}),
    )
    .await
    .ok();

    // A volunteer of another county neither sees nor joins it.
    let far = app.volunteer(VolunteerSpec::at(31.31, 116.60)).await;
    let mut row = volunteer::Entity::find_by_id(far.volunteer_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    row.region_id = Set(app.region("丰收村").await.parse().unwrap());
    row.update(&app.state.db).await.unwrap();
    assert_eq!(
        app.get("/api/volunteer/events", Some(&far.token))
            .await
            .ok()["total"],
        0
    );
    app.post(
        &format!("/api/events/{id}/signup"),
        Some(&far.token),
        json!({}),
    )
    .await
    .error(404, "not_found");

    // Attendance waits for the event to begin.
    let attendance = json!({
        "families": [{"family_id": fam.family, "attended": true}],
        "volunteers": [{"user_id": vs[1].user_id, "attended": true}],
    });
    app.post(
        &format!("/api/events/{id}/attendance"),
        Some(&coordinator),
        attendance.clone(),
    )
    .await
    .error(409, "not_started");
    let eid: Uuid = id.parse().unwrap();
    let mut row = event::Entity::find_by_id(eid)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    row.starts_at = Set(Utc::now() - Duration::hours(2));
    row.update(&app.state.db).await.unwrap();
    // One volunteer who did not sign up: nothing is recorded.
    app.post(
        &format!("/api/events/{id}/attendance"),
        Some(&coordinator),
        json!({
            "families": [{"family_id": fam.family, "attended": true}],
            "volunteers": [{"user_id": vs[0].user_id, "attended": true}],
        }),
    )
    .await
    .invalid("volunteers[0].user_id");
    let inv = event_invitation::Entity::find()
        .filter(event_invitation::Column::EventId.eq(eid))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inv.attended, None, "no partial writes");
    let done = app
        .post(
            &format!("/api/events/{id}/attendance"),
            Some(&coordinator),
            attendance,
        )
        .await
        .ok();
    assert_eq!(
        (done["families"].clone(), done["volunteers"].clone()),
        (json!(1), json!(1))
    );
    let list = app
        .get(&format!("/api/events/{id}/invitations"), Some(&coordinator))
        .await
        .ok();
    assert_eq!(list["items"][0]["attended"], true);
    assert_eq!(app.audit_count("record_attendance").await, 1);
    // The township's filed report counts the event and the two who came.
    let tz = chrono_tz::Asia::Shanghai;
    let (from, to) = (
        (Utc::now() - Duration::days(1))
            .with_timezone(&tz)
            .date_naive(),
        Utc::now().with_timezone(&tz).date_naive(),
    );
    let township = app.region("桃源镇").await;
    let filed = app
        .get(
            &format!("/api/filings?region_id={township}&from={from}&to={to}"),
            Some(&coordinator),
        )
        .await
        .ok();
    assert_eq!(
        (
            filed["events_held"].clone(),
            filed["event_attendance"].clone()
        ),
        (json!(1), json!(2)),
        "{filed}"
    );
    // Too late to sign up or reply now.
    app.post(
        &format!("/api/events/{id}/signup"),
        Some(&vs[0].token),
        json!({}),
    )
    .await
    .error(409, "closed");
}

#[tokio::test]
async fn bad_events_are_refused_by_field_and_other_regions_see_nothing() {
    let app = spawn_app_with(plain()).await;
    let coordinator = app.token_for(people::TAOYUAN).await;
    let region = app.region("桃源镇").await;
    let start = Utc::now() + Duration::days(3);
    let good = json!({
        "region_id": region,
        "kind": "training",
        "title": "志愿者心理陪伴培训",
        "location": "桃源镇文化站",
        "starts_at": start,
        "ends_at": start + Duration::hours(2),
        "capacity": 30,
    });
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    for (body, field) in [
        (
            with("ends_at", json!(start - Duration::hours(1))),
            "ends_at",
        ),
        (
            with("starts_at", json!(Utc::now() - Duration::days(1))),
            "starts_at",
        ),
        (with("capacity", json!(0)), "capacity"),
        (with("title", json!("")), "title"),
        (with("kind", json!("party")), "kind"),
        (with("birthday_month", json!(2)), "birthday_month"),
        (with("volunteer_slots", json!(-1)), "volunteer_slots"),
        (
            with("region_id", json!(app.region("丰收村").await)),
            "region_id",
        ),
    ] {
        app.post("/api/events", Some(&coordinator), body)
            .await
            .invalid(field);
    }
    assert_eq!(
        event::Entity::find().count(&app.state.db).await.unwrap(),
        0,
        "nothing written"
    );
    let e = app.post("/api/events", Some(&coordinator), good).await.ok();
    let id = e["id"].as_str().unwrap();

    let west = app.token_for(people::WEST_COUNTY).await;
    app.get(&format!("/api/events/{id}"), Some(&west))
        .await
        .error(404, "not_found");
    assert_eq!(app.get("/api/events", Some(&west)).await.ok()["total"], 0);
    let far = app
        .member_of_new_family("丰收村", "周玉珍", "13711114444", None)
        .await;
    app.post(
        &format!("/api/events/{id}/invitations"),
        Some(&coordinator),
        json!({"family_ids": [far.family]}),
    )
    .await
    .invalid("family_ids[0]");
    app.post(
        &format!("/api/events/{id}/invitations"),
        Some(&coordinator),
        json!({"family_ids": []}),
    )
    .await
    .invalid("family_ids");
    app.get(
        "/api/events/birthday-families?year=2026&month=13",
        Some(&coordinator),
    )
    .await
    .invalid("month");
    // Families and volunteers do not manage events.
    let v = app.volunteer(VolunteerSpec::at(31.31, 116.60)).await;
    app.get("/api/events", Some(&v.token))
        .await
        .error(403, "forbidden");
    assert_eq!(
        event_invitation::Entity::find()
            .count(&app.state.db)
            .await
            .unwrap(),
        0
    );
}

/// How many messages of `template` were queued for `to`.
async fn told(app: &TestApp, to: Uuid, template: &str) -> u64 {
    notification::Entity::find()
        .filter(notification::Column::RecipientId.eq(to))
        .filter(notification::Column::Template.eq(template))
        .count(&app.state.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_changed_or_cancelled_event_is_told_to_those_coming_and_keeps_its_places_honest() {
    let app = spawn_app_with(plain()).await;
    let coordinator = app.token_for(people::TAOYUAN).await;
    let coming = app
        .member_of_new_family("杨柳村", "钱秀英", "13711110001", None)
        .await;
    let maybe = app
        .member_of_new_family("和平社区", "孙桂兰", "13711110002", None)
        .await;
    let declined = app
        .member_of_new_family("杨柳村", "李淑珍", "13711110003", None)
        .await;
    let e = new_event(
        &app,
        &coordinator,
        "桃源镇",
        json!({"kind": "festival", "birthday_month": null, "title": "重阳联欢",
               "capacity": 3, "volunteer_slots": 2}),
    )
    .await;
    let id = e["id"].as_str().unwrap().to_string();
    let starts: chrono::DateTime<Utc> = e["starts_at"].as_str().unwrap().parse().unwrap();
    app.post(
        &format!("/api/events/{id}/invitations"),
        Some(&coordinator),
        json!({"family_ids": [coming.family, maybe.family, declined.family]}),
    )
    .await
    .ok();
    for (who, accept) in [(&coming, true), (&maybe, true), (&declined, false)] {
        app.post(
            &format!("/api/family/events/{id}/reply"),
            Some(&who.token),
            json!({"accept": accept}),
        )
        .await
        .ok();
    }
    let vs = app.volunteers(2, VolunteerSpec::at(31.31, 116.60)).await;
    for v in &vs {
        app.post(
            &format!("/api/events/{id}/signup"),
            Some(&v.token),
            json!({}),
        )
        .await
        .ok();
    }

    // Bad changes name their field and change nothing.
    let url = format!("/api/events/{id}");
    for (body, field) in [
        (json!({"capacity": 1}), "capacity"),
        (json!({"volunteer_slots": 1}), "volunteer_slots"),
        (json!({"capacity": 0}), "capacity"),
        (json!({"title": " "}), "title"),
        (json!({"location": ""}), "location"),
        (
            json!({"starts_at": Utc::now() - Duration::days(1)}),
            "starts_at",
        ),
        (json!({"ends_at": starts - Duration::hours(1)}), "ends_at"),
        (
            json!({"starts_at": starts + Duration::days(1)}),
            "starts_at",
        ),
    ] {
        app.patch(&url, Some(&coordinator), body)
            .await
            .invalid(field);
    }
    let same = app.get(&url, Some(&coordinator)).await.ok();
    assert_eq!(same["capacity"], 3);
    assert_eq!(same["volunteer_slots"], 2);
    assert_eq!(same["starts_at"], e["starts_at"]);
    assert_eq!(app.audit_count("change_event").await, 0);
    // Another county's coordinator cannot change or cancel it.
    let west = app.token_for(people::WEST_COUNTY).await;
    app.patch(&url, Some(&west), json!({"title": "改"}))
        .await
        .error(404, "not_found");
    app.post(
        &format!("/api/events/{id}/cancel"),
        Some(&west),
        json!({"reason": "天气"}),
    )
    .await
    .error(404, "not_found");

    // A new title alone is told to nobody; a new day and place to everyone coming.
    let renamed = app
        .patch(
            &url,
            Some(&coordinator),
            json!({"title": "重阳敬老联欢", "capacity": 2}),
        )
        .await
        .ok();
    assert_eq!(renamed["title"], "重阳敬老联欢");
    assert_eq!(renamed["capacity"], 2);
    assert_eq!(told(&app, coming.user, "event_changed").await, 0);
    let later = starts + Duration::days(2);
    let moved = app
        .patch(
            &url,
            Some(&coordinator),
            json!({"starts_at": later, "ends_at": later + Duration::hours(3),
                   "location": "桃源镇敬老院"}),
        )
        .await
        .ok();
    assert_eq!(moved["location"], "桃源镇敬老院");
    for to in [coming.user, maybe.user, vs[0].user_id, vs[1].user_id] {
        assert_eq!(told(&app, to, "event_changed").await, 1, "{to}");
    }
    assert_eq!(told(&app, declined.user, "event_changed").await, 0);
    assert_eq!(app.audit_count("change_event").await, 2);

    // Cancelled, with a reason: those coming hear once; nothing changes afterwards.
    app.post(
        &format!("/api/events/{id}/cancel"),
        Some(&coordinator),
        json!({"reason": " "}),
    )
    .await
    .invalid("reason");
    let cancelled = app
        .post(
            &format!("/api/events/{id}/cancel"),
            Some(&coordinator),
            json!({"reason": "场地维修"}),
        )
        .await
        .ok();
    assert_eq!(cancelled["status"], "cancelled");
    for to in [coming.user, maybe.user, vs[0].user_id, vs[1].user_id] {
        assert_eq!(told(&app, to, "event_cancelled").await, 1, "{to}");
    }
    assert_eq!(told(&app, declined.user, "event_cancelled").await, 0);
    assert_eq!(app.audit_count("cancel_event").await, 1);
    app.post(
        &format!("/api/events/{id}/cancel"),
        Some(&coordinator),
        json!({"reason": "场地维修"}),
    )
    .await
    .error(409, "closed");
    app.patch(&url, Some(&coordinator), json!({"title": "再改"}))
        .await
        .error(409, "closed");
    let mine = app
        .get("/api/family/events", Some(&coming.token))
        .await
        .ok();
    assert_eq!(mine["items"][0]["event_status"], "cancelled");
    assert_eq!(told(&app, coming.user, "event_cancelled").await, 1);
}
