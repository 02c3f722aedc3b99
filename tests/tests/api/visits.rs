//! A volunteer finds visits, takes them, gives them back; a coordinator releases them; the
//! family's details appear only to those holding a visit, around its window.
//!
//! The families of these tests live around `HOME`, far from the demo city, so that only the
//! visits a test makes are near the volunteers it makes.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveTime, TimeZone, Utc};
use entity::{FamilyCategory, Skill, notification, task_claim, visit_task};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter,
};
use serde_json::{Value, json};
use tests::{
    visits::{TestVolunteer, VisitSpec, VolunteerSpec, offset},
    *,
};
use uuid::Uuid;

/// Where the test volunteers live (about 60 km from the demo city).
const HOME: (f64, f64) = (31.30, 116.60);

fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

/// Local midnight `n` days from today (Asia/Shanghai, the deployment's zone).
fn day(n: i64) -> DateTime<Utc> {
    let today = Utc::now().with_timezone(&beijing()).date_naive();
    beijing()
        .from_local_datetime(&(today + Duration::days(n)).and_time(NaiveTime::MIN))
        .unwrap()
        .with_timezone(&Utc)
}

/// Days from today to the first Monday at least a week ahead.
fn monday_ahead() -> i64 {
    let today = Utc::now().with_timezone(&beijing()).date_naive();
    let to_monday = (7 - today.weekday().num_days_from_monday() as i64) % 7;
    to_monday + 7
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

/// A one-day visit `days` ahead of the family `north_km` north of HOME.
async fn visit_at(app: &TestApp, north_km: f64, days: i64) -> Uuid {
    let f = family(app, north_km).await;
    app.visit(VisitSpec::new(f, day(days), 24)).await
}

async fn volunteer(app: &TestApp) -> TestVolunteer {
    app.volunteer(VolunteerSpec::at(HOME.0, HOME.1)).await
}

async fn feed(app: &TestApp, who: &TestVolunteer, query: &str) -> Value {
    app.get(&format!("/api/visits/feed?{query}"), Some(&who.token))
        .await
        .ok()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn offered(page: &Value, id: Uuid) -> bool {
    ids(page).contains(&id.to_string())
}

async fn claim(app: &TestApp, who: &TestVolunteer, visit: Uuid) -> Reply {
    app.post(
        &format!("/api/visits/{visit}/claims"),
        Some(&who.token),
        json!({}),
    )
    .await
}

async fn claims_on(app: &TestApp, visit: Uuid) -> Vec<task_claim::Model> {
    task_claim::Entity::find()
        .filter(task_claim::Column::TaskId.eq(visit))
        .all(&app.state.db)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// The feed

#[tokio::test]
async fn the_feed_offers_open_visits_nearest_first_without_naming_the_family() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let far = visit_at(&app, 3.0, 5).await;
    let near = visit_at(&app, 0.3, 6).await;
    let middle = visit_at(&app, 1.2, 4).await;

    let page = feed(&app, &v, "").await;
    assert_eq!(
        ids(&page),
        [near, middle, far].map(|i| i.to_string()),
        "nearest first: {page}"
    );
    let first = &page["items"][0];
    assert_eq!(first["distance_km"], 0.5, "0.3 km is shown as 0.5 km");
    assert_eq!(page["items"][1]["distance_km"], 1.0);
    assert_eq!(first["category"], "bereaved");
    assert_eq!(first["category_label"], "失独");
    assert_eq!(first["village"], "杨柳村");
    assert!(page.get("next_cursor").is_none());
    // Nothing that identifies the family.
    let text = page.to_string();
    for secret in ["钱秀英", "13855501234", "幸福路", "耳背", "儿子"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(first.get("lat").is_none() && first.get("family_id").is_none());
}

#[tokio::test]
async fn among_visits_about_as_near_the_most_urgent_comes_first() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    // Both shown as 0.0 km away; the second must be done sooner.
    let relaxed = visit_at(&app, 0.05, 20).await;
    let urgent = visit_at(&app, 0.2, 2).await;
    // Farther, and even more urgent: still after both (nearest first).
    let farther = visit_at(&app, 2.0, 1).await;
    let page = feed(&app, &v, "").await;
    assert_eq!(
        ids(&page),
        [urgent, relaxed, farther].map(|i| i.to_string())
    );
}

#[tokio::test]
async fn pages_spread_over_many_distances_come_nearest_first_then_most_urgent() {
    let app = spawn_app().await;
    let mut spec = VolunteerSpec::at(HOME.0, HOME.1);
    spec.max_distance_km = 10.0;
    let v = app.volunteer(spec).await;
    // (km north, days ahead): groups of 0.5 km, some sharing a group, up to 9 km away.
    let spots = [
        (8.9, 1),
        (0.6, 9),
        (5.2, 3),
        (0.1, 12),
        (2.1, 2),
        (0.65, 4),
        (5.3, 1),
        (3.4, 8),
        (1.9, 6),
        (9.7, 2),
    ];
    let mut made = Vec::new();
    for (km, days) in spots {
        let id = visit_at(&app, km, days).await;
        made.push(((km / 0.5_f64).round() as i64, days, id.to_string()));
    }
    made.sort();
    let expected: Vec<String> = made.into_iter().map(|(_, _, id)| id).collect();
    // Beyond the volunteer's 10 km: never offered.
    visit_at(&app, 10.4, 1).await;

    let mut seen = Vec::new();
    let mut query = "limit=3".to_string();
    loop {
        let page = feed(&app, &v, &query).await;
        assert!(ids(&page).len() <= 3);
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn pre_assigned_cadre_visits_are_not_offered() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let f = family(&app, 1.0).await;
    let cadre = app.user_id(people::TAOYUAN_CADRE).await;
    let mut rule = VisitSpec::new(f, day(3), 24);
    rule.assign_to_cadre = true;
    let mut assigned = VisitSpec::new(f, day(4), 24);
    assigned.cadre = Some(cadre);
    let rule = app.visit(rule).await;
    let assigned = app.visit(assigned).await;
    let open = app.visit(VisitSpec::new(f, day(5), 24)).await;
    let page = feed(&app, &v, "").await;
    assert_eq!(ids(&page), [open.to_string()]);
    // Not theirs to see or take.
    for id in [rule, assigned] {
        claim(&app, &v, id).await.error(404, "not_found");
        app.get(&format!("/api/visits/{id}"), Some(&v.token))
            .await
            .error(404, "not_found");
    }
}

#[tokio::test]
async fn full_visits_are_not_offered_but_partly_claimed_ones_are() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let f = family(&app, 1.0).await;
    let mut full = VisitSpec::new(f, day(3), 24).needing(2);
    full.claims = 2;
    full.status = "claimed".into();
    let mut half = VisitSpec::new(f, day(4), 24).needing(2);
    half.claims = 1;
    let full = app.visit(full).await;
    let half = app.visit(half).await;
    let page = feed(&app, &v, "").await;
    assert!(!offered(&page, full));
    assert!(offered(&page, half));
    assert_eq!(page["items"][0]["claims_count"], 1);
    assert_eq!(page["items"][0]["volunteers_needed"], 2);
}

#[tokio::test]
async fn visits_already_held_are_not_offered_again() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let f = family(&app, 1.0).await;
    let two = app.visit(VisitSpec::new(f, day(3), 24).needing(2)).await;
    assert!(offered(&feed(&app, &v, "").await, two));
    claim(&app, &v, two).await.ok();
    // Still open for a second volunteer, but not for this one.
    assert_eq!(app.visit_row(two).await.status, "open");
    assert!(!offered(&feed(&app, &v, "").await, two));
    let other = volunteer(&app).await;
    assert!(offered(&feed(&app, &other, "").await, two));
}

#[tokio::test]
async fn a_visit_needing_a_skill_the_volunteer_lacks_is_not_offered() {
    let app = spawn_app().await;
    let plain = volunteer(&app).await;
    let mut spec = VolunteerSpec::at(HOME.0, HOME.1);
    spec.skills = vec![Skill::Companionship, Skill::Counselling];
    let counsellor = app.volunteer(spec).await;
    let f = family(&app, 1.0).await;
    let grief = app
        .visit(
            VisitSpec::new(f, day(3), 24)
                .kind("death_anniversary")
                .skills(&[Skill::Counselling]),
        )
        .await;
    assert!(!offered(&feed(&app, &plain, "").await, grief));
    let page = feed(&app, &counsellor, "").await;
    assert!(offered(&page, grief));
    assert_eq!(page["items"][0]["required_skills"], json!(["counselling"]));
    claim(&app, &plain, grief).await.error(404, "not_found");
}

#[tokio::test]
async fn a_volunteer_at_weekly_capacity_is_offered_nothing_more_that_week() {
    let app = spawn_app().await;
    let mut spec = VolunteerSpec::at(HOME.0, HOME.1);
    spec.weekly_capacity = 2;
    let v = app.volunteer(spec).await;
    let monday = monday_ahead();
    let f = family(&app, 1.0).await;
    let mon = app.visit(VisitSpec::new(f, day(monday), 24)).await;
    let wed = app.visit(VisitSpec::new(f, day(monday + 2), 24)).await;
    let sun = app.visit(VisitSpec::new(f, day(monday + 6), 24)).await;
    let next_mon = app.visit(VisitSpec::new(f, day(monday + 7), 24)).await;
    claim(&app, &v, mon).await.ok();
    // One held; the second fits.
    assert!(offered(&feed(&app, &v, "").await, wed));
    claim(&app, &v, wed).await.ok();
    let page = feed(&app, &v, "").await;
    assert!(!offered(&page, sun), "the week is full: {page}");
    assert!(offered(&page, next_mon), "the next week is not");
    // The claim checks again.
    let body = claim(&app, &v, sun).await.error(409, "over_capacity");
    assert!(body["message"].as_str().unwrap().contains("上限"));
    assert_eq!(app.visit_row(sun).await.claims_count, 0);
}

#[tokio::test]
async fn visits_overlapping_a_held_one_are_not_offered_but_back_to_back_ones_are() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let f = family(&app, 1.0).await;
    // Held: day 3, 09:00–12:00.
    let held = app
        .visit(VisitSpec::new(f, day(3) + Duration::hours(9), 3))
        .await;
    let overlapping = app
        .visit(VisitSpec::new(f, day(3) + Duration::hours(11), 2))
        .await;
    let before = app
        .visit(VisitSpec::new(f, day(3) + Duration::hours(7), 2))
        .await;
    let after = app
        .visit(VisitSpec::new(f, day(3) + Duration::hours(12), 2))
        .await;
    claim(&app, &v, held).await.ok();
    let page = feed(&app, &v, "").await;
    assert!(!offered(&page, overlapping));
    assert!(
        offered(&page, before),
        "ends at 09:00 when the held one starts"
    );
    assert!(
        offered(&page, after),
        "starts at 12:00 when the held one ends"
    );
    claim(&app, &v, overlapping).await.error(409, "overlaps");
    claim(&app, &v, after).await.ok();
}

