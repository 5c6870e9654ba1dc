//! The run's LLM replies kept in the store, so that `lightning optimize --resume` replays them
//! instead of asking again. The search retraces an interrupted run step by step (same seed, same
//! minibatches); with the same replies it proposes the same candidates, whose stored evaluations
//! it then reuses — a fresh reply from a real model would make new candidates, evaluated anew.
//!
//! A request is identified by the SHA-256 of what shapes its reply (system prompt, prompt,
//! `max_tokens`, temperature) and by how many identical requests the run made before it.
//! Replayed replies cost nothing and are not counted in [`Llm::usage`].

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use async_trait::async_trait;
use lightning_core::StoredLlmReply;
use lightning_store::{Store, StoreResult};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Llm, LlmError, LlmRequest, LlmResponse, UsageReport};

pub struct ReplayLlm {
    inner: Arc<dyn Llm>,
    store: Arc<dyn Store>,
    run_id: Uuid,
    /// Stored replies not replayed yet, by (request key, occurrence).
    stored: Mutex<HashMap<(String, i64), LlmResponse>>,
    /// Requests made so far in this process, by key.
    seen: Mutex<HashMap<String, i64>>,
    replayed: AtomicU64,
}

impl ReplayLlm {
    /// Wraps `inner` for run `run_id`, with the replies the run stored so far.
    pub async fn open(
        inner: Arc<dyn Llm>,
        store: Arc<dyn Store>,
        run_id: Uuid,
    ) -> StoreResult<Self> {
        let stored = store
            .list_llm_replies(run_id)
            .await?
            .into_iter()
            .map(|r| {
                let reply = LlmResponse {
                    text: r.text,
                    input_tokens: u64::try_from(r.input_tokens).unwrap_or(0),
                    output_tokens: u64::try_from(r.output_tokens).unwrap_or(0),
                };
                ((r.request_key, r.occurrence), reply)
            })
            .collect();
        Ok(Self {
            inner,
            store,
            run_id,
            stored: Mutex::new(stored),
            seen: Mutex::new(HashMap::new()),
            replayed: AtomicU64::new(0),
        })
    }

    /// Stored replies available for replay when opened.
    pub fn available(&self) -> usize {
        self.stored.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Requests answered from the store instead of the model.
    pub fn replayed(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }
}

/// SHA-256 (hex) of everything in the request that shapes the reply, each part length-prefixed
/// so that no two different requests encode alike.
pub fn request_key(request: &LlmRequest) -> String {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    part(request.system.as_deref().unwrap_or("\u{0}none").as_bytes());
    part(request.prompt.as_bytes());
    part(format!("{:?}", request.max_tokens).as_bytes());
    part(format!("{:?}", request.temperature.map(f32::to_bits)).as_bytes());
    format!("{:x}", hash.finalize())
}

#[async_trait]
impl Llm for ReplayLlm {
    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let key = request_key(request);
        let occurrence = {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = seen.entry(key.clone()).or_insert(0);
            *n += 1;
            *n - 1
        };
        let stored = self
            .stored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(key.clone(), occurrence));
        if let Some(reply) = stored {
            self.replayed.fetch_add(1, Ordering::Relaxed);
            return Ok(reply);
        }
        let reply = self.inner.complete(request).await?;
        let kept = StoredLlmReply {
            request_key: key,
            occurrence,
            text: reply.text.clone(),
            input_tokens: i64::try_from(reply.input_tokens).unwrap_or(i64::MAX),
            output_tokens: i64::try_from(reply.output_tokens).unwrap_or(i64::MAX),
        };
        // Not kept only means a later --resume asks the model again: the run goes on.
        if let Err(e) = self.store.save_llm_reply(self.run_id, &kept).await {
            tracing::warn!(error = %e, "could not keep an LLM reply for --resume");
        }
        Ok(reply)
    }

    fn usage(&self) -> UsageReport {
        self.inner.usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keys_tell_every_shaping_field_apart() {
        let base = LlmRequest::new("critique this");
        let key = request_key(&base);
        assert_eq!(key, request_key(&base.clone()));
        assert_eq!(key.len(), 64);
        let variants = [
            LlmRequest {
                system: Some(String::new()),
                ..base.clone()
            },
            LlmRequest {
                prompt: "critique that".into(),
                ..base.clone()
            },
            LlmRequest {
                max_tokens: Some(100),
                ..base.clone()
            },
            LlmRequest {
                temperature: Some(0.0),
                ..base.clone()
            },
            // the length prefix keeps a moved boundary between system and prompt apart
            LlmRequest {
                system: Some("critique".into()),
                prompt: " this".into(),
                ..base.clone()
            },
        ];
        let mut keys: Vec<String> = variants.iter().map(request_key).collect();
        keys.push(key);
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), variants.len() + 1);
    }
}
