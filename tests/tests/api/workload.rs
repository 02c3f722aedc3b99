//! The volunteers' workload as a coordinator sees it: who did, holds and gave back how
//! many visits this week against their capacity, how evenly the load is spread, teams,
//! and the villages with visits nobody took; only in the coordinator's region.

use entity::FamilyCategory;
use serde_json::{Value, json};
use tests::{oversight::HOME, visits::VolunteerSpec, *};
use uuid::Uuid;

fn row(page: &Value, user: Uuid) -> &Value {
    page["volunteers"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user_id"] == user.to_string())
        .unwrap_or_else(|| panic!("volunteer {user} listed: {page}"))
}

#[tokio::test]
async fn a_coordinator_sees_who_carries_the_visits_of_the_week() {
    let app = spawn_app().await;
    let taoyuan = app.token_for(people::TAOYUAN).await;
    let vols = app.volunteers(3, VolunteerSpec::at(HOME.0, HOME.1)).await;
    let (a, b, c) = (&vols[0], &vols[1], &vols[2]);
    let fam = app
        .family_at("杨柳村", FamilyCategory::EmptyNest, "孙长海", Some(HOME))
        .await;

    // A does a visit; B holds one, and takes another and gives it back.
    let done = app.visit_today(fam, "checkin").await;
    app.do_visit(&a.token, done, json!({"services": ["companionship"]}))
        .await;
    let held = app.visit_today(fam, "birthday").await;
    app.claim(&b.token, held).await;
    let later = app
        .visit(tests::visits::VisitSpec::new(
            fam,
            chrono::Utc::now() + chrono::Duration::days(3),
            8,
        ))
        .await;
    app.claim(&b.token, later).await;
    app.delete(&format!("/api/visits/{later}/claims/mine"), Some(&b.token))
        .await
        .ok();

    let page = app
        .get("/api/workload?per_page=100", Some(&taoyuan))
        .await
        .ok();
    let ra = row(&page, a.user_id);
    assert_eq!(ra["week"]["done"], 1);
    assert_eq!(ra["week"]["held"], 0);
    assert_eq!(ra["week"]["total"], 1);
    assert_eq!(ra["week"]["capacity"], 3.0);
    assert_eq!(ra["week"]["utilisation"], 0.33);
    assert_eq!(ra["month"]["done"], 1);
    let rb = row(&page, b.user_id);
    assert_eq!(rb["week"]["held"], 1);
    assert_eq!(rb["week"]["released"], 1);
    assert_eq!(rb["week"]["total"], 1);
    let rc = row(&page, c.user_id);
    assert_eq!(rc["week"]["total"], 0);

    // The spread counts every approved volunteer of the township, idle ones included.
    let items = page["volunteers"]["items"].as_array().unwrap();
    assert_eq!(
        page["volunteers"]["total"].as_u64().unwrap() as usize,
        items.len()
    );
    let loads: Vec<f64> = items
        .iter()
        .map(|r| r["week"]["total"].as_f64().unwrap())
        .collect();
    let mean = loads.iter().sum::<f64>() / loads.len() as f64;
    let spread = &page["week_spread"];
    assert_eq!(spread["volunteers"].as_u64().unwrap() as usize, loads.len());
    assert_eq!(spread["max"], 1.0);
    assert!((spread["max_over_mean"].as_f64().unwrap() - 1.0 / mean).abs() < 0.01);
    // Two of n hold one each: Gini = 1 − 2/n.
    let n = loads.len() as f64;
    assert!((spread["gini"].as_f64().unwrap() - (1.0 - 2.0 / n)).abs() < 0.001);
    // Most loaded first.
    assert!(items[0]["week"]["total"].as_u64().unwrap() >= 1);

    // The test volunteers are in no team: one row for them.
    let teams = app
        .get("/api/workload/teams?per_page=100", Some(&taoyuan))
        .await
        .ok();
    let none = teams["teams"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["team_id"].is_null())
        .expect("volunteers without a team");
    assert_eq!(none["volunteers"], 3);
    assert_eq!(none["week"]["done"], 1);
    assert_eq!(none["week"]["held"], 1);
    assert_eq!(none["week"]["released"], 1);
    assert_eq!(none["week"]["capacity"], 9.0);

    // Pages hold what they say.
    let first = app
        .get("/api/workload?per_page=2&page=1", Some(&taoyuan))
        .await
        .ok();
    assert_eq!(first["volunteers"]["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["volunteers"]["total"], page["volunteers"]["total"]);
}

#[tokio::test]
async fn villages_with_visits_nobody_took() {
    let app = spawn_app().await;
    let taoyuan = app.token_for(people::TAOYUAN).await;
    let fam = app
        .family_at("杨柳村", FamilyCategory::EmptyNest, "孙长海", Some(HOME))
        .await;
    let start = chrono::Utc::now() + chrono::Duration::days(2);
    for _ in 0..3 {
        app.visit(tests::visits::VisitSpec::new(fam, start, 8).needing(2))
            .await;
    }
    // Far beyond the horizon: not counted.
    app.visit(tests::visits::VisitSpec::new(
        fam,
        chrono::Utc::now() + chrono::Duration::days(40),
        8,
    ))
    .await;
    let village = app.region("杨柳村").await;
    let page = app
        .get("/api/workload/unclaimed-villages?days=14", Some(&taoyuan))
        .await
        .ok();
    let row = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region_id"] == village.as_str())
        .expect("杨柳村 listed");
    assert_eq!(row["name"], "杨柳村");
    assert_eq!(row["visits"], 3);
    assert_eq!(row["places"], 6);
    let few = app
        .get("/api/workload/unclaimed-villages?min=4", Some(&taoyuan))
        .await
        .ok();
    assert!(
        !few["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["region_id"] == village.as_str())
    );
    // Another county's coordinator does not see it.
    let west = app.token_for(people::WEST_COUNTY).await;
    let theirs = app
        .get("/api/workload/unclaimed-villages", Some(&west))
        .await
        .ok();
    assert!(
        !theirs["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["region_id"] == village.as_str())
    );
}

#[tokio::test]
async fn workload_is_for_coordinators_of_the_region_and_checks_its_input() {
    let app = spawn_app().await;
    let taoyuan_region = app.region("桃源镇").await;
    let west = app.token_for(people::WEST_COUNTY).await;
    app.get(
        &format!("/api/workload?region_id={taoyuan_region}"),
        Some(&west),
    )
    .await
    .error(404, "not_found");
    let volunteer = app.token_for(people::VOLUNTEER).await;
    app.get("/api/workload", Some(&volunteer))
        .await
        .error(403, "forbidden");
    app.get("/api/workload", None)
        .await
        .error(401, "unauthorized");
    let east = app.token_for(people::EAST_COUNTY).await;
    app.get("/api/workload?per_page=0", Some(&east))
        .await
        .invalid("per_page");
    app.get("/api/workload?date=yesterday", Some(&east))
        .await
        .invalid("date");
    app.get("/api/workload/unclaimed-villages?days=500", Some(&east))
        .await
        .invalid("days");
    // The west county's volunteers are not in the east county's list.
    let east_page = app
        .get("/api/workload?per_page=100", Some(&east))
        .await
        .ok();
    let west_page = app
        .get("/api/workload?per_page=100", Some(&west))
        .await
        .ok();
    let ids = |p: &Value| -> Vec<String> {
        p["volunteers"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["volunteer_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (e, w) = (ids(&east_page), ids(&west_page));
    assert!(!e.is_empty() && !w.is_empty());
    assert!(e.iter().all(|id| !w.contains(id)));
}
