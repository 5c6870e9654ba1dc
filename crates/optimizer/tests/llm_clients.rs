//! Both LLM clients against local servers speaking the Anthropic Messages and OpenAI Chat
//! Completions wire formats, with scripted replies: success, 429 with Retry-After, 500,
//! malformed JSON, a hang (timeout), a rejected key, and a concurrency limit.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use lightning_optimizer::llm::{HttpLlm, Llm, LlmConfig, LlmError, LlmRequest, Price, Provider};
use serde_json::{json, Value};

#[derive(Clone)]
enum Reply {
    Ok(&'static str),
    Status(u16, Vec<(&'static str, &'static str)>, &'static str),
    Raw(&'static str),
    Hang(Duration),
}

#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<(HeaderMap, Value)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

fn ok_body(provider: Provider, text: &str) -> Value {
    match provider {
        Provider::Anthropic => json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 11, "output_tokens": 7}
        }),
        Provider::OpenAi => json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        }),
    }
}

async fn serve(provider: Provider, replies: Vec<Reply>) -> (String, Arc<Script>) {
    let script = Arc::new(Script {
        replies: Mutex::new(replies.into()),
        ..Default::default()
    });
    let handler = move |State(s): State<Arc<Script>>,
                        headers: HeaderMap,
                        body: axum::body::Bytes| async move {
        let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        s.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        s.requests.lock().unwrap().push((headers, body));
        let reply = s
            .replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Reply::Ok("default"));
        let response: Response = match reply {
            Reply::Ok(text) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                axum::Json(ok_body(provider, text)).into_response()
            }
            Reply::Status(code, headers, body) => {
                let mut r = (StatusCode::from_u16(code).unwrap(), body.to_string()).into_response();
                for (k, v) in headers {
                    r.headers_mut().insert(k, v.parse().unwrap());
                }
                r
            }
            Reply::Raw(body) => (StatusCode::OK, body.to_string()).into_response(),
            Reply::Hang(d) => {
                tokio::time::sleep(d).await;
                axum::Json(ok_body(provider, "too late")).into_response()
            }
        };
        s.in_flight.fetch_sub(1, Ordering::SeqCst);
        response
    };
    let path = match provider {
        Provider::Anthropic => "/v1/messages",
        Provider::OpenAi => "/v1/chat/completions",
    };
    let app = Router::new()
        .route(path, post(handler))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let base = match provider {
        Provider::Anthropic => format!("http://{addr}"),
        Provider::OpenAi => format!("http://{addr}/v1"),
    };
    (base, script)
}

fn client(provider: Provider, base: String) -> HttpLlm {
    let mut c = LlmConfig::new(
        provider,
        Some("test-model".into()),
        "sk-test".into(),
        Some(base),
    );
    c.backoff_base = Duration::from_millis(10);
    c.backoff_max = Duration::from_millis(50);
    c.max_retries = 3;
    c.timeout = Duration::from_secs(5);
    c.price = Some(Price {
        input_per_mtok: 1_000_000.0,
        output_per_mtok: 2_000_000.0,
    });
    HttpLlm::new(c).unwrap()
}

