//! A change to a family's record re-plans its visits at once; a life event (a death, a
//! move, a closed case) cancels everything ahead and tells whoever held those visits.

use chrono::{Days, NaiveDate, Utc};
use entity::{notification, task_claim, visit_task};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tests::*;
use uuid::Uuid;

/// Today in Asia/Shanghai (UTC+8 all year), the deployment's time zone.
fn today() -> NaiveDate {
    let beijing = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    Utc::now().with_timezone(&beijing).date_naive()
}

fn in_days(n: u64) -> NaiveDate {
    today().checked_add_days(Days::new(n)).unwrap()
}

fn family(village: &str, birthday: NaiveDate) -> Value {
    use chrono::Datelike;
    json!({
        "region_id": village,
        "register_no": "RP-0001",
        "category": "empty_nest",
        "head_name": "孙长海",
        "address": "杨柳村5组8号",
        "care_level": 2,
        "members": [
            {"name": "孙长海", "relation": "father", "birth_calendar": "solar",
             "birth_year": 1950, "birth_month": birthday.month(), "birth_day": birthday.day()},
            {"name": "周桂兰", "relation": "mother", "birth_calendar": "solar",
             "birth_year": 1952, "birth_month": 1, "birth_day": 1}
        ]
    })
}

async fn tasks(app: &TestApp, family: &str) -> Vec<visit_task::Model> {
    let id: Uuid = family.parse().unwrap();
    visit_task::Entity::find()
        .filter(visit_task::Column::FamilyId.eq(id))
        .all(&app.state.db)
        .await
        .unwrap()
}

fn live(tasks: &[visit_task::Model]) -> Vec<&visit_task::Model> {
    tasks
        .iter()
        .filter(|t| t.status == "open" || t.status == "claimed")
        .collect()
}

/// The demo volunteer holds `task` (as a claim through the API leaves it).
async fn claim(app: &TestApp, task: &visit_task::Model) -> Uuid {
    let user = app.user_id(people::VOLUNTEER).await;
    app.hold(task, &[user]).await;
    user
}

/// A family of 杨柳村 whose father's birthday is in 20 days, made by its county's
/// coordinator: the coordinator's token, the family as created, and its id.
async fn new_family(app: &TestApp) -> (String, Value, String) {
    let token = app.token_for(people::EAST_COUNTY).await;
    let village = app.region("杨柳村").await;
    let created = app
        .post("/api/families", Some(&token), family(&village, in_days(20)))
        .await
        .ok();
    let id = created["id"].as_str().unwrap().to_string();
    (token, created, id)
}

