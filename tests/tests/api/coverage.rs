//! Coverage (随访率) as coordinators see it: per region side by side and per category, the
//! families whose visits were all done, the families not visited for a while (masked),
//! and the visits missed or left unconfirmed; only in their own region.

use chrono::{Duration, Utc};
use entity::FamilyCategory;
use serde_json::{Value, json};
use tests::{
    oversight::{HOME, today},
    visits::{VisitSpec, VolunteerSpec},
    *,
};
use uuid::Uuid;

fn by_name<'a>(rows: &'a Value, name: &str) -> &'a Value {
    rows["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {rows}"))
}

fn category<'a>(row: &'a Value, c: &str) -> &'a Value {
    row["by_category"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["category"] == c)
        .unwrap_or_else(|| panic!("{c} in {row}"))
}

struct Setup {
    app: TestApp,
    /// Visited today, its report not yet confirmed.
    visited: Uuid,
    visited_task: Uuid,
    /// Its visit due today was missed.
    missed: Uuid,
    missed_task: Uuid,
    /// Nothing due.
    quiet: Uuid,
}

async fn setup() -> Setup {
    let app = spawn_app_with(Options {
        // A report counts as unconfirmed at once.
        configure: Some(|c| c.visits.confirm_within_hours = 0),
        ..Default::default()
    })
    .await;
    let v = app.volunteer(VolunteerSpec::at(HOME.0, HOME.1)).await;
    let visited = app
        .family_at("杨柳村", FamilyCategory::Bereaved, "孙长海", Some(HOME))
        .await;
    let missed = app
        .family_at("杨柳村", FamilyCategory::EmptyNest, "钱秀英", Some(HOME))
        .await;
    let quiet = app
        .family_at("杨柳村", FamilyCategory::EmptyNest, "李德明", Some(HOME))
        .await;
    let visited_task = app.visit_today(visited, "checkin").await;
    app.do_visit(&v.token, visited_task, json!({"services": ["condolence"]}))
        .await;
    let mut spec = VisitSpec::new(missed, Utc::now() - Duration::hours(10), 9);
    spec.status = "missed".into();
    let missed_task = app.visit(spec).await;
    app.visit(VisitSpec::new(quiet, Utc::now() + Duration::days(10), 8))
        .await;
    Setup {
        app,
        visited,
        visited_task,
        missed,
        missed_task,
        quiet,
    }
}

fn period() -> String {
    format!(
        "from={}&to={}",
        today() - Duration::days(1),
        today() + Duration::days(1)
    )
}

#[tokio::test]
async fn coordinators_see_their_regions_side_by_side() {
    let s = setup().await;
    let app = &s.app;
    let east = app.token_for(people::EAST_COUNTY).await;
    let view = app
        .get(&format!("/api/coverage?{}", period()), Some(&east))
        .await
        .ok();
    assert_eq!(view["region_name"], "东城县");
    assert_eq!(view["rows"]["total"], 3);
    let taoyuan = by_name(&view["rows"], "桃源镇");
    assert_eq!(taoyuan["due"], 2);
    assert_eq!(taoyuan["met"], 1);
    assert_eq!(taoyuan["met_rate"], 50.0);
    assert_eq!(taoyuan["visited"], 1);
    assert_eq!(taoyuan["missed_visits"], 1);
    assert_eq!(taoyuan["unconfirmed_visits"], 1);
    assert_eq!(category(taoyuan, "bereaved")["met"], 1);
    assert_eq!(category(taoyuan, "bereaved")["met_rate"], 100.0);
    assert_eq!(category(taoyuan, "empty_nest")["due"], 1);
    assert_eq!(category(taoyuan, "empty_nest")["met"], 0);
    // Every family of the township in the register counts, as the family list shows.
    let region = app.region("桃源镇").await;
    let listed = app
        .get(
            &format!("/api/families?region_id={region}&status=active&per_page=1"),
            Some(&east),
        )
        .await
        .ok();
    assert_eq!(taoyuan["families"], listed["total"]);
    let rate = 100.0 / listed["total"].as_f64().unwrap();
    assert!((taoyuan["visited_rate"].as_f64().unwrap() - rate).abs() < 0.06);
    let qingshi = by_name(&view["rows"], "青石乡");
    assert_eq!(qingshi["due"], 0);
    assert!(qingshi["met_rate"].is_null());
    assert_eq!(view["total"]["due"], 2);

    // The city sees its two counties, one row each.
    let city = app.token_for(people::CITY).await;
    let view = app
        .get(&format!("/api/coverage?{}", period()), Some(&city))
        .await
        .ok();
    assert_eq!(view["rows"]["total"], 2);
    assert_eq!(by_name(&view["rows"], "东城县")["met"], 1);
    assert_eq!(by_name(&view["rows"], "西山县")["due"], 0);

    // Another county's coordinator cannot look in.
    let west = app.token_for(people::WEST_COUNTY).await;
    app.get(&format!("/api/coverage?region_id={region}"), Some(&west))
        .await
        .error(404, "not_found");
    let theirs = app
        .get(&format!("/api/coverage?{}", period()), Some(&west))
        .await
        .ok();
    assert_eq!(theirs["total"]["due"], 0);
}