#[tokio::test]
async fn visits_beyond_the_maximum_distance_are_not_offered() {
    let app = spawn_app().await;
    let v = volunteer(&app).await; // 5 km
    let inside = visit_at(&app, 4.5, 3).await;
    let beyond = visit_at(&app, 5.5, 3).await;
    let near = visit_at(&app, 1.0, 3).await;
    let page = feed(&app, &v, "").await;
    assert!(offered(&page, inside) && offered(&page, near));
    assert!(!offered(&page, beyond));
    // A shorter distance narrows it; a longer one is capped at the profile's 5 km.
    let page = feed(&app, &v, "max_distance_km=2").await;
    assert_eq!(ids(&page), [near.to_string()]);
    let page = feed(&app, &v, "max_distance_km=50").await;
    assert!(!offered(&page, beyond));
    claim(&app, &v, beyond).await.error(404, "not_found");
}

#[tokio::test]
async fn families_without_a_location_are_not_offered() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let nowhere = app
        .family_at("杨柳村", FamilyCategory::Hardship, "无址户", None)
        .await;
    let unplaced = app.visit(VisitSpec::new(nowhere, day(3), 24)).await;
    let placed = visit_at(&app, 1.0, 3).await;
    let page = feed(&app, &v, "").await;
    assert_eq!(ids(&page), [placed.to_string()]);
    claim(&app, &v, unplaced).await.error(404, "not_found");
    assert_eq!(app.visit_row(unplaced).await.claims_count, 0);
}

