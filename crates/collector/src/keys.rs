//! Who may call what: Bearer keys with a [`Scope`], the scope each route needs, and throttling
//! of failed attempts per client address.
//!
//! Keys are the admin key (`API_KEY`, or the one generated into the data directory) and the
//! named keys in the store (`lightning keys create`, `POST /api/keys`), looked up by the SHA-256
//! of the presented secret. Every route's scope is declared where the route is registered
//! ([`scoped`] in `lib.rs`); the declaration is written into the OpenAPI document as the
//! operation's `security` requirement, and [`RouteScopes`] is read back from that document, so
//! the router, the document and the check cannot disagree. A documented route without a
//! declaration needs `admin`.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, MatchedPath, Path, Request, State},
    http::{header, Method, StatusCode},
    middleware::Next,
    response::Response,
    Json,
};
use lightning_core::{ApiKeyInfo, CreateKeyRequest, CreatedKey, NewApiKey, Scope};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::router::UtoipaMethodRouter;

use crate::{
    error::{ApiError, ApiResult},
    extract::JsonBody,
    openapi::{ErrorBody, SuccessResponse},
    AppState,
};

/// Shortest configured key accepted, and shortest accepted without a warning.
pub const MIN_KEY_LEN: usize = 16;
pub const RECOMMENDED_KEY_LEN: usize = 32;

/// The window over which failed attempts are counted per address.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once; past it, new addresses share one bucket.
const MAX_TRACKED: usize = 10_000;
/// How long a looked-up key is trusted before the store is asked again (revocation through
/// this collector's API takes effect at once; through another collector or the CLI within this).
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(10);
const MAX_CACHED: usize = 10_000;

/// Lowercase hex SHA-256 of a secret: what the store keeps.
pub fn hash_key(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random key (`lk_` and 48 hex digits: 192 bits) ready to store; the secret is returned
/// once, here, and never stored.
pub fn generate_key(name: &str, scope: Scope) -> Result<(String, NewApiKey), ApiError> {
    use rand::RngCore;
    lightning_core::keys::validate_key_name(name)?;
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret: String = std::iter::once("lk_".to_string())
        .chain(bytes.iter().map(|b| format!("{b:02x}")))
        .collect();
    let key = NewApiKey {
        info: ApiKeyInfo {
            id: uuid::Uuid::now_v7(),
            name: name.to_string(),
            scope,
            prefix: secret[..11].to_string(),
            created_at: lightning_core::time::normalize(chrono::Utc::now()),
            revoked_at: None,
        },
        hash: hash_key(&secret),
    };
    Ok((secret, key))
}

/// Refuses a configured key shorter than [`MIN_KEY_LEN`]; returns a warning for one shorter
/// than [`RECOMMENDED_KEY_LEN`].
pub fn check_configured_key(key: &str, source: &str) -> Result<Option<String>, String> {
    let len = key.chars().count();
    if len < MIN_KEY_LEN {
        return Err(format!(
            "{source} is {len} characters long; keys shorter than {MIN_KEY_LEN} are refused \
             (generate one with: openssl rand -hex 24)"
        ));
    }
    Ok((len < RECOMMENDED_KEY_LEN).then(|| {
        format!(
            "{source} is only {len} characters long; use at least {RECOMMENDED_KEY_LEN} \
             (e.g. openssl rand -hex 24)"
        )
    }))
}

/// The admin key, kept as a digest so comparison time depends on neither content nor length.
#[derive(Clone)]
pub struct ApiKey([u8; 32]);

impl ApiKey {
    pub fn new(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    pub fn matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        self.0.ct_eq(&digest).into()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Declares the scope a route needs: written into the OpenAPI operations as
/// `security: [{"bearer": ["<scope>"]}]`, which is where the check reads it from.
pub fn scoped<S>(scope: Scope, mut route: UtoipaMethodRouter<S>) -> UtoipaMethodRouter<S> {
    use utoipa::openapi::security::SecurityRequirement;
    for item in route.1.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            op.security = Some(vec![SecurityRequirement::new("bearer", [scope.as_str()])]);
        }
    }
    route
}

/// What a matched route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key (e.g. `/health`).
    Public,
    /// Any valid key: the answer will be 404 or 405, which reveals nothing a key holder could
    /// not read in the OpenAPI document.
    AnyKey,
    Scope(Scope),
}

