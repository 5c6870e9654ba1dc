//! Browser hardening on every response: a Content Security Policy without inline script that
//! forbids framing (so the Promote button cannot be clickjacked), `nosniff`, no referrer; and
//! `Cache-Control: no-store` on everything but the dashboard's files, so API answers are never
//! kept by a browser or proxy.

use axum::{
    extract::Request,
    http::{header, HeaderValue},
    middleware::Next,
    response::Response,
};

/// Scripts, styles and connections only from this origin; nothing may frame the dashboard.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub async fn add(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let no_store =
        path == "/api" || path.starts_with("/api/") || path == "/metrics" || path == "/health";
    let mut response = next.run(req).await;
    let refused = matches!(response.status().as_u16(), 401 | 403 | 429);
    let headers = response.headers_mut();
    if refused {
        // Which methods a path has is not for clients without the right key.
        headers.remove(header::ALLOW);
    }
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if no_store {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