#[tokio::test]
async fn the_feed_follows_a_family_whose_location_is_corrected() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let f = family(&app, 1.0).await;
    let visit = app.visit(VisitSpec::new(f, day(3), 24)).await;
    assert!(offered(&feed(&app, &v, "").await, visit));
    // The register had the family 1 km away; it lives 8 km away (beyond the 5 km reach).
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let moved = offset(HOME, 8.0, 0.0);
    app.patch(
        &format!("/api/families/{f}"),
        Some(&coordinator),
        json!({"lat": moved.0, "lng": moved.1}),
    )
    .await
    .ok();
    assert!(!offered(&feed(&app, &v, "").await, visit));
    claim(&app, &v, visit).await.error(404, "not_found");
    let back = offset(HOME, 2.0, 0.0);
    app.patch(
        &format!("/api/families/{f}"),
        Some(&coordinator),
        json!({"lat": back.0, "lng": back.1}),
    )
    .await
    .ok();
    let page = feed(&app, &v, "").await;
    assert!(offered(&page, visit));
    assert_eq!(page["items"][0]["distance_km"], 2.0);
}

#[tokio::test]
async fn the_feed_filters_by_kind_and_dates() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let f = family(&app, 1.0).await;
    let birthday = app.visit(VisitSpec::new(f, day(3), 24 * 3)).await; // days 3–5
    let festival = app
        .visit(VisitSpec::new(f, day(10), 24 * 4).kind("festival")) // days 10–13
        .await;
    let page = feed(&app, &v, "kind=festival").await;
    assert_eq!(ids(&page), [festival.to_string()]);
    let date = |n: i64| {
        (day(n) + Duration::hours(1))
            .with_timezone(&beijing())
            .date_naive()
    };
    // Windows overlapping the range, ends included.
    let page = feed(&app, &v, &format!("from={}&to={}", date(5), date(10))).await;
    assert_eq!(ids(&page).len(), 2);
    let page = feed(&app, &v, &format!("from={}&to={}", date(6), date(9))).await;
    assert!(ids(&page).is_empty());
    let page = feed(&app, &v, &format!("to={}", date(4))).await;
    assert_eq!(ids(&page), [birthday.to_string()]);
}

#[tokio::test]
async fn the_feed_measures_from_where_the_volunteer_is_but_within_reach_of_home() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let north = visit_at(&app, 4.0, 3).await;
    let south = visit_at(&app, -0.5, 3).await;
    let too_far_from_home = visit_at(&app, 7.0, 3).await;
    // Standing 4 km north of home: the northern family is nearest.
    let here = offset(HOME, 4.0, 0.0);
    let page = feed(&app, &v, &format!("lat={}&lng={}", here.0, here.1)).await;
    assert_eq!(ids(&page), [north.to_string(), south.to_string()], "{page}");
    assert_eq!(page["items"][0]["distance_km"], 0.0);
    assert_eq!(page["items"][1]["distance_km"], 4.5);
    assert!(!offered(&page, too_far_from_home));
}

#[tokio::test]
async fn only_approved_volunteers_have_a_feed() {
    let app = spawn_app().await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    app.get("/api/visits/feed", Some(&coordinator))
        .await
        .error(403, "forbidden");
    let mut spec = VolunteerSpec::at(HOME.0, HOME.1);
    spec.status = entity::VolunteerStatus::Suspended;
    let suspended = app.volunteer(spec).await;
    app.get("/api/visits/feed", Some(&suspended.token))
        .await
        .error(403, "forbidden");
    app.get("/api/visits/feed", None)
        .await
        .error(401, "unauthorized");
}

#[tokio::test]
async fn bad_feed_parameters_name_the_parameter() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=51", "limit"),
        ("limit=x", "limit"),
        ("lat=31.3", "lng"),
        ("lng=116.6", "lat"),
        ("lat=95&lng=116.6", "lat"),
        ("lat=NaN&lng=116.6", "lat"),
        ("max_distance_km=0", "max_distance_km"),
        ("max_distance_km=-3", "max_distance_km"),
        ("kind=Birthday!", "kind"),
        ("from=2026-12-10&to=2026-12-01", "to"),
        ("from=2026-13-01", "from"),
        ("cursor=not-a-cursor", "cursor"),
    ] {
        app.get(&format!("/api/visits/feed?{query}"), Some(&v.token))
            .await
            .invalid(field);
    }
    // A volunteer without a home on record must say where they are.
    let mut spec = VolunteerSpec::at(HOME.0, HOME.1);
    spec.home = None;
    let homeless = app.volunteer(spec).await;
    app.get("/api/visits/feed", Some(&homeless.token))
        .await
        .invalid("lat");
    let v2 = visit_at(&app, 1.0, 3).await;
    let page = feed(&app, &homeless, &format!("lat={}&lng={}", HOME.0, HOME.1)).await;
    assert_eq!(ids(&page), [v2.to_string()]);
}

#[tokio::test]
async fn cursor_pages_neither_repeat_nor_skip_when_visits_are_claimed_between_pages() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let mut spec = VolunteerSpec::at(HOME.0, HOME.1);
    spec.weekly_capacity = 50;
    let rival = app.volunteer(spec).await;
    // 30 visits spread over many distance groups and days.
    let mut made = Vec::new();
    for i in 0..30 {
        let km = (i as f64 * 0.37) % 4.8;
        let f = family(&app, km).await;
        made.push(app.visit(VisitSpec::new(f, day(2 + i % 9), 24)).await);
    }
    let all = ids(&feed(&app, &v, "limit=50").await);
    assert_eq!(all.len(), 30);

    let first = feed(&app, &v, "limit=10").await;
    assert_eq!(ids(&first), all[..10]);
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    // Between pages, a rival takes one visit already shown and one not yet shown.
    let shown: Uuid = all[3].parse().unwrap();
    let coming: Uuid = all[12].parse().unwrap();
    claim(&app, &rival, shown).await.ok();
    claim(&app, &rival, coming).await.ok();

    let mut seen = ids(&first);
    let mut next = Some(cursor);
    let mut pages = 1;
    while let Some(c) = next {
        let page = feed(&app, &v, &format!("limit=10&cursor={c}")).await;
        seen.extend(ids(&page));
        next = page["next_cursor"].as_str().map(String::from);
        pages += 1;
        assert!(pages < 10, "pages never end");
    }
    let expected: Vec<String> = all
        .iter()
        .filter(|id| **id != coming.to_string())
        .cloned()
        .collect();
    assert_eq!(seen, expected, "every visit once, in order, none skipped");

    // The cursor keeps its filters and position: changing the filters starts over.
    let c = first["next_cursor"].as_str().unwrap();
    app.get(
        &format!("/api/visits/feed?limit=10&cursor={c}&kind=festival"),
        Some(&v.token),
    )
    .await
    .invalid("cursor");
}

