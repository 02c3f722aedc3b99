//! The `/__fake/` control routes, the in-process shortcuts and embedding.

use miniapp_stub::{FakeConfig, TEMPLATE_VISIT_REMINDER, app};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn reset_returns_to_the_start_state() {
    let app = TestApp::spawn().await;
    let code = app.mint_code("o-alice", None).await;
    let token = token_of(&app.stable_token(false).await);
    app.fake
        .grant_credits("o-alice", TEMPLATE_VISIT_REMINDER, 1);
    app.send(&token, visit_reminder("o-alice")).await;
    app.control(
        "templates",
        json!({ "template_id": "TPL_X", "kind": "long_term", "keys": ["thing1"] }),
    )
    .await;
    app.advance_clock(1000).await;

    assert_eq!(app.control("reset", json!({})).await, json!({ "ok": true }));

    assert_eq!(
        app.stats().await,
        json!({ "jscode2session": 0, "token": 0, "stable_token": 0, "send": 0 })
    );
    assert_eq!(app.get_json("/__fake/outbox").await, json!([]));
    assert_eq!(app.get_json("/__fake/clock").await["offset_secs"], 0);
    let templates = app.get_json("/__fake/templates").await;
    let ids: Vec<&str> = templates
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["template_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&TEMPLATE_VISIT_REMINDER) && !ids.contains(&"TPL_X"),
        "{ids:?}"
    );
    assert_eq!(
        errcode(&app.login(&code).await),
        40029,
        "codes are forgotten"
    );
    assert_eq!(
        app.token_errcode(&token).await,
        40001,
        "tokens are forgotten"
    );
}

#[tokio::test]
async fn clock_can_be_set_and_advanced() {
    let app = TestApp::spawn().await;
    let set = app.control("clock", json!({ "offset_secs": 300 })).await;
    assert_eq!(set["offset_secs"], 300);
    let advanced = app.control("clock", json!({ "advance_secs": -100 })).await;
    assert_eq!(advanced["offset_secs"], 200);
    assert!(
        advanced["now"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .is_ok()
    );
}

#[tokio::test]
async fn bad_control_requests_are_http_400() {
    let app = TestApp::spawn().await;
    let cases = [
        ("/__fake/codes", "not json".to_owned()),
        ("/__fake/codes", json!({ "openid": "" }).to_string()),
        ("/__fake/faults", json!({ "route": "nowhere" }).to_string()),
        (
            "/__fake/faults",
            json!({ "route": "send", "times": 0 }).to_string(),
        ),
        ("/__fake/token_ttl", json!({ "expires_in": 0 }).to_string()),
        (
            "/__fake/credits/grant",
            json!({ "openid": "o1", "template_id": "TPL_NOPE" }).to_string(),
        ),
        (
            "/__fake/templates",
            json!({ "template_id": "T", "kind": "one_time", "keys": ["title1"] }).to_string(),
        ),
        (
            "/__fake/templates",
            json!({ "template_id": "T", "kind": "one_time", "keys": ["enum1"] }).to_string(),
        ),
        (
            "/__fake/rate_limits",
            json!({ "scope": "everything", "count": 1 }).to_string(),
        ),
    ];
    for (path, body) in cases {
        let response = app.post_raw(path, body.clone()).await;
        assert_eq!(response.status(), 400, "{path} {body}");
        let error: Value = response.json().await.unwrap();
        assert!(error["error"].is_string(), "{error}");
    }
}

#[tokio::test]
async fn faults_queue_up_per_route() {
    let app = TestApp::spawn().await;
    app.control(
        "faults",
        json!({ "route": "token", "errcode": 40164, "errmsg": "invalid ip 1.2.3.4" }),
    )
    .await;
    let queued = app
        .control(
            "faults",
            json!({ "route": "token", "errcode": 45009, "times": 2 }),
        )
        .await;
    assert_eq!(queued, json!({ "route": "token", "pending": 3 }));

    let first = app.legacy_token().await;
    assert_eq!(errcode(&first), 40164);
    assert!(
        errmsg(&first).starts_with("invalid ip 1.2.3.4 rid: "),
        "{first}"
    );
    assert_eq!(errcode(&app.legacy_token().await), 45009);
    assert_eq!(errcode(&app.legacy_token().await), 45009);
    assert_eq!(errcode(&app.legacy_token().await), 0);
    // Other routes were never affected.
    assert_eq!(errcode(&app.stable_token(false).await), 0);
}

#[tokio::test]
async fn legacy_daily_quota_counter_can_be_set() {
    let app = TestApp::spawn().await;
    app.set_beijing_time_of_day(12 * 3600).await;
    app.control("rate_limits", json!({ "scope": "token", "count": 2000 }))
        .await;
    assert_eq!(errcode(&app.legacy_token().await), 45009);
    assert_eq!(
        errcode(&app.stable_token(false).await),
        0,
        "stable has its own quota"
    );
}

#[tokio::test]
async fn force_refresh_counter_can_be_set() {
    let app = TestApp::spawn().await;
    app.set_beijing_time_of_day(12 * 3600).await;
    app.control(
        "rate_limits",
        json!({ "scope": "stable_force_refresh", "count": 20 }),
    )
    .await;
    assert_eq!(errcode(&app.stable_token(true).await), 45009);
}

#[tokio::test]
async fn in_process_shortcuts_share_state_with_http() {
    let app = TestApp::spawn().await;
    let code = app.fake.mint_code("o-carol", Some("u-carol"));
    let login = app.login(&code).await;
    assert_eq!(login["openid"], "o-carol");
    assert_eq!(login["unionid"], "u-carol");

    assert_eq!(
        app.fake
            .grant_credits("o-carol", TEMPLATE_VISIT_REMINDER, 2),
        2
    );
    let path = format!("/__fake/credits?openid=o-carol&template_id={TEMPLATE_VISIT_REMINDER}");
    assert_eq!(app.get_json(&path).await["credits"], 2);
}

#[tokio::test]
async fn app_can_be_embedded_as_an_endpoint() {
    // Nest the fake under a prefix of another poem server, as a dev server might.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/wechat", listener.local_addr().unwrap());
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
    let host = poem::Route::new().nest("/wechat", app(FakeConfig::default()));
    let server = tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(host));
    let client = client();

    let minted: Value = client
        .post(format!("{base}/__fake/codes"))
        .body(json!({ "openid": "o-embedded" }).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = minted["code"].as_str().unwrap();
    let login: Value = client
        .get(format!(
            "{base}/sns/jscode2session?appid={APPID}&secret={SECRET}&js_code={code}&grant_type=authorization_code"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(login["openid"], "o-embedded");
    server.abort();
}
