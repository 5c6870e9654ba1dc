//! Canary rollouts of prompt versions: which version a unit gets, what is recorded about each
//! decision, and how two versions compare (docs/rollout.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    stats::{Difference, Estimate, SequentialTest, Verdict},
    ValidationError,
};

pub const MAX_UNIT_LEN: usize = 256;
pub const MAX_ACTOR_LEN: usize = 128;
pub const MAX_REASON_LEN: usize = 4096;

/// A version in canary beside the agent's promoted one (at most one per agent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    pub agent_id: String,
    /// New for every rollout: assignments hash it with the unit, so they are sticky within one
    /// rollout and independent across rollouts.
    pub rollout_id: Uuid,
    /// The canary version.
    pub version: i64,
    /// The version promoted when the rollout started (`None`: the agent's own fallback prompt).
    pub baseline_version: Option<i64>,
    /// Share of units that get the canary, 0–100.
    pub percent: f64,
    /// End the canary automatically when it is significantly worse.
    pub auto_rollback: bool,
    /// What the comparison measures: `success` or `score:<name>`.
    pub reward: String,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /api/agents/{agentId}/prompts/{version}/rollout`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRollout {
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100))]
    pub percent: f64,
    #[serde(default)]
    pub auto_rollback: bool,
    /// `success` (default) or `score:<name>`.
    #[serde(default)]
    pub reward: Option<String>,
    /// Who decided (stored in the event history); default `api`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub actor: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub reason: Option<String>,
}

impl NewRollout {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !self.percent.is_finite() || !(0.0..=100.0).contains(&self.percent) {
            return Err(ValidationError::new(
                "percent",
                "must be a number from 0 to 100",
            ));
        }
        if let Some(reward) = &self.reward {
            Reward::parse(reward)?;
        }
        validate_decision_text(self.actor.as_deref(), self.reason.as_deref())
    }
}

/// A decision as the store records it with its event: who took it, why, and the evidence (the
/// comparison at that moment). Built by the handlers from `DELETE …/rollout`'s query
/// parameters or the promote body ([`DecisionNote`]), by the CLI and by the guard; never an
/// HTTP body itself (a client cannot supply the evidence: the store computes it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub actor: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub reason: Option<String>,
    /// The comparison the decider looked at, stored with the event.
    #[serde(default)]
    pub evidence: Option<Value>,
}

impl Decision {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_decision_text(self.actor.as_deref(), self.reason.as_deref())
    }
}

/// Optional body of `POST /api/agents/{agentId}/prompts/{version}/promote`: who promotes and
/// why, recorded in the `promoted` event (actor `api` when absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionNote {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub actor: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub reason: Option<String>,
}

impl DecisionNote {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_decision_text(self.actor.as_deref(), self.reason.as_deref())
    }

    /// The decision to record; the store adds the evidence.
    pub fn into_decision(self) -> Decision {
        Decision {
            actor: self.actor,
            reason: self.reason,
            evidence: None,
        }
    }
}

fn validate_decision_text(
    actor: Option<&str>,
    reason: Option<&str>,
) -> Result<(), ValidationError> {
    if let Some(actor) = actor {
        if actor.trim().is_empty()
            || actor.len() > MAX_ACTOR_LEN
            || actor.chars().any(char::is_control)
        {
            return Err(ValidationError::new(
                "actor",
                format!("must be 1 to {MAX_ACTOR_LEN} bytes without control characters"),
            ));
        }
    }
    if let Some(reason) = reason {
        if reason.len() > MAX_REASON_LEN || reason.contains('\0') {
            return Err(ValidationError::new(
                "reason",
                format!("must be at most {MAX_REASON_LEN} bytes without NUL characters"),
            ));
        }
    }
    Ok(())
}

/// What a run's outcome is measured by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reward {
    /// 1 for a succeeded run, 0 for failed, interrupted or abandoned; running runs are ignored.
    Success,
    /// The mean of a trajectory's numeric or boolean scores of that name.
    Score(String),
}

impl Reward {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw {
            "success" => Ok(Self::Success),
            _ => match raw.strip_prefix("score:") {
                Some(name) if is_score_name(name) => Ok(Self::Score(name.to_string())),
                _ => Err(ValidationError::new(
                    "reward",
                    format!(
                        "must be `success` or `score:<name>` (name of 1 to 64 characters [A-Za-z0-9_.:-]), got {:?}",
                        raw.chars().take(80).collect::<String>()
                    ),
                )),
            },
        }
    }

    pub fn as_string(&self) -> String {
        match self {
            Self::Success => "success".into(),
            Self::Score(name) => format!("score:{name}"),
        }
    }

    /// Whether every per-run reward is 0 or 1 (then rates get Wilson intervals).
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Success)
    }
}

fn is_score_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Which prompt a unit runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    /// The canary version of the active rollout.
    Canary,
    /// The promoted version.
    Promoted,
    /// No promoted version: the agent's own prompt (the SDK's fallback).
    Fallback,
}

/// Answer of `GET /api/agents/{agentId}/prompts/assignment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub agent_id: String,
    pub unit: String,
    pub arm: Arm,
    /// `None` with arm `fallback`.
    pub version: Option<i64>,
    /// The prompt text to use; `None` with arm `fallback` (use your own).
    pub text: Option<String>,
    pub rollout_id: Option<Uuid>,
    pub percent: Option<f64>,
}

