//! What the read API returns, and the filters it takes.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::ingest::{StepKind, Usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    /// The process ended (signal, exit, exception outside the agent) before the agent finished.
    Interrupted,
    /// Set only by the collector's idle sweep; a later step or completion corrects it.
    Abandoned,
}

impl Status {
    pub fn from_success(success: Option<bool>) -> Self {
        match success {
            None => Status::Running,
            Some(true) => Status::Succeeded,
            Some(false) => Status::Failed,
        }
    }

    /// The stored (and wire) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => Status::Running,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "interrupted" => Status::Interrupted,
            "abandoned" => Status::Abandoned,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Trajectory {
    pub id: Uuid,
    pub agent_id: String,
    pub task_type: Option<String>,
    pub session_id: Option<String>,
    pub prompt: Option<String>,
    pub system_prompt: Option<String>,
    pub prompt_version: Option<String>,
    pub model: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub status: Status,
    pub success: Option<bool>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub total_steps: Option<i64>,
    pub duration_ms: Option<i64>,
    pub cost_usd: Option<f64>,
    pub usage: Option<Usage>,
    pub num_turns: Option<i64>,
    pub step_count: i64,
    pub error_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub step_number: i64,
    pub timestamp: DateTime<Utc>,
    /// `tool` (a tool call), `message` (assistant text) or `event` (a lifecycle fact).
    pub kind: StepKind,
    pub tool_name: String,
    pub tool_input: Option<Value>,
    pub tool_output: Option<Value>,
    pub error: Option<String>,
    pub duration_ms: Option<i64>,
    pub tool_use_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrajectoryWithSteps {
    #[serde(flatten)]
    pub trajectory: Trajectory,
    pub steps: Vec<Step>,
    /// Every score of the trajectory and its steps, oldest first.
    #[serde(default)]
    pub scores: Vec<crate::score::Score>,
}

/// Position in the newest-first listing: the last row seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub start_time: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            crate::time::format(self.start_time),
            self.id
        ))
    }

    pub fn decode(s: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let (t, id) = raw.split_once('|')?;
        Some(Cursor {
            start_time: crate::time::parse(t).ok()?,
            id: id.parse().ok()?,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrajectoryFilter {
    pub agent_id: Option<String>,
    pub task_type: Option<String>,
    pub status: Option<Status>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Case-insensitive substring of id, agent id, task type or prompt.
    pub search: Option<String>,
    pub cursor: Option<Cursor>,
    pub limit: i64,
    /// Only trajectories with (or, with `missing`, without) a matching score.
    pub score: Option<crate::score::ScoreFilter>,
    /// Leave out optimizer evaluation runs (`promptVersion` starting `opt-`).
    pub exclude_evaluations: bool,
}

impl TrajectoryFilter {
    pub const DEFAULT_LIMIT: i64 = 50;
    pub const MAX_LIMIT: i64 = 1000;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrajectoryPage {
    pub trajectories: Vec<Trajectory>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TimeBucket {
    Hour,
    Day,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsFilter {
    pub agent_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub bucket: Option<TimeBucket>,
    /// Count optimizer evaluation runs (`promptVersion` starting `opt-`) too; left out by
    /// default so they do not skew the agent's production figures.
    pub include_evaluations: bool,
}

impl StatsFilter {
    /// Hourly buckets for short ranges, daily otherwise.
    pub fn effective_bucket(&self, now: DateTime<Utc>) -> TimeBucket {
        self.bucket.unwrap_or_else(|| match self.since {
            Some(since) if self.until.unwrap_or(now) - since <= chrono::Duration::days(3) => {
                TimeBucket::Hour
            }
            _ => TimeBucket::Day,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ToolStats {
    pub tool_name: String,
    pub calls: i64,
    pub errors: i64,
    pub error_rate: f64,
    pub mean_duration_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentStats {
    pub agent_id: String,
    pub trajectories: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub success_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TimelinePoint {
    pub bucket: DateTime<Utc>,
    pub trajectories: i64,
    pub succeeded: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub trajectories: i64,
    pub running: i64,
    pub succeeded: i64,
    /// Completed with `success: false`, `interrupted` ones included.
    pub failed: i64,
    /// Of `failed`, those whose process ended before the agent did.
    pub interrupted: i64,
    /// Closed by the idle sweep: no completion ever arrived. Not counted in `successRate`.
    pub abandoned: i64,
    pub success_rate: Option<f64>,
    pub mean_steps: Option<f64>,
    pub mean_duration_ms: Option<f64>,
    pub mean_cost_usd: Option<f64>,
    pub total_cost_usd: f64,
    pub bucket: TimeBucket,
    pub tools: Vec<ToolStats>,
    pub agents: Vec<AgentStats>,
    pub timeline: Vec<TimelinePoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentSummary {
    pub agent_id: String,
    pub trajectories: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub last_seen: DateTime<Utc>,
}

/// `succeeded / (succeeded + failed)`, or `None` when nothing has finished.
pub fn success_rate(succeeded: i64, failed: i64) -> Option<f64> {
    let done = succeeded + failed;
    (done > 0).then(|| succeeded as f64 / done as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            start_time: crate::time::now(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("x|y")), None);
    }
}