async fn messages_to(app: &TestApp, user: Uuid) -> Vec<notification::Model> {
    notification::Entity::find()
        .filter(notification::Column::RecipientId.eq(user))
        .all(&app.state.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_family_and_a_corrected_birthday_are_planned_at_once() {
    let app = spawn_app().await;
    let (token, created, id) = new_family(&app).await;
    let father = created["members"][0]["id"].as_str().unwrap().to_string();
    let birthday = format!("birthday:{father}:");

    // No waiting for the night: the visits are there.
    let first = tasks(&app, &id).await;
    let visit = first
        .iter()
        .find(|t| t.unique_key.contains(&birthday))
        .expect("the father's birthday visit");
    assert_eq!(visit.planned_date, Some(in_days(20)));
    assert!(
        first
            .iter()
            .any(|t| t.unique_key.contains("checkin-visit:"))
    );

    // The register had the birthday wrong.
    use chrono::Datelike;
    let corrected = in_days(40);
    app.patch(
        &format!("/api/families/{id}/members/{father}"),
        Some(&token),
        json!({"birth_month": corrected.month(), "birth_day": corrected.day()}),
    )
    .await
    .ok();
    let after = tasks(&app, &id).await;
    let old = after.iter().find(|t| t.id == visit.id).unwrap();
    assert_eq!(old.status, "cancelled");
    assert_eq!(old.status_reason.as_deref(), Some("计划变更"));
    let new: Vec<_> = live(&after)
        .into_iter()
        .filter(|t| t.unique_key.contains(&birthday))
        .collect();
    assert_eq!(new.len(), 1, "one birthday visit, on the corrected day");
    // On the birthday or in the three days before (it may share a visit with another
    // occasion of those days).
    let day = new[0].planned_date.unwrap();
    assert!(day <= corrected && day >= corrected - Days::new(3), "{day}");

    // A bad change writes nothing and re-plans nothing.
    let reply = app
        .patch(
            &format!("/api/families/{id}/members/{father}"),
            Some(&token),
            json!({"birth_month": 13}),
        )
        .await;
    reply.invalid("birth_month");
    assert_eq!(tasks(&app, &id).await, after);
}

#[tokio::test]
async fn a_death_cancels_what_lies_ahead_tells_the_holder_and_plans_again() {
    let app = spawn_app().await;
    let (token, created, id) = new_family(&app).await;
    let father = created["members"][0]["id"].as_str().unwrap().to_string();
    let before = tasks(&app, &id).await;
    // A weekly call (the monthly visits share a day with the birthdays here).
    let held = before
        .iter()
        .find(|t| t.unique_key.contains("checkin-call:") && !t.unique_key.contains('+'))
        .expect("a weekly call");
    let volunteer = claim(&app, held).await;

    app.patch(
        &format!("/api/families/{id}/members/{father}"),
        Some(&token),
        json!({"deceased": true, "death_date": today().to_string()}),
    )
    .await
    .ok();

    // The holder hears of it (the message names no one: it may show on a locked screen).
    let told = messages_to(&app, volunteer).await;
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].template, "visit_cancelled");
    assert_eq!(told[0].payload["task_id"], json!(held.id));
    assert!(!told[0].payload.to_string().contains("孙"));
    let released = task_claim::Entity::find()
        .filter(task_claim::Column::TaskId.eq(held.id))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(released.status, task_claim::RELEASED);

    // What the family is still owed is open again for anyone to take; the father's
    // birthday is gone with its reason.
    let after = tasks(&app, &id).await;
    let monthly = after.iter().find(|t| t.id == held.id).unwrap();
    assert_eq!((monthly.status.as_str(), monthly.claims_count), ("open", 0));
    let birthday = after
        .iter()
        .find(|t| t.unique_key.contains(&format!("birthday:{father}:")))
        .unwrap();
    assert_eq!(birthday.status, "cancelled");
    assert_eq!(
        birthday.status_reason.as_deref(),
        Some("家庭成员离世，走访已重新安排")
    );
}

#[tokio::test]
async fn a_move_and_a_closed_case_release_the_holders() {
    let app = spawn_app().await;
    let (token, _, id) = new_family(&app).await;
    let before = tasks(&app, &id).await;
    let held = before
        .iter()
        .find(|t| t.unique_key.contains("checkin-visit:"))
        .unwrap();
    let volunteer = claim(&app, held).await;

    // Bad input first: nothing happens.
    app.patch(
        &format!("/api/families/{id}"),
        Some(&token),
        json!({"region_id": "nowhere"}),
    )
    .await
    .invalid("region_id");
    assert!(messages_to(&app, volunteer).await.is_empty());

    // Moved to another village of the county: the old volunteers cannot go.
    let other_village = app.region("红星村").await;
    app.patch(
        &format!("/api/families/{id}"),
        Some(&token),
        json!({"region_id": other_village}),
    )
    .await
    .ok();
    let told = messages_to(&app, volunteer).await;
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].payload["event"], "moved");
    let after_move = tasks(&app, &id).await;
    assert_eq!(live(&after_move).len(), live(&before).len());
    assert!(live(&after_move).iter().all(|t| t.claims_count == 0));

    // Closed: nothing ahead remains.
    app.patch(
        &format!("/api/families/{id}"),
        Some(&token),
        json!({"status": "closed"}),
    )
    .await
    .ok();
    let closed = tasks(&app, &id).await;
    assert!(live(&closed).is_empty());
    assert!(
        closed
            .iter()
            .filter(|t| after_move
                .iter()
                .any(|a| a.id == t.id && a.status == "open"))
            .all(|t| t.status_reason.as_deref() == Some("家庭已销册"))
    );
}