/// `(path template, method) -> scope`, read from the OpenAPI document.
#[derive(Debug, Default, Clone)]
pub struct RouteScopes {
    routes: HashMap<String, HashMap<String, Access>>,
}

impl RouteScopes {
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        let doc = serde_json::to_value(doc).unwrap_or_default();
        let mut routes: HashMap<String, HashMap<String, Access>> = HashMap::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (path, item) in paths {
                let Some(item) = item.as_object() else {
                    continue;
                };
                let methods = routes.entry(path.clone()).or_default();
                for (method, op) in item {
                    methods.insert(method.to_ascii_uppercase(), access_of(&op["security"]));
                }
            }
        }
        Self { routes }
    }

    /// Adds a route the document does not list (the document's own route).
    pub fn insert(&mut self, method: Method, path: &str, scope: Scope) {
        self.routes
            .entry(path.to_string())
            .or_default()
            .insert(method.as_str().to_string(), Access::Scope(scope));
    }

    /// What `method` on the route template `path` needs. `HEAD` needs what `GET` needs: the
    /// router answers it with the `GET` handler (and that answer's `Content-Length`), though the
    /// document lists only `GET`. Other unknown methods on a known path (405) and the `/api`
    /// catch-all (404) need any key; any other route needs `admin`.
    pub fn access(&self, method: &Method, path: Option<&str>) -> Access {
        let Some(path) = path else {
            return Access::AnyKey;
        };
        match self.routes.get(path) {
            Some(methods) => methods
                .get(method.as_str())
                .or_else(|| {
                    (method == Method::HEAD)
                        .then(|| methods.get(Method::GET.as_str()))
                        .flatten()
                })
                .copied()
                .unwrap_or(Access::AnyKey),
            None if path == "/api" || path == "/api/{*rest}" => Access::AnyKey,
            None => Access::Scope(Scope::Admin),
        }
    }

    /// Every `(method, path, access)` known, for tests and docs.
    pub fn entries(&self) -> Vec<(String, String, Access)> {
        let mut out: Vec<_> = self
            .routes
            .iter()
            .flat_map(|(path, methods)| {
                methods
                    .iter()
                    .map(move |(method, access)| (method.clone(), path.clone(), *access))
            })
            .collect();
        out.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        out
    }
}

/// The scope in an operation's `security`: `[{}]` is public, `[{"bearer": ["read"]}]` needs
/// `read`; anything else (no declaration) needs `admin`.
fn access_of(security: &serde_json::Value) -> Access {
    if security == &serde_json::json!([{}]) {
        return Access::Public;
    }
    let declared = security
        .as_array()
        .and_then(|reqs| reqs.first())
        .and_then(|req| req["bearer"].as_array())
        .and_then(|scopes| scopes.first())
        .and_then(|s| s.as_str())
        .and_then(Scope::parse);
    Access::Scope(declared.unwrap_or(Scope::Admin))
}

