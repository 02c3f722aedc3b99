//! Doing a visit, reporting it and the family confirming it, as a volunteer and a family
//! notice it: check-in by position and by the family's code, the report and what follows
//! from it (a counsellor's follow-up, wishes), the family's confirmation with a rating,
//! service hours credited once; and every bad input of the issue answered with a clear 4xx
//! that changes nothing.

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, Utc};
use entity::{
    app_user, audit_log, notification, service_hours, task_claim, visit_checkin, visit_code,
    visit_record, visit_request, visit_task, wish,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder,
};
use serde_json::{Value, json};
use tests::*;
use uuid::Uuid;

/// The family's home.
const HOME: (f64, f64) = (31.82, 117.23);
/// About 111 m north of it: at the door, near enough.
const AT_DOOR: (f64, f64) = (31.821, 117.23);
/// About 5 km north of it.
const FAR: (f64, f64) = (31.865, 117.23);
/// Another approved demo volunteer (13900000000 is `people::VOLUNTEER`).
const VOLUNTEER_2: &str = "13900000001";

fn today() -> NaiveDate {
    let beijing = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    Utc::now().with_timezone(&beijing).date_naive()
}

/// A family with a home position and members with birthdays in the horizon, registered
/// through the API (which plans its visits); returns its id and its detail.
async fn new_family(app: &TestApp, coordinator: &str, village: &str, no: &str) -> (Uuid, Value) {
    let token = app.token_for(coordinator).await;
    let village = app.region(village).await;
    let b1 = today().checked_add_days(Days::new(15)).unwrap();
    let b2 = today().checked_add_days(Days::new(35)).unwrap();
    let created = app
        .post(
            "/api/families",
            Some(&token),
            json!({
                "region_id": village,
                "register_no": no,
                "category": "empty_nest",
                "head_name": "孙长海",
                "address": "杨柳村5组8号",
                "lat": HOME.0,
                "lng": HOME.1,
                "members": [
                    {"name": "孙长海", "relation": "father", "birth_year": 1950,
                     "birth_month": b1.month(), "birth_day": b1.day()},
                    {"name": "周桂兰", "relation": "mother", "birth_year": 1952,
                     "birth_month": b2.month(), "birth_day": b2.day()}
                ]
            }),
        )
        .await
        .ok();
    (created["id"].as_str().unwrap().parse().unwrap(), created)
}

