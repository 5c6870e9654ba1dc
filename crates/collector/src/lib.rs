//! The collector: the seed's ingest API, the read API, health, and the dashboard's files.
//! Handlers are thin: they validate, call the [`Store`], and map errors in one place
//! ([`error::ApiError`]). The collector keeps no state between requests.

pub mod auth;
pub mod error;
pub mod extract;
mod handlers;
mod logging;
pub mod metrics;
mod static_files;

use std::{path::PathBuf, sync::Arc};

use axum::{
    extract::{DefaultBodyLimit, OriginalUri},
    middleware,
    routing::{get, post},
    Router,
};
use lightning_store::Store;

pub use auth::ApiKey;
use error::ApiError;

pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct CollectorConfig {
    pub api_key: ApiKey,
    /// Largest accepted request body in bytes; larger ones get 413.
    pub body_limit: usize,
    /// Built dashboard (`index.html` and assets); a help page is served when it is missing.
    pub dashboard_dir: Option<PathBuf>,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<CollectorConfig>,
    /// Counters for `/metrics`, per process (Prometheus sums across collectors).
    pub metrics: Arc<metrics::Metrics>,
}

/// Every route that requires the API key, as `(method, path)`; tests walk this list to check
/// auth on each one.
pub const API_ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/trajectories/start"),
    ("POST", "/api/trajectories/{id}/steps/batch"),
    ("POST", "/api/trajectories/{id}/complete"),
    ("GET", "/api/trajectories"),
    ("GET", "/api/trajectories/export"),
    ("GET", "/api/trajectories/{id}"),
    ("DELETE", "/api/trajectories/{id}"),
    ("GET", "/api/trajectories/{id}/steps"),
    ("GET", "/api/stats"),
    ("GET", "/api/agents"),
    ("GET", "/metrics"),
];

pub fn router(store: Arc<dyn Store>, config: CollectorConfig) -> Router {
    let state = AppState {
        store,
        config: Arc::new(config),
        metrics: Arc::default(),
    };
    use handlers::{health, ingest, read};
    let api = Router::new()
        .route("/trajectories/start", post(ingest::start))
        .route("/trajectories/{id}/steps/batch", post(ingest::steps_batch))
        .route("/trajectories/{id}/complete", post(ingest::complete))
        .route("/trajectories", get(read::list))
        .route("/trajectories/export", get(read::export))
        .route("/trajectories/{id}", get(read::get).delete(read::delete))
        .route("/trajectories/{id}/steps", get(read::steps))
        .route("/stats", get(read::stats))
        .route("/agents", get(read::agents))
        .route_layer(middleware::from_fn(metrics::label_route))
        .fallback(api_not_found)
        .method_not_allowed_fallback(api_method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_bearer,
        ));
    let metrics = Router::new()
        .route("/metrics", get(metrics::metrics))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_bearer,
        ));
    Router::new()
        .nest("/api", api)
        .merge(metrics)
        .route("/health", get(health::health))
        .route_layer(middleware::from_fn(metrics::label_route))
        .merge(static_files::router(state.config.dashboard_dir.as_deref()))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            logging::log_request,
        ))
        .with_state(state)
}

async fn api_not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::NotFound(format!("no API route {}", uri.path()))
}

async fn api_method_not_allowed(
    method: axum::http::Method,
    OriginalUri(uri): OriginalUri,
) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