/// Keys, route scopes, the lookup cache and the failure throttle of one collector.
pub struct Authenticator {
    admin: ApiKey,
    pub routes: RouteScopes,
    /// Failed attempts one address may make per window; past them its failing attempts are
    /// answered 429 instead of 401 (valid keys from it still proceed).
    max_failures: u32,
    cache: Mutex<HashMap<String, (Scope, Instant)>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Why a request was refused.
enum Refusal {
    Missing,
    Invalid,
    Throttled(Duration),
}

impl Authenticator {
    pub fn new(admin: ApiKey, routes: RouteScopes, max_failures: u32) -> Self {
        Self {
            admin,
            routes,
            max_failures: max_failures.max(1),
            cache: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// Forgets every looked-up key (after a revocation).
    pub fn clear_cache(&self) {
        self.cache.lock().expect("key cache").clear();
    }

    /// The throttle bucket of an address: IPv6 clients are grouped by /64 (one host owns one).
    fn bucket(addr: Option<IpAddr>) -> IpAddr {
        match addr {
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            Some(v4) => v4,
            None => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        }
    }

    /// How long this address must wait, if it has failed too often.
    fn throttled(&self, addr: IpAddr) -> Option<Duration> {
        let failures = self.failures.lock().expect("failures");
        let (count, since) = failures.get(&addr)?;
        let left = FAILURE_WINDOW.checked_sub(since.elapsed())?;
        (*count >= self.max_failures).then_some(left)
    }

    fn record_failure(&self, addr: IpAddr) {
        let mut failures = self.failures.lock().expect("failures");
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&addr) {
            failures.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        let addr = if failures.len() >= MAX_TRACKED && !failures.contains_key(&addr) {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            addr
        };
        let entry = failures.entry(addr).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// The scope of a presented secret: the admin key, a cached lookup, or the store.
    async fn scope_of(
        &self,
        store: &dyn lightning_store::Store,
        secret: &str,
    ) -> ApiResult<Option<Scope>> {
        if self.admin.matches(secret) {
            return Ok(Some(Scope::Admin));
        }
        // Only what could be a generated key reaches the store.
        let plausible = secret.len() == 51
            && secret.starts_with("lk_")
            && secret[3..].bytes().all(|b| b.is_ascii_hexdigit());
        if !plausible {
            return Ok(None);
        }
        let hash = hash_key(secret);
        if let Some((scope, at)) = self.cache.lock().expect("key cache").get(&hash) {
            if at.elapsed() < KEY_CACHE_TTL {
                return Ok(Some(*scope));
            }
        }
        let found = store.find_key(&hash).await?.map(|k| k.scope);
        let mut cache = self.cache.lock().expect("key cache");
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        match found {
            Some(scope) => {
                cache.insert(hash, (scope, Instant::now()));
            }
            None => {
                cache.remove(&hash);
            }
        }
        Ok(found)
    }

    async fn authenticate(
        &self,
        store: &dyn lightning_store::Store,
        addr: Option<IpAddr>,
        authorization: Option<&str>,
    ) -> Result<Scope, Result<Refusal, ApiError>> {
        // Only failing attempts are throttled: a valid key is always checked (the admin key in
        // constant time, others by their digest) and proceeds, so a keyless or misconfigured
        // client sharing an address (loopback agents, a reverse proxy) cannot lock out the
        // clients that hold a key.
        let bucket = Self::bucket(addr);
        let refuse = |refusal: Refusal| match self.throttled(bucket) {
            Some(wait) => Refusal::Throttled(wait),
            None => {
                self.record_failure(bucket);
                refusal
            }
        };
        let Some(secret) = authorization.and_then(bearer_token) else {
            return Err(Ok(refuse(Refusal::Missing)));
        };
        match self.scope_of(store, secret).await {
            Ok(Some(scope)) => Ok(scope),
            Ok(None) => Err(Ok(refuse(Refusal::Invalid))),
            Err(e) => Err(Err(e)),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 9110 §11.1) and may be followed by several spaces.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim_start().split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_matches([' ', '\t']);
    (!token.is_empty() && !token.contains([' ', '\t'])).then_some(token)
}

/// Requires a key allowed to call the matched route, on every route it wraps: 401 (with
/// `WWW-Authenticate`) without a valid key, 403 when the key's scope does not cover the route,
/// 429 after too many failures from one address. It runs before 404 and 405 are decided.
pub async fn require_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let auth = &state.auth;
    let access = auth.routes.access(
        req.method(),
        req.extensions().get::<MatchedPath>().map(|p| p.as_str()),
    );
    if access == Access::Public {
        return Ok(next.run(req).await);
    }
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let scope = match auth.authenticate(state.store.as_ref(), addr, header).await {
        Ok(scope) => scope,
        Err(Ok(Refusal::Missing | Refusal::Invalid)) => return Err(ApiError::Unauthorized),
        Err(Ok(Refusal::Throttled(wait))) => {
            return Err(ApiError::TooManyRequests {
                retry_after: wait.as_secs().max(1),
            })
        }
        Err(Err(e)) => return Err(e),
    };
    if let Access::Scope(required) = access {
        if !scope.allows(required) {
            return Err(ApiError::Forbidden(format!(
                "this key has scope {scope}; {} {} needs scope {required}",
                req.method(),
                req.extensions()
                    .get::<MatchedPath>()
                    .map_or("this route", |p| p.as_str())
            )));
        }
    }
    Ok(next.run(req).await)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeysResponse {
    pub keys: Vec<ApiKeyInfo>,
}

/// Creates a named key with a scope. The secret is in this answer only: it is stored hashed.
#[utoipa::path(post, path = "/api/keys", tag = "keys", request_body = CreateKeyRequest,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn create_key(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let (secret, key) = generate_key(&body.name, body.scope)?;
    let info = state.store.create_key(&key).await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { info, key: secret })))
}

/// Every key (never the secrets), revoked ones included.
#[utoipa::path(get, path = "/api/keys", tag = "keys",
    responses((status = 200, body = KeysResponse), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_keys(State(state): State<AppState>) -> ApiResult<Json<KeysResponse>> {
    Ok(Json(KeysResponse {
        keys: state.store.list_keys().await?,
    }))
}

/// Revokes a key by id or name; it stops working at once on this collector, and within
/// 10 seconds on others sharing the database.
#[utoipa::path(delete, path = "/api/keys/{key}", tag = "keys",
    params(("key" = String, Path, description = "Key id or name")),
    responses((status = 200, body = SuccessResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Json<SuccessResponse>> {
    if key.is_empty() || key.len() > 64 {
        return Err(ApiError::BadRequest(
            "key: expected a key id or name (1 to 64 characters)".into(),
        ));
    }
    crate::extract::check_text("key", &key)?;
    let at = lightning_core::time::normalize(chrono::Utc::now());
    state.store.revoke_key(&key, at).await?;
    state.auth.clear_cache();
    Ok(Json(SuccessResponse::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_exact_key() {
        let key = ApiKey::new("secret");
        assert!(key.matches("secret"));
        assert!(!key.matches("secret "));
        assert!(!key.matches("Secret"));
        assert!(!key.matches(""));
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for (header, token) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER   abc  ", Some("abc")),
            ("BeArEr\tabc", Some("abc")),
            ("Bearer ", None),
            ("Bearer", None),
            ("Basic abc", None),
            ("Bearerabc", None),
            ("Bearer a b", None),
        ] {
            assert_eq!(bearer_token(header), token, "{header:?}");
        }
    }

    #[test]
    fn short_configured_keys_are_refused_or_warned_about() {
        assert!(check_configured_key("a", "API_KEY")
            .unwrap_err()
            .contains("shorter than 16"));
        assert!(check_configured_key(&"x".repeat(15), "API_KEY").is_err());
        let warning = check_configured_key(&"x".repeat(16), "API_KEY").unwrap();
        assert!(warning.unwrap().contains("at least 32"));
        assert_eq!(check_configured_key(&"x".repeat(32), "API_KEY"), Ok(None));
    }

    #[test]
    fn generated_keys_are_random_and_stored_hashed() {
        let (a, ka) = generate_key("agent-1", Scope::Ingest).unwrap();
        let (b, _) = generate_key("agent-1", Scope::Ingest).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("lk_") && a.len() == 51, "{a}");
        assert_eq!(ka.hash, hash_key(&a));
        assert_eq!(ka.hash.len(), 64);
        assert!(!ka.hash.contains(&a[3..]));
        assert_eq!(ka.info.prefix, a[..11]);
        assert!(generate_key("bad name", Scope::Read).is_err());
    }

    #[test]
    fn failures_are_throttled_per_address() {
        let auth = Authenticator::new(ApiKey::new("k"), RouteScopes::default(), 20);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..20 {
            assert!(auth.throttled(a).is_none());
            auth.record_failure(a);
        }
        let wait = auth.throttled(a).expect("throttled");
        assert!(wait <= FAILURE_WINDOW && wait > FAILURE_WINDOW / 2);
        assert!(auth.throttled(b).is_none(), "other addresses are not");
        // IPv6 addresses of one /64 share a bucket.
        let v6 = |s: &str| Authenticator::bucket(Some(s.parse().unwrap()));
        assert_eq!(v6("2001:db8::1"), v6("2001:db8::ffff:1"));
        assert_ne!(v6("2001:db8::1"), v6("2001:db8:0:1::1"));
    }
}
