use std::time::Duration;

use axum::{extract::State, http::StatusCode, Json};
use serde_json::{json, Value};

use crate::AppState;

/// Unauthenticated liveness and database check for load balancers and the quick start.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let backend = state.store.backend();
    match tokio::time::timeout(Duration::from_secs(3), state.store.ping()).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "database": "up", "backend": backend })),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database error");
            degraded(backend, "database error")
        }
        Err(_) => degraded(backend, "database did not answer within 3s"),
    }
}

fn degraded(backend: lightning_store::Backend, error: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(
            json!({ "status": "degraded", "database": "down", "backend": backend, "error": error }),
        ),
    )
}
