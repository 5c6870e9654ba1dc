//! The collector: the seed's ingest API, the read API, health, and the dashboard's files.
//! Handlers are thin: they validate, call the [`Store`], and map errors in one place
//! ([`error::ApiError`]). The collector keeps no state between requests.

pub mod error;
pub mod extract;
mod handlers;
pub mod keys;
pub mod limits;
mod logging;
pub mod metrics;
pub mod openapi;
pub mod rollout_guard;
mod security_headers;
pub mod static_files;
mod streaming;
pub mod sweep;

use std::{path::PathBuf, sync::Arc};

use axum::{
    extract::{DefaultBodyLimit, OriginalUri},
    middleware,
    routing::{any, get},
    Json, Router,
};
use lightning_core::Scope;
use lightning_store::Store;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use error::ApiError;
pub use keys::{scoped, ApiKey};
pub use limits::{serve, Limits};
pub use static_files::{Dashboard, EmbeddedFile};

pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// The admin key (`API_KEY`); named keys with scopes live in the store.
    pub api_key: ApiKey,
    /// Largest accepted request body in bytes; larger ones get 413.
    pub body_limit: usize,
    /// Built dashboard (`index.html` and assets); a help page is served when it is missing.
    pub dashboard_dir: Option<PathBuf>,
    /// Connection, in-flight, timeout and JSON memory bounds.
    pub limits: Limits,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<CollectorConfig>,
    /// Counters for `/metrics`, per process (Prometheus sums across collectors).
    pub metrics: Arc<metrics::Metrics>,
    /// Keys, route scopes and the failed-attempt throttle.
    pub auth: Arc<keys::Authenticator>,
    pub limits: Arc<limits::LimitState>,
}

/// The collector with the dashboard of `config.dashboard_dir` (a help page without one).
pub fn router(store: Arc<dyn Store>, config: CollectorConfig) -> Router {
    let dashboard = config
        .dashboard_dir
        .clone()
        .map_or(Dashboard::NotBuilt, Dashboard::Dir);
    router_with_dashboard(store, config, &dashboard)
}

/// The collector serving `dashboard` at `/` (`config.dashboard_dir` is not read: the
/// caller chose).
pub fn router_with_dashboard(
    store: Arc<dyn Store>,
    config: CollectorConfig,
    dashboard: &Dashboard,
) -> Router {
    let (protected, mut openapi) = protected_routes().split_for_parts();
    let (public, public_doc) = public_routes().split_for_parts();
    openapi.merge(public_doc);
    let mut scopes = keys::RouteScopes::from_openapi(&openapi);
    scopes.insert(axum::http::Method::GET, "/api/openapi.json", Scope::Read);
    let state = AppState {
        store,
        auth: Arc::new(keys::Authenticator::new(
            config.api_key.clone(),
            scopes,
            config.limits.auth_failures_per_minute,
        )),
        limits: Arc::new(limits::LimitState::new(config.limits.clone())),
        config: Arc::new(config),
        metrics: Arc::default(),
    };
    let openapi = Arc::new(openapi);
    let require_key = middleware::from_fn_with_state(state.clone(), keys::require_key);
    let api = Router::new()
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
        .method_not_allowed_fallback(api_method_not_allowed)
        // A layer, not a route layer: it also wraps the 405 answers, so every /api path says 401
        // to a client without a key, whatever the method (unknown paths too: they reveal nothing).
        .layer(require_key);
    let app = Router::new()
        .merge(api)
        .merge(public)
        .route_layer(middleware::from_fn(metrics::label_route))
        .merge(static_files::router(dashboard))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::limit_in_flight,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            logging::log_request,
        ))
        .with_state(state);
    // Outermost, around routing itself: it also sees what method routers add after the
    // layers above (such as `Allow`, which it strips from refusals).
    Router::new()
        .fallback_service(app)
        .layer(middleware::from_fn(security_headers::add))
}

/// Every route that needs a key, each with the scope it needs (the one place scopes are
/// declared; see docs/api.md, "Keys and scopes"). A route added without `scoped` needs `admin`.
/// The router and the OpenAPI document are both built from this list (and [`public_routes`]),
/// so neither can have a route the other lacks.
fn protected_routes() -> OpenApiRouter<AppState> {
    use handlers::{ingest, optimization as opt, read};
    use Scope::{Admin, Ingest, Read};
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(scoped(Ingest, routes!(ingest::start)))
        .routes(scoped(Ingest, routes!(ingest::steps_batch)))
        .routes(scoped(Ingest, routes!(ingest::complete)))
        .routes(scoped(Read, routes!(read::list)))
        .routes(scoped(Read, routes!(read::export)))
        .routes(scoped(Read, routes!(read::get)))
        .routes(scoped(Admin, routes!(read::delete)))
        .routes(scoped(Read, routes!(read::steps)))
        .routes(scoped(Ingest, routes!(handlers::scores::create)))
        .routes(scoped(Read, routes!(handlers::scores::list)))
        .routes(scoped(Admin, routes!(handlers::scores::delete)))
        .routes(scoped(Read, routes!(read::stats)))
        .routes(scoped(Read, routes!(read::agents)))
        .routes(scoped(Read, routes!(metrics::metrics)))
        .routes(scoped(Read, routes!(opt::list_runs)))
        .routes(scoped(Read, routes!(opt::get_run)))
        .routes(scoped(Read, routes!(opt::run_evaluations)))
        .routes(scoped(Read, routes!(opt::list_prompts)))
        .routes(scoped(Admin, routes!(opt::register_prompt)))
        .routes(scoped(Ingest, routes!(opt::latest_prompt)))
        .routes(scoped(Admin, routes!(opt::promote_prompt)))
        .routes(scoped(Admin, routes!(keys::create_key)))
        .routes(scoped(Admin, routes!(keys::list_keys)))
        .routes(scoped(Admin, routes!(keys::revoke_key)))
        .routes(scoped(Ingest, routes!(handlers::rollout::assignment)))
        .routes(scoped(Admin, routes!(handlers::rollout::start)))
        .routes(scoped(Admin, routes!(handlers::rollout::end)))
        .routes(scoped(Read, routes!(handlers::rollout::status)))
        .routes(scoped(Read, routes!(handlers::rollout::compare)))
        .routes(scoped(Read, routes!(handlers::rollout::series)))
        .routes(scoped(Read, routes!(handlers::rollout::events)))
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
