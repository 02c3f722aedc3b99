//! Emergency help as people live it: a mother presses help at night; the family's cadre,
//! the village's coordinator and the volunteer coming next hear at once, by WeChat and
//! SMS, whatever the quiet hours; nobody answers and the township hears, then the county;
//! someone acknowledges and it stops; a request a dead process left is taken over. The
//! scheduled jobs are off in these tests: nothing here waits for them.

use chrono::{Duration, NaiveDate, Utc};
use entity::{help_request, notification, pairing};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use server::{
    config::Config,
    notify::{emergency, remind},
};
use tests::{
    community::{TestMember, eventually},
    visits::{VisitSpec, VolunteerSpec},
    *,
};
use uuid::Uuid;

fn with(configure: fn(&mut Config)) -> Options {
    Options {
        demo_families: Some(0),
        configure: Some(configure),
        ..Options::default()
    }
}

/// Quiet hours all day long (emergencies ignore them), escalation after `secs`.
fn quiet_all_day(c: &mut Config) {
    c.notify.quiet_start = "00:00".into();
    c.notify.quiet_end = "23:59".into();
}

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

async fn mother(app: &TestApp) -> TestMember {
    app.member_of_new_family("杨柳村", "钱秀英", "13711112222", None)
        .await
}

async fn phone_of(app: &TestApp, user: Uuid) -> String {
    entity::app_user::Entity::find_by_id(user)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .phone
        .unwrap()
}

