use std::time::Duration;

use axum::{extract::State, http::StatusCode, Json};

use crate::{openapi::HealthResponse, AppState};

/// Liveness and database check for load balancers; needs no key.
#[utoipa::path(get, path = "/health", tag = "health", security(()),
    responses((status = 200, body = HealthResponse), (status = 503, body = HealthResponse)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let backend = state.store.backend().as_str().to_string();
    let error = match tokio::time::timeout(Duration::from_secs(3), state.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database error");
            Some("database error")
        }
        Err(_) => Some("database did not answer within 3s"),
    };
    let (status, body) = match error {
        None => (
            StatusCode::OK,
            HealthResponse {
                status: "ok".into(),
                database: "up".into(),
                backend,
                error: None,
            },
        ),
        Some(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            HealthResponse {
                status: "degraded".into(),
                database: "down".into(),
                backend,
                error: Some(e.into()),
            },
        ),
    };
    (status, Json(body))
}
