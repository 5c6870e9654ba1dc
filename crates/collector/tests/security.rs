//! Keys, scopes and input rules over HTTP: a real collector on a random port over real SQLite
//! and PostgreSQL. Each test states its bound.

mod common;

use common::{send, Options, Server, KEY};
use lightning_collector::{keys, Limits};
use lightning_core::Scope;
use lightning_store::testing::TestStore;
use reqwest::Method;
use serde_json::{json, Value};

lightning_store::test_on_both_backends!(
    every_route_of_the_openapi_document_enforces_its_scope_for_each_key,
    keys_are_created_once_listed_without_secrets_stored_hashed_and_revoked_at_once,
    nul_and_control_characters_in_every_query_parameter_get_400_naming_it,
    export_failures_are_errors_not_empty_answers,
    trajectory_detail_pages_its_steps,
);

fn concrete(path: &str) -> String {
    path.replace("{id}", "0190f0f0-0000-7000-8000-000000000000")
        .replace("{agentId}", "some-agent")
        .replace("{version}", "1")
        .replace("{key}", "no-such-key")
}

/// `(method, path, operation)` of every operation in the generated document.
fn operations() -> Vec<(Method, String, Value)> {
    let doc = serde_json::to_value(lightning_collector::openapi_document()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((
                method.to_uppercase().parse().unwrap(),
                path.clone(),
                op.clone(),
            ));
        }
    }
    out
}

/// The scope an operation declares; `None` for public ones. A protected operation without a
/// declaration is a test failure: every route states its scope where it is registered.
fn declared_scope(method: &Method, path: &str, op: &Value) -> Option<Scope> {
    if op["security"] == json!([{}]) {
        return None;
    }
    let scopes = op["security"][0]["bearer"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path} declares no scope: {}", op["security"]));
    assert_eq!(scopes.len(), 1, "{method} {path}: one scope per route");
    Some(Scope::parse(scopes[0].as_str().unwrap()).expect("known scope"))
}

async fn key_of(store: &TestStore, scope: Scope) -> String {
    let (secret, key) = keys::generate_key(&format!("test-{scope}"), scope).unwrap();
    store.store.create_key(&key).await.unwrap();
    secret
}

