//! The server's WeChat access token: fetched once however many callers ask at once,
//! shared between instances through the cache (Redis when configured), refetched when
//! WeChat calls it invalid.

use std::sync::Arc;

use serde_json::{Value, json};
use server::{cache::Cache, wechat::WeChatClient};
use tests::*;

async fn fetches(app: &TestApp) -> u64 {
    let stats: Value = app
        .http
        .get(format!("{}/__fake/stats", app.wechat.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["stable_token"].as_u64().unwrap()
}

/// Another instance of the server against the same cache.
async fn second_instance(app: &TestApp) -> WeChatClient {
    let cache = match &app.state.config.redis_url {
        Some(url) => Arc::new(
            Cache::connect(url, &app.state.config.cache_prefix)
                .await
                .unwrap(),
        ),
        None => app.state.cache.clone(),
    };
    WeChatClient::new(app.state.config.wechat.clone(), cache).unwrap()
}

#[tokio::test]
async fn concurrent_callers_share_one_token_fetch_and_instances_share_the_token() {
    let app = spawn_app_with(Options {
        demo_families: None,
        ..Options::default()
    })
    .await;
    let mut callers = Vec::new();
    for _ in 0..12 {
        let state = app.state.clone();
        callers.push(tokio::spawn(async move {
            state.wechat.access_token().await.unwrap()
        }));
    }
    let mut tokens = Vec::new();
    for c in callers {
        tokens.push(c.await.unwrap());
    }
    assert!(tokens.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(fetches(&app).await, 1, "one fetch for twelve callers");

    let other = second_instance(&app).await;
    assert_eq!(other.access_token().await.unwrap(), tokens[0]);
    assert_eq!(
        fetches(&app).await,
        1,
        "the second instance reuses the shared token"
    );

    // WeChat said the token is invalid: it is fetched again, once.
    app.state.wechat.invalidate_token(&tokens[0]).await;
    app.state.wechat.access_token().await.unwrap();
    app.state.wechat.access_token().await.unwrap();
    assert_eq!(fetches(&app).await, 2);
}

#[tokio::test]
async fn a_failed_token_fetch_is_an_error_and_the_next_call_tries_again() {
    let app = spawn_app_with(Options {
        demo_families: None,
        ..Options::default()
    })
    .await;
    app.http
        .post(format!("{}/__fake/faults", app.wechat.base_url()))
        .json(&json!({"route": "stable_token", "errcode": -1, "times": 1}))
        .send()
        .await
        .unwrap();
    assert!(app.state.wechat.access_token().await.is_err());
    assert!(app.state.wechat.access_token().await.is_ok());
    assert_eq!(fetches(&app).await, 2);
}
