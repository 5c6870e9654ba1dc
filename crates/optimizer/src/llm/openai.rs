//! OpenAI-compatible Chat Completions: `POST {base}/chat/completions` (OpenAI, Ollama, vLLM,
//! llama.cpp, ...).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{LlmConfig, LlmRequest, LlmResponse};

pub(super) fn body(config: &LlmConfig, request: &LlmRequest) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": request.prompt}));
    json!({
        "model": config.model,
        "messages": messages,
        "max_tokens": request.max_tokens.unwrap_or(config.max_tokens),
        "temperature": request.temperature.unwrap_or(config.temperature),
    })
}

pub(super) fn request(
    http: &reqwest::Client,
    config: &LlmConfig,
    body: &Value,
) -> reqwest::RequestBuilder {
    http.post(format!("{}/chat/completions", config.base_url))
        .bearer_auth(&config.api_key)
        .json(body)
}

#[derive(Deserialize)]
struct Reply {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

pub(super) fn parse(text: &str) -> Result<LlmResponse, String> {
    let reply: Reply = serde_json::from_str(text)
        .map_err(|e| format!("{e} in {:?}", super::excerpt(text, 200)))?;
    let choice = reply
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| "no choices in the reply".to_string())?;
    let usage = reply.usage.unwrap_or_default();
    Ok(LlmResponse {
        text: choice.message.content.unwrap_or_default(),
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
    })
}
