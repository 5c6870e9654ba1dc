use std::time::Instant;

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};

use crate::{
    metrics::{RouteLabel, UNMATCHED},
    AppState,
};

/// One line per request in the seed's form: `POST /api/trajectories/start - 200 OK (15ms)`.
/// The query string is left out: it may carry search terms, and it is noise.
/// Also records the request in the metrics, labelled by route template.
pub async fn log_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Bounded: a made-up method or path can be hundreds of kilobytes.
    let method: String = req.method().as_str().chars().take(32).collect();
    let path: String = req.uri().path().chars().take(512).collect();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status();
    let ms = started.elapsed().as_millis();
    let reason = status.canonical_reason().unwrap_or("");
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map_or(UNMATCHED, |r| r.0.as_str());
    state
        .metrics
        .observe(&method, route, status.as_u16(), started.elapsed());
    if status.is_server_error() {
        tracing::warn!(target: "lightning::http", "{method} {path} - {} {reason} ({ms}ms)", status.as_u16());
    } else {
        tracing::info!(target: "lightning::http", "{method} {path} - {} {reason} ({ms}ms)", status.as_u16());
    }
    response
}