#[tokio::test]
async fn pages_of_a_dense_neighbourhood_come_in_order_and_survive_claims() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let mut spec = VolunteerSpec::at(HOME.0, HOME.1);
    spec.weekly_capacity = 50;
    let rival = app.volunteer(spec).await;
    // 30 visits within 200 m: all shown as 0 km, so ordered by the end of their window.
    for i in 0..30 {
        let f = family(&app, 0.005 * i as f64).await;
        app.visit(VisitSpec::new(f, day(2 + (i * 7) % 11), 24 + i))
            .await;
    }
    let all = feed(&app, &v, "limit=50").await;
    assert_eq!(ids(&all).len(), 30);
    let ends: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["window_end"].as_str().unwrap())
        .collect();
    assert!(ends.windows(2).all(|w| w[0] <= w[1]), "most urgent first");
    let all = ids(&all);

    let first = feed(&app, &v, "limit=10").await;
    assert_eq!(ids(&first), all[..10]);
    let coming: Uuid = all[15].parse().unwrap();
    claim(&app, &rival, all[2].parse().unwrap()).await.ok();
    claim(&app, &rival, coming).await.ok();
    let c = first["next_cursor"].as_str().unwrap();
    let second = feed(&app, &v, &format!("limit=10&cursor={c}")).await;
    let c = second["next_cursor"].as_str().unwrap();
    let third = feed(&app, &v, &format!("limit=10&cursor={c}")).await;
    assert!(third.get("next_cursor").is_none());
    let mut seen = ids(&first);
    seen.extend(ids(&second));
    seen.extend(ids(&third));
    let expected: Vec<String> = all
        .iter()
        .filter(|id| **id != coming.to_string())
        .cloned()
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn the_feed_stays_right_for_a_volunteer_holding_many_visits() {
    let app = spawn_app().await;
    let mut spec = VolunteerSpec::at(HOME.0, HOME.1);
    spec.weekly_capacity = 100;
    let v = app.volunteer(spec).await;
    // 70 short visits held on day 30, far away (more than the feed hands the database).
    let far = app
        .family_at(
            "杨柳村",
            FamilyCategory::Hardship,
            "远方户",
            Some(offset(HOME, 60.0, 0.0)),
        )
        .await;
    let start = day(30);
    let held: Vec<VisitSpec> = (0..70)
        .map(|i| VisitSpec::new(far, start + Duration::minutes(10 * i), 0))
        .map(|mut s| {
            s.end = s.start + Duration::minutes(10);
            s
        })
        .collect();
    for id in app.visits(held).await {
        task_claim::ActiveModel {
            id: Set(Uuid::now_v7()),
            task_id: Set(id),
            volunteer_id: Set(v.user_id),
            status: Set("active".into()),
            claimed_at: Set(Utc::now()),
            released_at: Set(None),
            released_by: Set(None),
        }
        .insert(&app.state.db)
        .await
        .unwrap();
    }
    // Nearby: 25 visits overlapping those, ending soonest, and 5 that do not.
    let near = family(&app, 0.1).await;
    let clashing: Vec<VisitSpec> = (0..25)
        .map(|i| VisitSpec::new(near, start + Duration::minutes(5 * i), 1))
        .collect();
    app.visits(clashing).await;
    let free = app
        .visits(
            (0..5)
                .map(|i| VisitSpec::new(near, day(40 + i), 24))
                .collect(),
        )
        .await;
    let page = feed(&app, &v, "limit=3").await;
    assert_eq!(
        ids(&page),
        free[..3].iter().map(Uuid::to_string).collect::<Vec<_>>()
    );
    let c = page["next_cursor"].as_str().unwrap();
    let rest = feed(&app, &v, &format!("limit=3&cursor={c}")).await;
    assert_eq!(
        ids(&rest),
        free[3..].iter().map(Uuid::to_string).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------
// Claiming

#[tokio::test]
async fn a_claim_takes_the_visit_and_a_retry_returns_the_same_claim() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let visit = visit_at(&app, 1.0, 3).await;
    let first = claim(&app, &v, visit).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.body);
    let first = first.body;
    assert_eq!(first["status"], "active");
    assert_eq!(first["visit_status"], "claimed");
    assert_eq!(first["volunteer_user_id"], v.user_id.to_string());
    let again = claim(&app, &v, visit).await;
    assert_eq!(again.status.as_u16(), 200, "{}", again.body);
    assert_eq!(again.body["id"], first["id"]);
    let row = app.visit_row(visit).await;
    assert_eq!((row.claims_count, row.status.as_str()), (1, "claimed"));
    assert_eq!(claims_on(&app, visit).await.len(), 1);
}

#[tokio::test]
async fn two_volunteers_fill_a_visit_for_two_and_a_third_is_told_it_is_full() {
    let app = spawn_app().await;
    let vs = app.volunteers(3, VolunteerSpec::at(HOME.0, HOME.1)).await;
    let f = family(&app, 1.0).await;
    let visit = app.visit(VisitSpec::new(f, day(3), 24).needing(2)).await;
    let one = claim(&app, &vs[0], visit).await.ok();
    assert_eq!(one["visit_status"], "open", "one of two places taken");
    let two = claim(&app, &vs[1], visit).await.ok();
    assert_eq!(two["visit_status"], "claimed");
    let body = claim(&app, &vs[2], visit).await.error(409, "visit_full");
    assert!(body["message"].as_str().unwrap().contains("满员"), "{body}");
    assert_eq!(body["state"], "claimed");
    let row = app.visit_row(visit).await;
    assert_eq!(row.claims_count, 2);
    assert_eq!(claims_on(&app, visit).await.len(), 2, "nothing written");
}