fn request() -> LlmRequest {
    LlmRequest {
        system: Some("be brief".into()),
        prompt: "hello".into(),
        max_tokens: Some(64),
        temperature: Some(0.5),
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod anthropic { $(#[tokio::test] async fn $name() { super::$name(lightning_optimizer::llm::Provider::Anthropic).await })* }
        mod openai { $(#[tokio::test] async fn $name() { super::$name(lightning_optimizer::llm::Provider::OpenAi).await })* }
    };
}

both!(
    speaks_the_wire_format_and_counts_usage,
    honours_retry_after_on_429,
    retries_500_then_succeeds,
    malformed_json_is_an_error_naming_the_provider,
    timeout_is_retried_then_reported,
    rejected_key_is_fatal_and_not_retried,
    concurrency_is_limited,
    gives_up_after_max_retries,
);

async fn speaks_the_wire_format_and_counts_usage(provider: Provider) {
    let (base, script) = serve(provider, vec![Reply::Ok("hi there"), Reply::Ok("again")]).await;
    let llm = client(provider, base);
    let r = llm.complete(&request()).await.unwrap();
    assert_eq!(r.text, "hi there");
    assert_eq!((r.input_tokens, r.output_tokens), (11, 7));
    llm.complete(&request()).await.unwrap();
    let (headers, body) = script.requests.lock().unwrap()[0].clone();
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(body["temperature"], 0.5);
    match provider {
        Provider::Anthropic => {
            assert_eq!(headers["x-api-key"], "sk-test");
            assert_eq!(headers["anthropic-version"], "2023-06-01");
            assert_eq!(body["system"], "be brief");
            assert_eq!(
                body["messages"],
                json!([{"role": "user", "content": "hello"}])
            );
        }
        Provider::OpenAi => {
            assert_eq!(headers["authorization"], "Bearer sk-test");
            assert_eq!(
                body["messages"],
                json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}])
            );
        }
    }
    let usage = llm.usage();
    assert_eq!((usage.calls, usage.failed_calls, usage.retries), (2, 0, 0));
    assert_eq!((usage.input_tokens, usage.output_tokens), (22, 14));
    // 22 × $1 + 14 × $2 per token at the test price.
    assert!((usage.cost_usd.unwrap() - 50.0).abs() < 1e-6);
    assert!(usage.summary().contains("2 calls"));
}

async fn honours_retry_after_on_429(provider: Provider) {
    let (base, script) = serve(
        provider,
        vec![
            Reply::Status(
                429,
                vec![("retry-after", "1")],
                r#"{"error":{"message":"rate limited"}}"#,
            ),
            Reply::Ok("after the wait"),
        ],
    )
    .await;
    let llm = client(provider, base);
    let started = Instant::now();
    let r = llm.complete(&request()).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(r.text, "after the wait");
    // The backoff alone is ≤ 50 ms: waiting a second means Retry-After was honoured.
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert_eq!(script.requests.lock().unwrap().len(), 2);
    assert_eq!(llm.usage().retries, 1);
}

async fn retries_500_then_succeeds(provider: Provider) {
    let (base, script) = serve(
        provider,
        vec![
            Reply::Status(500, vec![], "internal"),
            Reply::Status(
                529,
                vec![],
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
            Reply::Ok("fine"),
        ],
    )
    .await;
    let llm = client(provider, base);
    assert_eq!(llm.complete(&request()).await.unwrap().text, "fine");
    assert_eq!(script.requests.lock().unwrap().len(), 3);
    assert_eq!(llm.usage().retries, 2);
}

async fn malformed_json_is_an_error_naming_the_provider(provider: Provider) {
    let (base, _) = serve(provider, vec![Reply::Raw("{\"content\": [oops")]).await;
    let llm = client(provider, base);
    let e = llm.complete(&request()).await.unwrap_err();
    assert!(matches!(e, LlmError::Malformed { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(provider.name()) && msg.contains("malformed"),
        "{msg}"
    );
    assert_eq!(llm.usage().failed_calls, 1);
}

async fn timeout_is_retried_then_reported(provider: Provider) {
    let (base, script) = serve(
        provider,
        vec![
            Reply::Hang(Duration::from_secs(3)),
            Reply::Hang(Duration::from_secs(3)),
        ],
    )
    .await;
    let mut c = LlmConfig::new(provider, None, "k".into(), Some(base));
    c.timeout = Duration::from_millis(300);
    c.max_retries = 1;
    c.backoff_base = Duration::from_millis(10);
    let llm = HttpLlm::new(c).unwrap();
    let started = Instant::now();
    let e = llm.complete(&request()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    match &e {
        LlmError::RetriesExhausted { attempts, last, .. } => {
            assert_eq!(*attempts, 2);
            assert!(last.contains("timed out"), "{last}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(script.requests.lock().unwrap().len(), 2);
}

async fn rejected_key_is_fatal_and_not_retried(provider: Provider) {
    let (base, script) = serve(
        provider,
        vec![Reply::Status(
            401,
            vec![],
            r#"{"error":{"message":"invalid x-api-key"}}"#,
        )],
    )
    .await;
    let llm = client(provider, base);
    let e = llm.complete(&request()).await.unwrap_err();
    assert!(e.is_fatal(), "{e:?}");
    assert!(e.to_string().contains("invalid x-api-key"), "{e}");
    assert_eq!(script.requests.lock().unwrap().len(), 1);
}

async fn concurrency_is_limited(provider: Provider) {
    let (base, script) = serve(provider, vec![]).await;
    let mut c = LlmConfig::new(provider, None, "k".into(), Some(base));
    c.concurrency = 2;
    let llm = Arc::new(HttpLlm::new(c).unwrap());
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let llm = llm.clone();
            tokio::spawn(async move { llm.complete(&request()).await.unwrap() })
        })
        .collect();
    for c in calls {
        c.await.unwrap();
    }
    assert_eq!(script.max_in_flight.load(Ordering::SeqCst), 2);
    assert_eq!(llm.usage().calls, 6);
}

async fn gives_up_after_max_retries(provider: Provider) {
    let (base, script) = serve(
        provider,
        (0..5)
            .map(|_| Reply::Status(503, vec![], "unavailable"))
            .collect(),
    )
    .await;
    let llm = client(provider, base);
    let e = llm.complete(&request()).await.unwrap_err();
    assert!(
        matches!(e, LlmError::RetriesExhausted { attempts: 4, .. }),
        "{e:?}"
    );
    assert!(!e.is_fatal());
    assert_eq!(script.requests.lock().unwrap().len(), 4);
}

#[test]
fn missing_key_is_named_before_any_request() {
    // The only test in this binary that touches these variables.
    std::env::remove_var("OPENAI_API_KEY");
    let e = LlmConfig::from_env(Provider::OpenAi, None).unwrap_err();
    assert!(
        e.to_string().starts_with("OPENAI_API_KEY is not set"),
        "{e}"
    );
    std::env::set_var("ANTHROPIC_API_KEY", "  ");
    let e = LlmConfig::from_env(Provider::Anthropic, None).unwrap_err();
    assert!(
        e.to_string().starts_with("ANTHROPIC_API_KEY is not set"),
        "{e}"
    );
}
