//! Anthropic Messages API: `POST {base}/v1/messages`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{LlmConfig, LlmRequest, LlmResponse};

pub(super) const API_VERSION: &str = "2023-06-01";

pub(super) fn body(config: &LlmConfig, request: &LlmRequest) -> Value {
    let mut body = json!({
        "model": config.model,
        "max_tokens": request.max_tokens.unwrap_or(config.max_tokens),
        "temperature": request.temperature.unwrap_or(config.temperature),
        "messages": [{"role": "user", "content": request.prompt}],
    });
    if let Some(system) = &request.system {
        body["system"] = Value::String(system.clone());
    }
    body
}

pub(super) fn request(
    http: &reqwest::Client,
    config: &LlmConfig,
    body: &Value,
) -> reqwest::RequestBuilder {
    http.post(format!("{}/v1/messages", config.base_url))
        .header("x-api-key", &config.api_key)
        .header("anthropic-version", API_VERSION)
        .json(body)
}

#[derive(Deserialize)]
struct Reply {
    content: Vec<Block>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

pub(super) fn parse(text: &str) -> Result<LlmResponse, String> {
    let reply: Reply = serde_json::from_str(text)
        .map_err(|e| format!("{e} in {:?}", super::excerpt(text, 200)))?;
    let text: String = reply
        .content
        .iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text.as_deref())
        .collect::<Vec<_>>()
        .join("");
    let usage = reply.usage.unwrap_or(Usage {
        input_tokens: 0,
        output_tokens: 0,
        cache_read_input_tokens: None,
        cache_creation_input_tokens: None,
    });
    Ok(LlmResponse {
        text,
        input_tokens: usage.input_tokens
            + usage.cache_read_input_tokens.unwrap_or(0)
            + usage.cache_creation_input_tokens.unwrap_or(0),
        output_tokens: usage.output_tokens,
    })
}