#[tokio::test]
async fn a_claim_on_a_visit_in_another_state_says_the_state_and_changes_nothing() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let f = family(&app, 1.0).await;
    for state in ["cancelled", "in_progress", "reported", "missed"] {
        let mut spec = VisitSpec::new(f, day(3), 24);
        spec.status = state.into();
        let visit = app.visit(spec).await;
        let body = claim(&app, &v, visit).await.error(409, "visit_not_open");
        assert_eq!(body["state"], state);
        let row = app.visit_row(visit).await;
        assert_eq!((row.status.as_str(), row.claims_count), (state, 0));
        assert!(claims_on(&app, visit).await.is_empty());
    }
}

#[tokio::test]
async fn claims_outside_what_a_volunteer_may_see_are_not_found() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    claim(&app, &v, Uuid::now_v7())
        .await
        .error(404, "not_found");
    app.post("/api/visits/not-a-uuid/claims", Some(&v.token), json!({}))
        .await
        .invalid("id");
    // Not a volunteer.
    let visit = visit_at(&app, 1.0, 3).await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    app.post(
        &format!("/api/visits/{visit}/claims"),
        Some(&coordinator),
        json!({}),
    )
    .await
    .error(403, "forbidden");
    assert_eq!(app.visit_row(visit).await.claims_count, 0);
}

#[tokio::test]
async fn the_same_volunteer_claiming_twice_at_once_gets_one_claim() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let f = family(&app, 1.0).await;
    let visit = app.visit(VisitSpec::new(f, day(3), 24).needing(3)).await;
    let (a, b) = tokio::join!(claim(&app, &v, visit), claim(&app, &v, visit));
    let mut codes = [a.status.as_u16(), b.status.as_u16()];
    codes.sort();
    assert_eq!(codes, [200, 201], "{} {}", a.body, b.body);
    assert_eq!(a.body["id"], b.body["id"]);
    assert_eq!(app.visit_row(visit).await.claims_count, 1);
}

// ---------------------------------------------------------------------------------------
// Giving back, and releasing

#[tokio::test]
async fn a_volunteer_gives_a_visit_back_before_the_cutoff() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let visit = visit_at(&app, 1.0, 3).await;
    let claimed = claim(&app, &v, visit).await.ok();
    let path = format!("/api/visits/{visit}/claims/mine");
    let given = app.delete(&path, Some(&v.token)).await.ok();
    assert_eq!(given["status"], "released");
    assert_eq!(given["released_by"], v.user_id.to_string());
    let row = app.visit_row(visit).await;
    assert_eq!((row.status.as_str(), row.claims_count), ("open", 0));
    assert!(offered(&feed(&app, &v, "").await, visit), "offered again");
    // A repeated request is answered the same.
    let again = app.delete(&path, Some(&v.token)).await.ok();
    assert_eq!(again["id"], given["id"]);
    assert_eq!(app.visit_row(visit).await.claims_count, 0);
    // Claiming again takes it again (the same claim, active once more).
    let back = claim(&app, &v, visit).await;
    assert_eq!(back.status.as_u16(), 201);
    assert_eq!(back.body["id"], claimed["id"]);
    assert_eq!(app.visit_row(visit).await.claims_count, 1);
}

#[tokio::test]
async fn after_the_cutoff_only_a_coordinator_can_release_the_volunteer() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let f = family(&app, 1.0).await;
    // Starts in ten hours: inside the 24-hour cutoff.
    let start = Utc::now() + Duration::hours(10);
    let visit = app.visit(VisitSpec::new(f, start, 3)).await;
    claim(&app, &v, visit).await.ok();
    let path = format!("/api/visits/{visit}/claims/mine");
    let body = app
        .delete(&path, Some(&v.token))
        .await
        .error(409, "unclaim_too_late");
    assert!(body["message"].as_str().unwrap().contains("协调员"));
    let row = app.visit_row(visit).await;
    assert_eq!((row.status.as_str(), row.claims_count), ("claimed", 1));

    // A malformed id, someone else's visit, or none: nothing to give back.
    app.delete("/api/visits/not-a-uuid/claims/mine", Some(&v.token))
        .await
        .invalid("id");
    app.delete(
        &format!("/api/visits/{}/claims/mine", Uuid::now_v7()),
        Some(&v.token),
    )
    .await
    .error(404, "not_found");
    let other = volunteer(&app).await;
    app.delete(&path, Some(&other.token))
        .await
        .error(404, "not_found");
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    app.delete(&path, Some(&coordinator))
        .await
        .error(403, "forbidden");

    // The coordinator releases them.
    let release = format!("/api/visits/{visit}/claims/{}/release", v.user_id);
    let released = app
        .post(
            &release,
            Some(&coordinator),
            json!({"reason": "志愿者临时生病"}),
        )
        .await
        .ok();
    assert_eq!(released["status"], "released");
    let coordinator_id = app.user_id(people::EAST_COUNTY).await;
    assert_eq!(released["released_by"], coordinator_id.to_string());
    let row = app.visit_row(visit).await;
    assert_eq!((row.status.as_str(), row.claims_count), ("open", 0));
    assert_eq!(app.audit_count("release_claim").await, 1);
    // The volunteer is told, without the family's details (beside the claim's
    // confirmation and reminders, now dropped).
    let messages = notification::Entity::find()
        .filter(notification::Column::RecipientId.eq(v.user_id))
        .filter(notification::Column::Template.eq("claim_released"))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].template, "claim_released");
    assert_eq!(messages[0].payload["task_id"], visit.to_string());
    let payload = messages[0].payload.to_string();
    assert!(
        !payload.contains("钱秀英") && !payload.contains("幸福路") && !payload.contains("生病")
    );
    let pending_reminders = notification::Entity::find()
        .filter(notification::Column::RecipientId.eq(v.user_id))
        .filter(notification::Column::Template.ne("claim_released"))
        .filter(notification::Column::Status.eq(notification::PENDING))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(pending_reminders, 0, "the claim's reminders are dropped");

    // Released by a coordinator: the volunteer cannot simply take it back.
    claim(&app, &v, visit)
        .await
        .error(409, "released_by_coordinator");
    // Releasing again: nothing to release.
    app.post(&release, Some(&coordinator), json!({"reason": "再次"}))
        .await
        .error(409, "claim_released");
    assert_eq!(app.audit_count("release_claim").await, 1);
}