#[tokio::test]
async fn families_not_visited_and_visits_that_lapsed() {
    let s = setup().await;
    let app = &s.app;
    let taoyuan = app.token_for(people::TAOYUAN).await;
    let quiet = app
        .get(
            "/api/coverage/not-visited?days=30&per_page=100",
            Some(&taoyuan),
        )
        .await
        .ok();
    let ids: Vec<&str> = quiet["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["family_id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&s.visited.to_string().as_str()));
    assert!(ids.contains(&s.missed.to_string().as_str()));
    assert!(ids.contains(&s.quiet.to_string().as_str()));
    let row = quiet["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["family_id"] == s.quiet.to_string())
        .unwrap();
    // Masked: no full name, no phone, no address.
    assert_eq!(row["head_name"], "李*明");
    assert_eq!(row["village"], "杨柳村");
    assert!(row["last_visit_at"].is_null());
    assert!(row.get("phone").is_none() && row.get("address").is_none());

    let missed = app
        .get(
            &format!("/api/coverage/lapses?kind=missed&{}", period()),
            Some(&taoyuan),
        )
        .await
        .ok();
    assert_eq!(missed["total"], 1);
    assert_eq!(missed["items"][0]["visit_id"], s.missed_task.to_string());
    assert_eq!(missed["items"][0]["head_name"], "钱*英");
    let unconfirmed = app
        .get(
            &format!("/api/coverage/lapses?kind=unconfirmed&{}", period()),
            Some(&taoyuan),
        )
        .await
        .ok();
    assert_eq!(unconfirmed["total"], 1);
    assert_eq!(
        unconfirmed["items"][0]["visit_id"],
        s.visited_task.to_string()
    );
    assert!(unconfirmed["items"][0]["reported_at"].is_string());

    // Another county's coordinator sees none of it.
    let west = app.token_for(people::WEST_COUNTY).await;
    let theirs = app
        .get(
            &format!("/api/coverage/lapses?kind=missed&{}", period()),
            Some(&west),
        )
        .await
        .ok();
    assert_eq!(theirs["total"], 0);
}

#[tokio::test]
async fn coverage_checks_its_input() {
    let app = spawn_app().await;
    let east = app.token_for(people::EAST_COUNTY).await;
    let t = today();
    app.get(&format!("/api/coverage?from={t}"), Some(&east))
        .await
        .invalid("to");
    app.get(
        &format!("/api/coverage?from={t}&to={}", t - Duration::days(1)),
        Some(&east),
    )
    .await
    .invalid("to");
    app.get(
        &format!("/api/coverage?from={}&to={t}", t - Duration::days(400)),
        Some(&east),
    )
    .await
    .invalid("to");
    app.get("/api/coverage/not-visited?days=0", Some(&east))
        .await
        .invalid("days");
    app.get("/api/coverage/lapses?kind=forgotten", Some(&east))
        .await
        .invalid("kind");
    app.get("/api/coverage/lapses", Some(&east))
        .await
        .invalid("kind");
    let volunteer = app.token_for(people::VOLUNTEER).await;
    app.get("/api/coverage", Some(&volunteer))
        .await
        .error(403, "forbidden");
}
