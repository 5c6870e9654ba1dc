//! Scores: named outcomes attached to a trajectory (or one of its steps) by people, LLM judges,
//! code graders or the agent's own SDK. The success signal the optimizer and the dashboard use.
//!
//! Wire contract: docs/api.md "Scores".

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::ValidationError;

pub const MAX_SCORE_NAME_LEN: usize = 64;
pub const MAX_LABEL_LEN: usize = 256;
pub const MAX_SCORE_ID_LEN: usize = 128;
/// Longest comment kept (a judge's rationale, a reviewer's note).
pub const MAX_COMMENT_LEN: usize = 16 * 1024;

/// A number (finite), a boolean, or a string label.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum ScoreValue {
    Number(f64),
    Boolean(bool),
    Label(String),
}

impl ScoreValue {
    pub fn data_type(&self) -> DataType {
        match self {
            ScoreValue::Number(_) => DataType::Numeric,
            ScoreValue::Boolean(_) => DataType::Boolean,
            ScoreValue::Label(_) => DataType::Categorical,
        }
    }

    /// The value as a number: itself, or 1/0 for booleans; `None` for labels.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ScoreValue::Number(n) => Some(*n),
            ScoreValue::Boolean(b) => Some(if *b { 1.0 } else { 0.0 }),
            ScoreValue::Label(_) => None,
        }
    }

    pub fn label(&self) -> Option<&str> {
        match self {
            ScoreValue::Label(l) => Some(l),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for ScoreValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_f64()
                .map(ScoreValue::Number)
                .ok_or_else(|| serde::de::Error::custom("number out of range")),
            Value::Bool(b) => Ok(ScoreValue::Boolean(b)),
            Value::String(s) => Ok(ScoreValue::Label(s)),
            other => Err(serde::de::Error::custom(format!(
                "invalid type: expected a number, a boolean or a string label, got {}",
                kind(&other)
            ))),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    Numeric,
    Boolean,
    Categorical,
}

impl DataType {
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Numeric => "numeric",
            DataType::Boolean => "boolean",
            DataType::Categorical => "categorical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "numeric" => DataType::Numeric,
            "boolean" => DataType::Boolean,
            "categorical" => DataType::Categorical,
            _ => return None,
        })
    }
}

/// Who gave the score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ScoreSource {
    /// A person (the dashboard's thumbs and comments).
    Human,
    /// An LLM judge (`lightning grade --judge`).
    Llm,
    /// A program (`lightning grade --eval-cmd`, a test suite).
    Code,
    /// The agent's own instrumentation (`lightning.score(...)`).
    #[default]
    Sdk,
}

impl ScoreSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreSource::Human => "human",
            ScoreSource::Llm => "llm",
            ScoreSource::Code => "code",
            ScoreSource::Sdk => "sdk",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "human" => ScoreSource::Human,
            "llm" => ScoreSource::Llm,
            "code" => ScoreSource::Code,
            "sdk" => ScoreSource::Sdk,
            _ => return None,
        })
    }
}

/// Body of `POST /api/trajectories/{id}/scores`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NewScore {
    /// `[A-Za-z0-9_.:-]`, 1 to 64 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.:-]+$")
    )]
    pub name: String,
    /// A finite number, a boolean, or a label of 1 to 256 characters.
    pub value: ScoreValue,
    #[serde(default)]
    pub comment: Option<String>,
    /// Default `sdk` when the score is first stored; a repeat without it keeps the stored one.
    #[serde(default)]
    pub source: Option<ScoreSource>,
    /// Client idempotency key: repeating a POST with it updates that score.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")
    )]
    pub id: Option<String>,
    /// The step this score is about, if any.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 10_000_000))]
    pub step_number: Option<i64>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
}

/// A stored score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Score {
    pub id: String,
    pub trajectory_id: Uuid,
    pub name: String,
    pub value: ScoreValue,
    pub data_type: DataType,
    pub comment: Option<String>,
    pub source: ScoreSource,
    pub step_number: Option<i64>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn identifier(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    let n = value.chars().count();
    if n == 0 || n > max {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {max} characters (got {n})"),
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return Err(ValidationError::new(
            field,
            format!("may only contain A-Z, a-z, 0-9, '_', '.', ':' and '-' (got {bad:?})"),
        ));
    }
    Ok(())
}

/// Checks a score id given in a path or body.
pub fn validate_score_id(field: &str, id: &str) -> Result<(), ValidationError> {
    identifier(field, id, MAX_SCORE_ID_LEN)
}

/// Checks a score name (also used for the `scoreName` filter).
pub fn validate_score_name(field: &str, name: &str) -> Result<(), ValidationError> {
    identifier(field, name, MAX_SCORE_NAME_LEN)
}

impl NewScore {
    pub fn new(name: impl Into<String>, value: ScoreValue) -> Self {
        Self {
            name: name.into(),
            value,
            comment: None,
            source: None,
            id: None,
            step_number: None,
            metadata: None,
        }
    }

