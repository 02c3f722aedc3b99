//! A coordinator has the visits nobody claimed proposed to volunteers, with the reason for
//! each, and applies them; volunteers accept or decline; leave and leaving give visits back
//! to be proposed again; claims and cadre visits stay where they are.
//!
//! The families of these tests live around `HOME`, far from the demo city, so that only the
//! volunteers a test makes can reach them.

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, TimeZone, Utc};
use entity::{
    FamilyCategory, Skill, VolunteerStatus, assignment_proposal, notification, task_claim,
    volunteer,
};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use tests::{
    visits::{TestVolunteer, VisitSpec, VolunteerSpec, offset},
    *,
};
use uuid::Uuid;

const HOME: (f64, f64) = (31.30, 116.60);

fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

/// Local midnight `n` days from today.
fn day(n: i64) -> DateTime<Utc> {
    let today = Utc::now().with_timezone(&beijing()).date_naive();
    beijing()
        .from_local_datetime(&(today + Duration::days(n)).and_time(NaiveTime::MIN))
        .unwrap()
        .with_timezone(&Utc)
}

fn date(n: i64) -> String {
    (Utc::now().with_timezone(&beijing()).date_naive() + Duration::days(n)).to_string()
}

/// Visits are proposed for as soon as they are published.
async fn app() -> TestApp {
    spawn_app_with(Options {
        configure: Some(|c| c.assign.claim_hours = 0),
        ..Default::default()
    })
    .await
}

async fn family(app: &TestApp, north_km: f64) -> Uuid {
    app.family_at(
        "杨柳村",
        FamilyCategory::Bereaved,
        "钱秀英",
        Some(offset(HOME, north_km, 0.0)),
    )
    .await
}

/// A one-day visit `days` ahead, `north_km` north of HOME.
async fn visit(app: &TestApp, north_km: f64, days: i64) -> Uuid {
    let f = family(app, north_km).await;
    app.visit(VisitSpec::new(f, day(days), 24)).await
}

async fn volunteer_at(app: &TestApp, north_km: f64, skills: &[Skill]) -> TestVolunteer {
    let at = offset(HOME, north_km, 0.0);
    let mut spec = VolunteerSpec::at(at.0, at.1);
    spec.skills = skills.to_vec();
    app.volunteer(spec).await
}

async fn run(app: &TestApp, token: &str) -> Value {
    app.post("/api/assignments/run", Some(token), json!({}))
        .await
        .ok()
}

/// The proposals of a state in the coordinator's list, for these visits.
async fn proposals(app: &TestApp, token: &str, status: &str, visits: &[Uuid]) -> Vec<Value> {
    let page = app
        .get(
            &format!("/api/assignments/proposals?status={status}&per_page=100"),
            Some(token),
        )
        .await
        .ok();
    let wanted: Vec<String> = visits.iter().map(Uuid::to_string).collect();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| wanted.iter().any(|w| p["visit_id"] == *w))
        .cloned()
        .collect()
}

/// The coordinator applies proposal `id`.
async fn apply(app: &TestApp, coordinator: &str, id: &str) {
    app.post(
        &format!("/api/assignments/proposals/{id}/apply"),
        Some(coordinator),
        json!({}),
    )
    .await
    .ok();
}

fn for_visit(list: &[Value], visit: Uuid) -> Vec<String> {
    list.iter()
        .filter(|p| p["visit_id"] == visit.to_string())
        .map(|p| p["volunteer_user_id"].as_str().unwrap().to_string())
        .collect()
}

async fn active_claims(app: &TestApp, visit: Uuid) -> Vec<Uuid> {
    task_claim::Entity::find()
        .filter(task_claim::Column::TaskId.eq(visit))
        .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.volunteer_id)
        .collect()
}

