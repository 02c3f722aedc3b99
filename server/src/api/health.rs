//! Liveness, readiness and metrics, for load balancers and Prometheus.

use std::sync::Arc;

use poem::{
    IntoResponse, Response, handler,
    http::StatusCode,
    web::{Data, Json},
};
use serde_json::json;

use crate::app::AppState;

#[handler]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers and, if configured, Redis does.
#[handler]
pub async fn readyz(Data(state): Data<&Arc<AppState>>) -> Response {
    let database = match state.db.ping().await {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("error: {e}"),
    };
    let redis = match (&state.config.redis_url, state.cache.ping().await) {
        (None, _) => "not configured".to_string(),
        (Some(_), Ok(())) => "ok".to_string(),
        (Some(_), Err(e)) => format!("error: {e}"),
    };
    let ready = database == "ok" && (redis == "ok" || redis == "not configured");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": database,
        "redis": redis,
    });
    Json(body).with_status(status).into_response()
}

#[handler]
pub async fn metrics(Data(state): Data<&Arc<AppState>>) -> Response {
    Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(&[]))
}