#[tokio::test]
async fn a_paused_family_cancels_its_cadres_visits_and_the_cadre_is_told() {
    let app = spawn_app().await;
    let (token, _, id) = new_family(&app).await;
    let cadre = app.user_id(people::TAOYUAN_CADRE).await;
    app.post(
        "/api/pairings",
        Some(&token),
        json!({"family_id": id, "cadre_id": cadre}),
    )
    .await
    .ok();
    let theirs: Vec<Uuid> = live(&tasks(&app, &id).await)
        .into_iter()
        .filter(|t| t.assigned_cadre_id == Some(cadre))
        .map(|t| t.id)
        .collect();
    assert!(!theirs.is_empty(), "the cadre's calls and visits");
    assert!(messages_to(&app, cadre).await.is_empty());

    app.patch(
        &format!("/api/families/{id}"),
        Some(&token),
        json!({"status": "paused"}),
    )
    .await
    .ok();
    let told = messages_to(&app, cadre).await;
    let mut about: Vec<Uuid> = told
        .iter()
        .map(|m| {
            assert_eq!(m.template, "visit_cancelled");
            m.payload["task_id"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    about.sort();
    let mut expected = theirs.clone();
    expected.sort();
    assert_eq!(about, expected, "one message for each visit the cadre had");
    // Planning the family again tells nothing twice.
    app.patch(
        &format!("/api/families/{id}"),
        Some(&token),
        json!({"status": "paused", "care_level": 3}),
    )
    .await
    .ok();
    assert_eq!(messages_to(&app, cadre).await.len(), told.len());
}

#[tokio::test]
async fn a_time_the_coordinator_set_by_hand_stays_when_the_family_is_planned_again() {
    let app = spawn_app().await;
    let (token, created, id) = new_family(&app).await;
    let father = created["members"][0]["id"].as_str().unwrap().to_string();
    let mother = created["members"][1]["id"].as_str().unwrap().to_string();
    let birthday = format!("birthday:{father}:");
    let visit = tasks(&app, &id)
        .await
        .into_iter()
        .find(|t| t.unique_key.contains(&birthday))
        .expect("the father's birthday visit");

    // The family asked for two days later; the coordinator moved it.
    let start = visit.window_start + chrono::Duration::days(2);
    let end = start + chrono::Duration::hours(3);
    app.post(
        &format!("/api/visits/{}/reschedule", visit.id),
        Some(&token),
        json!({"window_start": start, "window_end": end, "reason": "家里那天有事"}),
    )
    .await
    .ok();

    // A change to the mother's record plans the whole family again.
    app.patch(
        &format!("/api/families/{id}/members/{mother}"),
        Some(&token),
        json!({"birth_month": 2, "birth_day": 2}),
    )
    .await
    .ok();
    let after = tasks(&app, &id).await;
    let kept = after.iter().find(|t| t.id == visit.id).unwrap();
    assert_eq!(kept.status, "open");
    assert_eq!((kept.window_start, kept.window_end), (start, end));
    assert_eq!(
        live(&after)
            .iter()
            .filter(|t| t.unique_key.contains(&birthday))
            .count(),
        1,
        "no second birthday visit at the plan's own time"
    );

    // Held by a volunteer, it is not flagged as moved by the plan either.
    claim(&app, kept).await;
    app.patch(
        &format!("/api/families/{id}/members/{mother}"),
        Some(&token),
        json!({"birth_month": 3, "birth_day": 3}),
    )
    .await
    .ok();
    let held = tasks(&app, &id)
        .await
        .into_iter()
        .find(|t| t.id == visit.id)
        .unwrap();
    assert_eq!((held.window_start, held.window_end), (start, end));
    assert!(!held.needs_attention, "{:?}", held.status_reason);
}