/// Binds the family's mother to a new WeChat account with an invite code; her token.
async fn bind_mother(app: &TestApp, coordinator: &str, family: Uuid, detail: &Value) -> String {
    let token = app.token_for(coordinator).await;
    let mother = detail["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["relation"] == "mother")
        .unwrap()["id"]
        .clone();
    let code = app
        .post(
            &format!("/api/families/{family}/invites"),
            Some(&token),
            json!({"member_id": mother}),
        )
        .await
        .ok()["code"]
        .as_str()
        .unwrap()
        .to_string();
    let openid = format!("o-report-{}", Uuid::new_v4().simple());
    let ticket = app.wechat_login(&openid).await.ok()["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(
        "/api/auth/bind",
        None,
        json!({"ticket": ticket, "code": code}),
    )
    .await
    .ok()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A planned visit of the family nobody holds yet (the family has no 一帮一 cadre, so its
/// cadre visits are unassigned too), moved to today: its window opened an hour ago and
/// lasts a day. `channel` picks a home visit or a phone call.
async fn visit_due_now(app: &TestApp, family: Uuid, channel: &str) -> visit_task::Model {
    let db = &app.state.db;
    let task = visit_task::Entity::find()
        .filter(visit_task::Column::FamilyId.eq(family))
        .filter(visit_task::Column::Channel.eq(channel))
        .filter(visit_task::Column::Status.eq("open"))
        .filter(visit_task::Column::AssignedCadreId.is_null())
        .filter(visit_task::Column::ClaimsCount.eq(0))
        .filter(visit_task::Column::WindowStart.gt(Utc::now()))
        .order_by_asc(visit_task::Column::WindowStart)
        .one(db)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("the family has a {channel} visit ahead"));
    let now = Utc::now();
    let mut t = task.into_active_model();
    t.window_start = Set(now - Duration::hours(1));
    t.window_end = Set(now + Duration::days(1));
    t.update(db).await.unwrap()
}

/// The volunteers of `phones` hold the visit (as the claim endpoint leaves it).
async fn hold(app: &TestApp, task: &visit_task::Model, phones: &[&str]) -> visit_task::Model {
    let mut users = Vec::new();
    for phone in phones {
        users.push(app.user_id(phone).await);
    }
    app.hold(task, &users).await
}

async fn task(app: &TestApp, id: Uuid) -> visit_task::Model {
    visit_task::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
}

/// Every row a step of the visit flow could write, to compare before and after.
async fn snapshot(app: &TestApp) -> String {
    let db = &app.state.db;
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        visit_task::Entity::find()
            .order_by_asc(visit_task::Column::Id)
            .all(db)
            .await
            .unwrap(),
        task_claim::Entity::find()
            .order_by_asc(task_claim::Column::Id)
            .all(db)
            .await
            .unwrap(),
        visit_record::Entity::find()
            .order_by_asc(visit_record::Column::Id)
            .all(db)
            .await
            .unwrap(),
        visit_checkin::Entity::find()
            .order_by_asc(visit_checkin::Column::Id)
            .all(db)
            .await
            .unwrap(),
        visit_code::Entity::find()
            .order_by_asc(visit_code::Column::Id)
            .all(db)
            .await
            .unwrap(),
        visit_request::Entity::find()
            .order_by_asc(visit_request::Column::Id)
            .all(db)
            .await
            .unwrap(),
        service_hours::Entity::find()
            .order_by_asc(service_hours::Column::Id)
            .all(db)
            .await
            .unwrap(),
        wish::Entity::find()
            .order_by_asc(wish::Column::Id)
            .all(db)
            .await
            .unwrap(),
        (
            notification::Entity::find().count(db).await.unwrap(),
            audit_log::Entity::find().count(db).await.unwrap()
        ),
    )
}

fn at(p: (f64, f64)) -> Value {
    json!({"lat": p.0, "lng": p.1})
}

fn full_report() -> Value {
    json!({
        "services": ["condolence", "health_check", "companionship"],
        "cash_yuan": 2000,
        "goods": "大米一袋、食用油一桶",
        "bp_systolic": 135,
        "bp_diastolic": 85,
        "mood": "low",
        "risk_signs": ["low_mood_weeks"],
        "needs": ["想有人陪着去医院复查"],
        "notes": "老人说晚上睡不好"
    })
}

/// Sets a holder's check-in back in time, as if they had arrived `minutes` ago.
async fn arrived_ago(app: &TestApp, task: Uuid, phone: &str, minutes: i64) {
    let db = &app.state.db;
    let user = app.user_id(phone).await;
    let c = visit_checkin::Entity::find()
        .filter(visit_checkin::Column::TaskId.eq(task))
        .filter(visit_checkin::Column::UserId.eq(user))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let mut c = c.into_active_model();
    c.checkin_at = Set(Utc::now() - Duration::minutes(minutes));
    c.update(db).await.unwrap();
}

async fn hours_of(app: &TestApp, phone: &str) -> Vec<service_hours::Model> {
    let user = app.user_id(phone).await;
    service_hours::Entity::find()
        .filter(service_hours::Column::VolunteerId.eq(user))
        .all(&app.state.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_visit_from_the_door_to_the_familys_confirmation() {
    let app = spawn_app().await;
    let (family, detail) = new_family(&app, people::EAST_COUNTY, "杨柳村", "RP-1").await;
    let mother = bind_mother(&app, people::EAST_COUNTY, family, &detail).await;
    let visit = visit_due_now(&app, family, "home_visit").await;
    let visit = hold(&app, &visit, &[people::VOLUNTEER, VOLUNTEER_2]).await;
    let id = visit.id;
    let a = app.token_for(people::VOLUNTEER).await;
    let b = app.token_for(VOLUNTEER_2).await;

    // The family sees who is coming: surnames and teams only.
    let list = app.get("/api/family/visits", Some(&mother)).await.ok();
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == json!(id))
        .expect("the visit is in the family's list")
        .clone();
    let visitors = item["visitors"].as_array().unwrap();
    assert_eq!(visitors.len(), 2);
    for (v, phone) in visitors.iter().zip([people::VOLUNTEER, VOLUNTEER_2]) {
        let user = app_user::Entity::find_by_id(app.user_id(phone).await)
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap();
        let surname: String = user.name.chars().take(1).collect();
        assert_eq!(v["name"], format!("{surname}*"));
        assert_eq!(v["role"], "volunteer");
        assert!(v["team"].as_str().is_some_and(|t| t.ends_with("服务队")));
        assert!(!list.to_string().contains(&user.name), "a full name leaked");
        assert!(!list.to_string().contains(phone), "a phone number leaked");
    }
    assert_eq!(item["status"], "claimed");
    assert_eq!(item["can_confirm"], false);

    // The first volunteer checks in at the door by position.
    let first = app
        .post(&format!("/api/visits/{id}/checkin"), Some(&a), at(AT_DOOR))
        .await
        .ok();
    assert_eq!(first["status"], "in_progress");
    assert_eq!(first["method"], "position");
    let d = first["distance_m"].as_f64().unwrap();
    assert!((100.0..125.0).contains(&d), "{d}");
    assert_eq!(task(&app, id).await.status, "in_progress");
    // Sent again over a poor connection: the same check-in.
    let again = app
        .post(&format!("/api/visits/{id}/checkin"), Some(&a), at(AT_DOOR))
        .await
        .ok();
    assert_eq!(again["checkin_at"], first["checkin_at"]);

    // The second has no GPS: the family shows a code in its app.
    let code = app
        .get(&format!("/api/family/visits/{id}/code"), Some(&mother))
        .await
        .ok();
    let code = code["code"].as_str().unwrap().to_string();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
    let stored = visit_code::Entity::find()
        .filter(visit_code::Column::TaskId.eq(id))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.code_hash.contains(&code), "codes are kept hashed");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    app.post(
        &format!("/api/visits/{id}/checkin"),
        Some(&b),
        json!({"code": wrong}),
    )
    .await
    .invalid("code");
    let second = app
        .post(
            &format!("/api/visits/{id}/checkin"),
            Some(&b),
            json!({"code": format!("{} {}", &code[..3], &code[3..])}),
        )
        .await
        .ok();
    assert_eq!(second["method"], "code");
    assert_eq!(second["status"], "in_progress");

    // The report: what was done, what was given, what was noticed.
    let report = app
        .post(&format!("/api/visits/{id}/report"), Some(&a), full_report())
        .await
        .ok();
    assert_eq!(report["status"], "reported");
    assert_eq!(report["cash_fen"], 200_000);
    assert_eq!(
        report["service_labels"],
        json!(["慰问", "健康监测", "陪同聊天"])
    );
    assert_eq!(report["wishes_created"], 1);
    let reported = task(&app, id).await;
    assert_eq!(reported.status, "reported");
    // Low mood for weeks: a counsellor's gentle follow-up within the week, flagged.
    let followup: Uuid = report["followup_visit_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let f = task(&app, followup).await;
    assert_eq!(f.unique_key, format!("{family}:followup:{id}"));
    assert_eq!(f.required_skills.0, ["counselling"]);
    assert!(f.gentle && f.needs_attention);
    assert_eq!(f.status, "open");
    assert!(f.window_end - f.window_start == Duration::days(7));
    // The need is on the wish wall for coordinators.
    let wishes = wish::Entity::find()
        .filter(wish::Column::FamilyId.eq(family))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(wishes.len(), 1);
    assert_eq!(
        (wishes[0].content.as_str(), wishes[0].status.as_str()),
        ("想有人陪着去医院复查", "open")
    );
    // The nightly planning leaves the follow-up alone.
    server::jobs::replan(&app.state, family).await;
    assert_eq!(task(&app, followup).await.status, "open");

    // They leave: one after an hour and a half, one after five hours (capped at four).
    arrived_ago(&app, id, people::VOLUNTEER, 90).await;
    arrived_ago(&app, id, VOLUNTEER_2, 300).await;
    let out = app
        .post(&format!("/api/visits/{id}/checkout"), Some(&a), json!({}))
        .await
        .ok();
    assert_eq!(out["duration_minutes"], 90);
    let out = app
        .post(&format!("/api/visits/{id}/checkout"), Some(&b), json!({}))
        .await
        .ok();
    assert_eq!(out["duration_minutes"], 300);

    // The family confirms with a rating; tapped twice at once, it counts once.
    let list = app.get("/api/family/visits", Some(&mother)).await.ok();
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == json!(id) && v["can_confirm"] == true)
    );
    let path = format!("/api/family/visits/{id}/confirm");
    let body = json!({"rating": 5, "comment": "小王很耐心，谢谢"});
    let (r1, r2) = tokio::join!(
        app.post(&path, Some(&mother), body.clone()),
        app.post(&path, Some(&mother), body.clone())
    );
    let (ok, refused) = if r1.status.is_success() {
        (r1, r2)
    } else {
        (r2, r1)
    };
    let ok = ok.ok();
    assert_eq!(ok["status"], "confirmed");
    assert_eq!(ok["volunteers_credited"], 2);
    assert_eq!(ok["minutes_credited"], 90 + 240);
    let refused = refused.error(409, "already_confirmed");
    assert_eq!(refused["state"], "confirmed");
    let record = visit_record::Entity::find()
        .filter(visit_record::Column::TaskId.eq(id))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.rating, Some(5));
    assert_eq!(record.confirm_method.as_deref(), Some("family"));
    assert_eq!(record.comment.as_deref(), Some("小王很耐心，谢谢"));

    // Hours credited once per volunteer, capped, of the visit's kind.
    let ha = hours_of(&app, people::VOLUNTEER).await;
    let hb = hours_of(&app, VOLUNTEER_2).await;
    assert_eq!(ha.len(), 1);
    assert_eq!(hb.len(), 1);
    assert_eq!(
        (ha[0].minutes, ha[0].kind.as_str()),
        (90, visit.kind.as_str())
    );
    assert_eq!(hb[0].minutes, 240);
    // Confirming again, by code this time: refused, nothing more credited.
    let code = app
        .get(&format!("/api/family/visits/{id}/code"), Some(&mother))
        .await
        .error(409, "no_code_needed");
    assert_eq!(code["state"], "confirmed");
    app.post(
        &format!("/api/visits/{id}/confirm"),
        Some(&a),
        json!({"code": "123456"}),
    )
    .await
    .error(409, "already_confirmed");
    assert_eq!(hours_of(&app, people::VOLUNTEER).await.len(), 1);

    // The volunteer's hours: by month and kind, and a file to download.
    let mine = app.get("/api/me/hours", Some(&a)).await.ok();
    assert_eq!(mine["total_minutes"], 90);
    assert_eq!(mine["total_hours"], 1.5);
    assert_eq!(mine["visits"], 1);
    let month = Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m")
        .to_string();
    assert_eq!(mine["by_month"][0]["month"], month);
    assert_eq!(mine["by_month"][0]["minutes"], 90);
    assert_eq!(mine["by_kind"][0]["kind"], visit.kind);
    let csv = app
        .http
        .get(app.url("/api/me/hours/summary"))
        .bearer_auth(&b)
        .send()
        .await
        .unwrap();
    assert!(csv.status().is_success());
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.trim_start_matches('\u{feff}').lines().collect();
    assert!(
        lines[0].starts_with("志愿者,日期,服务类型,时长（分钟）"),
        "{text}"
    );
    assert!(lines[1].contains(",240,4.0,"), "{text}");
    assert!(lines.last().unwrap().contains("合计"), "{text}");
    assert!(
        !text.contains("孙长海") && !text.contains("周桂兰"),
        "no family details"
    );
}

