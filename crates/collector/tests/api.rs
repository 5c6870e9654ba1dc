//! The collector over HTTP: a real server on a random port over real SQLite and PostgreSQL.

mod common;

use std::{collections::HashSet, time::Duration};

use common::{send, CuttableProxy, Options, Server, KEY};
use lightning_store::{testing::TestStore, Backend};
use reqwest::Method;
use serde_json::{json, Value};

lightning_store::test_on_both_backends!(
    seed_contract_field_by_field,
    start_is_idempotent_with_client_id,
    step_retries_never_duplicate,
    read_api_lists_filters_pages_and_exports,
    evaluation_runs_are_left_out_of_the_list_and_export_by_default,
    status_and_step_kinds_over_http,
);

async fn server(backend: Backend) -> (TestStore, Server) {
    let store = TestStore::new(backend).await;
    let server = Server::start(store.store.clone()).await;
    (store, server)
}

async fn server_on(store: &TestStore) -> Server {
    Server::start(store.store.clone()).await
}

async fn seed_contract_field_by_field(store: &TestStore) {
    let s = server_on(store).await;
    let (status, body) = s
        .post(
            "/api/trajectories/start",
            &json!({"agentId": "seed-agent", "taskType": "coding", "startTime": "2026-11-26T10:00:00.000Z"}),
        )
        .await;
    assert_eq!(status, 200);
    let obj = body.as_object().unwrap();
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        ["trajectoryId"],
        "exactly the seed's response"
    );
    let id = body["trajectoryId"].as_str().unwrap().to_string();

    let steps = json!({"steps": [
        {"stepNumber": 1, "timestamp": "2026-11-26T10:00:01Z", "toolName": "Read",
         "toolInput": {"file_path": "/a.txt"}, "toolOutput": "hello", "error": null},
        {"stepNumber": 2, "timestamp": "2026-11-26T10:00:02Z", "toolName": "Bash",
         "toolInput": {"command": "false"}, "toolOutput": null, "error": "exit code 1"}
    ]});
    let (status, body) = s
        .post(&format!("/api/trajectories/{id}/steps/batch"), &steps)
        .await;
    assert_eq!((status, body), (200, json!({"success": true})));

    let complete = json!({"success": true, "result": {"summary": "done"}, "error": null,
        "totalSteps": 2, "duration": 2500, "endTime": "2026-11-26T10:00:03Z"});
    let (status, body) = s
        .post(&format!("/api/trajectories/{id}/complete"), &complete)
        .await;
    assert_eq!((status, body), (200, json!({"success": true})));

    let (status, t) = s.get(&format!("/api/trajectories/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(t["id"], json!(id));
    assert_eq!(t["agentId"], "seed-agent");
    assert_eq!(t["taskType"], "coding");
    assert_eq!(t["startTime"], "2026-11-26T10:00:00Z");
    assert_eq!(t["endTime"], "2026-11-26T10:00:03Z");
    assert_eq!(t["status"], "succeeded");
    assert_eq!(t["success"], true);
    assert_eq!(t["result"], json!({"summary": "done"}));
    assert_eq!(t["totalSteps"], 2);
    assert_eq!(t["durationMs"], 2500);
    assert_eq!(
        (t["stepCount"].as_i64(), t["errorCount"].as_i64()),
        (Some(2), Some(1))
    );
    let steps = t["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["stepNumber"], 1);
    assert_eq!(steps[0]["timestamp"], "2026-11-26T10:00:01Z");
    assert_eq!(steps[0]["toolName"], "Read");
    assert_eq!(steps[0]["toolInput"], json!({"file_path": "/a.txt"}));
    assert_eq!(steps[0]["toolOutput"], "hello");
    assert_eq!(steps[0]["error"], Value::Null);
    assert_eq!(steps[1]["error"], "exit code 1");

    // The extensions.
    let id2 = s
        .start_trajectory(
            &json!({"agentId": "a", "sessionId": "s1", "prompt": "do it", "systemPrompt": "sys",
            "promptVersion": "3", "model": "m", "metadata": {"k": "v"}}),
        )
        .await;
    let ext = json!({"steps": [{"stepNumber": 0, "toolName": "Task", "durationMs": 12, "toolUseId": "toolu_1",
        "metadata": {"agent_id": "sub", "agent_type": "Explore"}}]});
    assert_eq!(
        s.post(&format!("/api/trajectories/{id2}/steps/batch"), &ext)
            .await
            .0,
        200
    );
    let done = json!({"success": false, "error": "max turns", "costUsd": 0.25, "numTurns": 7,
        "usage": {"inputTokens": 10, "outputTokens": 20, "cacheReadInputTokens": 30, "cacheCreationInputTokens": 40}});
    assert_eq!(
        s.post(&format!("/api/trajectories/{id2}/complete"), &done)
            .await
            .0,
        200
    );
    let (_, t) = s.get(&format!("/api/trajectories/{id2}")).await;
    assert_eq!(
        (
            &t["sessionId"],
            &t["prompt"],
            &t["systemPrompt"],
            &t["promptVersion"],
            &t["model"]
        ),
        (
            &json!("s1"),
            &json!("do it"),
            &json!("sys"),
            &json!("3"),
            &json!("m")
        )
    );
    assert_eq!(t["metadata"], json!({"k": "v"}));
    assert_eq!(
        (&t["status"], &t["error"], &t["costUsd"], &t["numTurns"]),
        (
            &json!("failed"),
            &json!("max turns"),
            &json!(0.25),
            &json!(7)
        )
    );
    assert_eq!(
        t["usage"],
        json!({"inputTokens": 10, "outputTokens": 20, "cacheReadInputTokens": 30, "cacheCreationInputTokens": 40})
    );
    let step = &t["steps"][0];
    assert_eq!(
        (&step["durationMs"], &step["toolUseId"]),
        (&json!(12), &json!("toolu_1"))
    );
    assert_eq!(
        step["metadata"],
        json!({"agent_id": "sub", "agent_type": "Explore"})
    );
}

async fn start_is_idempotent_with_client_id(store: &TestStore) {
    let s = server_on(store).await;
    let id = uuid::Uuid::new_v4().to_string();
    let body = json!({"agentId": "a", "trajectoryId": id});
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (client, url, body) = (
                s.client.clone(),
                format!("{}/api/trajectories/start", s.base),
                body.clone(),
            );
            tokio::spawn(async move { send(client.post(url).bearer_auth(KEY).json(&body)).await })
        })
        .collect();
    for t in tasks {
        let (status, json) = t.await.unwrap();
        assert_eq!(
            (status, json["trajectoryId"].as_str()),
            (200, Some(id.as_str()))
        );
    }
    let (_, list) = s.get("/api/trajectories").await;
    assert_eq!(list["trajectories"].as_array().unwrap().len(), 1);
}