/// Validates a unit key (session id, user id, or anything the caller chooses).
pub fn validate_unit(unit: &str) -> Result<(), ValidationError> {
    if unit.is_empty() || unit.len() > MAX_UNIT_LEN || unit.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "unit",
            format!("must be 1 to {MAX_UNIT_LEN} bytes without control characters"),
        ));
    }
    Ok(())
}

/// Where a unit falls in [0, 1): the first 64 bits of SHA-256(rollout id ‖ 0x00 ‖ unit).
/// Deterministic (sticky for one rollout, no stored state) and uniform for distinct units.
pub fn bucket(rollout_id: Uuid, unit: &str) -> f64 {
    let mut h = Sha256::new();
    h.update(rollout_id.as_bytes());
    h.update([0u8]);
    h.update(unit.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 53 bits: exactly representable in an f64.
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether `unit` gets the canary of `rollout`.
pub fn in_canary(rollout: &Rollout, unit: &str) -> bool {
    bucket(rollout.rollout_id, unit) * 100.0 < rollout.percent
}

/// The version `unit` runs with, given the agent's versions and its active rollout; `None` when
/// there is nothing to serve (no promoted version and no canary: use your own prompt).
pub fn assign(
    agent_id: &str,
    prompts: &[crate::Prompt],
    rollout: Option<&Rollout>,
    unit: &str,
) -> Option<Assignment> {
    let promoted = prompts.iter().find(|p| p.promoted);
    let canary = rollout.filter(|r| in_canary(r, unit)).and_then(|r| {
        prompts
            .iter()
            .find(|p| p.version == r.version)
            .map(|p| (r, p))
    });
    let (arm, prompt) = match (canary, promoted) {
        (Some((_, p)), _) => (Arm::Canary, Some(p)),
        (None, Some(p)) => (Arm::Promoted, Some(p)),
        (None, None) if rollout.is_some() => (Arm::Fallback, None),
        (None, None) => return None,
    };
    Some(Assignment {
        agent_id: agent_id.to_string(),
        unit: unit.to_string(),
        arm,
        version: prompt.map(|p| p.version),
        text: prompt.map(|p| p.text.clone()),
        rollout_id: rollout.map(|r| r.rollout_id),
        percent: rollout.map(|r| r.percent),
    })
}

/// Kinds of recorded prompt decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RolloutStarted,
    RolloutUpdated,
    /// Ended by hand without promoting.
    RolloutEnded,
    /// Ended because the candidate was worse (by hand or by the guard).
    RolledBack,
    Promoted,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        Self::RolloutStarted,
        Self::RolloutUpdated,
        Self::RolloutEnded,
        Self::RolledBack,
        Self::Promoted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RolloutStarted => "rollout_started",
            Self::RolloutUpdated => "rollout_updated",
            Self::RolloutEnded => "rollout_ended",
            Self::RolledBack => "rolled_back",
            Self::Promoted => "promoted",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// One recorded decision: who or what, when, and the evidence shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PromptEvent {
    pub id: Uuid,
    pub agent_id: String,
    pub kind: EventKind,
    pub version: Option<i64>,
    pub rollout_id: Option<Uuid>,
    pub percent: Option<f64>,
    /// `api`, a person's name, `guard` (the automatic rollback), or `cli`.
    pub actor: String,
    pub reason: Option<String>,
    pub evidence: Option<Value>,
    pub created_at: DateTime<Utc>,
}

/// One version's runs, as the store aggregates them for a comparison.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmData {
    /// Runs recorded with this version (any status).
    pub runs: i64,
    /// Per-run rewards of the runs that have one.
    pub rewards: crate::stats::Sums,
    pub mean_cost_usd: Option<f64>,
    pub mean_duration_ms: Option<f64>,
    pub mean_steps: Option<f64>,
    pub tools: Vec<ToolErrors>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ToolErrors {
    pub tool_name: String,
    pub calls: i64,
    pub errors: i64,
    pub error_rate: f64,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ArmSummary {
    /// A prompt version, or `none` for runs recorded without one (the agent's own prompt).
    pub version: String,
    pub runs: i64,
    /// Runs with a reward (finished runs for `success`; scored runs for `score:<name>`).
    pub rewarded: i64,
    /// Mean reward (the success rate for `success`) with its 95 % interval (Wilson for rates,
    /// normal approximation for mean scores).
    pub reward: Option<Estimate>,
    pub mean_cost_usd: Option<f64>,
    pub mean_duration_ms: Option<f64>,
    pub mean_steps: Option<f64>,
    pub tools: Vec<ToolErrors>,
}

/// Answer of `GET /api/agents/{agentId}/prompts/compare`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub agent_id: String,
    pub reward: String,
    pub since: Option<DateTime<Utc>>,
    /// `[baseline, candidate]`.
    pub arms: Vec<ArmSummary>,
    /// Candidate − baseline, always valid under repeated looks; `None` until both arms have a
    /// reward.
    pub difference: Option<Difference>,
    pub verdict: Verdict,
    pub method: SequentialTest,
}

/// Builds the comparison of two arms' data under `test`.
pub fn compare_arms(
    agent_id: &str,
    reward: &Reward,
    since: Option<DateTime<Utc>>,
    (baseline_version, baseline): (String, ArmData),
    (candidate_version, candidate): (String, ArmData),
    test: SequentialTest,
) -> Comparison {
    let difference = test.compare(&baseline.rewards, &candidate.rewards, reward.is_binary());
    let verdict = test.verdict(&baseline.rewards, &candidate.rewards, difference.as_ref());
    let summary = |version: String, data: ArmData| ArmSummary {
        version,
        runs: data.runs,
        rewarded: data.rewards.n as i64,
        reward: if reward.is_binary() {
            crate::stats::wilson(data.rewards.sum, data.rewards.n, crate::stats::Z_95)
        } else {
            data.rewards.mean_interval(crate::stats::Z_95)
        },
        mean_cost_usd: data.mean_cost_usd,
        mean_duration_ms: data.mean_duration_ms,
        mean_steps: data.mean_steps,
        tools: data.tools,
    };
    Comparison {
        agent_id: agent_id.to_string(),
        reward: reward.as_string(),
        since,
        arms: vec![
            summary(baseline_version, baseline),
            summary(candidate_version, candidate),
        ],
        difference,
        verdict,
        method: test,
    }
}

/// Most buckets a reward series may have (the chart's resolution, and the bound on its query).
pub const MAX_SERIES_BUCKETS: u32 = 60;

/// One time bucket of a version's reward series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SeriesPoint {
    /// The bucket covers `[start, end)` (the last one includes `end`).
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Rewarded runs that started in the bucket.
    pub n: i64,
    /// Success rate with its Wilson 95 % interval, or mean score with a normal 95 % interval.
    pub reward: Estimate,
}