    /// Checks every field, naming the one that is wrong, and normalizes for storage.
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        validate_score_name("name", &self.name)?;
        match &mut self.value {
            ScoreValue::Number(n) if !n.is_finite() => {
                return Err(ValidationError::new(
                    "value",
                    format!("must be a finite number (got {n})"),
                ))
            }
            ScoreValue::Label(label) => {
                let n = label.chars().count();
                if n == 0 || n > MAX_LABEL_LEN || label.trim().is_empty() {
                    return Err(ValidationError::new(
                        "value",
                        format!("a label must be 1 to {MAX_LABEL_LEN} characters, not blank"),
                    ));
                }
                if label.contains('\0') {
                    *label = label.replace('\0', "\u{FFFD}");
                }
            }
            _ => {}
        }
        if let Some(id) = &self.id {
            validate_score_id("id", id)?;
        }
        if let Some(c) = &mut self.comment {
            if c.chars().count() > MAX_COMMENT_LEN {
                return Err(ValidationError::new(
                    "comment",
                    format!("must be at most {MAX_COMMENT_LEN} characters"),
                ));
            }
            if c.contains('\0') {
                *c = c.replace('\0', "\u{FFFD}");
            }
        }
        match self.step_number {
            Some(n) if !(0..=crate::ingest::limits::MAX_STEP_NUMBER).contains(&n) => {
                return Err(ValidationError::new(
                    "stepNumber",
                    format!(
                        "must be between 0 and {} (got {n})",
                        crate::ingest::limits::MAX_STEP_NUMBER
                    ),
                ))
            }
            _ => {}
        }
        match &mut self.metadata {
            None | Some(Value::Object(_)) => {}
            Some(Value::Null) => self.metadata = None,
            Some(_) => return Err(ValidationError::new("metadata", "must be a JSON object")),
        }
        if let Some(m) = &mut self.metadata {
            crate::ingest::scrub_nul(m);
        }
        Ok(())
    }
}

/// Selects trajectories by their scores (`GET /api/trajectories?scoreName=…`). Bounds and the
/// label apply to scores of `name`; numeric and boolean scores compare as numbers (true = 1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreFilter {
    pub name: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub label: Option<String>,
    /// Instead: trajectories with no score of `name` at all (`lightning grade --only-missing`).
    pub missing: bool,
}

/// How often one label (or `true`/`false`) was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LabelCount {
    pub label: String,
    pub count: i64,
}

/// One score name's figures for one prompt version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PromptVersionScores {
    pub prompt_version: Option<String>,
    pub count: i64,
    pub mean: Option<f64>,
    pub labels: Vec<LabelCount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ScoreTimelinePoint {
    pub bucket: DateTime<Utc>,
    pub count: i64,
    pub mean: Option<f64>,
}

/// Per score name: how many scores, their mean (booleans as the share of `true`), the label
/// distribution (labels and booleans), per prompt version, and over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ScoreStats {
    pub name: String,
    pub data_type: DataType,
    pub count: i64,
    /// Trajectories with at least one score of this name.
    pub trajectories: i64,
    pub mean: Option<f64>,
    pub labels: Vec<LabelCount>,
    pub by_prompt_version: Vec<PromptVersionScores>,
    pub timeline: Vec<ScoreTimelinePoint>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<NewScore, String> {
        let mut s: NewScore = serde_json::from_value(v).map_err(|e| e.to_string())?;
        s.validate().map_err(|e| e.to_string())?;
        Ok(s)
    }

    #[test]
    fn values_keep_their_type() {
        let n = parse(json!({"name": "q", "value": 0.5})).unwrap();
        assert_eq!(n.value.data_type(), DataType::Numeric);
        let b = parse(json!({"name": "q", "value": true})).unwrap();
        assert_eq!(
            (b.value.data_type(), b.value.as_f64()),
            (DataType::Boolean, Some(1.0))
        );
        let l = parse(json!({"name": "q", "value": "pass"})).unwrap();
        assert_eq!(l.value.label(), Some("pass"));
        assert_eq!(serde_json::to_value(&l.value).unwrap(), json!("pass"));
        assert_eq!(
            serde_json::to_value(ScoreValue::Number(2.0)).unwrap(),
            json!(2.0)
        );
    }

    #[test]
    fn validation_names_the_field() {
        for (body, field) in [
            (json!({"name": "", "value": 1}), "name:"),
            (json!({"name": "x".repeat(65), "value": 1}), "name:"),
            (json!({"name": "a b", "value": 1}), "name:"),
            (json!({"name": "q", "value": ""}), "value:"),
            (json!({"name": "q", "value": "x".repeat(257)}), "value:"),
            (
                json!({"name": "q", "value": [1]}),
                "expected a number, a boolean",
            ),
            (
                json!({"name": "q", "value": null}),
                "expected a number, a boolean",
            ),
            (json!({"name": "q", "value": 1, "id": "has space"}), "id:"),
            (
                json!({"name": "q", "value": 1, "stepNumber": -1}),
                "stepNumber:",
            ),
            (
                json!({"name": "q", "value": 1, "metadata": [1]}),
                "metadata:",
            ),
            (
                json!({"name": "q", "value": 1, "source": "robot"}),
                "unknown variant",
            ),
        ] {
            let err = parse(body.clone()).unwrap_err();
            assert!(err.contains(field), "{body}: {err}");
        }
        let mut s = NewScore::new("q", ScoreValue::Number(f64::INFINITY));
        assert_eq!(s.validate().unwrap_err().field, "value");
    }
}