#[tokio::test]
async fn a_release_with_bad_input_or_out_of_scope_changes_nothing() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let visit = visit_at(&app, 1.0, 3).await;
    claim(&app, &v, visit).await.ok();
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let release = format!("/api/visits/{visit}/claims/{}/release", v.user_id);
    for (body, field) in [
        (json!({}), "reason"),
        (json!({"reason": ""}), "reason"),
        (json!({"reason": "   "}), "reason"),
        (json!({"reason": "长".repeat(201)}), "reason"),
        (json!({"reason": 5}), "reason"),
        (json!({"reason": "ok", "notify": false}), "notify"),
    ] {
        app.post(&release, Some(&coordinator), body)
            .await
            .invalid(field);
    }
    app.raw(
        "POST",
        &release,
        Some(&coordinator),
        "application/json",
        b"{".to_vec(),
    )
    .await
    .invalid("body");
    app.post(
        &format!("/api/visits/{visit}/claims/not-a-uuid/release"),
        Some(&coordinator),
        json!({"reason": "x"}),
    )
    .await
    .invalid("volunteer_user_id");
    // Out of scope, or not holding it.
    let west = app.token_for(people::WEST_COUNTY).await;
    app.post(&release, Some(&west), json!({"reason": "越权"}))
        .await
        .error(404, "not_found");
    let stranger = volunteer(&app).await;
    app.post(
        &format!("/api/visits/{visit}/claims/{}/release", stranger.user_id),
        Some(&coordinator),
        json!({"reason": "无此人"}),
    )
    .await
    .error(404, "not_found");
    // A volunteer cannot release anyone.
    app.post(&release, Some(&stranger.token), json!({"reason": "x"}))
        .await
        .error(403, "forbidden");
    let row = app.visit_row(visit).await;
    assert_eq!((row.status.as_str(), row.claims_count), ("claimed", 1));
    assert_eq!(claims_on(&app, visit).await[0].status, "active");
    assert_eq!(app.audit_count("release_claim").await, 0);
    assert_eq!(
        notification::Entity::find()
            .filter(notification::Column::Template.eq("claim_released"))
            .count(&app.state.db)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_started_visit_cannot_be_given_back_or_released() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let visit = visit_at(&app, 1.0, 3).await;
    claim(&app, &v, visit).await.ok();
    let mut row = app.visit_row(visit).await.into_active_model();
    row.status = Set("in_progress".into());
    row.update(&app.state.db).await.unwrap();
    let body = app
        .delete(&format!("/api/visits/{visit}/claims/mine"), Some(&v.token))
        .await
        .error(409, "visit_not_open");
    assert_eq!(body["state"], "in_progress");
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    app.post(
        &format!("/api/visits/{visit}/claims/{}/release", v.user_id),
        Some(&coordinator),
        json!({"reason": "调整"}),
    )
    .await
    .error(409, "visit_not_open");
    let row = app.visit_row(visit).await;
    assert_eq!((row.status.as_str(), row.claims_count), ("in_progress", 1));
}

// ---------------------------------------------------------------------------------------
// Details

#[tokio::test]
async fn holding_a_visit_shows_the_family_and_every_read_is_audited() {
    let app = spawn_app().await;
    let v = volunteer(&app).await;
    let visit = visit_at(&app, 1.0, 3).await;
    let path = format!("/api/visits/{visit}");

    let before = app.get(&path, Some(&v.token)).await.ok();
    assert_eq!(before["holding"], false);
    assert_eq!(before["family"]["village"], "杨柳村");
    assert_eq!(before["family"]["distance_km"], 1.0);
    let text = before.to_string();
    for secret in [
        "钱秀英",
        "13855501234",
        "幸福路",
        "耳背",
        "儿子",
        "测试走访",
    ] {
        assert!(!text.contains(secret), "{secret} before the claim: {text}");
    }
    assert!(before["family"].get("lat").is_none());
    assert_eq!(app.audit_count("read_visit_details").await, 0);

    claim(&app, &v, visit).await.ok();
    let after = app.get(&path, Some(&v.token)).await.ok();
    assert_eq!(after["holding"], true);
    let fam = &after["family"];
    assert_eq!(fam["name"], "钱秀英");
    assert_eq!(fam["phone"], "13855501234");
    assert!(fam["address"].as_str().unwrap().contains("幸福路"));
    assert!(fam["lat"].is_number() && fam["lng"].is_number());
    assert_eq!(fam["visitor_notes"], "老人耳背，请大声说话");
    assert!(after.get("counsel_notes").is_none(), "not a counsellor");
    assert_eq!(after["my_claim"]["status"], "active");
    assert_eq!(app.audit_count("read_visit_details").await, 1);
    app.get(&path, Some(&v.token)).await.ok();
    assert_eq!(app.audit_count("read_visit_details").await, 2, "each read");

    app.get("/api/visits/not-a-uuid", Some(&v.token))
        .await
        .invalid("id");
    // Someone else, a cadre, a coordinator elsewhere: not found.
    let west = app.token_for(people::WEST_COUNTY).await;
    let cadre = app.token_for(people::TAOYUAN_CADRE).await;
    for token in [&west, &cadre] {
        app.get(&path, Some(token)).await.error(404, "not_found");
    }
    // A full visit is not another volunteer's business.
    let other = volunteer(&app).await;
    app.get(&path, Some(&other.token))
        .await
        .error(404, "not_found");
}

