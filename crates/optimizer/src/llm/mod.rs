//! LLM clients: the Anthropic Messages API and OpenAI-compatible Chat Completions (OpenAI,
//! Ollama, vLLM, llama.cpp, ...), with timeouts, retries with backoff on 429/5xx honouring
//! `Retry-After`, a concurrency limit, and token/cost accounting.

mod anthropic;
mod openai;
pub mod replay;

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use rand::Rng;
use reqwest::{header::HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Anthropic,
    #[serde(rename = "openai")]
    OpenAi,
}

impl Provider {
    pub fn key_var(self) -> &'static str {
        match self {
            Provider::Anthropic => "ANTHROPIC_API_KEY",
            Provider::OpenAi => "OPENAI_API_KEY",
        }
    }

    pub fn base_url_var(self) -> &'static str {
        match self {
            Provider::Anthropic => "ANTHROPIC_BASE_URL",
            Provider::OpenAi => "OPENAI_BASE_URL",
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::Anthropic => "https://api.anthropic.com",
            Provider::OpenAi => "https://api.openai.com/v1",
        }
    }

    pub fn default_model(self) -> &'static str {
        match self {
            Provider::Anthropic => "claude-sonnet-4-5",
            Provider::OpenAi => "gpt-4o-mini",
        }
    }

    /// The judge's model when `--judge-model` is not given: a different model from the one
    /// proposing edits (`proposer`), so the judge does not grade its own phrasing.
    pub fn default_judge_model(self, proposer: &str) -> &'static str {
        let choices: [&'static str; 2] = match self {
            Provider::Anthropic => ["claude-haiku-4-5", "claude-sonnet-4-5"],
            Provider::OpenAi => ["gpt-4.1-mini", "gpt-4o-mini"],
        };
        choices
            .into_iter()
            .find(|m| *m != proposer)
            .unwrap_or(choices[0])
    }

    pub fn name(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
        }
    }
}

#[derive(Debug, Error)]
pub enum LlmError {
    #[error(
        "{var} is not set: export it (or pick another --provider) before running the optimizer"
    )]
    MissingKey { var: &'static str },
    #[error("invalid LLM configuration: {0}")]
    Config(String),
    /// A 4xx other than 408/409/429: retrying cannot help (bad key, unknown model, ...).
    #[error("{provider} API answered {status}: {message}")]
    Rejected {
        provider: &'static str,
        status: u16,
        message: String,
    },
    #[error("{provider} API still failing after {attempts} attempts: {last}")]
    RetriesExhausted {
        provider: &'static str,
        attempts: u32,
        last: String,
    },
    #[error("{provider} API returned a malformed response: {message}")]
    Malformed {
        provider: &'static str,
        message: String,
    },
}

impl LlmError {
    /// Errors after which no further call can succeed (bad key, bad model, bad config).
    pub fn is_fatal(&self) -> bool {
        match self {
            LlmError::MissingKey { .. } | LlmError::Config(_) => true,
            LlmError::Rejected { status, .. } => matches!(status, 400 | 401 | 403 | 404),
            _ => false,
        }
    }
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Price {
    /// List prices of common models (estimates; override with `--price-input/--price-output`).
    pub fn for_model(model: &str) -> Option<Price> {
        let m = model.to_ascii_lowercase();
        let (input, output) = if m.contains("opus-4-5") || m.contains("opus-4.5") {
            (5.0, 25.0)
        } else if m.contains("opus") {
            (15.0, 75.0)
        } else if m.contains("sonnet") {
            (3.0, 15.0)
        } else if m.contains("haiku-4") || m.contains("haiku-4.5") {
            (1.0, 5.0)
        } else if m.contains("haiku") {
            (0.8, 4.0)
        } else if m.starts_with("gpt-4o-mini") {
            (0.15, 0.6)
        } else if m.starts_with("gpt-4o") {
            (2.5, 10.0)
        } else if m.starts_with("gpt-4.1-nano") {
            (0.1, 0.4)
        } else if m.starts_with("gpt-4.1-mini") {
            (0.4, 1.6)
        } else if m.starts_with("gpt-4.1") {
            (2.0, 8.0)
        } else {
            return None;
        };
        Some(Price {
            input_per_mtok: input,
            output_per_mtok: output,
        })
    }

    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_per_mtok + output_tokens as f64 * self.output_per_mtok)
            / 1e6
    }
}

#[derive(Debug, Clone)]
pub struct LlmConfig {
    pub provider: Provider,
    pub model: String,
    pub api_key: String,
    /// Without a trailing slash. Anthropic: `…` + `/v1/messages`; OpenAI: `…` + `/chat/completions`.
    pub base_url: String,
    /// Per HTTP request, including reading the body.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Most requests in flight at once.
    pub concurrency: usize,
    pub max_tokens: u32,
    pub temperature: f32,
    /// First backoff; doubles per retry (with jitter) up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Longest `Retry-After` honoured; longer ones are cut to this.
    pub retry_after_max: Duration,
    pub price: Option<Price>,
}

