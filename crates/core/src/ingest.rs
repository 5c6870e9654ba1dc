//! Bodies of the ingest endpoints and their validation.
//!
//! Deserialization catches wrong types and missing fields; `validate` catches values that parse
//! but make no sense (negative counts, absurd sizes, empty names). Both name the offending field.

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Upper bounds that reject garbage while leaving generous room for real agents.
pub mod limits {
    pub const MAX_NAME_LEN: usize = 256;
    pub const MAX_STEP_NUMBER: i64 = 10_000_000;
    pub const MAX_STEPS_PER_BATCH: usize = 10_000;
    /// 366 days, in milliseconds.
    pub const MAX_DURATION_MS: i64 = 366 * 24 * 3600 * 1000;
    pub const MAX_TURNS: i64 = 10_000_000;
    pub const MAX_TOKENS: i64 = 1_000_000_000_000;
    pub const MAX_COST_USD: f64 = 1_000_000.0;
    pub const MIN_YEAR: i32 = 1970;
    pub const MAX_YEAR: i32 = 2200;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

type Validation = Result<(), ValidationError>;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NewTrajectory {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub agent_id: String,
    #[serde(default)]
    pub task_type: Option<String>,
    #[serde(default)]
    pub start_time: Option<DateTime<Utc>>,
    /// Client-generated id: repeating a start with it is a no-op.
    #[serde(default)]
    pub trajectory_id: Option<Uuid>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub prompt_version: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
}

/// What a step records. Only `tool` steps count in `stepCount`, `errorCount` and tool stats.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// A tool call.
    #[default]
    Tool,
    /// Assistant text between tool calls, or the final answer (`toolName: "assistant"`).
    Message,
    /// A lifecycle fact such as `SubagentStart` (`toolName` = the hook event name).
    Event,
}

impl StepKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Tool => "tool",
            StepKind::Message => "message",
            StepKind::Event => "event",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "tool" => StepKind::Tool,
            "message" => StepKind::Message,
            "event" => StepKind::Event,
            _ => return None,
        })
    }
}

/// The outcome a client may state in `complete`; `abandoned` is the collector's alone.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CompletionStatus {
    Succeeded,
    Failed,
    Interrupted,
}

impl CompletionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CompletionStatus::Succeeded => "succeeded",
            CompletionStatus::Failed => "failed",
            CompletionStatus::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NewStep {
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 10_000_000))]
    pub step_number: i64,
    /// Absent: `tool` for a new step; a re-sent step keeps its stored kind.
    #[serde(default)]
    pub kind: Option<StepKind>,
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub tool_name: String,
    #[serde(default)]
    pub tool_input: Option<Value>,
    #[serde(default)]
    pub tool_output: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<i64>,
    #[serde(default)]
    pub tool_use_id: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepBatch {
    pub steps: Vec<NewStep>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: Option<i64>,
    #[serde(default)]
    pub output_tokens: Option<i64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<i64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    pub success: bool,
    /// `succeeded | failed | interrupted`; absent: derived from `success`. Must agree with it.
    #[serde(default)]
    pub status: Option<CompletionStatus>,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub total_steps: Option<i64>,
    /// Milliseconds; fractional values are rounded.
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub cost_usd: Option<f64>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub num_turns: Option<i64>,
}

impl Completion {
    pub fn duration_ms(&self) -> Option<i64> {
        self.duration.map(|d| d.round() as i64)
    }

    /// The status to store: the stated one, else the one `success` implies.
    pub fn final_status(&self) -> crate::Status {
        match self.status {
            Some(CompletionStatus::Succeeded) => crate::Status::Succeeded,
            Some(CompletionStatus::Failed) => crate::Status::Failed,
            Some(CompletionStatus::Interrupted) => crate::Status::Interrupted,
            None => crate::Status::from_success(Some(self.success)),
        }
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "invalid type: expected a string or a number, got {other}"
        ))),
    }
}

fn name(field: &str, value: &str) -> Validation {
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    opt_name(field, Some(value))
}

fn opt_name(field: &str, value: Option<&str>) -> Validation {
    match value {
        Some(v) if v.chars().count() > limits::MAX_NAME_LEN => Err(ValidationError::new(
            field,
            format!("must be at most {} characters", limits::MAX_NAME_LEN),
        )),
        _ => Ok(()),
    }
}

fn range(field: &str, value: Option<i64>, max: i64) -> Validation {
    match value {
        Some(v) if v < 0 => Err(ValidationError::new(
            field,
            format!("must not be negative (got {v})"),
        )),
        Some(v) if v > max => Err(ValidationError::new(
            field,
            format!("must be at most {max} (got {v})"),
        )),
        _ => Ok(()),
    }
}

