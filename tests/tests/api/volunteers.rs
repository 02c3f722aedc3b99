use serde_json::json;
use tests::*;

async fn register(app: &TestApp, openid: &str, village: &str) -> (String, String) {
    let ticket = app.wechat_login(openid).await.ok()["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    let tokens = app
        .post("/api/volunteers/register", None, json!({"ticket": ticket, "name": "孙丽华", "phone": "13955556666", "skills": ["companionship", "health"], "region_id": village}))
        .await
        .ok();
    (
        tokens["access_token"].as_str().unwrap().into(),
        tokens["refresh_token"].as_str().unwrap().into(),
    )
}

#[tokio::test]
async fn a_coordinator_approves_a_registration_and_the_person_becomes_a_volunteer() {
    let app = spawn_app().await;
    let village = app.region("杨柳村").await;
    let (_, refresh) = register(&app, "o-lihua", &village).await;
    let coord = app.token_for(people::TAOYUAN).await;

    let pending = app
        .get("/api/volunteers?status=pending&q=孙丽华", Some(&coord))
        .await
        .ok();
    assert_eq!(pending["total"], 1);
    let row = &pending["items"][0];
    assert_eq!(row["phone"], "139****6666", "phones are masked in lists");
    assert_eq!(row["skills"], json!(["companionship", "health"]));
    let id = row["id"].as_str().unwrap();

    // A coordinator elsewhere cannot act on it.
    let west = app.token_for(people::WEST_COUNTY).await;
    app.post(
        &format!("/api/volunteers/{id}/approve"),
        Some(&west),
        json!({}),
    )
    .await
    .error(404, "not_found");

    let approved = app
        .post(
            &format!("/api/volunteers/{id}/approve"),
            Some(&coord),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["phone"], "13955556666");
    app.post(
        &format!("/api/volunteers/{id}/approve"),
        Some(&coord),
        json!({}),
    )
    .await
    .error(409, "not_pending");

    // On the next refresh, the volunteer role is in the token.
    let tokens = app
        .post("/api/auth/refresh", None, json!({"refresh_token": refresh}))
        .await
        .ok();
    assert_eq!(tokens["roles"], json!(["volunteer"]));

    // Filter by skill; suspend removes the role, reinstating gives it back.
    let health = app
        .get("/api/volunteers?skill=health&per_page=100", Some(&coord))
        .await
        .ok();
    assert!(
        health["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["skills"].as_array().unwrap().contains(&json!("health")))
    );
    assert!(
        health["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == id)
    );
    app.patch(
        &format!("/api/volunteers/{id}"),
        Some(&coord),
        json!({"status": "suspended"}),
    )
    .await
    .ok();
    let me = app
        .get(
            "/api/auth/me",
            Some(tokens["access_token"].as_str().unwrap()),
        )
        .await
        .ok();
    assert_eq!(me["roles"], json!([]));
    app.patch(
        &format!("/api/volunteers/{id}"),
        Some(&coord),
        json!({"status": "approved", "weekly_capacity": 5}),
    )
    .await
    .ok();
    let me = app
        .get(
            "/api/auth/me",
            Some(tokens["access_token"].as_str().unwrap()),
        )
        .await
        .ok();
    assert_eq!(me["roles"], json!(["volunteer"]));
}

#[tokio::test]
async fn rejected_registrations_and_bad_changes_are_refused_clearly() {
    let app = spawn_app().await;
    let village = app.region("杨柳村").await;
    register(&app, "o-rejected", &village).await;
    let coord = app.token_for(people::EAST_COUNTY).await;
    let pending = app
        .get("/api/volunteers?status=pending&q=孙丽华", Some(&coord))
        .await
        .ok();
    let id = pending["items"][0]["id"].as_str().unwrap();
    app.patch(
        &format!("/api/volunteers/{id}"),
        Some(&coord),
        json!({"status": "approved"}),
    )
    .await
    .invalid("status");
    app.post(
        &format!("/api/volunteers/{id}/reject"),
        Some(&coord),
        json!({"reason": "x".repeat(300)}),
    )
    .await
    .invalid("reason");
    let rejected = app
        .post(
            &format!("/api/volunteers/{id}/reject"),
            Some(&coord),
            json!({"reason": "不在服务范围"}),
        )
        .await
        .ok();
    assert_eq!(rejected["status"], "rejected");

    let approved = app
        .get("/api/volunteers?status=approved&per_page=1", Some(&coord))
        .await
        .ok();
    let vid = approved["items"][0]["id"].as_str().unwrap();
    app.patch(
        &format!("/api/volunteers/{vid}"),
        Some(&coord),
        json!({"weekly_capacity": -1}),
    )
    .await
    .invalid("weekly_capacity");
    app.patch(
        &format!("/api/volunteers/{vid}"),
        Some(&coord),
        json!({"max_distance_km": 1000}),
    )
    .await
    .invalid("max_distance_km");
    app.patch(
        &format!("/api/volunteers/{vid}"),
        Some(&coord),
        json!({"skills": ["juggling"]}),
    )
    .await
    .invalid("skills[0]");
    app.patch(
        &format!("/api/volunteers/{vid}"),
        Some(&coord),
        json!({"team_id": uuid::Uuid::now_v7()}),
    )
    .await
    .invalid("team_id");
    app.patch(
        &format!("/api/volunteers/{vid}"),
        Some(&coord),
        json!({"home_lat": 31.0}),
    )
    .await
    .invalid("home");
}

#[tokio::test]
async fn someone_registering_finds_their_village_tier_by_tier_without_logging_in() {
    let app = spawn_app().await;
    let top = app.get("/api/volunteers/areas", None).await.ok();
    assert_eq!(top["items"].as_array().unwrap().len(), 1, "{top}");
    assert_eq!(top["items"][0]["name"], "安和市");
    // Every place, one tier at a time as the form's pickers go: county, township, village.
    let village = app.region("杨柳村").await;
    let mut tier = vec![(
        top["items"][0]["id"].as_str().unwrap().to_string(),
        Vec::new(),
    )];
    for level in ["county", "township", "village"] {
        let mut next = Vec::new();
        for (parent, path) in &tier {
            let below = app
                .get(&format!("/api/volunteers/areas?parent_id={parent}"), None)
                .await
                .ok();
            let items = below["items"].as_array().unwrap();
            assert!(!items.is_empty(), "{level}: {below}");
            assert!(items.iter().all(|a| a["level"] == level), "{below}");
            for a in items {
                let mut path: Vec<String> = path.clone();
                path.push(a["name"].as_str().unwrap().to_string());
                next.push((a["id"].as_str().unwrap().to_string(), path));
            }
        }
        tier = next;
    }
    assert_eq!(tier.len(), 30, "the demo's villages");
    let (_, path) = tier.iter().find(|(id, _)| *id == village).unwrap();
    assert_eq!(path.last().unwrap(), "杨柳村", "{path:?}");

    let unknown = uuid::Uuid::now_v7();
    app.get(&format!("/api/volunteers/areas?parent_id={unknown}"), None)
        .await
        .invalid("parent_id");
    let bad = app.get("/api/volunteers/areas?parent_id=nope", None).await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
}

#[tokio::test]
async fn a_coordinator_records_the_weekdays_a_volunteer_can_visit_on() {
    let app = spawn_app().await;
    let v = app
        .volunteer(tests::visits::VolunteerSpec::at(31.30, 116.60))
        .await;
    let city = app.token_for(people::CITY).await;
    let path = format!("/api/volunteers/{}", v.volunteer_id);
    assert!(
        app.get(&path, Some(&city)).await.ok()["weekdays"].is_null(),
        "any day until said otherwise"
    );
    let changed = app
        .patch(&path, Some(&city), json!({"weekdays": [6, 2]}))
        .await
        .ok();
    assert_eq!(changed["weekdays"], json!([2, 6]));

    // Bad days are refused by position, and nothing changes.
    app.patch(&path, Some(&city), json!({"weekdays": [1, 8]}))
        .await
        .invalid("weekdays[1]");
    app.patch(&path, Some(&city), json!({"weekdays": [3, 3]}))
        .await
        .invalid("weekdays[1]");
    app.patch(&path, Some(&city), json!({"weekdays": []}))
        .await
        .invalid("weekdays");
    assert_eq!(
        app.get(&path, Some(&city)).await.ok()["weekdays"],
        json!([2, 6])
    );
}
