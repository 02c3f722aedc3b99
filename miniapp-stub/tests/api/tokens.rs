//! `GET /cgi-bin/token` and `POST /cgi-bin/stable_token` (WECHAT.md §2; scenarios 4–6).

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn stable_token_is_reused_and_force_refresh_kills_the_old_one() {
    // Scenario 5.
    let app = TestApp::spawn().await;
    let first = app.stable_token(false).await;
    assert!(first.get("errcode").is_none(), "{first}");
    assert_eq!(first["expires_in"], 7200);
    let t1 = token_of(&first);

    app.advance_clock(100).await;
    let again = app.stable_token(false).await;
    assert_eq!(token_of(&again), t1, "normal mode returns the same token");
    let left = again["expires_in"].as_i64().unwrap();
    assert!(
        (7099..=7100).contains(&left),
        "expires_in counts down: {left}"
    );

    let forced = token_of(&app.stable_token(true).await);
    assert_ne!(forced, t1);
    assert_eq!(
        app.token_errcode(&t1).await,
        40001,
        "old token dead at once"
    );
    assert_eq!(app.token_errcode(&forced).await, 0);
    assert_eq!(token_of(&app.stable_token(false).await), forced);
}

#[tokio::test]
async fn force_refresh_within_30_seconds_does_not_rotate() {
    let app = TestApp::spawn().await;
    let forced = token_of(&app.stable_token(true).await);

    app.advance_clock(29).await;
    assert_eq!(token_of(&app.stable_token(true).await), forced);
    assert_eq!(app.token_errcode(&forced).await, 0);

    app.advance_clock(1).await;
    assert_ne!(token_of(&app.stable_token(true).await), forced);
}

#[tokio::test]
async fn the_21st_force_refresh_of_a_day_gives_45009() {
    let app = TestApp::spawn().await;
    app.set_beijing_time_of_day(9 * 3600).await;
    for _ in 0..20 {
        assert!(app.stable_token(true).await.get("access_token").is_some());
        app.advance_clock(31).await;
    }
    let refused = app.stable_token(true).await;
    assert_eq!(errcode(&refused), 45009, "{refused}");
    // Normal mode still works, and the quota is back the next day.
    assert_eq!(errcode(&app.stable_token(false).await), 0);
    app.advance_clock(24 * 3600).await;
    assert_eq!(errcode(&app.stable_token(true).await), 0);
}

#[tokio::test]
async fn stable_token_renews_in_its_last_300_seconds_and_old_one_lives_out_its_time() {
    let app = TestApp::spawn().await;
    let t1 = token_of(&app.stable_token(false).await);

    app.advance_clock(7200 - 310).await;
    assert_eq!(
        token_of(&app.stable_token(false).await),
        t1,
        "310 s left: same token"
    );

    app.advance_clock(15).await;
    let renewed = app.stable_token(false).await;
    let t2 = token_of(&renewed);
    assert_ne!(t2, t1, "295 s left: renewed");
    assert_eq!(renewed["expires_in"], 7200);
    assert_eq!(app.token_errcode(&t1).await, 0, "old token still valid");
    assert_eq!(app.token_errcode(&t2).await, 0);

    app.advance_clock(300).await;
    assert_eq!(app.token_errcode(&t1).await, 42001);
    assert_eq!(app.token_errcode(&t2).await, 0);
}

#[tokio::test]
async fn tokens_expire_when_the_clock_passes_expiry() {
    // Scenario 4.
    let app = TestApp::spawn().await;
    let stable = token_of(&app.stable_token(false).await);
    let legacy = token_of(&app.legacy_token().await);

    app.advance_clock(7199).await;
    assert_eq!(app.token_errcode(&stable).await, 0);
    assert_eq!(app.token_errcode(&legacy).await, 0);

    app.advance_clock(1).await;
    let expired = app.send(&stable, visit_reminder("o-any")).await;
    assert_eq!(errcode(&expired), 42001);
    assert!(errmsg(&expired).starts_with("access_token expired rid: "));
    assert_eq!(app.token_errcode(&legacy).await, 42001);
}

#[tokio::test]
async fn configured_expires_in_applies_to_new_tokens() {
    let app = TestApp::spawn().await;
    let set = app.control("token_ttl", json!({ "expires_in": 60 })).await;
    assert_eq!(set["expires_in"], 60);

    let stable = app.stable_token(false).await;
    assert_eq!(stable["expires_in"], 60);
    let legacy = app.legacy_token().await;
    assert_eq!(legacy["expires_in"], 60);
    // A short-lived stable token is still reused between close calls.
    app.advance_clock(10).await;
    assert_eq!(token_of(&app.stable_token(false).await), token_of(&stable));

    app.advance_clock(50).await;
    assert_eq!(app.token_errcode(&token_of(&stable)).await, 42001);
    assert_eq!(app.token_errcode(&token_of(&legacy)).await, 42001);
}

