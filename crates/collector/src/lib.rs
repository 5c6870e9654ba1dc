//! The collector: the seed's ingest API, the read API, health, and the dashboard's files.
//! Handlers are thin: they validate, call the [`Store`], and map errors in one place
//! ([`error::ApiError`]). The collector keeps no state between requests.

pub mod auth;
pub mod error;
pub mod extract;
mod handlers;
mod logging;
pub mod metrics;
pub mod openapi;
mod static_files;
pub mod sweep;

use std::{path::PathBuf, sync::Arc};

use axum::{
    extract::{DefaultBodyLimit, OriginalUri},
    middleware,
    routing::{any, get},
    Json, Router,
};
use lightning_store::Store;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

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

pub fn router(store: Arc<dyn Store>, config: CollectorConfig) -> Router {
    let state = AppState {
        store,
        config: Arc::new(config),
        metrics: Arc::default(),
    };
    let (protected, mut openapi) = protected_routes().split_for_parts();
    let (public, public_doc) = public_routes().split_for_parts();
    openapi.merge(public_doc);
    let openapi = Arc::new(openapi);
    let require_key = middleware::from_fn_with_state(state.clone(), auth::require_bearer);
    Router::new()
        .merge(protected)
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = openapi.clone();
                async move { Json(doc) }
            }),
        )
        .route("/api", any(api_not_found))
        .route("/api/{*rest}", any(api_not_found))
        // Everything above needs the key (unknown /api paths too: they reveal nothing without it).
        .route_layer(require_key)
        .merge(public)
        .route_layer(middleware::from_fn(metrics::label_route))
        .method_not_allowed_fallback(api_method_not_allowed)
        .merge(static_files::router(state.config.dashboard_dir.as_deref()))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            logging::log_request,
        ))
        .with_state(state)
}

/// Every route that needs the API key. The router and the OpenAPI document are both built from
/// this list (and [`public_routes`]), so neither can have a route the other lacks.
fn protected_routes() -> OpenApiRouter<AppState> {
    use handlers::{ingest, read};
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(ingest::start))
        .routes(routes!(ingest::steps_batch))
        .routes(routes!(ingest::complete))
        .routes(routes!(read::list))
        .routes(routes!(read::export))
        .routes(routes!(read::get, read::delete))
        .routes(routes!(read::steps))
        .routes(routes!(read::stats))
        .routes(routes!(read::agents))
        .routes(routes!(metrics::metrics))
        .routes(routes!(handlers::optimization::list_runs))
        .routes(routes!(handlers::optimization::get_run))
        .routes(routes!(
            handlers::optimization::list_prompts,
            handlers::optimization::register_prompt
        ))
        .routes(routes!(handlers::optimization::latest_prompt))
        .routes(routes!(handlers::optimization::promote_prompt))
}

/// Routes open to anyone (documented with an empty security requirement).
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(handlers::health::health))
}

/// The OpenAPI document served at `/api/openapi.json` (which itself needs the key).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = protected_routes().into_openapi();
    doc.merge(public_routes().into_openapi());
    doc
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
