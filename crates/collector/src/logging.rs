use std::time::Instant;

use axum::{extract::Request, middleware::Next, response::Response};

/// One line per request in the seed's form: `POST /api/trajectories/start - 200 OK (15ms)`.
/// The query string is left out: it may carry search terms, and it is noise.
pub async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status();
    let ms = started.elapsed().as_millis();
    let reason = status.canonical_reason().unwrap_or("");
    if status.is_server_error() {
        tracing::warn!(target: "lightning::http", "{method} {path} - {} {reason} ({ms}ms)", status.as_u16());
    } else {
        tracing::info!(target: "lightning::http", "{method} {path} - {} {reason} ({ms}ms)", status.as_u16());
    }
    response
}
