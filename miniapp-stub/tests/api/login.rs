//! `GET /sns/jscode2session` (WECHAT.md §1; scenarios 1 and 12).

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn success_is_text_plain_json_without_errcode() {
    // Scenario 12.
    let app = TestApp::spawn().await;
    let code = app.mint_code("o-alice", None).await;
    let path = format!(
        "/sns/jscode2session?appid={APPID}&secret={SECRET}&js_code={code}&grant_type=authorization_code"
    );
    let response = app.get(&path).await;

    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["openid"], "o-alice");
    assert!(
        body.get("errcode").is_none(),
        "first success has no errcode: {body}"
    );
    assert!(
        body.get("unionid").is_none(),
        "no unionid unless bound: {body}"
    );
    assert_eq!(
        body["session_key"].as_str().unwrap().len(),
        24,
        "base64 of 16 bytes"
    );
}

#[tokio::test]
async fn successes_alternate_between_both_documented_forms() {
    let app = TestApp::spawn().await;
    let first = app.login(&app.mint_code("o-a", None).await).await;
    let second = app.login(&app.mint_code("o-b", Some("u-b")).await).await;

    assert!(first.get("errcode").is_none());
    assert_eq!(second["errcode"], 0);
    assert_eq!(second["openid"], "o-b");
    assert_eq!(second["unionid"], "u-b");
}

#[tokio::test]
async fn reused_code_gives_40163() {
    // Scenario 1, first half.
    let app = TestApp::spawn().await;
    let code = app.mint_code("o-alice", None).await;

    assert_eq!(errcode(&app.login(&code).await), 0);
    let again = app.login(&code).await;
    assert_eq!(errcode(&again), 40163);
    assert!(
        errmsg(&again).starts_with("code been used, rid: "),
        "{again}"
    );
    assert_rid(errmsg(&again));
}

#[tokio::test]
async fn code_expires_at_300_seconds() {
    // Scenario 1, second half: valid at 299 s, gone at 300 s.
    let app = TestApp::spawn().await;
    let young = app.mint_code("o-alice", None).await;
    let old = app.mint_code("o-bob", None).await;

    app.advance_clock(299).await;
    assert_eq!(app.login(&young).await["openid"], "o-alice");

    app.advance_clock(1).await;
    let expired = app.login(&old).await;
    assert_eq!(errcode(&expired), 40029);
    assert!(
        errmsg(&expired).starts_with("invalid code, rid: "),
        "{expired}"
    );
    assert_rid(errmsg(&expired));
}

#[tokio::test]
async fn unknown_code_gives_40029() {
    let app = TestApp::spawn().await;
    assert_eq!(errcode(&app.login("never-minted").await), 40029);
}

#[tokio::test]
async fn wrong_credentials_are_refused_without_spending_the_code() {
    let app = TestApp::spawn().await;
    let code = app.mint_code("o-alice", None).await;

    assert_eq!(errcode(&app.login_with(APPID, "wrong", &code).await), 40125);
    assert_eq!(
        errcode(&app.login_with("wxother", SECRET, &code).await),
        40013
    );
    let bad_grant = app
        .get_json(&format!(
            "/sns/jscode2session?appid={APPID}&secret={SECRET}&js_code={code}&grant_type=client_credential"
        ))
        .await;
    assert_eq!(errcode(&bad_grant), 40002);

    assert_eq!(app.login(&code).await["openid"], "o-alice");
}

#[tokio::test]
async fn code_minted_for_another_app_gives_40029_then_40163() {
    // The observed trace: wrong-app use spends the code, a replay says "been used".
    let app = TestApp::spawn().await;
    let body = app
        .control(
            "codes",
            json!({ "openid": "o-alice", "appid": "wxanother" }),
        )
        .await;
    let code = body["code"].as_str().unwrap();

    assert_eq!(errcode(&app.login(code).await), 40029);
    assert_eq!(errcode(&app.login(code).await), 40163);
}

#[tokio::test]
async fn blocked_openid_gets_40226_until_unblocked() {
    let app = TestApp::spawn().await;
    let code = app.mint_code("o-risky", None).await;
    app.control("blocked", json!({ "openid": "o-risky", "blocked": true }))
        .await;

    assert_eq!(errcode(&app.login(&code).await), 40226);

    app.control("blocked", json!({ "openid": "o-risky", "blocked": false }))
        .await;
    assert_eq!(app.login(&code).await["openid"], "o-risky");
}

#[tokio::test]
async fn over_100_calls_a_minute_gives_45011_until_the_next_minute() {
    let app = TestApp::spawn().await;
    app.set_beijing_time_of_day(12 * 3600 + 1).await; // 1 s into a minute
    app.control(
        "rate_limits",
        json!({ "scope": "jscode2session", "openid": "o-busy", "count": 100 }),
    )
    .await;
    let code = app.mint_code("o-busy", None).await;

    assert_eq!(errcode(&app.login(&code).await), 45011);
    // Other users are not affected.
    assert_eq!(
        errcode(&app.login(&app.mint_code("o-calm", None).await).await),
        0
    );

    app.advance_clock(60).await;
    assert_eq!(app.login(&code).await["openid"], "o-busy");
}

#[tokio::test]
async fn injected_fault_fails_the_next_calls_then_clears() {
    let app = TestApp::spawn().await;
    app.control(
        "faults",
        json!({ "route": "jscode2session", "errcode": -1, "times": 2, "delay_ms": 0 }),
    )
    .await;
    let code = app.mint_code("o-alice", None).await;

    let first = app.login(&code).await;
    assert_eq!(errcode(&first), -1);
    assert!(errmsg(&first).starts_with("system error rid: "), "{first}");
    assert_eq!(errcode(&app.login(&code).await), -1);
    assert_eq!(app.login(&code).await["openid"], "o-alice");
    assert_eq!(app.stats().await["jscode2session"], 3);
}