async fn step_retries_never_duplicate(store: &TestStore) {
    let s = server_on(store).await;
    let id = s.start_trajectory(&json!({"agentId": "a"})).await;
    let batch = json!({"steps": (1..=10).map(|n| json!({"stepNumber": n, "toolName": "Read", "toolInput": {"n": n}})).collect::<Vec<_>>()});
    let url = format!("{}/api/trajectories/{id}/steps/batch", s.base);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, batch) = (s.client.clone(), url.clone(), batch.clone());
            tokio::spawn(
                async move { send(client.post(url).bearer_auth(KEY).json(&batch)).await.0 },
            )
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    // A later retry carrying the outputs merges into the same rows.
    let closed = json!({"steps": [{"stepNumber": 3, "toolName": "Read", "toolOutput": "three"}]});
    assert_eq!(
        s.post(&format!("/api/trajectories/{id}/steps/batch"), &closed)
            .await
            .0,
        200
    );
    let (_, t) = s.get(&format!("/api/trajectories/{id}")).await;
    let steps = t["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 10);
    assert_eq!(t["stepCount"], 10);
    assert_eq!(
        (&steps[2]["toolInput"], &steps[2]["toolOutput"]),
        (&json!({"n": 3}), &json!("three"))
    );
}

async fn read_api_lists_filters_pages_and_exports(store: &TestStore) {
    let s = server_on(store).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let agent = if i < 4 { "alpha" } else { "beta" };
        let id = s
            .start_trajectory(
                &json!({"agentId": agent, "taskType": "t", "prompt": format!("task number {i}"),
                "startTime": format!("2026-11-2{}T10:00:00Z", i % 7)}),
            )
            .await;
        s.post(
            &format!("/api/trajectories/{id}/steps/batch"),
            &json!({"steps": [{"stepNumber": 1, "toolName": "Read"}]}),
        )
        .await;
        if i % 2 == 0 {
            s.post(
                &format!("/api/trajectories/{id}/complete"),
                &json!({"success": i != 4, "costUsd": 0.5}),
            )
            .await;
        }
        ids.push(id);
    }
    let (status, page) = s.get("/api/trajectories?agentId=alpha&limit=3").await;
    assert_eq!(status, 200);
    assert_eq!(page["trajectories"].as_array().unwrap().len(), 3);
    let cursor = page["nextCursor"].as_str().unwrap();
    let (_, page2) = s
        .get(&format!(
            "/api/trajectories?agentId=alpha&limit=3&cursor={cursor}"
        ))
        .await;
    assert_eq!(page2["trajectories"].as_array().unwrap().len(), 1);
    assert_eq!(page2["nextCursor"], Value::Null);
    let (_, failed) = s.get("/api/trajectories?status=failed").await;
    assert_eq!(failed["trajectories"][0]["id"], json!(ids[4]));
    let (_, ok) = s.get("/api/trajectories?success=true").await;
    assert_eq!(ok["trajectories"].as_array().unwrap().len(), 3);
    let (_, running) = s.get("/api/trajectories?status=running").await;
    assert_eq!(running["trajectories"].as_array().unwrap().len(), 3);
    let (_, ranged) = s
        .get("/api/trajectories?since=2026-11-21T00:00:00Z&until=2026-11-23T00:00:00Z")
        .await;
    assert_eq!(ranged["trajectories"].as_array().unwrap().len(), 2);
    let (_, found) = s.get("/api/trajectories?q=NUMBER%205").await;
    assert_eq!(found["trajectories"][0]["id"], json!(ids[5]));

    let (_, stats) = s.get("/api/stats").await;
    assert_eq!(
        (
            stats["trajectories"].as_i64(),
            stats["succeeded"].as_i64(),
            stats["failed"].as_i64()
        ),
        (Some(7), Some(3), Some(1))
    );
    assert_eq!(stats["successRate"], 0.75);
    assert_eq!(stats["tools"][0]["toolName"], "Read");
    assert_eq!(stats["tools"][0]["calls"], 7);
    assert_eq!(stats["totalCostUsd"], 2.0);
    assert_eq!(
        stats["timeline"].as_array().unwrap().len(),
        7,
        "daily buckets"
    );
    let (_, agent_stats) = s.get("/api/stats?agentId=beta&bucket=hour").await;
    assert_eq!(
        (
            agent_stats["trajectories"].as_i64(),
            agent_stats["bucket"].as_str()
        ),
        (Some(3), Some("hour"))
    );
    let (_, agents) = s.get("/api/agents").await;
    let names: HashSet<_> = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agentId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        HashSet::from(["alpha".to_string(), "beta".to_string()])
    );

    let (status, tail) = s
        .get(&format!("/api/trajectories/{}/steps?after=0", ids[0]))
        .await;
    assert_eq!((status, tail["steps"].as_array().unwrap().len()), (200, 1));
    let (_, none) = s
        .get(&format!("/api/trajectories/{}/steps?after=1", ids[0]))
        .await;
    assert!(none["steps"].as_array().unwrap().is_empty());

    let response = s
        .request(Method::GET, "/api/trajectories/export?agentId=alpha")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(lines
        .iter()
        .all(|l| l["agentId"] == "alpha" && l["steps"].as_array().unwrap().len() == 1));

    let (status, body) =
        send(s.request(Method::DELETE, &format!("/api/trajectories/{}", ids[0]))).await;
    assert_eq!((status, body), (200, json!({"success": true})));
    assert_eq!(s.get(&format!("/api/trajectories/{}", ids[0])).await.0, 404);
    assert_eq!(
        send(s.request(Method::DELETE, &format!("/api/trajectories/{}", ids[0])))
            .await
            .0,
        404
    );
}

