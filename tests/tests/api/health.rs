use tests::*;

#[tokio::test]
async fn health_readiness_metrics_and_docs_answer() {
    let app = spawn_app_with(Options {
        demo_families: None,
        ..Options::default()
    })
    .await;
    assert_eq!(app.get("/healthz", None).await.ok()["status"], "ok");
    let ready = app.get("/readyz", None).await.ok();
    assert_eq!(ready["database"], "ok");
    let expected_redis = if std::env::var("REDIS_URL").is_ok_and(|s| !s.is_empty()) {
        "ok"
    } else {
        "not configured"
    };
    assert_eq!(ready["redis"], expected_redis);

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("nuanxin_http_requests_total{status=\"2xx\"}"),
        "{metrics}"
    );

    let spec = app.get("/openapi.json", None).await.ok();
    assert!(spec["paths"]["/families"].is_object());
    assert_eq!(spec["servers"][0]["url"], "/api");
    let docs = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

#[tokio::test]
async fn unknown_routes_and_missing_tokens_get_the_error_shape() {
    let app = spawn_app_with(Options {
        demo_families: None,
        ..Options::default()
    })
    .await;
    app.get("/api/nothing-here", None)
        .await
        .error(404, "not_found");
    app.get("/api/families", None)
        .await
        .error(401, "unauthorized");
    app.get("/api/families", Some("not-a-token"))
        .await
        .error(401, "unauthorized");
}
