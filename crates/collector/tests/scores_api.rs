//! Scores over HTTP: a real collector on a random port over real SQLite and PostgreSQL.

mod common;

use common::{send, Server};
use lightning_store::testing::TestStore;
use reqwest::Method;
use serde_json::{json, Value};

lightning_store::test_on_both_backends!(
    scores_are_stored_listed_and_shown_with_the_trajectory,
    concurrent_posts_of_one_id_never_duplicate,
    every_validation_error_names_the_field,
    list_filters_and_stats_by_score,
    export_lines_carry_scores,
);

async fn server_on(store: &TestStore) -> Server {
    Server::start(store.store.clone()).await
}

async fn post_score(s: &Server, id: &str, body: Value) -> (u16, Value) {
    s.post(&format!("/api/trajectories/{id}/scores"), &body)
        .await
}

async fn scores_are_stored_listed_and_shown_with_the_trajectory(store: &TestStore) {
    let s = server_on(store).await;
    let id = s.start_trajectory(&json!({"agentId": "a"})).await;
    let (status, body) = post_score(
        &s,
        &id,
        json!({"name": "correctness", "value": 0.5, "comment": "<b>half</b>", "source": "llm",
               "id": "judge:1", "stepNumber": 2, "metadata": {"model": "m"}}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"id": "judge:1"})));
    let (status, body) = post_score(&s, &id, json!({"name": "thumbs", "value": false})).await;
    assert_eq!(status, 200, "{body}");
    let generated = body["id"].as_str().unwrap().to_string();
    assert!(generated.parse::<uuid::Uuid>().is_ok());
    assert_eq!(body.as_object().unwrap().len(), 1);

    let (status, list) = s.get(&format!("/api/trajectories/{id}/scores")).await;
    assert_eq!(status, 200);
    let scores = list["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 2);
    let first = &scores[0];
    let mut keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    let mut expected = [
        "id",
        "trajectoryId",
        "name",
        "value",
        "dataType",
        "comment",
        "source",
        "stepNumber",
        "metadata",
        "createdAt",
        "updatedAt",
    ];
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(
        (&first["trajectoryId"], &first["value"], &first["dataType"]),
        (&json!(id), &json!(0.5), &json!("numeric"))
    );
    assert_eq!(
        (&first["comment"], &first["source"], &first["stepNumber"]),
        (&json!("<b>half</b>"), &json!("llm"), &json!(2))
    );
    assert_eq!(first["metadata"], json!({"model": "m"}));
    assert_eq!(
        (
            &scores[1]["value"],
            &scores[1]["dataType"],
            &scores[1]["source"]
        ),
        (&json!(false), &json!("boolean"), &json!("sdk"))
    );

    let (_, t) = s.get(&format!("/api/trajectories/{id}")).await;
    assert_eq!(t["scores"], list["scores"]);

    let (status, body) = send(s.request(Method::DELETE, &format!("/api/scores/{generated}"))).await;
    assert_eq!((status, body), (200, json!({"success": true})));
    let (status, body) = send(s.request(Method::DELETE, &format!("/api/scores/{generated}"))).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], format!("score {generated:?} not found"));
    let (_, list) = s.get(&format!("/api/trajectories/{id}/scores")).await;
    assert_eq!(list["scores"].as_array().unwrap().len(), 1);

    // Unknown trajectories are 404 for writes and reads.
    let ghost = "0190f0f0-0000-7000-8000-000000000000";
    let (status, body) = post_score(&s, ghost, json!({"name": "q", "value": 1})).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"error": format!("trajectory {ghost} not found")})
        )
    );
    assert_eq!(
        s.get(&format!("/api/trajectories/{ghost}/scores")).await.0,
        404
    );
}