#[tokio::test]
async fn legacy_token_rotates_on_every_fetch_with_a_300_second_overlap() {
    let app = TestApp::spawn().await;
    let l1 = token_of(&app.legacy_token().await);
    let l2 = token_of(&app.legacy_token().await);
    assert_ne!(l1, l2);

    app.advance_clock(299).await;
    assert_eq!(app.token_errcode(&l1).await, 0);
    app.advance_clock(1).await;
    let rotated_out = app.send(&l1, visit_reminder("o-any")).await;
    assert_eq!(errcode(&rotated_out), 40001);
    assert!(errmsg(&rotated_out).contains("not latest"), "{rotated_out}");
    assert_eq!(app.token_errcode(&l2).await, 0);
}

#[tokio::test]
async fn legacy_and_stable_tokens_are_isolated() {
    // Scenario 6.
    let app = TestApp::spawn().await;
    let stable = token_of(&app.stable_token(false).await);
    let legacy = token_of(&app.legacy_token().await);
    token_of(&app.legacy_token().await);
    token_of(&app.legacy_token().await);

    app.advance_clock(301).await;
    assert_eq!(token_of(&app.stable_token(false).await), stable);
    assert_eq!(
        app.token_errcode(&stable).await,
        0,
        "legacy fetches leave stable alone"
    );
    assert_eq!(app.token_errcode(&legacy).await, 40001);

    let newest_legacy = token_of(&app.legacy_token().await);
    let forced = token_of(&app.stable_token(true).await);
    assert_eq!(
        app.token_errcode(&newest_legacy).await,
        0,
        "force leaves legacy alone"
    );
    assert_eq!(app.token_errcode(&forced).await, 0);
    assert_eq!(app.token_errcode(&stable).await, 40001);
}

#[tokio::test]
async fn missing_or_unknown_access_token() {
    let app = TestApp::spawn().await;
    let missing = app
        .post_json("/cgi-bin/message/subscribe/send", visit_reminder("o-any"))
        .await;
    assert_eq!(errcode(&missing), 41001);
    assert_eq!(app.token_errcode("made-up-token").await, 40001);
}

#[tokio::test]
async fn bad_credentials_give_the_documented_errcodes() {
    let app = TestApp::spawn().await;
    let legacy = |query: &str| format!("/cgi-bin/token?{query}");
    let cases = [
        ("grant_type=password&appid={APPID}&secret={SECRET}", 40002),
        ("grant_type=client_credential&secret={SECRET}", 41002),
        ("grant_type=client_credential&appid={APPID}", 41004),
        (
            "grant_type=client_credential&appid=wxother&secret={SECRET}",
            40013,
        ),
        (
            "grant_type=client_credential&appid={APPID}&secret=nope",
            40125,
        ),
    ];
    for (query, expected) in cases {
        let query = query.replace("{APPID}", APPID).replace("{SECRET}", SECRET);
        let body = app.get_json(&legacy(&query)).await;
        assert_eq!(errcode(&body), expected, "{query}: {body}");
    }

    let stable = |body: serde_json::Value| app.post_json("/cgi-bin/stable_token", body);
    let base = json!({ "grant_type": "client_credential", "appid": APPID, "secret": SECRET });
    let with = |key: &str, value: serde_json::Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    assert_eq!(
        errcode(&stable(with("grant_type", json!("x"))).await),
        40002
    );
    assert_eq!(errcode(&stable(without("appid")).await), 41002);
    assert_eq!(errcode(&stable(without("secret")).await), 41004);
    assert_eq!(
        errcode(&stable(with("appid", json!("wxother"))).await),
        40013
    );
    assert_eq!(errcode(&stable(with("secret", json!("nope"))).await), 40125);

    let empty: serde_json::Value = app
        .post_raw("/cgi-bin/stable_token", "")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(errcode(&empty), 44002);
    let garbage: serde_json::Value = app
        .post_raw("/cgi-bin/stable_token", "appid=x")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(errcode(&garbage), 47001);
    assert_eq!(app.stats().await["stable_token"], 7);
}

#[tokio::test]
async fn stats_count_token_fetches_per_route() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.stable_token(false).await;
    }
    app.legacy_token().await;
    let stats = app.stats().await;
    assert_eq!(stats["stable_token"], 3);
    assert_eq!(stats["token"], 1);
    assert_eq!(stats["jscode2session"], 0);
}

#[tokio::test]
async fn injected_token_fault_with_delay_answers_late() {
    let app = TestApp::spawn().await;
    app.control(
        "faults",
        json!({ "route": "stable_token", "errcode": 0, "times": 1, "delay_ms": 300 }),
    )
    .await;
    let started = std::time::Instant::now();
    let body = app.stable_token(false).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(errcode(&body), 0, "errcode 0 only delays: {body}");

    app.control("faults", json!({ "route": "token", "errcode": -1 }))
        .await;
    assert_eq!(errcode(&app.legacy_token().await), -1);
    assert_eq!(errcode(&app.legacy_token().await), 0);
}