async fn queued(app: &TestApp, to: Uuid, template: &str) -> u64 {
    notification::Entity::find()
        .filter(notification::Column::RecipientId.eq(to))
        .filter(notification::Column::Template.eq(template))
        .count(&app.state.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn proposals_keep_the_rules_and_say_why() {
    let app = app().await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let nurse = volunteer_at(&app, 0.0, &[Skill::Companionship, Skill::Health]).await;
    let plain = volunteer_at(&app, 0.3, &[Skill::Companionship]).await;
    let away = volunteer_at(&app, 0.2, &[Skill::Companionship]).await;
    let far = volunteer_at(&app, 20.0, &[Skill::Companionship, Skill::Health]).await;
    app.post(
        "/api/me/leave",
        Some(&away.token),
        json!({"start_date": date(1), "end_date": date(9), "reason": "外出"}),
    )
    .await
    .ok();

    let f = family(&app, 1.0).await;
    let health = app
        .visit(VisitSpec::new(f, day(2), 24).skills(&[Skill::Health]))
        .await;
    let f = family(&app, 1.2).await;
    let pair = app.visit(VisitSpec::new(f, day(3), 24).needing(2)).await;
    let unlocated = {
        let f = app
            .family_at("杨柳村", FamilyCategory::Bereaved, "孙桂兰", None)
            .await;
        app.visit(VisitSpec::new(f, day(4), 24)).await
    };
    let later = visit(&app, 1.0, 20).await; // beyond the lead days

    let stats = run(&app, &coordinator).await;
    assert!(stats["proposed"].as_u64().unwrap() >= 3, "{stats}");
    let list = proposals(
        &app,
        &coordinator,
        "proposed",
        &[health, pair, unlocated, later],
    )
    .await;
    // Only the nurse has the skill.
    assert_eq!(for_visit(&list, health), vec![nurse.user_id.to_string()]);
    // The pair gets two different people, neither the one on leave nor the one too far.
    let mut two = for_visit(&list, pair);
    two.sort();
    let mut expected = vec![nurse.user_id.to_string(), plain.user_id.to_string()];
    expected.sort();
    assert_eq!(two, expected);
    assert!(for_visit(&list, unlocated).is_empty());
    assert!(for_visit(&list, later).is_empty());
    assert!(
        list.iter()
            .all(|p| p["volunteer_user_id"] != far.user_id.to_string())
    );
    // Every proposal says why, and shows the family by category and village only.
    for p in &list {
        let reason = p["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("首次走访该家庭；") && reason.contains("公里；当周"),
            "{reason}"
        );
        assert_eq!(p["village"], "杨柳村");
        assert!(p.get("head_name").is_none() && p.get("address").is_none());
    }
    // A second run replaces what nobody acted on instead of adding to it.
    run(&app, &coordinator).await;
    let again = proposals(&app, &coordinator, "proposed", &[health, pair]).await;
    assert_eq!(again.len(), 3);
}

#[tokio::test]
async fn applying_makes_the_volunteer_the_holder_and_tells_them() {
    let app = app().await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let v = volunteer_at(&app, 0.0, &[Skill::Companionship]).await;
    let visit = visit(&app, 1.0, 3).await;
    run(&app, &coordinator).await;
    let list = proposals(&app, &coordinator, "proposed", &[visit]).await;
    let id = list[0]["id"].as_str().unwrap().to_string();

    let applied = app
        .post(
            &format!("/api/assignments/proposals/{id}/apply"),
            Some(&coordinator),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(applied["status"], "applied");
    // The same claim the visit flow makes: the visit is full and in their visits.
    assert_eq!(active_claims(&app, visit).await, vec![v.user_id]);
    let row = app.visit_row(visit).await;
    assert_eq!((row.status.as_str(), row.claims_count), ("claimed", 1));
    let mine = app
        .get("/api/me/visits?when=upcoming", Some(&v.token))
        .await
        .ok();
    assert!(
        mine["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == visit.to_string())
    );
    assert_eq!(queued(&app, v.user_id, "visit_assigned").await, 1);
    assert_eq!(app.audit_count("apply_proposal").await, 1);
    // Applying twice: the proposal is no longer open.
    app.post(
        &format!("/api/assignments/proposals/{id}/apply"),
        Some(&coordinator),
        json!({}),
    )
    .await
    .error(409, "proposal_not_open");

    // The volunteer sees it waiting for an answer and accepts: reminded as for a claim.
    let waiting = app.get("/api/me/assignments", Some(&v.token)).await.ok();
    assert_eq!(waiting["items"][0]["id"], id);
    let accepted = app
        .post(
            &format!("/api/assignments/proposals/{id}/accept"),
            Some(&v.token),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(queued(&app, v.user_id, "claim_confirmed").await, 1);
    // Someone else cannot answer for them.
    let other = volunteer_at(&app, 0.0, &[Skill::Companionship]).await;
    app.post(
        &format!("/api/assignments/proposals/{id}/decline"),
        Some(&other.token),
        json!({}),
    )
    .await
    .error(404, "not_found");
}

#[tokio::test]
async fn bulk_apply_is_all_or_nothing() {
    let app = app().await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    volunteer_at(&app, 0.0, &[Skill::Companionship]).await;
    volunteer_at(&app, 0.1, &[Skill::Companionship]).await;
    let a = visit(&app, 1.0, 2).await;
    let b = visit(&app, 1.5, 4).await;
    run(&app, &coordinator).await;
    let list = proposals(&app, &coordinator, "proposed", &[a, b]).await;
    assert_eq!(list.len(), 2);
    let ids: Vec<String> = list
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();

    // One unknown id: nothing applied, and the field says which.
    app.post(
        "/api/assignments/proposals/apply",
        Some(&coordinator),
        json!({"ids": [ids[0], Uuid::now_v7()]}),
    )
    .await
    .invalid("ids[1]");
    assert!(active_claims(&app, a).await.is_empty() && active_claims(&app, b).await.is_empty());
    assert_eq!(
        proposals(&app, &coordinator, "proposed", &[a, b])
            .await
            .len(),
        2
    );
    // Bad input.
    for (body, field) in [
        (json!({"ids": []}), "ids"),
        (json!({"ids": ["nope"]}), "ids[0]"),
        (json!({"ids": [ids[0], ids[0]]}), "ids[1]"),
        (json!({}), "ids"),
    ] {
        app.post("/api/assignments/proposals/apply", Some(&coordinator), body)
            .await
            .invalid(field);
    }

    let done = app
        .post(
            "/api/assignments/proposals/apply",
            Some(&coordinator),
            json!({"ids": ids}),
        )
        .await
        .ok();
    assert_eq!(done["applied"].as_array().unwrap().len(), 2);
    assert_eq!(active_claims(&app, a).await.len(), 1);
    assert_eq!(active_claims(&app, b).await.len(), 1);
}

#[tokio::test]
async fn a_decline_proposes_someone_else() {
    let app = app().await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let near = volunteer_at(&app, 0.9, &[Skill::Companionship]).await;
    let other = volunteer_at(&app, 0.0, &[Skill::Companionship]).await;
    let visit = visit(&app, 1.0, 3).await;
    run(&app, &coordinator).await;
    let list = proposals(&app, &coordinator, "proposed", &[visit]).await;
    assert_eq!(for_visit(&list, visit), vec![near.user_id.to_string()]);
    let id = list[0]["id"].as_str().unwrap().to_string();
    apply(&app, &coordinator, &id).await;
    app.post(
        &format!("/api/assignments/proposals/{id}/decline"),
        Some(&near.token),
        json!({"reason": 7}),
    )
    .await
    .invalid("reason");

    let declined = app
        .post(
            &format!("/api/assignments/proposals/{id}/decline"),
            Some(&near.token),
            json!({"reason": "那天要陪老人看病"}),
        )
        .await
        .ok();
    assert_eq!(declined["status"], "declined");
    assert!(active_claims(&app, visit).await.is_empty());
    // The village's coordinator hears, and the county's who applied it; the city's not.
    for phone in [people::YANGLIU, people::EAST_COUNTY] {
        let to = app.user_id(phone).await;
        assert_eq!(queued(&app, to, "assignment_declined").await, 1, "{phone}");
    }
    let city = app.user_id(people::CITY).await;
    assert_eq!(queued(&app, city, "assignment_declined").await, 0);
    assert_eq!(app.visit_row(visit).await.status, "open");
    let list = proposals(&app, &coordinator, "proposed", &[visit]).await;
    assert_eq!(for_visit(&list, visit), vec![other.user_id.to_string()]);
    // Who declined is not asked again.
    run(&app, &coordinator).await;
    let list = proposals(&app, &coordinator, "proposed", &[visit]).await;
    assert_eq!(for_visit(&list, visit), vec![other.user_id.to_string()]);
}

#[tokio::test]
async fn claims_and_cadre_visits_are_never_moved() {
    let app = app().await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let claimer = volunteer_at(&app, 0.0, &[Skill::Companionship]).await;
    let idle = volunteer_at(&app, 0.1, &[Skill::Companionship]).await;
    let pair = {
        let f = family(&app, 1.0).await;
        app.visit(VisitSpec::new(f, day(3), 24).needing(2)).await
    };
    app.post(
        &format!("/api/visits/{pair}/claims"),
        Some(&claimer.token),
        json!({}),
    )
    .await
    .ok();
    let cadre_visit = {
        let f = family(&app, 1.0).await;
        let mut spec = VisitSpec::new(f, day(4), 24);
        spec.assign_to_cadre = true;
        app.visit(spec).await
    };
    run(&app, &coordinator).await;
    let list = proposals(&app, &coordinator, "proposed", &[pair, cadre_visit]).await;
    // Only the free place of the pair visit; the claim stays; the cadre's visit is theirs.
    assert_eq!(for_visit(&list, pair), vec![idle.user_id.to_string()]);
    assert!(for_visit(&list, cadre_visit).is_empty());
    assert_eq!(active_claims(&app, pair).await, vec![claimer.user_id]);
    assert!(active_claims(&app, cadre_visit).await.is_empty());
}

#[tokio::test]
async fn leave_and_leaving_give_visits_back_to_be_proposed_again() {
    let app = app().await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let first = volunteer_at(&app, 0.9, &[Skill::Companionship]).await;
    let second = volunteer_at(&app, 0.0, &[Skill::Companionship]).await;
    let visit = visit(&app, 1.0, 3).await;
    app.post(
        &format!("/api/visits/{visit}/claims"),
        Some(&first.token),
        json!({}),
    )
    .await
    .ok();

    // Bad input first: nothing changes.
    for (body, field) in [
        (
            json!({"start_date": date(4), "end_date": date(2)}),
            "end_date",
        ),
        (
            json!({"start_date": "tomorrow", "end_date": date(2)}),
            "start_date",
        ),
        (
            json!({"start_date": date(-9), "end_date": date(-2)}),
            "end_date",
        ),
        (json!({"end_date": date(2)}), "start_date"),
    ] {
        app.post("/api/me/leave", Some(&first.token), body)
            .await
            .invalid(field);
    }
    assert_eq!(active_claims(&app, visit).await, vec![first.user_id]);

    let leave = app
        .post(
            "/api/me/leave",
            Some(&first.token),
            json!({"start_date": date(2), "end_date": date(5)}),
        )
        .await
        .ok();
    assert_eq!(leave["released_visits"], json!([visit]));
    assert!(active_claims(&app, visit).await.is_empty());
    let list = proposals(&app, &coordinator, "proposed", &[visit]).await;
    assert_eq!(for_visit(&list, visit), vec![second.user_id.to_string()]);

    // The second takes it, then leaves for good: it is open again, and nobody is left.
    let id = list[0]["id"].as_str().unwrap().to_string();
    apply(&app, &coordinator, &id).await;
    let profile = second_profile(&app, second.user_id).await;
    app.post(
        &format!("/api/assignments/volunteers/{profile}/left"),
        Some(&coordinator),
        json!({"reason": ""}),
    )
    .await
    .invalid("reason");
    let left = app
        .post(
            &format!("/api/assignments/volunteers/{profile}/left"),
            Some(&coordinator),
            json!({"reason": "搬家去外地"}),
        )
        .await
        .ok();
    assert_eq!(left["released_visits"], json!([visit]));
    assert!(active_claims(&app, visit).await.is_empty());
    let v = volunteer::Entity::find_by_id(profile)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.status, VolunteerStatus::Suspended);
    let withdrawn = proposals(&app, &coordinator, "withdrawn", &[visit]).await;
    assert_eq!(
        for_visit(&withdrawn, visit),
        vec![second.user_id.to_string()]
    );
    assert!(
        proposals(&app, &coordinator, "proposed", &[visit])
            .await
            .is_empty()
    );
}

async fn second_profile(app: &TestApp, user: Uuid) -> Uuid {
    volunteer::Entity::find()
        .filter(volunteer::Column::UserId.eq(user))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test]
async fn a_region_set_to_apply_automatically_needs_no_review() {
    let app = app().await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let v = volunteer_at(&app, 0.0, &[Skill::Companionship]).await;
    let visit = visit(&app, 1.0, 3).await;
    let village = app.region("杨柳村").await;
    app.put(
        &format!("/api/assignments/regions/{village}/auto"),
        Some(&coordinator),
        json!({"auto_apply": "yes"}),
    )
    .await
    .invalid("auto_apply");
    let set = app
        .put(
            &format!("/api/assignments/regions/{village}/auto"),
            Some(&coordinator),
            json!({"auto_apply": true}),
        )
        .await
        .ok();
    assert_eq!(set["auto_apply"], true);
    let stats = run(&app, &coordinator).await;
    assert!(stats["applied"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(active_claims(&app, visit).await, vec![v.user_id]);
    assert_eq!(queued(&app, v.user_id, "visit_assigned").await, 1);
    let applied = proposals(&app, &coordinator, "applied", &[visit]).await;
    assert_eq!(applied.len(), 1);
}

#[tokio::test]
async fn another_regions_coordinator_sees_and_changes_nothing() {
    let app = app().await;
    let east = app.token_for(people::EAST_COUNTY).await;
    let west = app.token_for(people::WEST_COUNTY).await;
    volunteer_at(&app, 0.0, &[Skill::Companionship]).await;
    let visit = visit(&app, 1.0, 3).await;
    // The west runs: not its visit.
    run(&app, &west).await;
    assert!(
        assignment_proposal::Entity::find()
            .filter(assignment_proposal::Column::TaskId.eq(visit))
            .one(&app.state.db)
            .await
            .unwrap()
            .is_none()
    );
    run(&app, &east).await;
    let list = proposals(&app, &east, "proposed", &[visit]).await;
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert!(
        proposals(&app, &west, "proposed", &[visit])
            .await
            .is_empty()
    );
    app.post(
        &format!("/api/assignments/proposals/{id}/apply"),
        Some(&west),
        json!({}),
    )
    .await
    .error(404, "not_found");
    app.post(
        "/api/assignments/proposals/apply",
        Some(&west),
        json!({"ids": [id]}),
    )
    .await
    .invalid("ids[0]");
    let village = app.region("杨柳村").await;
    let r = app
        .put(
            &format!("/api/assignments/regions/{village}/auto"),
            Some(&west),
            json!({"auto_apply": true}),
        )
        .await;
    assert!(matches!(r.status.as_u16(), 403 | 404), "{r:?}");
    app.post(
        "/api/assignments/run",
        Some(&west),
        json!({"region_id": village}),
    )
    .await
    .invalid("region_id");
    // A volunteer is no coordinator.
    let v = app.token_for(people::VOLUNTEER).await;
    app.get("/api/assignments/proposals", Some(&v))
        .await
        .error(403, "forbidden");
    app.get("/api/assignments/proposals?status=maybe", Some(&east))
        .await
        .invalid("status");
    assert!(active_claims(&app, visit).await.is_empty());
}

/// The feed of this instance, which refreshes only when a test says so.
async fn offered_in_feed(app: &TestApp, who: &TestVolunteer, visit: Uuid) -> bool {
    let page = app
        .get("/api/visits/feed?limit=50", Some(&who.token))
        .await
        .ok();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == visit.to_string())
}

#[tokio::test]
async fn an_applied_visit_leaves_the_feed_at_once_and_a_declined_one_comes_back() {
    let app = spawn_app_with(Options {
        configure: Some(|c| {
            c.assign.claim_hours = 0;
            // No refresh in the test's time: only this instance's own changes show.
            c.visits.feed_refresh_ms = 3_600_000;
        }),
        ..Default::default()
    })
    .await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let v = volunteer_at(&app, 0.0, &[Skill::Companionship]).await;
    let visit = visit(&app, 1.0, 3).await;
    app.state.feed.refresh(&app.state.db).await.unwrap();
    assert!(offered_in_feed(&app, &v, visit).await);

    run(&app, &coordinator).await;
    let list = proposals(&app, &coordinator, "proposed", &[visit]).await;
    assert_eq!(for_visit(&list, visit), vec![v.user_id.to_string()]);
    let id = list[0]["id"].as_str().unwrap().to_string();
    apply(&app, &coordinator, &id).await;
    // Another volunteer's feed, and the holder's: gone without waiting for a refresh.
    let other = volunteer_at(&app, 0.0, &[Skill::Companionship]).await;
    assert!(!offered_in_feed(&app, &other, visit).await);
    assert!(!offered_in_feed(&app, &v, visit).await);

    // Declined: open again, and offered again at once.
    app.post(
        &format!("/api/assignments/proposals/{id}/decline"),
        Some(&v.token),
        json!({}),
    )
    .await
    .ok();
    assert!(offered_in_feed(&app, &other, visit).await);
}

#[tokio::test]
async fn a_volunteer_says_which_weekdays_they_can_visit_on() {
    use chrono::Datelike;
    let app = app().await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    // 0.1 km and 1 km from the visit's family.
    let near = volunteer_at(&app, 0.9, &[Skill::Companionship]).await;
    let farther = volunteer_at(&app, 0.0, &[Skill::Companionship]).await;
    let mine = app
        .get("/api/me/availability", Some(&near.token))
        .await
        .ok();
    assert_eq!(mine["weekdays"], json!([1, 2, 3, 4, 5, 6, 7]));
    let capacity = mine["weekly_capacity"].clone();

    // Bad input names the field and changes nothing.
    for (body, field) in [
        (json!({"weekdays": [0, 2]}), "weekdays[0]"),
        (json!({"weekdays": [2, 2]}), "weekdays[1]"),
        (json!({"weekdays": []}), "weekdays"),
        (json!({"weekdays": "周一"}), "weekdays"),
        (json!({"weekly_capacity": -1}), "weekly_capacity"),
        (
            json!({"weekdays": [1], "weekly_capacity": 51}),
            "weekly_capacity",
        ),
    ] {
        app.put("/api/me/availability", Some(&near.token), body)
            .await
            .invalid(field);
    }
    let unchanged = app
        .get("/api/me/availability", Some(&near.token))
        .await
        .ok();
    assert_eq!(unchanged["weekdays"], json!([1, 2, 3, 4, 5, 6, 7]));
    assert_eq!(unchanged["weekly_capacity"], capacity);
    // Only a volunteer has weekdays of their own.
    let township = app.token_for(people::TAOYUAN).await;
    app.put(
        "/api/me/availability",
        Some(&township),
        json!({"weekdays": [1]}),
    )
    .await
    .error(403, "forbidden");

    // The visit is proposed to the nearer one; then they give up its weekday.
    let visit = visit(&app, 1.0, 2).await;
    run(&app, &coordinator).await;
    let list = proposals(&app, &coordinator, "proposed", &[visit]).await;
    assert_eq!(for_visit(&list, visit), vec![near.user_id.to_string()]);
    let its_day = day(2)
        .with_timezone(&beijing())
        .weekday()
        .number_from_monday() as u8;
    let others: Vec<u8> = (1..=7).filter(|d| *d != its_day).rev().collect();
    let set = app
        .put(
            "/api/me/availability",
            Some(&near.token),
            json!({"weekdays": others, "weekly_capacity": 3}),
        )
        .await
        .ok();
    let sorted: Vec<u8> = (1..=7).filter(|d| *d != its_day).collect();
    assert_eq!(set["weekdays"], json!(sorted));
    assert_eq!(set["weekly_capacity"], 3);
    let profile = second_profile(&app, near.user_id).await;
    let record = app
        .get(&format!("/api/volunteers/{profile}"), Some(&coordinator))
        .await
        .ok();
    assert_eq!(record["weekdays"], json!(sorted));
    assert_eq!(record["weekly_capacity"], 3);

    // Their proposal is withdrawn, and the visit proposed to the farther one at once.
    let withdrawn = proposals(&app, &coordinator, "withdrawn", &[visit]).await;
    assert_eq!(for_visit(&withdrawn, visit), vec![near.user_id.to_string()]);
    let list = proposals(&app, &coordinator, "proposed", &[visit]).await;
    assert_eq!(for_visit(&list, visit), vec![farther.user_id.to_string()]);
}

#[tokio::test]
async fn a_proposal_on_a_day_the_volunteer_no_longer_visits_is_not_applied() {
    use chrono::Datelike;
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    let app = app().await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let v = volunteer_at(&app, 0.9, &[Skill::Companionship]).await;
    let visit = visit(&app, 1.0, 2).await;
    run(&app, &coordinator).await;
    let list = proposals(&app, &coordinator, "proposed", &[visit]).await;
    assert_eq!(for_visit(&list, visit), vec![v.user_id.to_string()]);

    // The weekdays change by a way that withdraws nothing (a direct correction of the row).
    let its_day = day(2)
        .with_timezone(&beijing())
        .weekday()
        .number_from_monday();
    let others: Vec<u32> = (1..=7).filter(|d| *d != its_day).collect();
    let profile = second_profile(&app, v.user_id).await;
    let mut row = volunteer::Entity::find_by_id(profile)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    row.availability = Set(json!({ "weekdays": others }));
    row.update(&app.state.db).await.unwrap();

    let id = list[0]["id"].as_str().unwrap();
    app.post(
        &format!("/api/assignments/proposals/{id}/apply"),
        Some(&coordinator),
        json!({}),
    )
    .await
    .error(409, "proposal_no_longer_fits");
    assert!(active_claims(&app, visit).await.is_empty());
}
