//! Serves the built dashboard with a single-page-app fallback. `/api/*` never reaches this.
//!
//! The files come from a directory (`--dashboard-dir`, for development) or from the binary
//! itself ([`Dashboard::Embedded`]: the `lightning` binary compiles `dashboard/dist` in, so
//! `lightning serve` shows the UI from any working directory).

use std::{borrow::Cow, path::PathBuf};

use axum::{
    extract::OriginalUri,
    http::{header, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
    Router,
};
use tower_http::services::{ServeDir, ServeFile};

/// One file of an embedded dashboard: its bytes and its `Content-Type`.
pub struct EmbeddedFile {
    pub data: Cow<'static, [u8]>,
    pub content_type: Cow<'static, str>,
}

/// Looks a file of an embedded dashboard up by its path relative to the build's root
/// (`index.html`, `assets/index-abc.js`).
pub type EmbeddedLookup = fn(&str) -> Option<EmbeddedFile>;

/// Where the dashboard's files come from.
#[derive(Clone)]
pub enum Dashboard {
    /// A built dashboard on disk; a help page when it has no `index.html`.
    Dir(PathBuf),
    /// A built dashboard compiled into the binary.
    Embedded(EmbeddedLookup),
    /// No dashboard: every page says how to build one.
    NotBuilt,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dashboard::Dir(dir) => f.debug_tuple("Dir").field(dir).finish(),
            Dashboard::Embedded(_) => f.write_str("Embedded"),
            Dashboard::NotBuilt => f.write_str("NotBuilt"),
        }
    }
}

impl Dashboard {
    /// The embedded build when it has an `index.html` (the binary was compiled after
    /// `npm run build`), else [`Dashboard::NotBuilt`].
    pub fn embedded_or_not_built(lookup: EmbeddedLookup) -> Dashboard {
        if lookup("index.html").is_some() {
            Dashboard::Embedded(lookup)
        } else {
            Dashboard::NotBuilt
        }
    }
}

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Agent Lightning</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}
code{background:#8882;padding:.1rem .3rem;border-radius:4px}</style></head>
<body><h1>Agent Lightning collector is running</h1>
<p>The dashboard has not been built, so there is nothing to show here yet. The API works:
try <code>GET /health</code>.</p>
<p>Build the dashboard with <code>npm --prefix dashboard ci &amp;&amp; npm --prefix dashboard run build</code>
and rebuild the binary, which then carries it (or start everything with <code>./scripts/run</code>).
Point the collector at another build with <code>--dashboard-dir</code> or
<code>LIGHTNING_DASHBOARD_DIR</code>.</p></body></html>"#;

const NOT_BUILT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

pub fn router(dashboard: &Dashboard) -> Router<crate::AppState> {
    match dashboard {
        Dashboard::Dir(dir) if dir.join("index.html").is_file() => {
            let index = dir.join("index.html");
            // No directory redirects: ServeDir would answer `//assets` with `Location: //assets/`,
            // which a browser reads as another host. Directories get the app like any other path.
            Router::new().fallback_service(
                ServeDir::new(dir)
                    .append_index_html_on_directories(false)
                    .fallback(ServeFile::new(index)),
            )
        }
        Dashboard::Dir(dir) => {
            tracing::warn!("dashboard not built: {} has no index.html", dir.display());
            not_built()
        }
        Dashboard::Embedded(lookup) => {
            let lookup = *lookup;
            Router::new().fallback_service(get(move |OriginalUri(uri): OriginalUri| async move {
                serve_embedded(lookup, uri.path())
            }))
        }
        Dashboard::NotBuilt => not_built(),
    }
}

/// `Cache-Control` of the build's `assets/` files: Vite names them by content hash, so a
/// name never stands for other bytes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The file at `path`, else `index.html` (the app routes the path itself), as `ServeDir` with
/// its fallback does for a directory. Hashed assets may be cached for good; anything else
/// (`index.html`, which names the current assets) is revalidated on every load.
fn serve_embedded(lookup: EmbeddedLookup, path: &str) -> Response {
    let relative = path.trim_start_matches('/');
    let found = (!relative.is_empty() && !relative.ends_with('/'))
        .then(|| lookup(relative))
        .flatten();
    let immutable = found.is_some() && relative.starts_with("assets/");
    let Some(file) = found.or_else(|| lookup("index.html")) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let content_type = HeaderValue::from_str(&file.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let cache = if immutable { IMMUTABLE } else { "no-cache" };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        file.data.into_owned(),
    )
        .into_response()
}

fn not_built() -> Router<crate::AppState> {
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