#[tokio::test]
async fn every_bad_input_is_a_clear_4xx_that_changes_nothing() {
    let app = spawn_app().await;
    let (family, detail) = new_family(&app, people::EAST_COUNTY, "杨柳村", "RP-2").await;
    let mother = bind_mother(&app, people::EAST_COUNTY, family, &detail).await;
    let mine = visit_due_now(&app, family, "home_visit").await;
    let mine = hold(&app, &mine, &[people::VOLUNTEER]).await.id;
    let theirs = visit_due_now(&app, family, "home_visit").await;
    let theirs = hold(&app, &theirs, &[VOLUNTEER_2]).await.id;
    let (west, _) = new_family(&app, people::WEST_COUNTY, "丰收村", "RP-3").await;
    let far_away = visit_due_now(&app, west, "home_visit").await;
    let far_away = hold(&app, &far_away, &[VOLUNTEER_2]).await.id;
    let v = app.token_for(people::VOLUNTEER).await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let cadre = app.token_for(people::TAOYUAN_CADRE).await;

    let before = snapshot(&app).await;
    // Another volunteer's visit: not mine to see.
    app.post(
        &format!("/api/visits/{theirs}/checkin"),
        Some(&v),
        at(AT_DOOR),
    )
    .await
    .error(404, "not_found");
    app.post(
        &format!("/api/visits/{theirs}/report"),
        Some(&v),
        full_report(),
    )
    .await
    .error(404, "not_found");
    // A visit in another region: not even its coordinator's neighbour may touch it.
    app.post(
        &format!("/api/visits/{far_away}/checkin"),
        Some(&v),
        at(AT_DOOR),
    )
    .await
    .error(404, "not_found");
    app.patch(
        &format!("/api/visits/{far_away}/report"),
        Some(&coordinator),
        json!({"cash_yuan": 10}),
    )
    .await
    .error(404, "not_found");
    // A coordinator sees the visit in their region but does not hold it.
    app.post(
        &format!("/api/visits/{mine}/checkin"),
        Some(&coordinator),
        at(AT_DOOR),
    )
    .await
    .error(403, "forbidden");
    // Nor does a cadre it was not assigned to, nor the family itself.
    app.post(
        &format!("/api/visits/{mine}/checkin"),
        Some(&cadre),
        at(AT_DOOR),
    )
    .await
    .error(404, "not_found");
    app.post(
        &format!("/api/visits/{mine}/checkin"),
        Some(&mother),
        at(AT_DOOR),
    )
    .await
    .error(404, "not_found");
    // The family confirms only its own visits, and volunteers are no family.
    app.post(
        &format!("/api/family/visits/{far_away}/confirm"),
        Some(&mother),
        json!({}),
    )
    .await
    .error(404, "not_found");
    app.post(
        &format!("/api/family/visits/{mine}/confirm"),
        Some(&v),
        json!({}),
    )
    .await
    .error(403, "forbidden");
    app.get("/api/family/visits", Some(&v))
        .await
        .error(403, "forbidden");
    // A check-in from 5 km away names the position and says how far.
    let err = app
        .post(&format!("/api/visits/{mine}/checkin"), Some(&v), at(FAR))
        .await
        .invalid("lat");
    assert!(
        err["message"].as_str().unwrap().contains("5.0 公里"),
        "{err}"
    );
    // Half a position, a position and a code, a code of letters, nothing at all.
    app.post(
        &format!("/api/visits/{mine}/checkin"),
        Some(&v),
        json!({"lat": 31.8}),
    )
    .await
    .invalid("lng");
    app.post(
        &format!("/api/visits/{mine}/checkin"),
        Some(&v),
        json!({"lat": AT_DOOR.0, "lng": AT_DOOR.1, "code": "123456"}),
    )
    .await
    .invalid("code");
    app.post(
        &format!("/api/visits/{mine}/checkin"),
        Some(&v),
        json!({"code": "abcdef"}),
    )
    .await
    .invalid("code");
    app.post(&format!("/api/visits/{mine}/checkin"), Some(&v), json!({}))
        .await
        .invalid("lat");
    // A code nobody issued.
    app.post(
        &format!("/api/visits/{mine}/checkin"),
        Some(&v),
        json!({"code": "123456"}),
    )
    .await
    .invalid("code");
    // A report before check-in.
    let err = app
        .post(
            &format!("/api/visits/{mine}/report"),
            Some(&v),
            full_report(),
        )
        .await
        .error(409, "not_checked_in");
    assert_eq!(err["state"], "claimed");
    app.post(&format!("/api/visits/{mine}/checkout"), Some(&v), json!({}))
        .await
        .error(409, "not_checked_in");
    // Confirmations before the report; a correction of a report that does not exist.
    app.post(
        &format!("/api/family/visits/{mine}/confirm"),
        Some(&mother),
        json!({}),
    )
    .await
    .error(409, "not_reported");
    app.patch(
        &format!("/api/visits/{mine}/report"),
        Some(&coordinator),
        json!({"cash_yuan": 10}),
    )
    .await
    .error(409, "not_reported");
    assert_eq!(
        snapshot(&app).await,
        before,
        "refused requests wrote nothing"
    );

    // Checked in properly now.
    app.post(
        &format!("/api/visits/{mine}/checkin"),
        Some(&v),
        at(AT_DOOR),
    )
    .await
    .ok();
    let before = snapshot(&app).await;
    let with = |patch: Value| {
        let mut r = full_report();
        for (k, v) in patch.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    let report = format!("/api/visits/{mine}/report");
    // A negative cash amount.
    let err = app
        .post(&report, Some(&v), with(json!({"cash_yuan": -200})))
        .await
        .invalid("cash_yuan");
    assert_eq!(err["code"], "validation_failed");
    app.post(&report, Some(&v), with(json!({"cash_yuan": 12.345})))
        .await
        .invalid("cash_yuan");
    app.post(&report, Some(&v), with(json!({"cash_yuan": 1_000_000})))
        .await
        .invalid("cash_yuan");
    // A blood pressure of 400/20, and half of one.
    app.post(
        &report,
        Some(&v),
        with(json!({"bp_systolic": 400, "bp_diastolic": 20})),
    )
    .await
    .invalid("bp_systolic");
    app.post(
        &report,
        Some(&v),
        with(json!({"bp_systolic": 120, "bp_diastolic": null})),
    )
    .await
    .invalid("bp_diastolic");
    app.post(&report, Some(&v), with(json!({"services": []})))
        .await
        .invalid("services");
    app.post(&report, Some(&v), with(json!({"services": ["other"]})))
        .await
        .invalid("other_service");
    app.post(&report, Some(&v), with(json!({"mood": "sad"})))
        .await
        .invalid("mood");
    app.post(&report, Some(&v), with(json!({"risk_signs": ["boredom"]})))
        .await
        .invalid("risk_signs[0]");
    app.post(&report, Some(&v), with(json!({"needs": [""]})))
        .await
        .invalid("needs[0]");
    assert_eq!(
        snapshot(&app).await,
        before,
        "refused reports wrote nothing"
    );

    // The report, and a second one.
    app.post(&report, Some(&v), full_report()).await.ok();
    let before = snapshot(&app).await;
    let err = app
        .post(&report, Some(&v), full_report())
        .await
        .error(409, "already_reported");
    assert_eq!(err["state"], "reported");
    app.post(
        &format!("/api/visits/{mine}/checkin"),
        Some(&v),
        at(AT_DOOR),
    )
    .await
    .ok(); // the same check-in, answered again: nothing new
    // The family's rating and comment are checked too.
    let confirm = format!("/api/family/visits/{mine}/confirm");
    app.post(&confirm, Some(&mother), json!({"rating": 6}))
        .await
        .invalid("rating");
    app.post(&confirm, Some(&mother), json!({"rating": 0}))
        .await
        .invalid("rating");
    app.post(
        &confirm,
        Some(&mother),
        json!({"comment": "好".repeat(201)}),
    )
    .await
    .invalid("comment");
    // A correction must leave a valid report, and only coordinators make them.
    app.patch(
        &format!("/api/visits/{mine}/report"),
        Some(&coordinator),
        json!({"bp_systolic": 80}),
    )
    .await
    .invalid("bp_systolic");
    app.patch(
        &format!("/api/visits/{mine}/report"),
        Some(&v),
        json!({"cash_yuan": 10}),
    )
    .await
    .error(403, "forbidden");
    assert_eq!(
        snapshot(&app).await,
        before,
        "refused requests wrote nothing"
    );
}

#[tokio::test]
async fn a_coordinator_corrects_a_report_and_the_audit_keeps_before_and_after() {
    let app = spawn_app().await;
    let (family, _) = new_family(&app, people::EAST_COUNTY, "杨柳村", "RP-4").await;
    let visit = visit_due_now(&app, family, "home_visit").await;
    let id = hold(&app, &visit, &[people::VOLUNTEER]).await.id;
    let v = app.token_for(people::VOLUNTEER).await;
    app.post(&format!("/api/visits/{id}/checkin"), Some(&v), at(AT_DOOR))
        .await
        .ok();
    let mut report = full_report();
    report["risk_signs"] = json!([]);
    report["needs"] = json!([]);
    let first = app
        .post(&format!("/api/visits/{id}/report"), Some(&v), report)
        .await
        .ok();
    assert!(first["followup_visit_id"].is_null());

    // Another county's coordinator cannot see it.
    let west = app.token_for(people::WEST_COUNTY).await;
    app.patch(
        &format!("/api/visits/{id}/report"),
        Some(&west),
        json!({"cash_yuan": 1500}),
    )
    .await
    .error(404, "not_found");

    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let fixed = app
        .patch(
            &format!("/api/visits/{id}/report"),
            Some(&coordinator),
            json!({
                "cash_yuan": 1500.5,
                "bp_systolic": 140,
                "risk_signs": ["suicidal_thoughts"],
                "needs": ["需要助听器"],
                "reason": "志愿者录入有误"
            }),
        )
        .await
        .ok();
    assert_eq!(fixed["cash_fen"], 150_050);
    assert_eq!(fixed["bp_systolic"], 140);
    assert_eq!(fixed["bp_diastolic"], 85);
    assert_eq!(fixed["status"], "reported");
    // What the correction adds follows as a report would.
    assert!(fixed["followup_visit_id"].is_string());
    assert_eq!(fixed["wishes_created"], 1);
    let audit = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("correct_report"))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entity_id, Some(id));
    let changes = &audit[0].detail["changes"];
    assert_eq!(
        changes["cash_fen"],
        json!({"before": 200_000, "after": 150_050})
    );
    assert_eq!(changes["bp_systolic"], json!({"before": 135, "after": 140}));
    assert_eq!(
        changes["risk_signs"],
        json!({"before": [], "after": ["suicidal_thoughts"]})
    );
    assert!(
        changes.get("goods").is_none(),
        "unchanged fields are not listed"
    );
    assert_eq!(audit[0].detail["reason"], "志愿者录入有误");

    // The same correction again changes nothing and records nothing.
    app.patch(
        &format!("/api/visits/{id}/report"),
        Some(&coordinator),
        json!({"cash_yuan": 1500.5}),
    )
    .await
    .ok();
    assert_eq!(app.audit_count("correct_report").await, 1);
}

