use serde_json::json;
use tests::*;

async fn village_id(app: &TestApp) -> String {
    app.region("杨柳村").await
}

#[tokio::test]
async fn a_new_wechat_user_registers_as_a_volunteer_and_logs_in_again() {
    let app = spawn_app().await;
    let first = app.wechat_login("o-new-volunteer").await.ok();
    assert_eq!(first["bound"], false);
    let ticket = first["ticket"].as_str().unwrap();

    let tokens = app
        .post(
            "/api/volunteers/register",
            None,
            json!({"ticket": ticket, "name": "陈志刚", "phone": "13912345678",
                   "skills": ["counselling", "health"], "region_id": village_id(&app).await}),
        )
        .await
        .ok();
    let access = tokens["access_token"].as_str().unwrap();
    let me = app.get("/api/auth/me", Some(access)).await.ok();
    assert_eq!(me["volunteer_status"], "pending");
    assert_eq!(me["phone"], "139****5678");
    assert_eq!(me["roles"], json!([]));

    // The same WeChat account is now known: logging in gives tokens, not a ticket.
    let again = app.wechat_login("o-new-volunteer").await.ok();
    assert_eq!(again["bound"], true);
    assert!(again["tokens"]["access_token"].is_string());

    // And it cannot register twice.
    let second_ticket = app.post("/api/volunteers/register", None, json!({"ticket": ticket, "name": "陈志刚", "phone": "13912345678", "region_id": village_id(&app).await})).await;
    second_ticket.error(409, "already_bound");
}

#[tokio::test]
async fn a_login_code_works_once() {
    let app = spawn_app_with(Options {
        demo_families: None,
        ..Options::default()
    })
    .await;
    let code = app.wechat.mint_code("o-once", None);
    app.post("/api/auth/wechat", None, json!({"code": code}))
        .await
        .ok();
    app.post("/api/auth/wechat", None, json!({"code": code}))
        .await
        .invalid("code");
    app.post("/api/auth/wechat", None, json!({"code": "never-minted"}))
        .await
        .invalid("code");
}

