use serde_json::json;
use tests::*;

#[tokio::test]
async fn a_county_coordinator_appoints_a_township_coordinator_who_then_binds_and_works() {
    let app = spawn_app().await;
    let county = app.token_for(people::EAST_COUNTY).await;
    let qingshi = app.region("青石乡").await;
    let east = app.region("东城县").await;

    // Not at their own tier, not outside their county.
    app.post(
        "/api/staff",
        Some(&county),
        json!({"name": "吴春梅", "phone": "13700001111", "role": "coordinator", "region_id": east}),
    )
    .await
    .invalid("region_id");
    app.post("/api/staff", Some(&county), json!({"name": "吴春梅", "phone": "13700001111", "role": "coordinator", "region_id": app.region("白云乡").await})).await.invalid("region_id");
    app.post(
        "/api/staff",
        Some(&county),
        json!({"name": "吴春梅", "phone": "137", "role": "coordinator", "region_id": qingshi}),
    )
    .await
    .invalid("phone");
    app.post(
        "/api/staff",
        Some(&county),
        json!({"name": "吴春梅", "phone": "13700001111", "role": "boss", "region_id": qingshi}),
    )
    .await
    .invalid("role");

    let appointed = app.post("/api/staff", Some(&county), json!({"name": "吴春梅", "phone": "13700001111", "role": "coordinator", "region_id": qingshi})).await.ok();
    let code = appointed["invite_code"].as_str().unwrap();
    let listed = app
        .get("/api/staff?role=coordinator&q=吴春梅", Some(&county))
        .await
        .ok();
    assert_eq!(listed["items"][0]["bound"], false);
    assert_eq!(listed["items"][0]["phone"], "137****1111");

    let ticket = app.wechat_login("o-chunmei").await.ok()["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    let tokens = app
        .post(
            "/api/auth/bind",
            None,
            json!({"ticket": ticket, "code": code}),
        )
        .await
        .ok();
    assert_eq!(tokens["roles"], json!(["coordinator"]));
    let token = tokens["access_token"].as_str().unwrap();
    // Her families are those of 青石乡 only.
    let mine = app
        .get(
            &format!("/api/families?per_page=100&region_id={qingshi}"),
            Some(token),
        )
        .await
        .ok();
    let all = app
        .get("/api/families?per_page=100", Some(token))
        .await
        .ok();
    assert!(all["total"].as_u64().unwrap() > 0);
    assert_eq!(mine["total"], all["total"]);
    app.get(
        &format!("/api/regions/{}", app.region("桃源镇").await),
        Some(token),
    )
    .await
    .error(404, "not_found");
    // And next time WeChat login recognises her.
    assert_eq!(app.wechat_login("o-chunmei").await.ok()["bound"], true);
}

#[tokio::test]
async fn cadres_are_paired_with_families_in_scope() {
    let app = spawn_app().await;
    let coord = app.token_for(people::TAOYUAN).await;
    let taoyuan = app.region("桃源镇").await;
    let cadre = app.post("/api/staff", Some(&coord), json!({"name": "郑振华", "phone": "13700002222", "role": "cadre", "region_id": taoyuan})).await.ok();
    let cadre_id = cadre["user_id"].as_str().unwrap();
    let family = app.get("/api/families?per_page=1", Some(&coord)).await.ok()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let before = app
        .get(&format!("/api/pairings?family_id={family}"), Some(&coord))
        .await
        .ok();
    assert_eq!(before["total"], 1, "demo families come paired");
    let paired = app
        .post(
            "/api/pairings",
            Some(&coord),
            json!({"family_id": family, "cadre_id": cadre_id}),
        )
        .await
        .ok();
    let now = app
        .get(&format!("/api/pairings?family_id={family}"), Some(&coord))
        .await
        .ok();
    assert_eq!(now["total"], 1, "one current pairing per family");
    assert_eq!(now["items"][0]["cadre_id"], cadre_id);
    let history = app
        .get(
            &format!("/api/pairings?family_id={family}&include_ended=true"),
            Some(&coord),
        )
        .await
        .ok();
    assert_eq!(history["total"], 2);

    // A volunteer is not a cadre; a west family is out of reach.
    let volunteer_user = app
        .get(
            "/api/auth/me",
            Some(&app.token_for(people::VOLUNTEER).await),
        )
        .await
        .ok()["user_id"]
        .clone();
    app.post(
        "/api/pairings",
        Some(&coord),
        json!({"family_id": family, "cadre_id": volunteer_user}),
    )
    .await
    .invalid("cadre_id");
    let west = app.token_for(people::WEST_COUNTY).await;
    let west_family =
        app.get("/api/families?per_page=1", Some(&west)).await.ok()["items"][0]["id"].clone();
    app.post(
        "/api/pairings",
        Some(&coord),
        json!({"family_id": west_family, "cadre_id": cadre_id}),
    )
    .await
    .invalid("family_id");

    let ended = app
        .post(
            &format!("/api/pairings/{}/end", paired["id"].as_str().unwrap()),
            Some(&coord),
            json!({}),
        )
        .await
        .ok();
    assert!(ended["ended_on"].is_string());
    app.post(
        &format!("/api/pairings/{}/end", paired["id"].as_str().unwrap()),
        Some(&coord),
        json!({}),
    )
    .await
    .error(409, "already_ended");
}

#[tokio::test]
async fn teams_belong_to_a_region() {
    let app = spawn_app().await;
    let coord = app.token_for(people::TAOYUAN).await;
    let team = app
        .post(
            "/api/teams",
            Some(&coord),
            json!({"name": "桃源镇关爱服务队", "region_id": app.region("桃源镇").await}),
        )
        .await
        .ok();
    app.post(
        "/api/teams",
        Some(&coord),
        json!({"name": "外队", "region_id": app.region("白云乡").await}),
    )
    .await
    .invalid("region_id");
    app.post(
        "/api/teams",
        Some(&coord),
        json!({"name": "", "region_id": app.region("桃源镇").await}),
    )
    .await
    .invalid("name");
    let renamed = app
        .patch(
            &format!("/api/teams/{}", team["id"].as_str().unwrap()),
            Some(&coord),
            json!({"name": "桃源暖心队"}),
        )
        .await
        .ok();
    assert_eq!(renamed["name"], "桃源暖心队");
    let list = app.get("/api/teams?q=桃源", Some(&coord)).await.ok();
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn team_and_pairing_changes_refuse_bad_input() {
    let app = spawn_app().await;
    let coord = app.token_for(people::TAOYUAN).await;
    let team = app
        .post(
            "/api/teams",
            Some(&coord),
            json!({"name": "队", "region_id": app.region("桃源镇").await}),
        )
        .await
        .ok();
    let path = format!("/api/teams/{}", team["id"].as_str().unwrap());
    app.patch(&path, Some(&coord), json!({"name": ""}))
        .await
        .invalid("name");
    app.patch(&path, Some(&coord), json!({}))
        .await
        .invalid("name");
    app.patch(&path, Some(&coord), json!({"name": "x".repeat(65)}))
        .await
        .invalid("name");
    app.post("/api/pairings", Some(&coord), json!({"family_id": "nope"}))
        .await
        .invalid("family_id");
    app.post(
        "/api/pairings",
        Some(&coord),
        json!({"family_id": uuid::Uuid::now_v7(), "cadre_id": uuid::Uuid::now_v7()}),
    )
    .await
    .invalid("family_id");
    app.post(
        &format!("/api/pairings/{}/end", uuid::Uuid::now_v7()),
        Some(&coord),
        json!({}),
    )
    .await
    .error(404, "not_found");
}
