//! Canary rollouts over HTTP, on SQLite and PostgreSQL: start, sticky assignment, comparison,
//! promotion with evidence, rollback, the decision history, and validation.

mod common;

use std::collections::HashMap;

use common::{send, Server};
use lightning_store::testing::TestStore;
use reqwest::Method;
use serde_json::{json, Value};

lightning_store::test_on_both_backends!(
    canary_assignment_comparison_and_promotion,
    rollback_and_fallback_without_a_promoted_version,
    bad_rollout_input_names_the_field,
);

async fn register(s: &Server, agent: &str, text: &str, promote: bool) -> i64 {
    let (status, body) = s
        .post(
            &format!("/api/agents/{agent}/prompts"),
            &json!({"text": text, "promote": promote}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["version"].as_i64().unwrap()
}

async fn assignment(s: &Server, agent: &str, unit: &str) -> (u16, Value) {
    s.get(&format!(
        "/api/agents/{agent}/prompts/assignment?unit={unit}"
    ))
    .await
}

/// A finished run recorded with `version`, as the SDK would send it.
async fn run(s: &Server, agent: &str, version: i64, success: bool) {
    let id = s
        .start_trajectory(&json!({"agentId": agent, "promptVersion": version.to_string()}))
        .await;
    let (status, body) = s
        .post(
            &format!("/api/trajectories/{id}/complete"),
            &json!({"success": success, "costUsd": 0.02}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn canary_assignment_comparison_and_promotion(store: &TestStore) {
    let s = Server::start(store.store.clone()).await;
    let v1 = register(&s, "agent", "be careful", true).await;
    let v2 = register(&s, "agent", "be careful and test first", false).await;

    // No rollout: everyone gets the promoted version.
    let (status, a) = assignment(&s, "agent", "u1").await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(
        (a["arm"].as_str(), a["version"].as_i64()),
        (Some("promoted"), Some(v1))
    );
    assert_eq!(a["text"], "be careful");

    let (status, rollout) = s
        .post(
            &format!("/api/agents/agent/prompts/{v2}/rollout"),
            &json!({"percent": 30, "reason": "optimizer run 7"}),
        )
        .await;
    assert_eq!(status, 200, "{rollout}");
    assert_eq!(rollout["baselineVersion"], v1);

    // Sticky and near the requested share over 400 units.
    let mut arms = HashMap::new();
    let mut canary = 0;
    for i in 0..400 {
        let unit = format!("session-{i}");
        let (_, first) = assignment(&s, "agent", &unit).await;
        let (_, again) = assignment(&s, "agent", &unit).await;
        assert_eq!(first, again, "assignment of {unit} is sticky");
        canary += usize::from(first["arm"] == "canary");
        arms.insert(unit, first["version"].as_i64().unwrap());
    }
    // 30 % of 400: mean 120, sd 9.2; 5 sd either way.
    assert!((74..=166).contains(&canary), "{canary} canaries of 400");

    // Raising the percentage keeps every canary unit in the canary.
    let (status, _) = s
        .post(
            &format!("/api/agents/agent/prompts/{v2}/rollout"),
            &json!({"percent": 60}),
        )
        .await;
    assert_eq!(status, 200);
    for (unit, version) in arms.iter().filter(|(_, v)| **v == v2) {
        let (_, a) = assignment(&s, "agent", unit).await;
        assert_eq!(
            a["version"].as_i64(),
            Some(*version),
            "{unit} left the canary"
        );
    }

    for i in 0..40 {
        run(&s, "agent", v1, i % 2 == 0).await;
        run(&s, "agent", v2, i % 10 != 0).await;
    }
    let (status, c) = s.get("/api/agents/agent/prompts/compare").await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["arms"][0]["version"], v1.to_string());
    assert_eq!(c["arms"][1]["rewarded"], 40);
    assert!((c["arms"][1]["reward"]["value"].as_f64().unwrap() - 0.9).abs() < 1e-9);
    assert!((c["difference"]["estimate"].as_f64().unwrap() - 0.4).abs() < 1e-9);
    assert_eq!(c["verdict"], "better", "{c}");
    let (_, explicit) = s
        .get(&format!(
            "/api/agents/agent/prompts/compare?versions={v1},{v2}&reward=success"
        ))
        .await;
    assert_eq!(explicit["difference"], c["difference"]);

    let (status, st) = s.get("/api/agents/agent/prompts/rollout").await;
    assert_eq!(status, 200);
    assert_eq!(st["rollout"]["percent"], 60.0);
    assert_eq!(st["comparison"]["verdict"], "better");
    // The chart's series: every rewarded run of both arms since the rollout began.
    let (status, series) = s.get("/api/agents/agent/prompts/series?buckets=3").await;
    assert_eq!(status, 200, "{series}");
    let counted: Vec<i64> = series["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["n"].as_i64().unwrap())
                .sum()
        })
        .collect();
    let rewarded: Vec<i64> = st["comparison"]["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rewarded"].as_i64().unwrap())
        .collect();
    assert_eq!(counted, rewarded, "{series}");

    // Promoting the canary ends the rollout with the comparison stored as evidence, and who
    // promoted it and why (the optional body).
    let (status, p) = s
        .post(
            &format!("/api/agents/agent/prompts/{v2}/promote"),
            &json!({"actor": "alice@dashboard", "reason": "canary significantly better"}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    let (status, none) = s.get("/api/agents/agent/prompts/rollout").await;
    assert_eq!(status, 200);
    assert_eq!(none, json!({"rollout": null, "comparison": null}));
    let (_, a) = assignment(&s, "agent", "session-1").await;
    assert_eq!(
        (a["arm"].as_str(), a["version"].as_i64()),
        (Some("promoted"), Some(v2))
    );

    let (status, events) = s.get("/api/agents/agent/prompts/events").await;
    assert_eq!(status, 200);
    let kinds: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["promoted", "rollout_updated", "rollout_started"]);
    assert_eq!(events["events"][0]["evidence"]["verdict"], "better");
    assert_eq!(events["events"][0]["actor"], "alice@dashboard");
    assert_eq!(events["events"][0]["reason"], "canary significantly better");
    assert_eq!(events["events"][2]["reason"], "optimizer run 7");

    // Without a body (as before): recorded as `api`, no reason.
    let (status, _) = send(s.request(
        Method::POST,
        &format!("/api/agents/agent/prompts/{v1}/promote"),
    ))
    .await;
    assert_eq!(status, 200);
    let (_, events) = s.get("/api/agents/agent/prompts/events?limit=1").await;
    assert_eq!(
        (
            &events["events"][0]["kind"],
            &events["events"][0]["version"]
        ),
        (&json!("promoted"), &json!(v1))
    );
    assert_eq!(events["events"][0]["actor"], "api");
    assert_eq!(events["events"][0]["reason"], Value::Null);
}

async fn rollback_and_fallback_without_a_promoted_version(store: &TestStore) {
    let s = Server::start(store.store.clone()).await;
    // Nothing promoted, nothing in canary: 404, so the SDK uses its own prompt.
    let (status, body) = assignment(&s, "solo", "u").await;
    assert_eq!(status, 404, "{body}");
    let v1 = register(&s, "solo", "candidate", false).await;
    let (status, body) = assignment(&s, "solo", "u").await;
    assert_eq!(
        status, 404,
        "a registered but unpromoted version is not served: {body}"
    );

    let (status, _) = s
        .post(
            &format!("/api/agents/solo/prompts/{v1}/rollout"),
            &json!({"percent": 0, "autoRollback": true}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, a) = assignment(&s, "solo", "u").await;
    assert_eq!(status, 200);
    assert_eq!(
        (a["arm"].as_str(), a["text"].clone()),
        (Some("fallback"), Value::Null)
    );

    let (status, ended) = send(s.request(
        Method::DELETE,
        &format!("/api/agents/solo/prompts/{v1}/rollout?rollback=true&actor=carol&reason=worse"),
    ))
    .await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["event"]["kind"], "rolled_back");
    assert_eq!(ended["event"]["actor"], "carol");
    assert_eq!(ended["event"]["evidence"]["arms"][0]["version"], "none");
    let (status, again) = send(s.request(
        Method::DELETE,
        &format!("/api/agents/solo/prompts/{v1}/rollout"),
    ))
    .await;
    assert_eq!(status, 404, "{again}");
}

async fn bad_rollout_input_names_the_field(store: &TestStore) {
    let s = Server::start(store.store.clone()).await;
    register(&s, "a", "one", true).await;
    let v2 = register(&s, "a", "two", false).await;
    let path = format!("/api/agents/a/prompts/{v2}/rollout");
    for (body, field) in [
        (json!({"percent": 101}), "percent"),
        (json!({"percent": -1}), "percent"),
        (json!({"percent": "ten"}), "percent"),
        (json!({}), "percent"),
        (json!({"percent": 5, "reward": "score:"}), "reward"),
        (json!({"percent": 5, "actor": ""}), "actor"),
        (json!({"percent": 5, "extra": 1}), "extra"),
    ] {
        let (status, err) = s.post(&path, &body).await;
        assert_eq!(status, 400, "{body} → {err}");
        assert!(
            err["error"].as_str().unwrap().contains(field),
            "{body} → {err}"
        );
    }
    let (status, err) = s
        .post("/api/agents/a/prompts/1/rollout", &json!({"percent": 5}))
        .await;
    assert_eq!(status, 400, "promoted version: {err}");
    let (status, _) = s
        .post("/api/agents/a/prompts/99/rollout", &json!({"percent": 5}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = s
        .post("/api/agents/a/prompts/x/rollout", &json!({"percent": 5}))
        .await;
    assert_eq!(status, 400);
    // The promote body: who and why only (the evidence is the store's, not the client's).
    let promote = format!("/api/agents/a/prompts/{v2}/promote");
    for (body, field) in [
        (json!({"actor": ""}), "actor"),
        (json!({"actor": "a\u{7}b"}), "actor"),
        (json!({"reason": 5}), "reason"),
        (json!({"evidence": {"verdict": "better"}}), "evidence"),
    ] {
        let (status, err) = s.post(&promote, &body).await;
        assert_eq!(status, 400, "{body} → {err}");
        assert!(
            err["error"].as_str().unwrap().contains(field),
            "{body} → {err}"
        );
    }
    let (status, err) = send(
        s.request(Method::POST, &promote)
            .header("content-type", "text/plain")
            .body("alice"),
    )
    .await;
    assert_eq!(status, 415, "{err}");
    let (_, prompts) = s.get("/api/agents/a/prompts").await;
    assert!(
        prompts["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["promoted"] == (p["version"] == 1)),
        "a refused promotion changed nothing: {prompts}"
    );
    for (query, field) in [
        ("/api/agents/a/prompts/assignment", "unit"),
        ("/api/agents/a/prompts/assignment?unit=", "unit"),
        ("/api/agents/a/prompts/compare", "versions"),
        ("/api/agents/a/prompts/compare?versions=1", "versions"),
        ("/api/agents/a/prompts/compare?versions=1,x", "versions"),
        (
            "/api/agents/a/prompts/compare?versions=1,2&reward=best",
            "reward",
        ),
        ("/api/agents/a/prompts/events?limit=0", "limit"),
        ("/api/agents/a/prompts/series", "versions"),
        ("/api/agents/a/prompts/series?versions=1,2", "since"),
        (
            "/api/agents/a/prompts/series?versions=1,x&since=2026-01-01T00:00:00Z",
            "versions",
        ),
        (
            "/api/agents/a/prompts/series?versions=1,2,3,4,none&since=2026-01-01T00:00:00Z",
            "versions",
        ),
        (
            "/api/agents/a/prompts/series?versions=1&since=2026-01-01T00:00:00Z&buckets=0",
            "buckets",
        ),
        (
            "/api/agents/a/prompts/series?versions=1&since=2026-01-01T00:00:00Z&buckets=61",
            "buckets",
        ),
        (
            "/api/agents/a/prompts/series?versions=1&since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            "since",
        ),
        (
            "/api/agents/a/prompts/series?versions=1&since=2026-01-01T00:00:00Z&reward=best",
            "reward",
        ),
    ] {
        let (status, err) = s.get(query).await;
        assert_eq!(status, 400, "{query} → {err}");
        assert!(
            err["error"].as_str().unwrap().contains(field),
            "{query} → {err}"
        );
    }
}
