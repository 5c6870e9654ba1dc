//! The synthetic suite's scripted LLM (`synthetic::scripted_reply`) behind the Anthropic
//! Messages wire protocol on a random loopback port, keeping every prompt it was sent. Shared
//! by the optimizer's and the cli's tests (`#[path]`-included: both crates' tests need it and
//! neither library should depend on axum for it).

use std::sync::{Arc, Mutex};

use axum::{routing::post, Json, Router};
use lightning_optimizer::synthetic::{scripted_reply, Variant};
use serde_json::{json, Value};

/// The base URL to give `--llm-base-url`, and the prompts received so far.
pub async fn scripted_server(variant: Variant) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = Router::new().route(
        "/v1/messages",
        post(move |Json(body): Json<Value>| {
            let log = log.clone();
            async move {
                let p = body["messages"][0]["content"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let text = scripted_reply(&p, variant);
                log.lock().unwrap().push(p);
                Json(json!({
                    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": 10, "output_tokens": 5}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// The optimizer's real HTTP client against the server at `base` (8 concurrent calls).
#[allow(
    dead_code,
    reason = "the cli's tests include this file but start the binary instead"
)]
pub fn http_llm(base: String) -> Arc<dyn lightning_optimizer::llm::Llm> {
    use lightning_optimizer::llm::{HttpLlm, LlmConfig, Provider};
    let mut config = LlmConfig::new(Provider::Anthropic, None, "sk-test".into(), Some(base));
    config.concurrency = 8;
    Arc::new(HttpLlm::new(config).unwrap())
}

/// The synthetic suite's rollouts as an `--evaluator command` script in `dir`.
#[allow(
    dead_code,
    reason = "the cli's tests include this file but start the binary instead"
)]
pub fn synthetic_command_evaluator(
    dir: &std::path::Path,
    seed: u64,
) -> Arc<dyn lightning_optimizer::evaluator::Evaluator> {
    use lightning_optimizer::{evaluator::command::CommandEvaluator, synthetic};
    Arc::new(
        CommandEvaluator::new(
            synthetic::eval_script(dir, seed),
            std::time::Duration::from_secs(30),
        )
        .unwrap(),
    )
}
