use serde_json::json;
use tests::*;

#[tokio::test]
async fn a_township_coordinator_adds_a_village_under_their_township_only() {
    let app = spawn_app().await;
    let token = app.token_for(people::TAOYUAN).await;
    let taoyuan = app.region("桃源镇").await;
    let baiyun = app.region("白云乡").await;

    let village = app
        .post(
            "/api/regions",
            Some(&token),
            json!({"parent_id": taoyuan, "name": "新建社区", "code": "340101001099"}),
        )
        .await
        .ok();
    assert_eq!(village["level"], "village");
    assert_eq!(village["parent_id"], taoyuan);

    // Not under another township, not under a village, not a duplicate code, not a new city.
    app.post(
        "/api/regions",
        Some(&token),
        json!({"parent_id": baiyun, "name": "外村", "code": "X1"}),
    )
    .await
    .invalid("parent_id");
    app.post(
        "/api/regions",
        Some(&token),
        json!({"parent_id": village["id"], "name": "组", "code": "X2"}),
    )
    .await
    .invalid("parent_id");
    app.post(
        "/api/regions",
        Some(&token),
        json!({"parent_id": taoyuan, "name": "重复", "code": "340101001099"}),
    )
    .await
    .invalid("code");
    app.post(
        "/api/regions",
        Some(&token),
        json!({"name": "新市", "code": "X3"}),
    )
    .await
    .invalid("parent_id");
    app.post(
        "/api/regions",
        Some(&token),
        json!({"parent_id": taoyuan, "name": "", "code": "X4"}),
    )
    .await
    .invalid("name");

    // The list holds the township and its villages, nothing from elsewhere.
    let list = app
        .get("/api/regions?per_page=100", Some(&token))
        .await
        .ok();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"桃源镇") && names.contains(&"新建社区"));
    assert!(!names.contains(&"白云乡") && !names.contains(&"安和市"));
    assert_eq!(list["total"], 7);

    let renamed = app
        .patch(
            &format!("/api/regions/{}", village["id"].as_str().unwrap()),
            Some(&token),
            json!({"name": "新建社区居委会"}),
        )
        .await
        .ok();
    assert_eq!(renamed["name"], "新建社区居委会");
    app.patch(
        &format!("/api/regions/{baiyun}"),
        Some(&token),
        json!({"name": "改名"}),
    )
    .await
    .error(404, "not_found");
}

#[tokio::test]
async fn only_an_administrator_creates_a_city() {
    let app = spawn_app().await;
    let admin = app.token_for(people::ADMIN).await;
    let city = app
        .post(
            "/api/regions",
            Some(&admin),
            json!({"name": "平安市", "code": "340200", "lat": 31.3, "lng": 118.4}),
        )
        .await
        .ok();
    assert_eq!(city["level"], "city");
    let levels = app.get("/api/regions?level=city", Some(&admin)).await.ok();
    assert_eq!(levels["total"], 2);
}