#[tokio::test]
async fn the_family_declines_or_moves_a_visit_and_the_holders_are_told() {
    let app = spawn_app().await;
    let (family, detail) = new_family(&app, people::EAST_COUNTY, "杨柳村", "RP-5").await;
    let mother = bind_mother(&app, people::EAST_COUNTY, family, &detail).await;
    let first = visit_due_now(&app, family, "home_visit").await;
    let first = hold(&app, &first, &[people::VOLUNTEER]).await.id;
    let second = visit_due_now(&app, family, "home_visit").await;
    let second = hold(&app, &second, &[people::VOLUNTEER, VOLUNTEER_2])
        .await
        .id;
    let volunteer = app.user_id(people::VOLUNTEER).await;

    // Bad input first: nothing is recorded.
    app.post(
        &format!("/api/family/visits/{first}/decline"),
        Some(&mother),
        json!({"reason": "  "}),
    )
    .await
    .invalid("reason");
    let yesterday = today().pred_opt().unwrap();
    app.post(
        &format!("/api/family/visits/{second}/move"),
        Some(&mother),
        json!({"reason": "那天要去医院", "preferred_dates": [yesterday]}),
    )
    .await
    .invalid("preferred_dates[0]");
    app.post(
        &format!("/api/family/visits/{second}/move"),
        Some(&mother),
        json!({"reason": "那天要去医院", "preferred_dates": []}),
    )
    .await
    .invalid("preferred_dates");
    assert_eq!(
        visit_request::Entity::find()
            .count(&app.state.db)
            .await
            .unwrap(),
        0
    );

    let declined = app
        .post(
            &format!("/api/family/visits/{first}/decline"),
            Some(&mother),
            json!({"reason": "这几天身体不舒服，不想见人"}),
        )
        .await
        .ok();
    assert_eq!(declined["kind"], "decline");
    assert_eq!(declined["holders_notified"], 1);
    let t = task(&app, first).await;
    assert!(t.needs_attention);
    assert!(
        t.status_reason.as_deref().unwrap().contains("身体不舒服"),
        "{:?}",
        t.status_reason
    );
    assert_eq!(t.status, "claimed", "a coordinator decides what happens");
    let told = notification::Entity::find()
        .filter(notification::Column::RecipientId.eq(volunteer))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].template, "visit_declined");
    assert_eq!(told[0].payload["task_id"], json!(first));
    let payload = told[0].payload.to_string();
    assert!(!payload.contains("孙") && !payload.contains("周") && !payload.contains("身体"));
    // Once is enough.
    app.post(
        &format!("/api/family/visits/{first}/decline"),
        Some(&mother),
        json!({"reason": "还是不想"}),
    )
    .await
    .error(409, "already_requested");

    let in_three_days = today().checked_add_days(Days::new(3)).unwrap();
    let moved = app
        .post(
            &format!("/api/family/visits/{second}/move"),
            Some(&mother),
            json!({"reason": "那天要去医院复查", "preferred_dates": [in_three_days]}),
        )
        .await
        .ok();
    assert_eq!(moved["holders_notified"], 2);
    let t = task(&app, second).await;
    assert!(t.needs_attention);
    assert!(t.status_reason.as_deref().unwrap().contains("希望"));
    let req = visit_request::Entity::find()
        .filter(visit_request::Column::TaskId.eq(second))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(req.kind, "move");
    assert_eq!(req.preferred_dates.unwrap().0, [in_three_days.to_string()]);
    let templates: Vec<String> = notification::Entity::find()
        .filter(notification::Column::Template.eq("visit_move_requested"))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.dedupe_key)
        .collect();
    assert_eq!(templates.len(), 2);
    // The family's list shows what it asked for.
    let list = app.get("/api/family/visits", Some(&mother)).await.ok();
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == json!(second))
        .unwrap()
        .clone();
    assert_eq!(item["requests"], json!(["move"]));

    // Once the visit has begun, it is too late.
    let v = app.token_for(people::VOLUNTEER).await;
    app.post(
        &format!("/api/visits/{second}/checkin"),
        Some(&v),
        at(AT_DOOR),
    )
    .await
    .ok();
    let err = app
        .post(
            &format!("/api/family/visits/{second}/decline"),
            Some(&mother),
            json!({"reason": "不用来了"}),
        )
        .await
        .error(409, "visit_under_way");
    assert_eq!(err["state"], "in_progress");
}