impl LlmConfig {
    /// Reads the key and base URL of `provider` from the environment. A missing key is an
    /// error naming the variable.
    pub fn from_env(provider: Provider, model: Option<String>) -> Result<Self, LlmError> {
        let api_key = std::env::var(provider.key_var())
            .ok()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .ok_or(LlmError::MissingKey {
                var: provider.key_var(),
            })?;
        let base_url = std::env::var(provider.base_url_var())
            .ok()
            .filter(|u| !u.trim().is_empty());
        Ok(Self::new(provider, model, api_key, base_url))
    }

    pub fn new(
        provider: Provider,
        model: Option<String>,
        api_key: String,
        base_url: Option<String>,
    ) -> Self {
        let model = model
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| provider.default_model().to_string());
        let base_url = base_url
            .unwrap_or_else(|| provider.default_base_url().to_string())
            .trim()
            .trim_end_matches('/')
            .to_string();
        Self {
            provider,
            price: Price::for_model(&model),
            model,
            api_key,
            base_url,
            timeout: Duration::from_secs(120),
            max_retries: 5,
            concurrency: 4,
            max_tokens: 4096,
            temperature: 1.0,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            retry_after_max: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmRequest {
    pub system: Option<String>,
    pub prompt: String,
    /// Overrides the client's default.
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

impl LlmRequest {
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmResponse {
    pub text: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// What the client has spent so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub provider: String,
    pub model: String,
    /// Successful calls.
    pub calls: u64,
    /// Calls that failed after all retries.
    pub failed_calls: u64,
    /// HTTP attempts beyond the first of each call.
    pub retries: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// `None` when the model's price is unknown.
    pub cost_usd: Option<f64>,
}

impl UsageReport {
    pub fn summary(&self) -> String {
        let cost = match self.cost_usd {
            Some(c) => format!("${c:.4} (estimated)"),
            None => "cost unknown (no price for this model; see --price-input)".into(),
        };
        format!(
            "{} {}: {} calls ({} failed, {} retries), {} input + {} output tokens, {}",
            self.provider,
            self.model,
            self.calls,
            self.failed_calls,
            self.retries,
            self.input_tokens,
            self.output_tokens,
            cost
        )
    }
}

/// Anything that completes a prompt: the HTTP clients here, or a fake in tests and benches.
#[async_trait]
pub trait Llm: Send + Sync {
    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError>;
    fn usage(&self) -> UsageReport;
}

/// The HTTP client for either provider.
pub struct HttpLlm {
    config: LlmConfig,
    http: reqwest::Client,
    permits: Semaphore,
    usage: Mutex<UsageReport>,
}

impl HttpLlm {
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        if config.concurrency == 0 {
            return Err(LlmError::Config("concurrency must be at least 1".into()));
        }
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            return Err(LlmError::Config(format!(
                "{} must be an http(s) URL (got {:?})",
                config.provider.base_url_var(),
                config.base_url
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("lightning-optimizer/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            permits: Semaphore::new(config.concurrency),
            usage: Mutex::new(UsageReport {
                provider: config.provider.name().into(),
                model: config.model.clone(),
                cost_usd: config.price.map(|_| 0.0),
                ..Default::default()
            }),
            config,
            http,
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    fn record(&self, f: impl FnOnce(&mut UsageReport)) {
        f(&mut self.usage.lock().expect("usage lock"));
    }

    /// One HTTP attempt: `Ok` with the parsed reply, or an error and whether to retry it.
    async fn attempt(
        &self,
        body: &serde_json::Value,
    ) -> Result<LlmResponse, (Attempt, Option<Duration>)> {
        let provider = self.config.provider.name();
        let request = match self.config.provider {
            Provider::Anthropic => anthropic::request(&self.http, &self.config, body),
            Provider::OpenAi => openai::request(&self.http, &self.config, body),
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    format!("timed out after {:?}", self.config.timeout)
                } else {
                    format!("request failed: {}", error_chain(&e))
                };
                return Err((Attempt::Retry(what), None));
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => {
                let what = if e.is_timeout() {
                    format!("timed out reading the body after {:?}", self.config.timeout)
                } else {
                    format!("reading the body failed: {}", error_chain(&e))
                };
                return Err((Attempt::Retry(what), None));
            }
        };
        if !status.is_success() {
            let message = format!("{status}: {}", error_message(&text));
            return Err(if is_retryable(status) {
                (Attempt::Retry(message), retry_after)
            } else {
                (
                    Attempt::Fail(LlmError::Rejected {
                        provider,
                        status: status.as_u16(),
                        message: error_message(&text),
                    }),
                    None,
                )
            });
        }
        let parsed = match self.config.provider {
            Provider::Anthropic => anthropic::parse(&text),
            Provider::OpenAi => openai::parse(&text),
        };
        parsed.map_err(|message| {
            (
                Attempt::Fail(LlmError::Malformed { provider, message }),
                None,
            )
        })
    }

    fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.config.retry_after_max);
        }
        let exp = self
            .config
            .backoff_base
            .saturating_mul(1u32 << retry.min(16))
            .min(self.config.backoff_max);
        // Full jitter between half and all of the exponential step.
        let half = exp / 2;
        half + half.mul_f64(rand::thread_rng().gen::<f64>())
    }
}

enum Attempt {
    Retry(String),
    Fail(LlmError),
}

#[async_trait]
impl Llm for HttpLlm {
    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let body = match self.config.provider {
            Provider::Anthropic => anthropic::body(&self.config, request),
            Provider::OpenAi => openai::body(&self.config, request),
        };
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("semaphore never closed");
        let started = Instant::now();
        let mut retry = 0u32;
        loop {
            match self.attempt(&body).await {
                Ok(response) => {
                    let price = self.config.price;
                    self.record(|u| {
                        u.calls += 1;
                        u.input_tokens += response.input_tokens;
                        u.output_tokens += response.output_tokens;
                        if let (Some(cost), Some(price)) = (u.cost_usd.as_mut(), price) {
                            *cost += price.cost(response.input_tokens, response.output_tokens);
                        }
                    });
                    tracing::debug!(elapsed = ?started.elapsed(), retry, "LLM call done");
                    return Ok(response);
                }
                Err((Attempt::Fail(e), _)) => {
                    self.record(|u| u.failed_calls += 1);
                    return Err(e);
                }
                Err((Attempt::Retry(last), retry_after)) => {
                    if retry >= self.config.max_retries {
                        self.record(|u| u.failed_calls += 1);
                        return Err(LlmError::RetriesExhausted {
                            provider: self.config.provider.name(),
                            attempts: retry + 1,
                            last,
                        });
                    }
                    let wait = self.backoff(retry, retry_after);
                    tracing::warn!(
                        "{} API: {last}; retry {} of {} in {wait:?}",
                        self.config.provider.name(),
                        retry + 1,
                        self.config.max_retries
                    );
                    self.record(|u| u.retries += 1);
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
            }
        }
    }

    fn usage(&self) -> UsageReport {
        self.usage.lock().expect("usage lock").clone()
    }
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        408 | 409 | 429 | 500 | 502 | 503 | 504 | 529
    )
}

/// `Retry-After` in seconds or as an HTTP date, or `retry-after-ms` (OpenAI).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let raw = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The provider's error message from a JSON error body, else the body's start.
fn error_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.pointer("/message"))
            .or_else(|| v.get("error"))
            .and_then(|m| m.as_str())
            .map(str::to_string)
    });
    message.unwrap_or_else(|| excerpt(body, 300))
}