async fn request(app: &TestApp, id: &str) -> help_request::Model {
    help_request::Entity::find_by_id(id.parse::<Uuid>().unwrap())
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn help_reaches_the_cadre_the_village_coordinator_and_the_volunteer_on_duty_at_once_on_every_channel()
 {
    let app = spawn_app_with(with(quiet_all_day)).await;
    let m = mother(&app).await;
    pair(&app, m.family).await;
    // The volunteer holding the family's next visit, on WeChat.
    let v = app.volunteer(VolunteerSpec::at(31.31, 116.60)).await;
    let openid = app.on_wechat(v.user_id, &v.token, 2).await;
    let next = app
        .visit(VisitSpec::new(m.family, Utc::now() + Duration::days(2), 24))
        .await;
    let next = app.visit_row(next).await;
    app.hold(&next, &[v.user_id]).await;

    let pressed = app
        .post(
            "/api/family/help",
            Some(&m.token),
            json!({"kind": "fall", "message": "老伴摔倒了"}),
        )
        .await
        .ok();
    assert_eq!(pressed["status"], "open");
    assert_eq!(pressed["alerted"], 3, "{pressed}");

    let v_phone = phone_of(&app, v.user_id).await;
    let reached = eventually(5.0, || {
        app.sms_count(people::TAOYUAN_CADRE) == 1
            && app.sms_count(people::YANGLIU) == 1
            && app.sms_count(&v_phone) == 1
            && app.wechat_count(&openid) == 1
    })
    .await;
    assert!(
        reached,
        "SMS: {:?}, WeChat: {:?}",
        app.wechat.sms_outbox(),
        app.wechat.outbox()
    );
    // Nobody above the village yet, and no other county ever.
    for phone in [people::TAOYUAN, people::EAST_COUNTY, people::WEST_COUNTY] {
        assert_eq!(app.sms_count(phone), 0, "{phone}");
    }
    // The messages say it is urgent and nothing about the family.
    let sms = app.wechat.sms_outbox();
    let shown = format!("{:?}", sms[0].params);
    assert!(shown.contains("紧急求助"), "{shown}");
    for secret in ["钱", "摔倒", "杨柳村"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    // Recorded in the outbox (and so in each person's inbox), sent.
    let mut settled = false;
    for _ in 0..40 {
        let alerts = notification::Entity::find()
            .filter(notification::Column::Template.eq(remind::HELP_EMERGENCY))
            .all(&app.state.db)
            .await
            .unwrap();
        assert_eq!(alerts.len(), 3);
        if alerts
            .iter()
            .all(|a| a.status == "sent" && a.inbox_at.is_some())
        {
            settled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(settled, "every alert is marked sent");
    // The volunteer sees in the app where to go.
    let id = pressed["id"].as_str().unwrap();
    let detail = app
        .get(&format!("/api/help/{id}"), Some(&v.token))
        .await
        .ok();
    assert_eq!(detail["kind_label"], "摔倒");
    assert_eq!(detail["message"], "老伴摔倒了");
    assert_eq!(detail["requester_phone"], m.phone);
    assert!(app.audit_count("read_help").await >= 1);
}

#[tokio::test]
async fn nobody_answers_and_it_goes_up_one_tier_at_a_time_until_someone_acknowledges() {
    let app = spawn_app_with(with(|c| c.help.escalate_after_secs = 1)).await;
    let m = mother(&app).await;
    let pressed = app
        .post("/api/family/help", Some(&m.token), json!({}))
        .await
        .ok();
    let id = pressed["id"].as_str().unwrap().to_string();
    assert!(eventually(3.0, || app.sms_count(people::YANGLIU) == 1).await);

    // A second later the township hears, and only the township.
    assert!(eventually(3.0, || app.sms_count(people::TAOYUAN) == 1).await);
    assert_eq!(app.sms_count(people::EAST_COUNTY), 0);
    assert_eq!(request(&app, &id).await.escalation_level, 1);

    // Then the county, which acknowledges.
    assert!(eventually(3.0, || app.sms_count(people::EAST_COUNTY) == 1).await);
    let county = app.token_for(people::EAST_COUNTY).await;
    let acked = app
        .post(&format!("/api/help/{id}/ack"), Some(&county), json!({}))
        .await
        .ok();
    assert_eq!(acked["status"], "acknowledged");
    let level = request(&app, &id).await.escalation_level;
    assert!(level >= 2, "{level}");

    // The city is not woken up after that, and nobody is alerted twice.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    if level == 2 {
        assert_eq!(app.sms_count(people::CITY), 0);
    }
    for phone in [people::YANGLIU, people::TAOYUAN, people::EAST_COUNTY] {
        assert_eq!(app.sms_count(phone), 1, "{phone}");
    }
    assert_eq!(app.audit_count("escalate_help").await, level as u64);
}

#[tokio::test]
async fn the_first_acknowledgement_stops_the_escalation_and_the_family_sees_who_is_coming() {
    let app = spawn_app_with(with(|c| c.help.escalate_after_secs = 2)).await;
    let m = mother(&app).await;
    pair(&app, m.family).await;
    let id = app
        .post(
            "/api/family/help",
            Some(&m.token),
            json!({"kind": "illness"}),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cadre = app.token_for(people::TAOYUAN_CADRE).await;
    app.post(&format!("/api/help/{id}/ack"), Some(&cadre), json!({}))
        .await
        .ok();
    // Someone else a moment later is told it is taken care of.
    let village = app.token_for(people::YANGLIU).await;
    app.post(&format!("/api/help/{id}/ack"), Some(&village), json!({}))
        .await
        .error(409, "already_acknowledged");

    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    assert_eq!(app.sms_count(people::TAOYUAN), 0, "no escalation");
    let mine = app.get("/api/family/help", Some(&m.token)).await.ok();
    let row = &mine["items"][0];
    assert_eq!(row["status"], "acknowledged");
    assert!(row["acknowledged_by"].as_str().unwrap().ends_with('*'));

    // Closed with what was done; closing twice is refused.
    let done = app
        .post(
            &format!("/api/help/{id}/resolve"),
            Some(&cadre),
            json!({"resolution": "已送医，老人无大碍"}),
        )
        .await
        .ok();
    assert_eq!(done["status"], "resolved");
    app.post(
        &format!("/api/help/{id}/resolve"),
        Some(&cadre),
        json!({"resolution": "再次"}),
    )
    .await
    .error(409, "already_resolved");
}

#[tokio::test]
async fn pressing_again_returns_the_same_request_and_alerts_nobody_twice() {
    let app = spawn_app_with(with(|_| {})).await;
    let m = mother(&app).await;
    let first = app
        .post("/api/family/help", Some(&m.token), json!({}))
        .await
        .ok();
    let again = app
        .post("/api/family/help", Some(&m.token), json!({"kind": "fall"}))
        .await
        .ok();
    assert_eq!(first["id"], again["id"]);
    assert_eq!(again["repeated"], true);
    assert_eq!(again["alerted"], 0);
    assert!(eventually(3.0, || app.sms_count(people::YANGLIU) == 1).await);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.sms_count(people::YANGLIU), 1);
}

#[tokio::test]
async fn a_request_left_by_a_dead_process_is_sent_and_escalated_by_the_sweep() {
    let app = spawn_app_with(with(|_| {})).await;
    let m = mother(&app).await;
    let db = &app.state.db;
    // Made 20 minutes ago by a process that died before sending its alert.
    let made = Utc::now() - Duration::minutes(20);
    let h = help_request::ActiveModel {
        id: Set(Uuid::now_v7()),
        family_id: Set(m.family),
        requester_id: Set(Some(m.user)),
        kind: Set("general".into()),
        message: Set(String::new()),
        status: Set("open".into()),
        acknowledged_at: Set(None),
        acknowledged_by: Set(None),
        resolved_at: Set(None),
        created_at: Set(made),
        escalation_level: Set(0),
        escalated_at: Set(None),
        resolved_by: Set(None),
        resolution: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    emergency::queue_alerts(db, &h, 0, made, Duration::minutes(2), app.state.tz)
        .await
        .unwrap();
    assert_eq!(app.sms_count(people::YANGLIU), 0);

    // The instance's own watch sweeps too, at its start; whichever sweep comes first does
    // the work, once.
    let (sent, escalated) = emergency::sweep(&app.state, Utc::now()).await.unwrap();
    assert!(sent.sms <= 1 && escalated <= 1, "{sent:?} {escalated}");
    assert!(eventually(3.0, || app.sms_count(people::YANGLIU) == 1).await);
    assert!(eventually(3.0, || app.sms_count(people::TAOYUAN) == 1).await);
    assert_eq!(request(&app, &h.id.to_string()).await.escalation_level, 1);
    // A second sweep right after has nothing left to do.
    let (sent, escalated) = emergency::sweep(&app.state, Utc::now()).await.unwrap();
    assert_eq!((sent, escalated), (Default::default(), 0));
}

#[tokio::test]
async fn bad_input_is_refused_by_field_and_other_regions_see_nothing() {
    let app = spawn_app_with(with(|_| {})).await;
    let m = mother(&app).await;
    app.post(
        "/api/family/help",
        Some(&m.token),
        json!({"message": "很".repeat(201)}),
    )
    .await
    .invalid("message");
    app.post("/api/family/help", Some(&m.token), json!({"kind": "fire"}))
        .await
        .invalid("kind");
    app.post(
        "/api/family/help",
        Some(&m.token),
        json!({"family_id": Uuid::now_v7()}),
    )
    .await
    .invalid("family_id");
    assert_eq!(
        help_request::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
            .len(),
        0,
        "nothing written"
    );
    // Someone who is no family's member cannot press.
    let v = app.volunteer(VolunteerSpec::at(31.31, 116.60)).await;
    app.post("/api/family/help", Some(&v.token), json!({}))
        .await
        .error(403, "forbidden");

    let id = app
        .post("/api/family/help", Some(&m.token), json!({}))
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Another county's coordinator and a volunteer not alerted: as if it did not exist.
    let west = app.token_for(people::WEST_COUNTY).await;
    app.get(&format!("/api/help/{id}"), Some(&west))
        .await
        .error(404, "not_found");
    app.post(&format!("/api/help/{id}/ack"), Some(&v.token), json!({}))
        .await
        .error(404, "not_found");
    let listed = app.get("/api/help", Some(&west)).await.ok();
    assert_eq!(listed["total"], 0);
    let east = app.token_for(people::EAST_COUNTY).await;
    let listed = app.get("/api/help?status=open", Some(&east)).await.ok();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["items"][0]["village"], "杨柳村");
    app.get("/api/help?status=lost", Some(&east))
        .await
        .invalid("status");
    // An empty resolution changes nothing.
    app.post(
        &format!("/api/help/{id}/resolve"),
        Some(&east),
        json!({"resolution": " "}),
    )
    .await
    .invalid("resolution");
    assert_eq!(request(&app, &id).await.status, "open");
}