async fn every_route_of_the_openapi_document_enforces_its_scope_for_each_key(store: &TestStore) {
    let s = Server::start(store.store.clone()).await;
    let keys = [
        (Scope::Ingest, key_of(store, Scope::Ingest).await),
        (Scope::Read, key_of(store, Scope::Read).await),
        (Scope::Admin, key_of(store, Scope::Admin).await),
        (Scope::Admin, KEY.to_string()), // API_KEY is an admin key
    ];
    let mut checked = 0;
    let mut checked_head = 0;
    let mut expected_table = Vec::new();
    for (method, path, op) in operations() {
        let Some(required) = declared_scope(&method, &path, &op) else {
            assert_eq!(path, "/health", "only /health is public");
            continue;
        };
        expected_table.push(format!("{method} {path} {required}"));
        for (scope, secret) in &keys {
            let response = s
                .client
                .request(method.clone(), format!("{}{}", s.base, concrete(&path)))
                .bearer_auth(secret)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            if scope.allows(required) {
                assert!(
                    status != 401 && status != 403,
                    "{method} {path} refused a {scope} key: {status}"
                );
            } else {
                let body: Value = response.json().await.unwrap();
                assert_eq!(status, 403, "{method} {path} with a {scope} key: {body}");
                let message = body["error"].as_str().unwrap();
                assert!(
                    message.contains(&format!("needs scope {required}")),
                    "{message}"
                );
            }
            checked += 1;
            // The router answers HEAD with the GET handler (and its Content-Length), so HEAD
            // must need exactly what GET needs: no size or existence oracle for a lesser key.
            if method == Method::GET {
                let head = s
                    .client
                    .head(format!("{}{}", s.base, concrete(&path)))
                    .bearer_auth(secret)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                if scope.allows(required) {
                    assert!(
                        head != 401 && head != 403,
                        "HEAD {path} refused a {scope} key: {head}"
                    );
                } else {
                    assert_eq!(head, 403, "HEAD {path} with a {scope} key");
                }
                checked_head += 1;
            }
        }
        if method == Method::GET {
            let head = s
                .client
                .head(format!("{}{}", s.base, concrete(&path)))
                .send()
                .await
                .unwrap();
            assert_eq!(head.status(), 401, "HEAD {path} without a key");
        }
        // Without a key: 401 with a challenge, before anything else is decided.
        let response = s
            .client
            .request(method.clone(), format!("{}{}", s.base, concrete(&path)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"lightning\""
        );
    }
    assert!(checked >= 80, "{checked}");
    assert!(checked_head >= 40, "{checked_head}");
    // HEAD on the admin and read routes the issue names, with an ingest key: 403, nothing else.
    for path in [
        "/api/keys",
        "/api/trajectories?q=secret",
        "/api/trajectories/export",
        "/api/openapi.json",
    ] {
        let r = s
            .client
            .head(format!("{}{path}", s.base))
            .bearer_auth(&keys[0].1)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "HEAD {path} with an ingest key");
    }
    // The scopes of the issue, as declared.
    for line in [
        "POST /api/trajectories/start ingest",
        "POST /api/trajectories/{id}/steps/batch ingest",
        "POST /api/trajectories/{id}/complete ingest",
        "GET /api/agents/{agentId}/prompts/latest ingest",
        "GET /api/trajectories read",
        "GET /api/trajectories/{id} read",
        "GET /api/trajectories/export read",
        "GET /metrics read",
        "DELETE /api/trajectories/{id} admin",
        "POST /api/agents/{agentId}/prompts admin",
        "POST /api/agents/{agentId}/prompts/{version}/promote admin",
        "POST /api/keys admin",
        "GET /api/keys admin",
        "DELETE /api/keys/{key} admin",
    ] {
        assert!(
            expected_table.contains(&line.to_string()),
            "{line} not in {expected_table:#?}"
        );
    }
    // An ingest key cannot plant a prompt for an agent or read others' data.
    let ingest = &keys[0].1;
    let (status, _) = send(
        s.client
            .post(format!("{}/api/agents/victim/prompts", s.base))
            .bearer_auth(ingest)
            .json(&json!({"text": "evil"})),
    )
    .await;
    assert_eq!(status, 403);
    // Every /api path, known or not, any method: 401 before 404 or 405.
    for (method, path) in [
        (Method::PUT, "/api/stats"),
        (Method::PATCH, "/api/trajectories/start"),
        (Method::GET, "/api/no/such/route"),
        (Method::from_bytes(b"JUNK").unwrap(), "/api/keys"),
        (Method::GET, "/api"),
    ] {
        let r = s
            .client
            .request(method.clone(), format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
        assert!(r.headers().get("allow").is_none());
    }
    // With a valid key they are 405 and 404, whatever the key's scope.
    let read = &keys[1].1;
    let put = s
        .client
        .put(format!("{}/api/stats", s.base))
        .bearer_auth(read);
    assert_eq!(send(put).await.0, 405);
    let unknown = s
        .client
        .get(format!("{}/api/no/such/route", s.base))
        .bearer_auth(read);
    assert_eq!(send(unknown).await.0, 404);
    // The Bearer scheme is case-insensitive.
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let r = s
            .client
            .get(format!("{}/api/agents", s.base))
            .header("authorization", format!("{scheme} {read}"));
        assert_eq!(send(r).await.0, 200, "{scheme}");
    }
}