#[tokio::test]
async fn counselling_notes_are_for_counselling_holders_and_coordinators_until_the_grace_ends() {
    let app = spawn_app().await;
    let plain = volunteer(&app).await;
    let mut spec = VolunteerSpec::at(HOME.0, HOME.1);
    spec.skills = vec![Skill::Counselling];
    let counsellor = app.volunteer(spec).await;
    let f = family(&app, 1.0).await;
    let visit = app.visit(VisitSpec::new(f, day(3), 24).needing(2)).await;
    claim(&app, &plain, visit).await.ok();
    claim(&app, &counsellor, visit).await.ok();
    let path = format!("/api/visits/{visit}");
    const NOTES: &str = "不要提起儿子；喜欢下午来访";

    let seen = app.get(&path, Some(&counsellor.token)).await.ok();
    assert_eq!(seen["counsel_notes"], NOTES);
    let seen = app.get(&path, Some(&plain.token)).await.ok();
    assert!(seen.get("counsel_notes").is_none());
    assert_eq!(seen["family"]["name"], "钱秀英");

    // A coordinator of the region: who holds it and the counselling notes, not the
    // family's contact details (the register has those, audited there).
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let audits = app.audit_count("read_visit_details").await;
    let seen = app.get(&path, Some(&coordinator)).await.ok();
    assert_eq!(seen["counsel_notes"], NOTES);
    assert_eq!(seen["family"]["family_id"], f.to_string());
    assert!(seen["family"].get("name").is_none());
    assert!(seen["family"].get("phone").is_none());
    let holders: Vec<&str> = seen["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(holders.len(), 2);
    assert!(holders.contains(&counsellor.user_id.to_string().as_str()));
    assert_eq!(app.audit_count("read_visit_details").await, audits + 1);

    // The window ended more than the grace (24 h) ago: holders see the masked view.
    let mut row = app.visit_row(visit).await.into_active_model();
    row.window_start = Set(Utc::now() - Duration::hours(50));
    row.window_end = Set(Utc::now() - Duration::hours(26));
    row.update(&app.state.db).await.unwrap();
    let audits = app.audit_count("read_visit_details").await;
    let late = app.get(&path, Some(&counsellor.token)).await.ok();
    assert_eq!(late["holding"], true);
    assert!(late.get("counsel_notes").is_none());
    assert!(late["family"].get("name").is_none());
    assert!(late["family"].get("address").is_none());
    assert_eq!(app.audit_count("read_visit_details").await, audits);
    // Within the grace they still do.
    let mut row = app.visit_row(visit).await.into_active_model();
    row.window_end = Set(Utc::now() - Duration::hours(20));
    row.update(&app.state.db).await.unwrap();
    let grace = app.get(&path, Some(&counsellor.token)).await.ok();
    assert_eq!(grace["counsel_notes"], NOTES);
}

// ---------------------------------------------------------------------------------------
// My visits

#[tokio::test]
async fn my_visits_lists_what_i_hold_upcoming_and_past() {
    let app = spawn_app().await;
    let mut spec = VolunteerSpec::at(HOME.0, HOME.1);
    spec.weekly_capacity = 10;
    let v = app.volunteer(spec).await;
    let mut held = Vec::new();
    for d in [5, 3, 4] {
        let visit = visit_at(&app, 1.0, d).await;
        claim(&app, &v, visit).await.ok();
        held.push(visit);
    }
    // Given back: not mine any more.
    let given = visit_at(&app, 1.0, 6).await;
    claim(&app, &v, given).await.ok();
    app.delete(&format!("/api/visits/{given}/claims/mine"), Some(&v.token))
        .await
        .ok();
    // Done last week.
    let f = family(&app, 1.0).await;
    let mut done = VisitSpec::new(f, day(-7), 24);
    done.status = "reported".into();
    let done = app.visit(done).await;
    task_claim::ActiveModel {
        id: Set(Uuid::now_v7()),
        task_id: Set(done),
        volunteer_id: Set(v.user_id),
        status: Set("active".into()),
        claimed_at: Set(Utc::now() - Duration::days(10)),
        released_at: Set(None),
        released_by: Set(None),
    }
    .insert(&app.state.db)
    .await
    .unwrap();

    let first = app
        .get("/api/me/visits?when=upcoming&limit=2", Some(&v.token))
        .await
        .ok();
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("/api/me/visits?when=upcoming&limit=2&cursor={cursor}"),
            Some(&v.token),
        )
        .await
        .ok();
    assert!(second.get("next_cursor").is_none());
    let mut upcoming = ids(&first);
    upcoming.extend(ids(&second));
    assert_eq!(
        upcoming,
        [held[1], held[2], held[0]].map(|i| i.to_string()),
        "soonest first"
    );
    assert_eq!(first["items"][0]["role"], "volunteer");
    assert_eq!(first["items"][0]["village"], "杨柳村");
    assert_eq!(first["items"][0]["category_label"], "失独");
    assert!(!first.to_string().contains("钱秀英"));

    let past = app
        .get("/api/me/visits?when=past", Some(&v.token))
        .await
        .ok();
    assert_eq!(ids(&past), [done.to_string()]);
    assert_eq!(past["items"][0]["status"], "reported");

    // A cadre's pre-assigned visits are theirs.
    let cadre = app.user_id(people::TAOYUAN_CADRE).await;
    let mut assigned = VisitSpec::new(f, day(2), 24);
    assigned.assign_to_cadre = true;
    assigned.cadre = Some(cadre);
    let assigned = app.visit(assigned).await;
    let token = app.token_for(people::TAOYUAN_CADRE).await;
    let mine = app.get("/api/me/visits", Some(&token)).await.ok();
    assert_eq!(ids(&mine), [assigned.to_string()]);
    assert_eq!(mine["items"][0]["role"], "cadre");
    // The cadre holds it: the details are theirs to see.
    let detail = app
        .get(&format!("/api/visits/{assigned}"), Some(&token))
        .await
        .ok();
    assert_eq!(detail["family"]["name"], "钱秀英");

    // Bad parameters.
    app.get("/api/me/visits?when=soon", Some(&v.token))
        .await
        .invalid("when");
    app.get("/api/me/visits?limit=0", Some(&v.token))
        .await
        .invalid("limit");
    app.get(
        &format!("/api/me/visits?when=past&cursor={cursor}"),
        Some(&v.token),
    )
    .await
    .invalid("cursor");
}

#[tokio::test]
async fn visits_the_planner_makes_are_offered_and_taken_like_any_other() {
    let app = spawn_app().await;
    let families = entity::family::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    for f in &families {
        server::jobs::replan(&app.state, f.id).await;
    }
    let planned = visit_task::Entity::find()
        .filter(visit_task::Column::Status.eq("open"))
        .filter(visit_task::Column::AssignToCadre.eq(false))
        .filter(visit_task::Column::WindowEnd.gt(Utc::now() + Duration::hours(1)))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the planner gives volunteers visits");
    let fam = families.iter().find(|f| f.id == planned.family_id).unwrap();
    let mut spec = VolunteerSpec::at(fam.lat.unwrap(), fam.lng.unwrap());
    spec.skills = Skill::ALL.to_vec();
    spec.weekly_capacity = 50;
    let v = app.volunteer(spec).await;
    let mut cursor = String::new();
    let found = loop {
        let page = feed(&app, &v, &format!("limit=50{cursor}")).await;
        if offered(&page, planned.id) {
            break true;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break false,
        }
    };
    assert!(found, "the planned visit is offered");
    claim(&app, &v, planned.id).await.ok();
    assert_eq!(app.visit_row(planned.id).await.claims_count, 1);
}

