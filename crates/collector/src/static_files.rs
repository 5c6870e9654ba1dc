//! Serves the built dashboard with a single-page-app fallback. `/api/*` never reaches this.

use std::path::Path;

use axum::{
    http::{header, StatusCode},
    response::{Html, IntoResponse},
    Router,
};
use tower_http::services::{ServeDir, ServeFile};

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Agent Lightning</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}
code{background:#8882;padding:.1rem .3rem;border-radius:4px}</style></head>
<body><h1>Agent Lightning collector is running</h1>
<p>The dashboard has not been built, so there is nothing to show here yet. The API works:
try <code>GET /health</code>.</p>
<p>Build the dashboard with <code>npm --prefix dashboard ci &amp;&amp; npm --prefix dashboard run build</code>
(or start everything with <code>./scripts/run</code>), then reload this page. Point the collector at
another build with <code>--dashboard-dir</code> or <code>LIGHTNING_DASHBOARD_DIR</code>.</p></body></html>"#;

const NOT_BUILT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

pub fn router(dir: Option<&Path>) -> Router<crate::AppState> {
    match dir.filter(|d| d.join("index.html").is_file()) {
        Some(dir) => {
            let index = dir.join("index.html");
            // No directory redirects: ServeDir would answer `//assets` with `Location: //assets/`,
            // which a browser reads as another host. Directories get the app like any other path.
            Router::new().fallback_service(
                ServeDir::new(dir)
                    .append_index_html_on_directories(false)
                    .fallback(ServeFile::new(index)),
            )
        }
        None => {
            if let Some(dir) = dir {
                tracing::warn!("dashboard not built: {} has no index.html", dir.display());
            }
            Router::new().fallback(|| async {
                (
                    StatusCode::OK,
                    [
                        (header::CACHE_CONTROL, "no-store"),
                        // This static page's own inline style; still no script of any kind.
                        (header::CONTENT_SECURITY_POLICY, NOT_BUILT_CSP),
                    ],
                    Html(NOT_BUILT),
                )
                    .into_response()
            })
        }
    }
}