/// Runs tagged `promptVersion: opt-…` (the optimizer's evaluation rollouts) stay out of the
/// trajectory list and the JSONL export unless `includeEvaluations=true`, as in `/api/stats`.
async fn evaluation_runs_are_left_out_of_the_list_and_export_by_default(store: &TestStore) {
    let s = server_on(store).await;
    let mut own = HashSet::new();
    for (i, version) in [
        Some("3"),
        None,
        Some("opt-0190a1b2-c"),
        Some("opt-0190a1b2-d"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = json!({"agentId": "evals", "prompt": format!("run {i}"),
            "startTime": format!("2026-11-2{i}T10:00:00Z")});
        if let Some(v) = version {
            body["promptVersion"] = json!(v);
        }
        let id = s.start_trajectory(&body).await;
        s.post(
            &format!("/api/trajectories/{id}/complete"),
            &json!({"success": true}),
        )
        .await;
        if version.is_none_or(|v| !v.starts_with("opt-")) {
            own.insert(id);
        }
    }
    let listed = |page: &Value| -> HashSet<String> {
        page["trajectories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, page) = s.get("/api/trajectories?agentId=evals").await;
    assert_eq!(status, 200);
    assert_eq!(listed(&page), own);
    let (_, page) = s
        .get("/api/trajectories?agentId=evals&includeEvaluations=false")
        .await;
    assert_eq!(listed(&page), own);
    let (_, all) = s
        .get("/api/trajectories?agentId=evals&includeEvaluations=true")
        .await;
    assert_eq!(all["trajectories"].as_array().unwrap().len(), 4);
    assert!(all["trajectories"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["promptVersion"] == "opt-0190a1b2-c"));

    let export = |query: &'static str| {
        let s = &s;
        async move {
            s.ndjson(&format!("/api/trajectories/export?agentId=evals{query}"))
                .await
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string())
                .collect::<HashSet<String>>()
        }
    };
    assert_eq!(export("").await, own);
    assert_eq!(export("&includeEvaluations=true").await.len(), 4);
    // The old opt-out is gone: an unknown parameter is refused, naming it.
    let (status, body) = s.get("/api/trajectories?excludeEvaluations=true").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("excludeEvaluations"),
        "{body}"
    );
    let (status, body) = s.get("/api/trajectories?includeEvaluations=maybe").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("includeEvaluations"),
        "{body}"
    );
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "0190f0f0-0000-7000-8000-000000000000")
        .replace("{agentId}", "some-agent")
        .replace("{version}", "1")
}