pub(crate) fn excerpt(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}…")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", "0.5".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    }

    #[test]
    fn prices_and_errors() {
        let p = Price::for_model("claude-sonnet-4-5").unwrap();
        assert!((p.cost(1_000_000, 1_000_000) - 18.0).abs() < 1e-9);
        assert!(Price::for_model("llama3").is_none());
        assert_eq!(
            error_message(
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            ),
            "Overloaded"
        );
        assert_eq!(
            error_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }

    #[test]
    fn the_default_judge_is_never_the_proposer() {
        let a = Provider::Anthropic;
        assert_eq!(a.default_judge_model(a.default_model()), "claude-haiku-4-5");
        assert_eq!(
            a.default_judge_model("claude-haiku-4-5"),
            "claude-sonnet-4-5"
        );
        assert_eq!(a.default_judge_model("claude-opus-4-1"), "claude-haiku-4-5");
        let o = Provider::OpenAi;
        assert_eq!(o.default_judge_model(o.default_model()), "gpt-4.1-mini");
        assert_eq!(o.default_judge_model("gpt-4.1-mini"), "gpt-4o-mini");
        for p in [a, o] {
            for proposer in [p.default_model(), "claude-haiku-4-5", "gpt-4.1-mini", "x"] {
                assert_ne!(p.default_judge_model(proposer), proposer);
            }
        }
    }

    #[test]
    fn missing_key_names_the_variable() {
        let e = LlmError::MissingKey {
            var: Provider::OpenAi.key_var(),
        };
        assert!(e.to_string().starts_with("OPENAI_API_KEY is not set"));
    }
}