// ---------------------------------------------------------------------------------------
// The feed reads open visits from memory; the database stays the authority

/// An instance that refreshes its feed only when a test says so (as if its interval had
/// passed), after its first load.
fn refreshed_by_hand(config: &mut server::config::Config) {
    config.visits.feed_refresh_ms = 3_600_000;
}

/// An instance that refreshes its feed every tenth of a second in the background.
fn refreshed_often(config: &mut server::config::Config) {
    config.visits.feed_refresh_ms = 100;
}

async fn refresh(app: &TestApp) {
    app.state.feed.refresh(&app.state.db).await.unwrap();
}

#[tokio::test]
async fn a_visit_changed_behind_the_feeds_back_shows_after_the_refresh_and_a_claim_meanwhile_is_refused_cleanly()
 {
    let app = spawn_app_with(Options {
        configure: Some(refreshed_by_hand),
        ..Options::default()
    })
    .await;
    let v = volunteer(&app).await;
    let f = family(&app, 1.0).await;
    let visit = app.visit(VisitSpec::new(f, day(3), 24)).await;
    refresh(&app).await;
    let page = feed(&app, &v, "").await;
    assert!(offered(&page, visit));
    assert_eq!(page["items"][0]["category"], "bereaved");

    // Another instance fills it with a plain UPDATE that does not touch updated_at.
    visit_task::Entity::update_many()
        .col_expr(
            visit_task::Column::ClaimsCount,
            sea_orm::sea_query::Expr::col(visit_task::Column::VolunteersNeeded),
        )
        .col_expr(
            visit_task::Column::Status,
            sea_orm::sea_query::Expr::value(visit_task::status::CLAIMED),
        )
        .filter(visit_task::Column::Id.eq(visit))
        .exec(&app.state.db)
        .await
        .unwrap();
    // Not refreshed yet: still offered, and the claim says it is full.
    assert!(offered(&feed(&app, &v, "").await, visit));
    claim(&app, &v, visit).await.error(409, "visit_full");
    assert!(claims_on(&app, visit).await.is_empty());
    refresh(&app).await;
    assert!(!offered(&feed(&app, &v, "").await, visit));

    // Freed again, and the family's category corrected in the register.
    visit_task::Entity::update_many()
        .col_expr(
            visit_task::Column::ClaimsCount,
            sea_orm::sea_query::Expr::value(0),
        )
        .col_expr(
            visit_task::Column::Status,
            sea_orm::sea_query::Expr::value(visit_task::status::OPEN),
        )
        .filter(visit_task::Column::Id.eq(visit))
        .exec(&app.state.db)
        .await
        .unwrap();
    refresh(&app).await;
    assert!(offered(&feed(&app, &v, "").await, visit));
    entity::family::Entity::update_many()
        .col_expr(
            entity::family::Column::Category,
            sea_orm::sea_query::Expr::value("disabled_child"),
        )
        .filter(entity::family::Column::Id.eq(f))
        .exec(&app.state.db)
        .await
        .unwrap();
    refresh(&app).await;
    let page = feed(&app, &v, "").await;
    assert_eq!(page["items"][0]["id"], visit.to_string());
    assert_eq!(page["items"][0]["category"], "disabled_child");
    assert_eq!(page["items"][0]["category_label"], "伤残");
}

#[tokio::test]
async fn a_claim_on_one_instance_leaves_its_feed_at_once_and_the_others_at_their_refresh() {
    let a = spawn_app_with(Options {
        configure: Some(refreshed_often),
        ..Options::default()
    })
    .await;
    let b = a.another_instance(refreshed_by_hand).await;
    let first = volunteer(&a).await;
    let second = volunteer(&a).await;
    let f = family(&a, 1.0).await;
    let visit = a.visit(VisitSpec::new(f, day(3), 24)).await;
    let near = a.visit(VisitSpec::new(f, day(5), 24)).await;
    refresh(&b).await;
    assert!(offered(&feed(&b, &first, "").await, visit));
    let seen_by_a = async |id: Uuid, wanted: bool| {
        for _ in 0..100 {
            if offered(&feed(&a, &second, "").await, id) == wanted {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    };
    assert!(
        seen_by_a(visit, true).await,
        "instance A never offered the visit"
    );

    // Taken through B: B's feed drops it at once, without a refresh.
    assert_eq!(claim(&b, &first, visit).await.status, 201);
    let on_b = feed(&b, &second, "").await;
    assert!(!offered(&on_b, visit));
    assert!(offered(&on_b, near));
    // A reads the change at its next refresh; a claim through A meanwhile is refused.
    claim(&a, &second, visit).await.error(409, "visit_full");
    assert!(
        seen_by_a(visit, false).await,
        "instance A kept offering a full visit"
    );
    assert!(offered(&feed(&a, &second, "").await, near));

    // Given back through B: offered by both again.
    b.delete(
        &format!("/api/visits/{visit}/claims/mine"),
        Some(&first.token),
    )
    .await
    .ok();
    assert!(offered(&feed(&b, &second, "").await, visit));
    assert!(
        seen_by_a(visit, true).await,
        "instance A never offered the freed visit"
    );
}

/// An instance that keeps a volunteer's profile and held visits for an hour.
fn takers_kept(config: &mut server::config::Config) {
    config.visits.feed_volunteer_ttl_ms = 3_600_000;
}

#[tokio::test]
async fn a_volunteers_own_claim_changes_their_feed_at_once_though_their_visits_are_kept() {
    let app = spawn_app_with(Options {
        configure: Some(takers_kept),
        ..Options::default()
    })
    .await;
    let v = volunteer(&app).await;
    let taken = visit_at(&app, 1.0, 3).await;
    let overlapping = visit_at(&app, 2.0, 3).await;
    let page = feed(&app, &v, "").await;
    assert!(offered(&page, taken) && offered(&page, overlapping));
    assert_eq!(claim(&app, &v, taken).await.status, 201);
    let page = feed(&app, &v, "").await;
    assert!(!offered(&page, taken));
    assert!(!offered(&page, overlapping));
    app.delete(&format!("/api/visits/{taken}/claims/mine"), Some(&v.token))
        .await
        .ok();
    let page = feed(&app, &v, "").await;
    assert!(offered(&page, taken) && offered(&page, overlapping));
}