/// One version's reward over time: only buckets with rewarded runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct VersionSeries {
    /// A prompt version, or `none` for runs recorded without one.
    pub version: String,
    pub points: Vec<SeriesPoint>,
}

/// Reward over time per version, aggregated by the store over every run in the window (not a
/// page of trajectories).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RewardSeries {
    pub agent_id: String,
    pub reward: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub buckets: u32,
    pub series: Vec<VersionSeries>,
}

/// `buckets` equal time buckets over `[since, until]`: their start times (the first is `since`).
pub fn bucket_starts(
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    buckets: u32,
) -> Vec<DateTime<Utc>> {
    let span = (until - since).num_milliseconds().max(1);
    (0..buckets)
        .map(|i| since + chrono::Duration::milliseconds(span * i64::from(i) / i64::from(buckets)))
        .collect()
}

/// The series point of a bucket with `sums` rewards (`None` without rewarded runs).
pub fn series_point(
    reward: &Reward,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    sums: &crate::stats::Sums,
) -> Option<SeriesPoint> {
    let estimate = if reward.is_binary() {
        crate::stats::wilson(sums.sum, sums.n, crate::stats::Z_95)
    } else {
        // one run has no spread: the point alone
        sums.mean_interval(crate::stats::Z_95).or_else(|| {
            sums.mean().map(|m| Estimate {
                value: m,
                low: m,
                high: m,
            })
        })
    }?;
    Some(SeriesPoint {
        start,
        end,
        n: sums.n as i64,
        reward: estimate,
    })
}

impl Comparison {
    /// The automatic guard's rule (`--auto-rollback`): end the canary once it is significantly
    /// worse than its baseline.
    pub fn guard_rolls_back(&self) -> bool {
        self.verdict == Verdict::Worse
    }