#[tokio::test]
async fn a_family_code_works_once_for_its_visit_and_not_after_guesses() {
    let app = spawn_app().await;
    let (family, detail) = new_family(&app, people::EAST_COUNTY, "杨柳村", "RP-6").await;
    let mother = bind_mother(&app, people::EAST_COUNTY, family, &detail).await;
    let one = visit_due_now(&app, family, "home_visit").await;
    let one = hold(&app, &one, &[people::VOLUNTEER]).await.id;
    let two = visit_due_now(&app, family, "home_visit").await;
    let two = hold(&app, &two, &[people::VOLUNTEER]).await.id;
    let v = app.token_for(people::VOLUNTEER).await;
    let code_of = |id: Uuid| {
        let app = &app;
        let mother = mother.clone();
        async move {
            app.get(&format!("/api/family/visits/{id}/code"), Some(&mother))
                .await
                .ok()["code"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };

    // A code is for its own visit.
    let code = code_of(one).await;
    app.post(
        &format!("/api/visits/{two}/checkin"),
        Some(&v),
        json!({"code": code}),
    )
    .await
    .invalid("code");
    // Asking again replaces it.
    let newer = code_of(one).await;
    if newer != code {
        app.post(
            &format!("/api/visits/{one}/checkin"),
            Some(&v),
            json!({"code": code}),
        )
        .await
        .invalid("code");
    }
    // Five wrong guesses spend it.
    let wrong = if newer == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        app.post(
            &format!("/api/visits/{one}/checkin"),
            Some(&v),
            json!({"code": wrong}),
        )
        .await
        .invalid("code");
    }
    app.post(
        &format!("/api/visits/{one}/checkin"),
        Some(&v),
        json!({"code": newer}),
    )
    .await
    .invalid("code");
    assert_eq!(task(&app, one).await.status, "claimed");
    // A fresh code works, once.
    let fresh = code_of(one).await;
    app.post(
        &format!("/api/visits/{one}/checkin"),
        Some(&v),
        json!({"code": fresh}),
    )
    .await
    .ok();
    app.post(
        &format!("/api/visits/{one}/report"),
        Some(&v),
        full_report(),
    )
    .await
    .ok();
    app.post(
        &format!("/api/visits/{one}/confirm"),
        Some(&v),
        json!({"code": fresh}),
    )
    .await
    .invalid("code");
    // The family reads out a new one; the volunteer confirms with it.
    let confirm = code_of(one).await;
    let done = app
        .post(
            &format!("/api/visits/{one}/confirm"),
            Some(&v),
            json!({"code": confirm}),
        )
        .await
        .ok();
    assert_eq!(done["confirm_method"], "code");
    assert_eq!(done["volunteers_credited"], 1);
    assert_eq!(hours_of(&app, people::VOLUNTEER).await.len(), 1);
}

#[tokio::test]
async fn a_cadre_reports_a_pre_assigned_visit_and_a_phone_call_needs_no_door() {
    let app = spawn_app().await;
    let (family, detail) = new_family(&app, people::EAST_COUNTY, "杨柳村", "RP-7").await;
    let mother = bind_mother(&app, people::EAST_COUNTY, family, &detail).await;
    let cadre = app.user_id(people::TAOYUAN_CADRE).await;
    // A visit the rules gave to the family's cadre: open, pre-assigned.
    let visit = visit_due_now(&app, family, "home_visit").await;
    let mut t = visit.clone().into_active_model();
    t.assigned_cadre_id = Set(Some(cadre));
    t.assign_to_cadre = Set(true);
    let visit = t.update(&app.state.db).await.unwrap();
    let token = app.token_for(people::TAOYUAN_CADRE).await;
    let list = app.get("/api/family/visits", Some(&mother)).await.ok();
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == json!(visit.id))
        .unwrap()
        .clone();
    assert_eq!(item["visitors"][0]["role"], "cadre");
    assert!(item["visitors"][0]["name"].as_str().unwrap().ends_with('*'));

    app.post(
        &format!("/api/visits/{}/checkin", visit.id),
        Some(&token),
        at(AT_DOOR),
    )
    .await
    .ok();
    app.post(
        &format!("/api/visits/{}/report", visit.id),
        Some(&token),
        full_report(),
    )
    .await
    .ok();
    let done = app
        .post(
            &format!("/api/family/visits/{}/confirm", visit.id),
            Some(&mother),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(done["volunteers_credited"], 1);
    assert_eq!(hours_of(&app, people::TAOYUAN_CADRE).await.len(), 1);

    // A partly claimed visit waits for its second volunteer.
    let pair = visit_due_now(&app, family, "home_visit").await;
    let pair = hold(&app, &pair, &[people::VOLUNTEER]).await;
    let mut t = pair.clone().into_active_model();
    t.volunteers_needed = Set(2);
    t.status = Set("open".into());
    t.update(&app.state.db).await.unwrap();
    let v = app.token_for(people::VOLUNTEER).await;
    let err = app
        .post(
            &format!("/api/visits/{}/checkin", pair.id),
            Some(&v),
            at(AT_DOOR),
        )
        .await
        .error(409, "not_fully_claimed");
    assert_eq!(err["state"], "open");

    // A visit whose window is days away cannot be checked in yet.
    let later = visit_due_now(&app, family, "phone_call").await;
    let later = hold(&app, &later, &[people::VOLUNTEER]).await;
    let mut t = later.clone().into_active_model();
    t.window_start = Set(Utc::now() + Duration::days(2));
    t.window_end = Set(Utc::now() + Duration::days(3));
    t.update(&app.state.db).await.unwrap();
    app.post(
        &format!("/api/visits/{}/checkin", later.id),
        Some(&v),
        json!({}),
    )
    .await
    .error(409, "too_early");

    // A phone call: nobody goes to the door.
    let call = visit_due_now(&app, family, "phone_call").await;
    let call = hold(&app, &call, &[people::VOLUNTEER]).await;
    let c = app
        .post(
            &format!("/api/visits/{}/checkin", call.id),
            Some(&v),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(c["method"], "phone");
}

#[tokio::test]
async fn unconfirmed_visits_are_flagged_for_coordinators_once() {
    let app = spawn_app().await;
    let db = &app.state.db;
    let (family, _) = new_family(&app, people::EAST_COUNTY, "杨柳村", "RP-8").await;
    let v = app.token_for(people::VOLUNTEER).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let visit = visit_due_now(&app, family, "home_visit").await;
        let id = hold(&app, &visit, &[people::VOLUNTEER]).await.id;
        app.post(&format!("/api/visits/{id}/checkin"), Some(&v), at(AT_DOOR))
            .await
            .ok();
        let mut r = full_report();
        r["risk_signs"] = json!([]);
        app.post(&format!("/api/visits/{id}/report"), Some(&v), r)
            .await
            .ok();
        ids.push(id);
    }
    // The first was reported 49 hours ago, the second 10.
    for (id, hours) in [(ids[0], 49), (ids[1], 10)] {
        let r = visit_record::Entity::find()
            .filter(visit_record::Column::TaskId.eq(id))
            .one(db)
            .await
            .unwrap()
            .unwrap();
        let mut r = r.into_active_model();
        r.submitted_at = Set(Some(Utc::now() - Duration::hours(hours)));
        r.update(db).await.unwrap();
    }
    let within = app.state.config.visits.confirm_within_hours;
    assert_eq!(within, 48);
    let now: DateTime<Utc> = Utc::now();
    let flagged = server::api::reports::flag_unconfirmed(db, now, within, app.state.tz)
        .await
        .unwrap();
    assert_eq!(flagged, 1);
    let t = task(&app, ids[0]).await;
    assert!(t.needs_attention);
    assert_eq!(t.status_reason.as_deref(), Some("家庭未确认"));
    assert!(!task(&app, ids[1]).await.needs_attention);
    // Once: the next hour does nothing, even after a coordinator cleared the flag.
    assert_eq!(
        server::api::reports::flag_unconfirmed(db, now, within, app.state.tz)
            .await
            .unwrap(),
        0
    );
    let mut cleared = t.into_active_model();
    cleared.needs_attention = Set(false);
    cleared.update(db).await.unwrap();
    assert_eq!(
        server::api::reports::flag_unconfirmed(db, now + Duration::hours(1), within, app.state.tz)
            .await
            .unwrap(),
        0
    );
    // The job runs hourly.
    let specs = server::jobs::specs(
        &app.state.config.jobs,
        &app.state.config.visits,
        app.state.tz,
        &app.state.festivals,
    );
    let job = specs
        .iter()
        .find(|s| s.name == "unconfirmed")
        .expect("an unconfirmed job");
    assert_eq!(format!("{:?}", job.period), "Hourly");
}