/// `(method, path, public)` of every route, read from the OpenAPI document that the router is
/// built from, plus the document's own route.
fn routes() -> Vec<(Method, String, bool)> {
    let doc = serde_json::to_value(lightning_collector::openapi_document()).unwrap();
    let mut routes = vec![(Method::GET, "/api/openapi.json".to_string(), false)];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let public = operation["security"] == json!([{}]);
            routes.push((method.to_uppercase().parse().unwrap(), path.clone(), public));
        }
    }
    routes
}

/// utoipa names a schema after its Rust type, so two wire types of one name (a trajectory's
/// `Score` and a run's interval `Score`; a rollout's and a run's `Verdict`) would silently share
/// one schema, and the TypeScript generated from the document would be wrong for one of them.
#[test]
fn openapi_schemas_of_same_named_types_are_distinct() {
    let doc = serde_json::to_value(lightning_collector::openapi_document()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let properties = |name: &str| -> Vec<String> {
        schemas[name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has no properties"))
            .keys()
            .cloned()
            .collect()
    };
    assert!(properties("Score").contains(&"trajectoryId".to_string()));
    assert!(properties("IntervalScore").contains(&"confidence".to_string()));
    assert_eq!(
        schemas["Verdict"]["enum"],
        json!(["insufficient_data", "no_difference_yet", "better", "worse"])
    );
    assert_eq!(
        schemas["RunVerdict"]["enum"],
        json!([
            "registered",
            "significantNotRegistered",
            "judgeEstimateNotRegistered",
            "noSignificantImprovement"
        ])
    );
    assert_eq!(
        doc["components"]["schemas"]["RunEvidence"]["properties"]["verdict"]["$ref"],
        "#/components/schemas/RunVerdict"
    );
}

/// OpenAPI requires unique operation ids (utoipa takes the handler's name, and `start`, `list`
/// and `delete` exist in several modules); generated clients key operations by them.
#[test]
fn openapi_operation_ids_are_unique() {
    let doc = serde_json::to_value(lightning_collector::openapi_document()).unwrap();
    let mut seen = HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap().to_string();
            assert!(
                seen.insert(id.clone()),
                "{method} {path}: operationId {id} is taken"
            );
        }
    }
    assert!(seen.len() > 20, "{seen:?}");
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_is_served() {
    let (_store, s) = server(Backend::Sqlite).await;
    let (status, doc) = s.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(
        doc,
        serde_json::to_value(lightning_collector::openapi_document()).unwrap()
    );
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let documented: HashSet<_> = routes()
        .into_iter()
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    for expected in [
        "POST /api/trajectories/start",
        "POST /api/trajectories/{id}/steps/batch",
        "POST /api/trajectories/{id}/complete",
        "GET /api/trajectories",
        "GET /api/trajectories/export",
        "GET /api/trajectories/{id}",
        "DELETE /api/trajectories/{id}",
        "GET /api/trajectories/{id}/steps",
        "GET /api/stats",
        "GET /api/agents",
        "GET /metrics",
        "GET /health",
        "GET /api/optimization-runs",
        "GET /api/optimization-runs/{id}",
        "GET /api/optimization-runs/{id}/evaluations",
        "GET /api/agents/{agentId}/prompts",
        "POST /api/agents/{agentId}/prompts",
        "GET /api/agents/{agentId}/prompts/latest",
        "POST /api/agents/{agentId}/prompts/{version}/promote",
        "POST /api/trajectories/{id}/scores",
        "GET /api/trajectories/{id}/scores",
        "DELETE /api/scores/{id}",
    ] {
        assert!(
            documented.contains(expected),
            "{expected} missing from {documented:?}"
        );
    }
    let start = &doc["paths"]["/api/trajectories/start"]["post"];
    assert_eq!(
        start["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NewTrajectory"
    );
    let schema = &doc["components"]["schemas"]["NewStep"];
    assert_eq!(schema["required"], json!(["stepNumber", "toolName"]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn every_api_route_requires_the_key() {
    let (_store, s) = server(Backend::Sqlite).await;
    let mut checked = 0;
    let all = routes();
    assert!(all.len() >= 12);
    let (public, protected): (Vec<_>, Vec<_>) = all.into_iter().partition(|r| r.2);
    assert_eq!(
        public.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["/health"],
        "only /health is open"
    );
    for (method, path, _) in protected {
        let url = format!("{}{}", s.base, concrete(&path));
        for auth in [
            None,
            Some("Bearer wrong-key"),
            Some("Bearer "),
            Some(KEY),
            Some("Basic dGVzdDp0ZXN0"),
        ] {
            let mut req = s
                .client
                .request(method.clone(), &url)
                .header("content-type", "application/json")
                .body("{}");
            if let Some(value) = auth {
                req = req.header("authorization", value);
            }
            let (status, body) = send(req).await;
            assert_eq!(
                (status, body),
                (401, json!({"error": "Unauthorized"})),
                "{method} {path} with {auth:?}"
            );
            checked += 1;
        }
        // With the key it is not 401 (whatever else it says about the empty body or unknown id).
        let response = s
            .request(method.clone(), &concrete(&path))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_ne!(response.status().as_u16(), 401, "{method} {path}");
    }
    assert!(checked >= 60);
    // Unknown API routes answer 401 before 404, so they reveal nothing without the key.
    assert_eq!(
        send(s.client.get(format!("{}/api/secret-route", s.base)))
            .await
            .0,
        401
    );
    let (status, health) = send(s.client.get(format!("{}/health", s.base))).await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")));
}

#[tokio::test]
async fn invalid_input_gets_400_naming_the_problem() {
    let (_store, s) = server(Backend::Sqlite).await;
    let id = s.start_trajectory(&json!({"agentId": "a"})).await;
    let steps = format!("/api/trajectories/{id}/steps/batch");
    let complete = format!("/api/trajectories/{id}/complete");
    let start = "/api/trajectories/start".to_string();
    let cases: Vec<(&String, Value, &str)> = vec![
        (&start, json!({}), "missing field `agentId`"),
        (&start, json!({"agentId": ""}), "agentId: must not be empty"),
        (&start, json!({"agentId": 7}), "agentId: invalid type"),
        (
            &start,
            json!({"agentId": "a", "startTime": "yesterday"}),
            "startTime",
        ),
        (
            &start,
            json!({"agentId": "a", "startTime": "1900-01-01T00:00:00Z"}),
            "startTime: year",
        ),
        (
            &start,
            json!({"agentId": "a", "trajectoryId": "not-a-uuid"}),
            "trajectoryId",
        ),
        (
            &start,
            json!({"agentId": "a", "metadata": [1]}),
            "metadata: must be a JSON object",
        ),
        (
            &start,
            json!({"agentId": "x".repeat(300)}),
            "agentId: must be at most 256",
        ),
        (&start, json!([1, 2]), "invalid body"),
        (&steps, json!({}), "missing field `steps`"),
        (&steps, json!({"steps": {}}), "steps: invalid type"),
        (
            &steps,
            json!({"steps": [{"toolName": "Read"}]}),
            "steps[0]: missing field `stepNumber`",
        ),
        (
            &steps,
            json!({"steps": [{"stepNumber": 1}]}),
            "steps[0]: missing field `toolName`",
        ),
        (
            &steps,
            json!({"steps": [{"stepNumber": -1, "toolName": "R"}]}),
            "steps[0].stepNumber: must not be negative",
        ),
        (
            &steps,
            json!({"steps": [{"stepNumber": 1, "toolName": "R"}, {"stepNumber": 99999999999_i64, "toolName": "R"}]}),
            "steps[1].stepNumber: must be at most",
        ),
        (
            &steps,
            json!({"steps": [{"stepNumber": 1.5, "toolName": "R"}]}),
            "steps[0].stepNumber: invalid type",
        ),
        (
            &steps,
            json!({"steps": [{"stepNumber": "1", "toolName": "R"}]}),
            "steps[0].stepNumber: invalid type",
        ),
        (
            &steps,
            json!({"steps": [{"stepNumber": 1, "toolName": ""}]}),
            "steps[0].toolName: must not be empty",
        ),
        (
            &steps,
            json!({"steps": [{"stepNumber": 1, "toolName": "R", "durationMs": -5}]}),
            "steps[0].durationMs",
        ),
        (
            &steps,
            json!({"steps": [{"stepNumber": 1, "toolName": "R", "error": {"x": 1}}]}),
            "steps[0].error: invalid type",
        ),
        (&complete, json!({}), "missing field `success`"),
        (
            &complete,
            json!({"success": "yes"}),
            "success: invalid type",
        ),
        (
            &complete,
            json!({"success": true, "totalSteps": -1}),
            "totalSteps: must not be negative",
        ),
        (
            &complete,
            json!({"success": true, "duration": -3}),
            "duration",
        ),
        (
            &complete,
            json!({"success": true, "costUsd": 1e300}),
            "costUsd",
        ),
        (
            &complete,
            json!({"success": true, "usage": {"inputTokens": -1}}),
            "usage.inputTokens",
        ),
    ];
    for (path, body, expected) in cases {
        let (status, json) = s.post(path, &body).await;
        let message = json["error"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{path} {body}: {json}");
        assert!(
            message.contains(expected),
            "{path} {body}: {message:?} should contain {expected:?}"
        );
    }
    // Rejected batches wrote nothing.
    let (_, t) = s.get(&format!("/api/trajectories/{id}")).await;
    assert_eq!(t["stepCount"], 0);

    let raw = |body: &'static [u8], content_type: &'static str| {
        s.request(Method::POST, &steps)
            .header("content-type", content_type)
            .body(body)
    };
    let (status, json) = send(raw(b"{\"steps\": [", "application/json")).await;
    assert_eq!(status, 400);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{json}"
    );
    let (status, json) = send(raw(b"{\"steps\": []} trailing", "application/json")).await;
    assert_eq!(status, 400, "{json}");
    let (status, json) = send(raw(
        b"{\"steps\": [{\"stepNumber\": 1, \"toolName\": \"\xff\xfe\"}]}",
        "application/json",
    ))
    .await;
    assert_eq!(status, 400, "invalid UTF-8: {json}");
    let (status, json) = send(raw(b"{\"steps\": []}", "text/plain")).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (415, Some("expected Content-Type: application/json"))
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_body = format!("{{\"agentId\": \"a\", \"metadata\": {{\"x\": {deep}}}}}");
    let (status, json) = send(
        s.request(Method::POST, "/api/trajectories/start")
            .header("content-type", "application/json")
            .body(deep_body),
    )
    .await;
    assert_eq!(status, 400, "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("recursion limit"),
        "{json}"
    );

    for (path, expected) in [
        ("/api/trajectories?limit=0", "limit must be between"),
        ("/api/trajectories?limit=abc", "limit"),
        ("/api/trajectories?status=weird", "status"),
        ("/api/trajectories?since=tomorrow", "since"),
        ("/api/trajectories?cursor=zzz", "invalid cursor"),
        ("/api/trajectories?agent=a", "unknown field `agent`"),
        (
            "/api/trajectories?status=running&success=true",
            "contradict",
        ),
        ("/api/stats?bucket=week", "bucket"),
        (
            "/api/trajectories/not-a-uuid",
            "invalid trajectory id \"not-a-uuid\"",
        ),
    ] {
        let (status, json) = s.get(path).await;
        assert_eq!(status, 400, "{path}: {json}");
        assert!(
            json["error"].as_str().unwrap().contains(expected),
            "{path}: {json}"
        );
    }
    // The server is still serving after all that.
    assert_eq!(s.get("/api/agents").await.0, 200);
}

#[tokio::test]
async fn unknown_things_are_json_404s() {
    let (_store, s) = server(Backend::Sqlite).await;
    let ghost = "0190f0f0-0000-7000-8000-000000000000";
    for (method, path, body) in [
        (
            Method::POST,
            format!("/api/trajectories/{ghost}/steps/batch"),
            json!({"steps": [{"stepNumber": 1, "toolName": "R"}]}),
        ),
        (
            Method::POST,
            format!("/api/trajectories/{ghost}/steps/batch"),
            json!({"steps": []}),
        ),
        (
            Method::POST,
            format!("/api/trajectories/{ghost}/complete"),
            json!({"success": true}),
        ),
        (
            Method::GET,
            format!("/api/trajectories/{ghost}"),
            json!(null),
        ),
        (
            Method::GET,
            format!("/api/trajectories/{ghost}/steps"),
            json!(null),
        ),
        (
            Method::DELETE,
            format!("/api/trajectories/{ghost}"),
            json!(null),
        ),
    ] {
        let (status, json) = send(s.request(method.clone(), &path).json(&body)).await;
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(json["error"], format!("trajectory {ghost} not found"));
    }
    let (status, json) = s.get("/api/no/such/route").await;
    assert_eq!(
        (status, json),
        (404, json!({"error": "no API route /api/no/such/route"}))
    );
    let (status, json) = send(s.request(Method::PATCH, "/api/stats")).await;
    assert_eq!(
        (status, json),
        (405, json!({"error": "PATCH is not allowed on /api/stats"}))
    );
}

#[tokio::test]
async fn oversized_bodies_get_413_and_nothing_is_written() {
    let store = TestStore::sqlite().await;
    let s = Server::start_with(
        store.store.clone(),
        Options {
            body_limit: 64 * 1024,
            ..Default::default()
        },
    )
    .await;
    let id = s.start_trajectory(&json!({"agentId": "a"})).await;
    let big = json!({"steps": [{"stepNumber": 1, "toolName": "Read", "toolOutput": "x".repeat(100 * 1024)}]});
    let (status, json) = s
        .post(&format!("/api/trajectories/{id}/steps/batch"), &big)
        .await;
    assert_eq!(status, 413, "{json}");
    assert_eq!(
        json["error"],
        "request body is larger than the limit of 65536 bytes"
    );
    let (_, t) = s.get(&format!("/api/trajectories/{id}")).await;
    assert_eq!(t["stepCount"], 0);
    let small =
        json!({"steps": [{"stepNumber": 1, "toolName": "Read", "toolOutput": "x".repeat(1024)}]});
    assert_eq!(
        s.post(&format!("/api/trajectories/{id}/steps/batch"), &small)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn dashboard_is_served_with_spa_fallback_but_api_never_falls_back() {
    let store = TestStore::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<html>dashboard</html>").unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/app.js"), "console.log(1)").unwrap();
    let s = Server::start_with(
        store.store.clone(),
        Options {
            dashboard_dir: Some(dir.path().into()),
            ..Default::default()
        },
    )
    .await;
    let get = |path: &str| s.client.get(format!("{}{path}", s.base)).send();
    assert_eq!(
        get("/").await.unwrap().text().await.unwrap(),
        "<html>dashboard</html>"
    );
    assert_eq!(
        get("/trajectories/abc")
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "<html>dashboard</html>"
    );
    assert_eq!(
        get("/assets/app.js").await.unwrap().text().await.unwrap(),
        "console.log(1)"
    );
    let api = s.get("/api/definitely-not-here").await;
    assert_eq!(api.0, 404);

    // Without a build, a page says how to make one.
    let bare = Server::start(store.store.clone()).await;
    let page = bare
        .client
        .get(format!("{}/anything", bare.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("npm --prefix dashboard"));
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_ingested_steps() {
    let (_store, s) = server(Backend::Sqlite).await;
    let id = s.start_trajectory(&json!({"agentId": "a"})).await;
    let batch =
        json!({"steps": [{"stepNumber": 1, "toolName": "R"}, {"stepNumber": 2, "toolName": "R"}]});
    s.post(&format!("/api/trajectories/{id}/steps/batch"), &batch)
        .await;
    s.post(&format!("/api/trajectories/{id}/steps/batch"), &json!({}))
        .await;
    s.get("/api/nope").await;
    let response = s.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    for line in [
        "lightning_http_requests_total{method=\"POST\",route=\"/api/trajectories/{id}/steps/batch\",status=\"200\"} 1",
        "lightning_http_requests_total{method=\"POST\",route=\"/api/trajectories/{id}/steps/batch\",status=\"400\"} 1",
        "lightning_http_requests_total{method=\"POST\",route=\"/api/trajectories/start\",status=\"200\"} 1",
        "lightning_http_requests_total{method=\"GET\",route=\"/api/{*rest}\",status=\"404\"} 1",
        "lightning_http_request_duration_seconds_count{route=\"/api/trajectories/start\"} 1",
        "lightning_steps_ingested_total 2",
        "lightning_trajectories_started_total 1",
        // One group transaction held the one valid batch.
        "\nlightning_group_commit_transactions_total 1\n",
        "\nlightning_group_commit_batches_total 1\n",
        "\nlightning_group_commit_steps_total 2\n",
        "\nlightning_group_commit_queued_steps 0\n",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(text.contains("lightning_db_pool_connections "));
    assert!(!text.contains(&id), "raw paths never become labels");
}

#[tokio::test]
async fn two_collectors_on_one_postgres_give_exact_totals() {
    let store = TestStore::postgres().await;
    let second = store.reconnect_postgres(None, Duration::from_secs(5)).await;
    let a = Server::start(store.store.clone()).await;
    let b = Server::start(second).await;
    let servers = [&a, &b];
    let mut handles = Vec::new();
    for t in 0..20 {
        let id = uuid::Uuid::new_v4().to_string();
        // Start through both collectors (idempotent), then alternate batches, each sent twice.
        for s in servers {
            assert_eq!(
                s.start_trajectory(&json!({"agentId": "pair", "trajectoryId": id}))
                    .await,
                id
            );
        }
        for batch in 0..3 {
            let steps: Vec<Value> = (0..10)
                .map(|n| json!({"stepNumber": batch * 10 + n, "toolName": "Bash"}))
                .collect();
            for s in servers {
                let (client, url, body) = (
                    s.client.clone(),
                    format!("{}/api/trajectories/{id}/steps/batch", s.base),
                    json!({"steps": steps}),
                );
                handles.push(tokio::spawn(async move {
                    send(client.post(url).bearer_auth(KEY).json(&body)).await.0
                }));
            }
        }
        let s = servers[t % 2];
        handles.push({
            let (client, url) = (
                s.client.clone(),
                format!("{}/api/trajectories/{id}/complete", s.base),
            );
            tokio::spawn(async move {
                send(
                    client
                        .post(url)
                        .bearer_auth(KEY)
                        .json(&json!({"success": true})),
                )
                .await
                .0
            })
        });
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), 200);
    }
    for s in servers {
        let (_, stats) = s.get("/api/stats?agentId=pair").await;
        assert_eq!(
            (stats["trajectories"].as_i64(), stats["succeeded"].as_i64()),
            (Some(20), Some(20))
        );
        assert_eq!(
            stats["tools"][0]["calls"], 600,
            "20 trajectories x 30 steps, no duplicates"
        );
        assert_eq!(stats["meanSteps"], 30.0);
    }
}

#[tokio::test]
async fn database_outage_answers_503_then_recovers_without_loss() {
    let store = TestStore::postgres().await;
    let proxy = CuttableProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let through_proxy = store
        .reconnect_postgres(Some(proxy.port), Duration::from_millis(800))
        .await;
    let s = Server::start(through_proxy).await;
    let id = s.start_trajectory(&json!({"agentId": "a"})).await;
    let batch = |n: i64| json!({"steps": [{"stepNumber": n, "toolName": "Read"}]});
    assert_eq!(
        s.post(&format!("/api/trajectories/{id}/steps/batch"), &batch(1))
            .await
            .0,
        200
    );

    proxy.cut();
    let (status, json) = s
        .post(&format!("/api/trajectories/{id}/steps/batch"), &batch(2))
        .await;
    assert_eq!(status, 503, "{json}");
    assert_eq!(json["error"], "database unavailable, retry later");
    let (status, health) = send(s.client.get(format!("{}/health", s.base))).await;
    assert_eq!((status, &health["database"]), (503, &json!("down")));
    assert_eq!(s.get("/api/trajectories").await.0, 503);

    proxy.restore();
    // The client retries what it was refused; the pool reconnects by itself.
    let mut status = 0;
    for _ in 0..20 {
        status = s
            .post(&format!("/api/trajectories/{id}/steps/batch"), &batch(2))
            .await
            .0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200);
    let (status, health) = send(s.client.get(format!("{}/health", s.base))).await;
    assert_eq!((status, &health["database"]), (200, &json!("up")));
    let steps = store
        .store
        .list_steps(id.parse().unwrap(), None, 10)
        .await
        .unwrap();
    assert_eq!(
        steps.iter().map(|s| s.step_number).collect::<Vec<_>>(),
        [1, 2]
    );
}

async fn status_and_step_kinds_over_http(store: &TestStore) {
    let s = server_on(store).await;
    let id = s.start_trajectory(&json!({"agentId": "a"})).await;
    let batch_url = format!("/api/trajectories/{id}/steps/batch");
    let batch = json!({"steps": [
        {"stepNumber": 1, "toolName": "Read", "error": "ENOENT"},
        {"stepNumber": 2, "kind": "message", "toolName": "assistant", "toolOutput": "Done."},
        {"stepNumber": 3, "kind": "event", "toolName": "SubagentStop",
         "metadata": {"agentId": "sub-1", "agentType": "Explore", "parentToolUseId": "toolu_1"}},
    ]});
    assert_eq!(s.post(&batch_url, &batch).await.0, 200);
    let (code, body) = s
        .post(
            &batch_url,
            &json!({"steps": [{"stepNumber": 4, "kind": "thought", "toolName": "x"}]}),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        body["error"].as_str().unwrap().contains("steps[0].kind"),
        "{body}"
    );
    let (_, t) = s.get(&format!("/api/trajectories/{id}")).await;
    let kinds: Vec<_> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("tool"), json!("message"), json!("event")]);
    assert_eq!(
        (t["stepCount"].as_i64(), t["errorCount"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(t["status"], "running");

    let complete_url = format!("/api/trajectories/{id}/complete");
    for (body, field) in [
        (json!({"success": false, "status": "abandoned"}), "status"),
        (json!({"success": false, "status": "succeeded"}), "status"),
        (json!({"success": true, "status": "interrupted"}), "status"),
    ] {
        let (code, answer) = s.post(&complete_url, &body).await;
        assert_eq!(code, 400, "{body}");
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
    let (code, _) = s
        .post(
            &complete_url,
            &json!({"success": false, "status": "interrupted", "error": "SIGINT"}),
        )
        .await;
    assert_eq!(code, 200);
    let (_, t) = s.get(&format!("/api/trajectories/{id}")).await;
    assert_eq!(
        (t["status"].as_str(), t["success"].as_bool()),
        (Some("interrupted"), Some(false))
    );
    let (_, page) = s.get("/api/trajectories?status=interrupted").await;
    assert_eq!(page["trajectories"].as_array().unwrap().len(), 1);
    let (_, stats) = s.get("/api/stats").await;
    assert_eq!(
        (stats["interrupted"].as_i64(), stats["failed"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        stats["tools"].as_array().unwrap().len(),
        1,
        "only tool steps: {stats}"
    );

    // The sweep: an idle running trajectory becomes abandoned; a late step reopens it.
    let idle = s.start_trajectory(&json!({"agentId": "a"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let marked = lightning_collector::sweep::sweep_once(
        store.store.as_ref(),
        std::time::Duration::from_millis(1),
    )
    .await
    .unwrap();
    assert_eq!(marked, 1);
    let (_, t) = s.get(&format!("/api/trajectories/{idle}")).await;
    assert_eq!(t["status"], "abandoned");
    let (_, page) = s.get("/api/trajectories?status=abandoned").await;
    assert_eq!(page["trajectories"].as_array().unwrap().len(), 1);
    let late = json!({"steps": [{"stepNumber": 1, "toolName": "Read"}]});
    assert_eq!(
        s.post(&format!("/api/trajectories/{idle}/steps/batch"), &late)
            .await
            .0,
        200
    );
    let (_, t) = s.get(&format!("/api/trajectories/{idle}")).await;
    assert_eq!(t["status"], "running");
}