    /// `lightning rollout promote`'s rule (without `--force`): promote only a canary that is
    /// significantly better.
    pub fn promotable(&self) -> bool {
        self.verdict == Verdict::Better
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(percent: f64) -> Rollout {
        Rollout {
            agent_id: "a".into(),
            rollout_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            version: 2,
            baseline_version: Some(1),
            percent,
            auto_rollback: false,
            reward: "success".into(),
            started_at: crate::time::now(),
            updated_at: crate::time::now(),
        }
    }

    #[test]
    fn assignment_is_sticky_and_independent_across_rollouts() {
        let r = rollout(30.0);
        for unit in ["u1", "session-42", "ü"] {
            assert_eq!(in_canary(&r, unit), in_canary(&r, unit));
            assert_eq!(bucket(r.rollout_id, unit), bucket(r.rollout_id, unit));
        }
        let other = Uuid::from_u128(7);
        let differ = (0..1000)
            .filter(|i| {
                let u = format!("unit-{i}");
                (bucket(r.rollout_id, &u) < 0.5) != (bucket(other, &u) < 0.5)
            })
            .count();
        // Independent rollouts disagree on about half of the units.
        assert!((400..=600).contains(&differ), "{differ}");
        assert!(!in_canary(&rollout(0.0), "anything"));
        assert!((0..1000).all(|i| in_canary(&rollout(100.0), &format!("u{i}"))));
    }

    /// Pearson's χ² over 20 equal-width buckets of 20,000 sequential keys: uniform buckets
    /// give χ² ~ χ²(19), whose 99.9th percentile is 43.82; and at 25 % the canary share is
    /// within 4.5 standard errors of 0.25.
    #[test]
    fn assignment_is_uniform() {
        let r = rollout(25.0);
        let n = 20_000usize;
        let mut counts = [0usize; 20];
        let mut canary = 0usize;
        for i in 0..n {
            let unit = format!("user-{i}");
            counts[((bucket(r.rollout_id, &unit) * 20.0) as usize).min(19)] += 1;
            canary += usize::from(in_canary(&r, &unit));
        }
        let expected = n as f64 / 20.0;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 43.82, "chi2 = {chi2}, counts {counts:?}");
        let share = canary as f64 / n as f64;
        let se = (0.25f64 * 0.75 / n as f64).sqrt();
        assert!((share - 0.25).abs() < 4.5 * se, "share {share}");
    }

    fn prompt(version: i64, promoted: bool) -> crate::Prompt {
        crate::Prompt {
            agent_id: "a".into(),
            version,
            text: format!("v{version}"),
            source_run_id: None,
            note: None,
            promoted,
            created_at: crate::time::now(),
            evaluator: None,
        }
    }

    #[test]
    fn assign_picks_canary_promoted_or_fallback() {
        let prompts = [prompt(1, true), prompt(2, false)];
        assert!(assign("a", &[prompt(1, false)], None, "u").is_none());
        let a = assign("a", &prompts, None, "u").unwrap();
        assert_eq!(
            (a.arm, a.version, a.text.as_deref()),
            (Arm::Promoted, Some(1), Some("v1"))
        );
        assert_eq!(a.rollout_id, None);
        let all = rollout(100.0);
        let a = assign("a", &prompts, Some(&all), "u").unwrap();
        assert_eq!((a.arm, a.version), (Arm::Canary, Some(2)));
        assert_eq!(a.rollout_id, Some(all.rollout_id));
        let none = rollout(0.0);
        assert_eq!(
            assign("a", &prompts, Some(&none), "u").unwrap().arm,
            Arm::Promoted
        );
        // No promoted version: the baseline arm is the agent's own prompt.
        let unpromoted = [prompt(1, false), prompt(2, false)];
        let a = assign("a", &unpromoted, Some(&none), "u").unwrap();
        assert_eq!((a.arm, a.version, a.text), (Arm::Fallback, None, None));
    }

    #[test]
    fn rewards_parse_and_validate() {
        assert_eq!(Reward::parse("success").unwrap(), Reward::Success);
        assert_eq!(
            Reward::parse("score:correctness").unwrap(),
            Reward::Score("correctness".into())
        );
        for bad in ["", "score:", "score:a b", "Success", "score:\0"] {
            assert_eq!(Reward::parse(bad).unwrap_err().field, "reward", "{bad:?}");
        }
        let mut body = NewRollout {
            percent: 101.0,
            ..Default::default()
        };
        assert_eq!(body.validate().unwrap_err().field, "percent");
        body.percent = f64::NAN;
        assert_eq!(body.validate().unwrap_err().field, "percent");
        body.percent = 10.0;
        body.actor = Some("a\nb".into());
        assert_eq!(body.validate().unwrap_err().field, "actor");
        body.actor = None;
        body.validate().unwrap();
        assert_eq!(validate_unit("").unwrap_err().field, "unit");
        assert_eq!(validate_unit(&"x".repeat(257)).unwrap_err().field, "unit");
        validate_unit("session-1").unwrap();
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
    }
}