fn finite(field: &str, value: Option<f64>, max: f64) -> Validation {
    match value {
        Some(v) if !v.is_finite() || v < 0.0 || v > max => Err(ValidationError::new(
            field,
            format!("must be a number between 0 and {max} (got {v})"),
        )),
        _ => Ok(()),
    }
}

fn timestamp(field: &str, value: Option<DateTime<Utc>>) -> Validation {
    match value {
        Some(t) if !(limits::MIN_YEAR..=limits::MAX_YEAR).contains(&t.year()) => {
            Err(ValidationError::new(
                field,
                format!(
                    "year must be between {} and {}",
                    limits::MIN_YEAR,
                    limits::MAX_YEAR
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn object(field: &str, value: Option<&Value>) -> Validation {
    match value {
        None | Some(Value::Null | Value::Object(_)) => Ok(()),
        Some(_) => Err(ValidationError::new(field, "must be a JSON object")),
    }
}

/// PostgreSQL cannot store U+0000 in text or jsonb; replacing it on both backends keeps
/// them identical and never loses the rest of a (possibly binary) tool output.
fn scrub_nul_str(s: &mut String) {
    if s.contains('\0') {
        *s = s.replace('\0', "\u{FFFD}");
    }
}

pub(crate) fn scrub_nul(v: &mut Value) {
    match v {
        Value::String(s) => scrub_nul_str(s),
        Value::Array(items) => items.iter_mut().for_each(scrub_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                for (mut k, mut val) in old {
                    scrub_nul_str(&mut k);
                    scrub_nul(&mut val);
                    map.insert(k, val);
                }
            } else {
                map.values_mut().for_each(scrub_nul);
            }
        }
        _ => {}
    }
}

fn scrub_opt(v: &mut Option<Value>) {
    match v {
        Some(Value::Null) => *v = None,
        Some(inner) => scrub_nul(inner),
        None => {}
    }
}

fn scrub_opt_str(v: &mut Option<String>) {
    if let Some(s) = v {
        scrub_nul_str(s);
    }
}

impl NewTrajectory {
    /// Checks values and normalizes them for storage (NUL scrubbing, µs timestamps).
    pub fn validate(&mut self) -> Validation {
        name("agentId", &self.agent_id)?;
        opt_name("taskType", self.task_type.as_deref())?;
        opt_name("sessionId", self.session_id.as_deref())?;
        opt_name("promptVersion", self.prompt_version.as_deref())?;
        opt_name("model", self.model.as_deref())?;
        timestamp("startTime", self.start_time)?;
        object("metadata", self.metadata.as_ref())?;
        for s in [
            &mut self.task_type,
            &mut self.session_id,
            &mut self.prompt,
            &mut self.system_prompt,
            &mut self.prompt_version,
            &mut self.model,
        ] {
            scrub_opt_str(s);
        }
        scrub_nul_str(&mut self.agent_id);
        scrub_opt(&mut self.metadata);
        self.start_time = self.start_time.map(crate::time::normalize);
        Ok(())
    }
}

impl NewStep {
    fn validate_at(&mut self, index: usize) -> Validation {
        let field = |f: &str| format!("steps[{index}].{f}");
        range(
            &field("stepNumber"),
            Some(self.step_number),
            limits::MAX_STEP_NUMBER,
        )?;
        name(&field("toolName"), &self.tool_name)?;
        opt_name(&field("toolUseId"), self.tool_use_id.as_deref())?;
        range(
            &field("durationMs"),
            self.duration_ms,
            limits::MAX_DURATION_MS,
        )?;
        timestamp(&field("timestamp"), self.timestamp)?;
        object(&field("metadata"), self.metadata.as_ref())?;
        scrub_nul_str(&mut self.tool_name);
        scrub_opt_str(&mut self.error);
        scrub_opt_str(&mut self.tool_use_id);
        scrub_opt(&mut self.tool_input);
        scrub_opt(&mut self.tool_output);
        scrub_opt(&mut self.metadata);
        self.timestamp = self.timestamp.map(crate::time::normalize);
        Ok(())
    }

    /// Applies the merge rule: fields present in `newer` replace ours, absent ones keep ours.
    /// The timestamp is the first write's (when the step started).
    pub fn merge(&mut self, newer: NewStep) {
        self.tool_name = newer.tool_name;
        self.timestamp = self.timestamp.or(newer.timestamp);
        self.kind = newer.kind.or(self.kind);
        macro_rules! take_present {
            ($($f:ident),*) => { $( if newer.$f.is_some() { self.$f = newer.$f; } )* };
        }
        take_present!(
            tool_input,
            tool_output,
            error,
            duration_ms,
            tool_use_id,
            metadata
        );
    }
}

impl StepBatch {
    /// Validates every step and folds repeated step numbers into one (in batch order), sorted
    /// by step number so concurrent writers lock rows in the same order.
    pub fn validate(self) -> Result<Vec<NewStep>, ValidationError> {
        if self.steps.len() > limits::MAX_STEPS_PER_BATCH {
            return Err(ValidationError::new(
                "steps",
                format!(
                    "at most {} steps per batch (got {})",
                    limits::MAX_STEPS_PER_BATCH,
                    self.steps.len()
                ),
            ));
        }
        let mut steps: Vec<NewStep> = Vec::with_capacity(self.steps.len());
        for (i, mut step) in self.steps.into_iter().enumerate() {
            step.validate_at(i)?;
            steps.push(step);
        }
        steps.sort_by_key(|s| s.step_number); // stable: batch order kept among equals
        let mut merged: Vec<NewStep> = Vec::with_capacity(steps.len());
        for step in steps {
            match merged.last_mut() {
                Some(last) if last.step_number == step.step_number => last.merge(step),
                _ => merged.push(step),
            }
        }
        Ok(merged)
    }
}

impl Completion {
    pub fn validate(&mut self) -> Validation {
        match (self.status, self.success) {
            (Some(CompletionStatus::Succeeded), false) => {
                return Err(ValidationError::new(
                    "status",
                    "\"succeeded\" contradicts success: false",
                ))
            }
            (Some(s @ (CompletionStatus::Failed | CompletionStatus::Interrupted)), true) => {
                return Err(ValidationError::new(
                    "status",
                    format!("\"{}\" contradicts success: true", s.as_str()),
                ))
            }
            _ => {}
        }
        range("totalSteps", self.total_steps, limits::MAX_STEP_NUMBER)?;
        finite("duration", self.duration, limits::MAX_DURATION_MS as f64)?;
        finite("costUsd", self.cost_usd, limits::MAX_COST_USD)?;
        range("numTurns", self.num_turns, limits::MAX_TURNS)?;
        timestamp("endTime", self.end_time)?;
        if let Some(u) = &self.usage {
            range("usage.inputTokens", u.input_tokens, limits::MAX_TOKENS)?;
            range("usage.outputTokens", u.output_tokens, limits::MAX_TOKENS)?;
            range(
                "usage.cacheReadInputTokens",
                u.cache_read_input_tokens,
                limits::MAX_TOKENS,
            )?;
            range(
                "usage.cacheCreationInputTokens",
                u.cache_creation_input_tokens,
                limits::MAX_TOKENS,
            )?;
        }
        scrub_opt(&mut self.result);
        scrub_opt_str(&mut self.error);
        self.end_time = self.end_time.map(crate::time::normalize);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(n: i64, tool: &str) -> NewStep {
        NewStep {
            step_number: n,
            tool_name: tool.into(),
            ..Default::default()
        }
    }

    #[test]
    fn batch_merges_repeated_steps_and_sorts() {
        let mut open = step(2, "Read");
        open.tool_input = Some(json!({"path": "a"}));
        let mut closed = step(2, "Read");
        closed.tool_output = Some(json!("text"));
        let batch = StepBatch {
            steps: vec![open, step(1, "Bash"), closed],
        };
        let steps = batch.validate().unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].step_number, 1);
        assert_eq!(steps[1].tool_input, Some(json!({"path": "a"})));
        assert_eq!(steps[1].tool_output, Some(json!("text")));
    }

    #[test]
    fn validation_names_the_field() {
        let err = StepBatch {
            steps: vec![step(1, "ok"), step(-1, "x")],
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field, "steps[1].stepNumber");
        let err = StepBatch {
            steps: vec![step(1, " ")],
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field, "steps[0].toolName");
        let mut c = Completion {
            cost_usd: Some(f64::NAN),
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "costUsd");
        let mut t = NewTrajectory {
            agent_id: String::new(),
            ..Default::default()
        };
        assert_eq!(t.validate().unwrap_err().field, "agentId");
        let mut t = NewTrajectory {
            agent_id: "a".into(),
            metadata: Some(json!([1])),
            ..Default::default()
        };
        assert_eq!(t.validate().unwrap_err().field, "metadata");
    }

    #[test]
    fn nul_characters_are_scrubbed_everywhere() {
        let mut s = step(1, "Read\0");
        s.tool_output = Some(json!({"k\0": ["a\0b"]}));
        let steps = StepBatch { steps: vec![s] }.validate().unwrap();
        assert_eq!(steps[0].tool_name, "Read\u{FFFD}");
        assert_eq!(
            steps[0].tool_output,
            Some(json!({"k\u{FFFD}": ["a\u{FFFD}b"]}))
        );
    }

    #[test]
    fn prompt_version_accepts_numbers() {
        let t: NewTrajectory =
            serde_json::from_value(json!({"agentId": "a", "promptVersion": 3})).unwrap();
        assert_eq!(t.prompt_version.as_deref(), Some("3"));
    }
}