async fn concurrent_posts_of_one_id_never_duplicate(store: &TestStore) {
    let s = server_on(store).await;
    let id = s.start_trajectory(&json!({"agentId": "a"})).await;
    let url = format!("{}/api/trajectories/{id}/scores", s.base);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (client, url) = (s.client.clone(), url.clone());
            tokio::spawn(async move {
                let body = json!({"name": "q", "value": i, "id": "retry-1", "comment": format!("try {i}")});
                send(client.post(url).bearer_auth(common::KEY).json(&body)).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), (200, json!({"id": "retry-1"})));
    }
    let (_, list) = s.get(&format!("/api/trajectories/{id}/scores")).await;
    let scores = list["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 1, "{list}");
    // Last write wins: value and comment come from the same request.
    let v = scores[0]["value"].as_f64().unwrap();
    assert_eq!(scores[0]["comment"], format!("try {v}"));
}

async fn every_validation_error_names_the_field(store: &TestStore) {
    let s = server_on(store).await;
    let id = s.start_trajectory(&json!({"agentId": "a"})).await;
    let other = s.start_trajectory(&json!({"agentId": "a"})).await;
    assert_eq!(
        post_score(&s, &id, json!({"name": "q", "value": 1, "id": "taken"}))
            .await
            .0,
        200
    );
    let cases = [
        (json!({"value": 1}), "missing field `name`"),
        (json!({"name": "q"}), "missing field `value`"),
        (json!({"name": "", "value": 1}), "name: must be 1 to 64"),
        (
            json!({"name": "x".repeat(65), "value": 1}),
            "name: must be 1 to 64",
        ),
        (
            json!({"name": "has space", "value": 1}),
            "name: may only contain",
        ),
        (json!({"name": "q", "value": null}), "value: invalid type"),
        (
            json!({"name": "q", "value": {"a": 1}}),
            "value: invalid type",
        ),
        (
            json!({"name": "label", "value": ""}),
            "value: a label must be",
        ),
        (
            json!({"name": "label", "value": "x".repeat(257)}),
            "value: a label must be",
        ),
        (
            json!({"name": "q", "value": true}),
            "value: score \"q\" is numeric",
        ),
        (
            json!({"name": "q", "value": "pass"}),
            "this value is categorical",
        ),
        (
            json!({"name": "q", "value": 1, "source": "robot"}),
            "source: unknown variant",
        ),
        (
            json!({"name": "q", "value": 1, "id": ""}),
            "id: must be 1 to 128",
        ),
        (
            json!({"name": "q", "value": 1, "id": "a/b"}),
            "id: may only contain",
        ),
        (
            json!({"name": "q", "value": 1, "stepNumber": -1}),
            "stepNumber: must be between",
        ),
        (
            json!({"name": "q", "value": 1, "stepNumber": 1.5}),
            "stepNumber: invalid type",
        ),
        (
            json!({"name": "q", "value": 1, "metadata": "x"}),
            "metadata: must be a JSON object",
        ),
        (
            json!({"name": "q", "value": 1, "comment": 5}),
            "comment: invalid type",
        ),
        (
            json!({"name": "label", "value": " \t\n "}),
            "value: a label must be 1 to 256 characters, not blank",
        ),
        (
            json!({"name": "q", "value": 1, "comment": "é".repeat(16 * 1024 + 1)}),
            "comment: must be at most 16384 characters",
        ),
        (
            json!({"name": "q", "value": 1, "stepNumber": 10_000_001}),
            "stepNumber: must be between",
        ),
    ];
    for (body, expected) in cases {
        let (status, json) = post_score(&s, &id, body.clone()).await;
        assert_eq!(status, 400, "{body}: {json}");
        let message = json["error"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{body}: {message:?} should contain {expected:?}"
        );
    }
    // A comment of exactly the limit (in characters, not bytes) is kept whole (an update of the
    // stored score, so the count below stays 1).
    let limit_comment = "é".repeat(16 * 1024);
    let (status, json) = post_score(
        &s,
        &id,
        json!({"name": "q", "value": 1, "id": "taken", "comment": limit_comment}),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    // A number too large for a double is refused by the parser, naming the field.
    let (status, json) = send(
        s.request(Method::POST, &format!("/api/trajectories/{id}/scores"))
            .header("content-type", "application/json")
            .body(r#"{"name": "q", "value": 1e400}"#),
    )
    .await;
    assert_eq!(status, 400, "{json}");
    let message = json["error"].as_str().unwrap();
    assert!(
        message.starts_with("value: not a finite number"),
        "{message:?} should name value"
    );
    let (status, json) = send(
        s.request(Method::POST, &format!("/api/trajectories/{id}/scores"))
            .header("content-type", "application/json")
            .body(r#"{"name": "q", "value": -2e308}"#),
    )
    .await;
    assert_eq!(status, 400, "{json}");
    assert!(
        json["error"].as_str().unwrap().starts_with("value:"),
        "{json}"
    );
    // An id already used on another trajectory.
    let (status, json) =
        post_score(&s, &other, json!({"name": "q", "value": 1, "id": "taken"})).await;
    assert_eq!(status, 400);
    assert!(json["error"].as_str().unwrap().starts_with("id:"), "{json}");
    let (status, json) = post_score(&s, "nope", json!({"name": "q", "value": 1})).await;
    assert_eq!(status, 400);
    assert!(json["error"]
        .as_str()
        .unwrap()
        .contains("invalid trajectory id"));
    let (status, json) = send(s.request(Method::DELETE, "/api/scores/a%20b")).await;
    assert_eq!(status, 400, "{json}");
    assert!(json["error"].as_str().unwrap().contains("invalid score id"));
    for (path, expected) in [
        ("/api/trajectories?minScore=1", "need scoreName"),
        ("/api/trajectories?scoreLabel=x", "need scoreName"),
        ("/api/trajectories?scoreName=q&minScore=abc", "minScore"),
        (
            "/api/trajectories?scoreName=q&minScore=NaN",
            "minScore: must be a finite",
        ),
        (
            "/api/trajectories?scoreName=q&maxScore=inf",
            "maxScore: must be a finite",
        ),
        (
            "/api/trajectories?scoreName=q&minScore=2&maxScore=1",
            "must not be greater",
        ),
        (
            "/api/trajectories?scoreName=a%20b",
            "scoreName: may only contain",
        ),
        ("/api/trajectories/export?minScore=1", "need scoreName"),
    ] {
        let (status, json) = s.get(path).await;
        assert_eq!(status, 400, "{path}: {json}");
        assert!(
            json["error"].as_str().unwrap().contains(expected),
            "{path}: {json}"
        );
    }
    // Nothing of the refused writes was stored.
    let (_, list) = s.get(&format!("/api/trajectories/{id}/scores")).await;
    assert_eq!(list["scores"].as_array().unwrap().len(), 1);
    assert_eq!(list["scores"][0]["comment"], limit_comment.as_str());
    assert!(
        s.get(&format!("/api/trajectories/{other}/scores")).await.1["scores"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

async fn list_filters_and_stats_by_score(store: &TestStore) {
    let s = server_on(store).await;
    let mut ids = Vec::new();
    for (i, version) in ["1", "1", "2", "2"].iter().enumerate() {
        let id = s
            .start_trajectory(&json!({"agentId": "a", "promptVersion": version}))
            .await;
        let (status, _) = post_score(&s, &id, json!({"name": "q", "value": i as f64 / 4.0})).await;
        assert_eq!(status, 200);
        ids.push(id);
    }
    post_score(
        &s,
        &ids[1],
        json!({"name": "thumbs", "value": false, "source": "human", "comment": "wrong file"}),
    )
    .await;
    post_score(
        &s,
        &ids[2],
        json!({"name": "thumbs", "value": true, "source": "human"}),
    )
    .await;
    post_score(&s, &ids[3], json!({"name": "verdict", "value": "pass"})).await;
    let listed = |query: &'static str| {
        let s = &s;
        async move {
            let (status, page) = s.get(&format!("/api/trajectories?{query}")).await;
            assert_eq!(status, 200, "{query}: {page}");
            let mut got: Vec<String> = page["trajectories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string())
                .collect();
            got.sort();
            got
        }
    };
    let sorted = |v: &[&String]| {
        let mut v: Vec<String> = v.iter().map(|s| (*s).clone()).collect();
        v.sort();
        v
    };
    assert_eq!(
        listed("scoreName=q&minScore=0.5").await,
        sorted(&[&ids[2], &ids[3]])
    );
    assert_eq!(
        listed("scoreName=q&maxScore=0.25").await,
        sorted(&[&ids[0], &ids[1]])
    );
    assert_eq!(
        listed("scoreName=thumbs&maxScore=0").await,
        sorted(&[&ids[1]])
    );
    assert_eq!(
        listed("scoreName=verdict&scoreLabel=pass").await,
        sorted(&[&ids[3]])
    );
    assert_eq!(listed("scoreName=thumbs").await.len(), 2);
    // The list carries the scores of the listed trajectories.
    let (_, page) = s.get("/api/trajectories?scoreName=thumbs&maxScore=0").await;
    let names: Vec<&str> = page["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["q", "thumbs"]);
    assert_eq!(page["scores"][1]["comment"], "wrong file");
    assert!(listed("scoreName=nothing").await.is_empty());

    let (status, stats) = s.get("/api/stats?agentId=a").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["trajectories"], 4, "the old fields are still there");
    let scores = stats["scores"].as_array().unwrap();
    let q = scores.iter().find(|x| x["name"] == "q").unwrap();
    assert_eq!(
        (&q["count"], &q["dataType"]),
        (&json!(4), &json!("numeric"))
    );
    assert!((q["mean"].as_f64().unwrap() - 0.375).abs() < 1e-9);
    let versions: Vec<(Value, Value)> = q["byPromptVersion"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["promptVersion"].clone(), v["count"].clone()))
        .collect();
    assert_eq!(versions, [(json!("1"), json!(2)), (json!("2"), json!(2))]);
    assert!((q["byPromptVersion"][1]["mean"].as_f64().unwrap() - 0.625).abs() < 1e-9);
    assert!(!q["timeline"].as_array().unwrap().is_empty());
    let thumbs = scores.iter().find(|x| x["name"] == "thumbs").unwrap();
    assert_eq!(thumbs["mean"], 0.5);
    let verdict = scores.iter().find(|x| x["name"] == "verdict").unwrap();
    assert_eq!(verdict["labels"], json!([{"label": "pass", "count": 1}]));
    assert_eq!(verdict["mean"], Value::Null);
    let (_, empty) = s.get("/api/stats?agentId=nobody").await;
    assert_eq!(empty["scores"], json!([]));

    // An optimizer evaluation run's score is left out like the run itself, unless asked for.
    let eval = s
        .start_trajectory(&json!({"agentId": "a", "promptVersion": "opt-run1-c0"}))
        .await;
    assert_eq!(
        post_score(&s, &eval, json!({"name": "q", "value": 1}))
            .await
            .0,
        200
    );
    let q_of = |stats: &Value| {
        let q = stats["scores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "q")
            .unwrap()
            .clone();
        (q["count"].as_i64().unwrap(), q["mean"].as_f64().unwrap())
    };
    let (_, default) = s.get("/api/stats?agentId=a").await;
    assert_eq!(default["trajectories"], 4);
    let (count, mean) = q_of(&default);
    assert_eq!(count, 4);
    assert!((mean - 0.375).abs() < 1e-9, "{mean}");
    let (_, with) = s.get("/api/stats?agentId=a&includeEvaluations=true").await;
    assert_eq!(with["trajectories"], 5);
    let (count, mean) = q_of(&with);
    assert_eq!(count, 5);
    assert!((mean - 0.5).abs() < 1e-9, "{mean}");
}

async fn export_lines_carry_scores(store: &TestStore) {
    let s = server_on(store).await;
    let id = s.start_trajectory(&json!({"agentId": "a"})).await;
    s.start_trajectory(&json!({"agentId": "a"})).await;
    post_score(
        &s,
        &id,
        json!({"name": "q", "value": 1, "comment": "line\nbreak"}),
    )
    .await;
    let lines = s.ndjson("/api/trajectories/export?scoreName=q").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["id"], json!(id));
    assert_eq!(lines[0]["scores"][0]["comment"], "line\nbreak");
    let without: Vec<Value> = s
        .ndjson("/api/trajectories/export")
        .await
        .into_iter()
        .filter(|l| l["id"] != json!(id))
        .collect();
    assert_eq!(without[0]["scores"], json!([]));
}