#[tokio::test]
async fn wechat_outages_are_a_502_not_a_500() {
    let app = spawn_app_with(Options {
        demo_families: None,
        ..Options::default()
    })
    .await;
    app.http
        .post(format!("{}/__fake/faults", app.wechat.base_url()))
        .json(&json!({"route": "jscode2session", "errcode": -1, "times": 1}))
        .send()
        .await
        .unwrap();
    let code = app.wechat.mint_code("o-busy", None);
    app.post("/api/auth/wechat", None, json!({"code": code}))
        .await
        .error(502, "upstream_unavailable");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replayed_one_revokes_the_login() {
    let app = spawn_app().await;
    let pair = app
        .post("/api/auth/dev", None, json!({"phone": people::EAST_COUNTY}))
        .await
        .ok();
    let r1 = pair["refresh_token"].as_str().unwrap().to_string();

    let pair2 = app
        .post("/api/auth/refresh", None, json!({"refresh_token": r1}))
        .await
        .ok();
    let r2 = pair2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    let access2 = pair2["access_token"].as_str().unwrap();
    app.get("/api/families", Some(access2)).await.ok();

    // Replaying the rotated token: refused, and the newer one dies with it.
    app.post("/api/auth/refresh", None, json!({"refresh_token": r1}))
        .await
        .error(401, "unauthorized");
    app.post("/api/auth/refresh", None, json!({"refresh_token": r2}))
        .await
        .error(401, "unauthorized");

    // Another login is unaffected by that, and logout ends it.
    let other = app
        .post("/api/auth/dev", None, json!({"phone": people::EAST_COUNTY}))
        .await
        .ok();
    let r3 = other["refresh_token"].as_str().unwrap();
    app.post("/api/auth/logout", None, json!({"refresh_token": r3}))
        .await
        .ok();
    app.post("/api/auth/refresh", None, json!({"refresh_token": r3}))
        .await
        .error(401, "unauthorized");
}

#[tokio::test]
async fn development_login_exists_only_when_enabled() {
    let app = spawn_app_with(Options {
        dev_login: false,
        ..Options::default()
    })
    .await;
    app.post("/api/auth/dev", None, json!({"phone": people::ADMIN}))
        .await
        .error(404, "not_found");
    let offered = app.get("/api/auth/dev", None).await.ok();
    assert_eq!(offered, json!({"dev_login": false, "wx_code": false}));
    app.post("/api/auth/dev/wx-code", None, json!({"openid": "o-h5"}))
        .await
        .error(404, "not_found");
}

#[tokio::test]
async fn in_development_a_browser_gets_a_login_code_from_the_fake_wechat() {
    let app = spawn_app_with(Options {
        demo_families: None,
        ..Options::default()
    })
    .await;
    let offered = app.get("/api/auth/dev", None).await.ok();
    assert_eq!(offered, json!({"dev_login": true, "wx_code": true}));
    let code = app
        .post(
            "/api/auth/dev/wx-code",
            None,
            json!({"openid": "o-h5-phone"}),
        )
        .await
        .ok()["code"]
        .as_str()
        .unwrap()
        .to_string();
    // The mini-program's own login path from here on: a new account gets a ticket.
    let login = app
        .post("/api/auth/wechat", None, json!({"code": code}))
        .await
        .ok();
    assert_eq!(login["bound"], false);
    assert!(login["ticket"].is_string());
}

#[tokio::test]
async fn logins_are_rate_limited_per_address() {
    let app = spawn_app_with(Options {
        demo_families: None,
        login_per_minute: 3,
        ..Options::default()
    })
    .await;
    for i in 0..3 {
        app.wechat_login(&format!("o-rl-{i}")).await.ok();
    }
    app.wechat_login("o-rl-4")
        .await
        .error(429, "too_many_requests");
}

#[tokio::test]
async fn a_family_member_binds_with_a_one_time_invite_code() {
    let app = spawn_app().await;
    let coord = app.token_for(people::EAST_COUNTY).await;
    let families = app.get("/api/families?per_page=1", Some(&coord)).await.ok();
    let family_id = families["items"][0]["id"].as_str().unwrap().to_string();
    let detail = app
        .get(&format!("/api/families/{family_id}"), Some(&coord))
        .await
        .ok();
    let mother = detail["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["relation"] == "mother")
        .unwrap();
    let invite = app
        .post(
            &format!("/api/families/{family_id}/invites"),
            Some(&coord),
            json!({"member_id": mother["id"]}),
        )
        .await
        .ok();
    let code = invite["code"].as_str().unwrap();
    assert_eq!(code.len(), 8);

    let ticket = app.wechat_login("o-mother").await.ok()["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    // Typed in lower case with a space: still accepted.
    let typed = format!("{} {}", &code[..4], &code[4..]).to_lowercase();
    let tokens = app
        .post(
            "/api/auth/bind",
            None,
            json!({"ticket": ticket, "code": typed}),
        )
        .await
        .ok();
    assert_eq!(tokens["roles"], json!(["family"]));
    let me = app
        .get(
            "/api/auth/me",
            Some(tokens["access_token"].as_str().unwrap()),
        )
        .await
        .ok();
    assert_eq!(me["family_id"], family_id);

    // The code is spent.
    let ticket2 = app.wechat_login("o-someone-else").await.ok()["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(
        "/api/auth/bind",
        None,
        json!({"ticket": ticket2, "code": code}),
    )
    .await
    .invalid("code");
    // A family member cannot manage families.
    app.get(
        "/api/families",
        Some(tokens["access_token"].as_str().unwrap()),
    )
    .await
    .error(403, "forbidden");
    // The member now shows as bound.
    let detail = app
        .get(&format!("/api/families/{family_id}"), Some(&coord))
        .await
        .ok();
    assert!(
        detail["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == mother["id"] && m["bound"] == true)
    );
}

#[tokio::test]
async fn bad_login_input_names_the_field() {
    let app = spawn_app_with(Options {
        demo_families: None,
        ..Options::default()
    })
    .await;
    app.post("/api/auth/wechat", None, json!({}))
        .await
        .invalid("code");
    app.post("/api/auth/wechat", None, json!({"code": 5}))
        .await
        .invalid("code");
    app.post(
        "/api/auth/bind",
        None,
        json!({"ticket": "forged", "code": "ABCDEFGH"}),
    )
    .await
    .invalid("ticket");
    app.post("/api/auth/refresh", None, json!({"refresh_token": ""}))
        .await
        .invalid("refresh_token");
    app.post(
        "/api/volunteers/register",
        None,
        json!({"ticket": "x", "name": "王", "phone": "1", "region_id": uuid::Uuid::nil()}),
    )
    .await
    .invalid("phone");
}

#[tokio::test]
async fn forwarded_addresses_are_ignored_unless_behind_a_proxy() {
    // Not behind a proxy: a client cannot dodge the limit by inventing addresses.
    let app = spawn_app_with(Options {
        demo_families: None,
        login_per_minute: 2,
        ..Options::default()
    })
    .await;
    for i in 0..2 {
        let code = app.wechat.mint_code(&format!("o-fwd-{i}"), None);
        let r = app
            .http
            .post(app.url("/api/auth/wechat"))
            .header("x-forwarded-for", format!("10.0.0.{i}"))
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let code = app.wechat.mint_code("o-fwd-x", None);
    let r = app
        .http
        .post(app.url("/api/auth/wechat"))
        .header("x-forwarded-for", "10.0.0.9")
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
}