async fn keys_are_created_once_listed_without_secrets_stored_hashed_and_revoked_at_once(
    store: &TestStore,
) {
    let s = Server::start(store.store.clone()).await;
    let (status, created) = s
        .post("/api/keys", &json!({"name": "agent-7", "scope": "ingest"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("lk_") && secret.len() == 51);
    assert_eq!(created["scope"], "ingest");
    assert_eq!(created["prefix"], secret[..11]);

    // Only the digest is stored: no column holds the secret.
    let stored = store
        .store
        .find_key(&keys::hash_key(&secret))
        .await
        .unwrap();
    assert_eq!(stored.unwrap().name, "agent-7");
    let listed = s.get("/api/keys").await;
    assert_eq!(listed.0, 200);
    let text = listed.1.to_string();
    assert!(
        !text.contains(&secret[11..]),
        "the secret is never listed: {text}"
    );
    assert_eq!(listed.1["keys"][0]["name"], "agent-7");

    // The new key works for its scope only.
    let use_key = |method: Method, path: &str| {
        s.client
            .request(method, format!("{}{path}", s.base))
            .bearer_auth(&secret)
    };
    let (status, started) =
        send(use_key(Method::POST, "/api/trajectories/start").json(&json!({"agentId": "a"}))).await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(send(use_key(Method::GET, "/api/trajectories")).await.0, 403);

    // Names are unique among keys in use; bad input is 400 naming the field.
    let (status, body) = s
        .post("/api/keys", &json!({"name": "agent-7", "scope": "read"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("agent-7"));
    let (status, body) = s
        .post("/api/keys", &json!({"name": "a b", "scope": "read"}))
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap().starts_with("name:")),
        (400, true),
        "{body}"
    );
    let (status, _) = s
        .post("/api/keys", &json!({"name": "x", "scope": "root"}))
        .await;
    assert_eq!(status, 400);

    // Revocation takes effect at once on this collector.
    let (status, _) = send(s.request(Method::DELETE, "/api/keys/agent-7")).await;
    assert_eq!(status, 200);
    let (status, body) =
        send(use_key(Method::POST, "/api/trajectories/start").json(&json!({"agentId": "a"}))).await;
    assert_eq!((status, body), (401, json!({"error": "Unauthorized"})));
    assert_eq!(
        send(s.request(Method::DELETE, "/api/keys/agent-7")).await.0,
        404
    );
    let listed = s.get("/api/keys").await.1;
    assert!(listed["keys"][0]["revokedAt"].is_string(), "{listed}");
    // The name can be reused once revoked.
    let (status, _) = s
        .post("/api/keys", &json!({"name": "agent-7", "scope": "read"}))
        .await;
    assert_eq!(status, 201);
}

/// Every query parameter of every operation in the document, with NUL, other control
/// characters and invalid UTF-8: 400 naming the parameter, never 500, never a match-all.
async fn nul_and_control_characters_in_every_query_parameter_get_400_naming_it(store: &TestStore) {
    let s = Server::start(store.store.clone()).await;
    let id = s
        .start_trajectory(&json!({"agentId": "a", "taskType": "t"}))
        .await;
    let mut checked = 0;
    for (method, path, op) in operations() {
        let params: Vec<String> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "query")
                    .map(|p| p["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        for param in params {
            for bad in [
                "%00", "a%00zzz", "%01", "x%0Ay", "%1F", "%7F", "%C2%80", "%FF", "%C3",
            ] {
                let url = format!(
                    "{}{}?{param}={bad}",
                    s.base,
                    concrete(&path).replace("0190f0f0-0000-7000-8000-000000000000", &id)
                );
                let req = s
                    .client
                    .request(method.clone(), url)
                    .bearer_auth(KEY)
                    .header("content-type", "application/json")
                    .body("{}");
                let (status, body) = send(req).await;
                assert_eq!(status, 400, "{method} {path} {param}={bad}: {body}");
                let message = body["error"].as_str().unwrap();
                assert!(
                    message.contains(&format!("invalid query parameter {param}:")),
                    "{method} {path} {param}={bad}: {message}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 9 * 15, "{checked}");
    // Ordinary text still matches as before.
    let (status, page) = s.get("/api/trajectories?q=t&agentId=a").await;
    assert_eq!(
        (status, page["trajectories"].as_array().unwrap().len()),
        (200, 1)
    );
    let (status, page) = s.get("/api/trajectories?q=zzz").await;
    assert_eq!(
        (status, page["trajectories"].as_array().unwrap().len()),
        (200, 0)
    );
}

async fn export_failures_are_errors_not_empty_answers(store: &TestStore) {
    let s = Server::start(store.store.clone()).await;
    s.start_trajectory(&json!({"agentId": "a"})).await;
    let r = s
        .request(Method::GET, "/api/trajectories/export?agentId=%00")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .request(Method::GET, "/api/trajectories/export?agentId=a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().lines().count(), 1);
}

async fn trajectory_detail_pages_its_steps(store: &TestStore) {
    let s = Server::start(store.store.clone()).await;
    let id = s.start_trajectory(&json!({"agentId": "a"})).await;
    let steps: Vec<Value> = (0..1200)
        .map(|n| json!({"stepNumber": n, "toolName": "Read"}))
        .collect();
    let (status, _) = s
        .post(
            &format!("/api/trajectories/{id}/steps/batch"),
            &json!({"steps": steps}),
        )
        .await;
    assert_eq!(status, 200);
    // Default 500 steps a page; nextStepsAfter leads through the rest, in order.
    let (status, first) = s.get(&format!("/api/trajectories/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(first["steps"].as_array().unwrap().len(), 500);
    assert_eq!(first["nextStepsAfter"], 499);
    assert_eq!(
        first["id"], id,
        "the trajectory's fields stay at the top level"
    );
    let mut seen: Vec<i64> = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let query = after.map_or(String::new(), |a| format!("&stepsAfter={a}"));
        let (status, page) = s
            .get(&format!("/api/trajectories/{id}?stepsLimit=400{query}"))
            .await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["stepNumber"].as_i64().unwrap()),
        );
        match page["nextStepsAfter"].as_i64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, (0..1200).collect::<Vec<_>>());
    for bad in ["stepsLimit=0", "stepsLimit=2001", "stepsAfter=x"] {
        let (status, body) = s.get(&format!("/api/trajectories/{id}?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, page) = s
        .get(&format!("/api/trajectories/{id}?stepsLimit=2000"))
        .await;
    assert_eq!((status, page["nextStepsAfter"].clone()), (200, Value::Null));
}

/// Failed attempts are throttled per client address: past the limit (the default, 20) the
/// address's failing requests get 429 with Retry-After for the rest of the minute, while requests
/// with a valid key (the admin key, a stored key) still get 200; another address is unaffected.
#[tokio::test]
async fn failed_attempts_are_throttled_per_address() {
    let store = TestStore::sqlite().await;
    let read_key = key_of(&store, Scope::Read).await;
    let s = Server::start_with(
        store.store.clone(),
        Options {
            limits: Limits {
                auth_failures_per_minute: Limits::default().auth_failures_per_minute,
                ..Limits::default()
            },
            ..Default::default()
        },
    )
    .await;
    assert_eq!(Limits::default().auth_failures_per_minute, 20);
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(Some(ip.parse().unwrap()))
            .build()
            .unwrap()
    };
    let a = from("127.0.0.1");
    for i in 0..20 {
        let r = a
            .get(format!("{}/api/agents", s.base))
            .bearer_auth(format!("wrong-key-0123456789-{i}"));
        assert_eq!(send(r).await.0, 401, "failure {i}");
    }
    // Past the limit: a bad key, a key-shaped guess and no key at all get 429 ...
    let r = a
        .get(format!("{}/api/agents", s.base))
        .bearer_auth("wrong-key-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let guess = format!("lk_{}", "0".repeat(48));
    let r = a.get(format!("{}/api/agents", s.base)).bearer_auth(&guess);
    assert_eq!(send(r).await.0, 429);
    let (status, body) = send(a.get(format!("{}/api/agents", s.base))).await;
    assert_eq!(status, 429, "{body}");
    // ... while valid keys from the same address are still served, however many times.
    for _ in 0..3 {
        let r = a.get(format!("{}/api/agents", s.base)).bearer_auth(KEY);
        assert_eq!(
            send(r).await.0,
            200,
            "admin key while the address is throttled"
        );
        let r = a
            .get(format!("{}/api/agents", s.base))
            .bearer_auth(&read_key);
        assert_eq!(
            send(r).await.0,
            200,
            "stored key while the address is throttled"
        );
    }
    // A valid key of the wrong scope is still 403, not 429: it is a key, not a guess.
    let ingest_key = key_of(&store, Scope::Ingest).await;
    let r = a
        .get(format!("{}/api/agents", s.base))
        .bearer_auth(&ingest_key);
    assert_eq!(send(r).await.0, 403);
    let r = a
        .get(format!("{}/api/agents", s.base))
        .bearer_auth("wrong-key-0123456789");
    assert_eq!(send(r).await.0, 429, "still throttled for bad keys");
    // Another loopback address is its own client: a bad key there is 401.
    let b = from("127.0.0.2");
    let r = b.get(format!("{}/api/agents", s.base)).bearer_auth(KEY);
    assert_eq!(send(r).await.0, 200);
    let r = b
        .get(format!("{}/api/agents", s.base))
        .bearer_auth("wrong-key-0123456789");
    assert_eq!(send(r).await.0, 401);
    // /health needs no key and is never throttled.
    let r = a.get(format!("{}/health", s.base));
    assert_eq!(send(r).await.0, 200);
}

/// API answers are never cached; every answer carries the browser hardening headers; the
/// dashboard never redirects `//host`-style paths to another host.
#[tokio::test]
async fn security_headers_and_no_open_redirect() {
    let store = TestStore::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<html>dashboard</html>").unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/app.js"), "1").unwrap();
    let s = Server::start_with(
        store.store.clone(),
        Options {
            dashboard_dir: Some(dir.path().into()),
            ..Default::default()
        },
    )
    .await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/", "/api/agents", "/health", "/api/nope", "/assets/app.js"] {
        let r = no_redirects
            .get(format!("{}{path}", s.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"));
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-frame-options"], "DENY");
        if path.starts_with("/api") || path == "/health" {
            assert_eq!(h["cache-control"], "no-store", "{path}");
        }
    }
    for path in [
        "//assets",
        "//evil.example",
        "//assets/",
        "/assets",
        "///evil.example/x",
    ] {
        let r = no_redirects
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert!(
            r.headers().get("location").is_none(),
            "{path} redirects to {:?}",
            r.headers().get("location")
        );
        assert_eq!(r.status(), 200, "{path}");
    }
}

/// The route-scope table: a documented route without a declaration needs admin, and wrong
/// methods or unknown /api paths need only a valid key (they answer 405/404).
#[test]
fn undeclared_routes_default_to_admin() {
    let mut doc = lightning_collector::openapi_document();
    let undeclared = utoipa::openapi::path::PathItem::new(
        utoipa::openapi::HttpMethod::Get,
        utoipa::openapi::path::Operation::new(),
    );
    doc.paths.paths.insert("/api/brand-new".into(), undeclared);
    let table = keys::RouteScopes::from_openapi(&doc);
    assert_eq!(
        table.access(&Method::GET, Some("/api/brand-new")),
        keys::Access::Scope(Scope::Admin)
    );
    assert_eq!(
        table.access(&Method::GET, Some("/api/not-documented")),
        keys::Access::Scope(Scope::Admin)
    );
    assert_eq!(
        table.access(&Method::GET, Some("/api/{*rest}")),
        keys::Access::AnyKey
    );
    assert_eq!(
        table.access(&Method::PUT, Some("/api/stats")),
        keys::Access::AnyKey
    );
    assert_eq!(
        table.access(&Method::GET, Some("/api/stats")),
        keys::Access::Scope(Scope::Read)
    );
    assert_eq!(
        table.access(&Method::GET, Some("/health")),
        keys::Access::Public
    );
    // HEAD is answered by the GET handler, so it needs what GET needs.
    for (path, access) in [
        ("/api/stats", keys::Access::Scope(Scope::Read)),
        ("/api/keys", keys::Access::Scope(Scope::Admin)),
        ("/api/brand-new", keys::Access::Scope(Scope::Admin)),
        ("/health", keys::Access::Public),
        // No GET on the route: 405, like any other wrong method.
        ("/api/trajectories/start", keys::Access::AnyKey),
    ] {
        assert_eq!(
            table.access(&Method::HEAD, Some(path)),
            access,
            "HEAD {path}"
        );
    }
}

/// The JSON memory budget under contention cannot deadlock: 16 requests of 1 MiB each (a
/// declared size the budget fits only 4 of) send half their body, wait until all 16 are
/// connected, then the rest. A request that has read its body never holds its reading
/// reservation while it waits for its parse cost, so every one is accepted; none waits out the
/// budget wait and gets 503 (which all of them did when the reading reservation was held).
#[tokio::test]
async fn the_json_budget_does_not_deadlock_under_contention() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let store = TestStore::sqlite().await;
    let s = Server::start_with(
        store.store.clone(),
        Options {
            limits: Limits {
                json_memory_budget: 4 * 1024 * 1024,
                auth_failures_per_minute: u32::MAX,
                ..Limits::default()
            },
            ..Default::default()
        },
    )
    .await;
    let id = s.start_trajectory(&json!({"agentId": "contention"})).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    const N: usize = 16;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|r| {
            let (addr, id, barrier) = (addr.clone(), id.clone(), barrier.clone());
            tokio::spawn(async move {
                let steps: Vec<Value> = (0..100)
                    .map(|n| {
                        json!({"stepNumber": r * 100 + n, "toolName": "Read",
                        "toolOutput": "o".repeat(11 * 1024)})
                    })
                    .collect();
                let body = serde_json::to_vec(&json!({"steps": steps})).unwrap();
                assert!(body.len() > 1024 * 1024, "{}", body.len());
                let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
                let head = format!(
                    "POST /api/trajectories/{id}/steps/batch HTTP/1.1\r\nHost: x\r\n\
                     Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                c.write_all(head.as_bytes()).await.unwrap();
                let half = body.len() / 2;
                c.write_all(&body[..half]).await.unwrap();
                barrier.wait().await;
                c.write_all(&body[half..]).await.unwrap();
                let mut answer = Vec::new();
                c.read_to_end(&mut answer).await.unwrap();
                let answer = String::from_utf8_lossy(&answer).into_owned();
                let status: u16 = answer[9..12].parse().unwrap();
                (status, answer)
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let (status, answer) = task.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        statuses.push(status);
    }
    assert_eq!(statuses.len(), N);
    let (status, detail) = s
        .get(&format!("/api/trajectories/{id}?stepsLimit=2000"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(detail["steps"].as_array().unwrap().len(), N * 100);
}
