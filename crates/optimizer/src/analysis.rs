//! Failure analysis over a dataset (no LLM): per-tool error rates, frequent normalised errors,
//! steps of successes vs failures, and tool sequences over-represented in failures.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::dataset::Example;
pub use crate::normalize::normalize_error;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolRow {
    pub tool: String,
    pub calls: usize,
    pub errors: usize,
    pub error_rate: f64,
    /// Trajectories using the tool that failed / that used it.
    pub failed_trajectories: usize,
    pub trajectories: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRow {
    /// Normalised message: numbers, ids, paths and quoted text replaced by placeholders.
    pub message: String,
    pub count: usize,
    pub tools: Vec<String>,
    /// One original message.
    pub example: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepStats {
    pub trajectories: usize,
    pub mean: Option<f64>,
    pub median: Option<f64>,
    pub max: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequenceRow {
    /// Consecutive tool calls, e.g. `["Read", "Edit", "Bash"]`.
    pub sequence: Vec<String>,
    pub failed: usize,
    pub succeeded: usize,
    /// Failure rate of trajectories containing the sequence over the overall failure rate.
    pub lift: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureTypeRow {
    pub failure_type: String,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    pub trajectories: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub success_rate: Option<f64>,
    pub tools: Vec<ToolRow>,
    pub errors: Vec<ErrorRow>,
    pub steps_succeeded: StepStats,
    pub steps_failed: StepStats,
    pub sequences: Vec<SequenceRow>,
    pub failure_types: Vec<FailureTypeRow>,
}

const TOP_ERRORS: usize = 10;
const TOP_SEQUENCES: usize = 10;
const TOP_FAILURE_TYPES: usize = 10;

pub fn analyze(examples: &[Example]) -> Analysis {
    let n = examples.len();
    let failed = examples.iter().filter(|e| !e.outcome.success).count();
    let succeeded = n - failed;
    Analysis {
        trajectories: n,
        succeeded,
        failed,
        success_rate: (n > 0).then(|| succeeded as f64 / n as f64),
        tools: tool_rows(examples),
        errors: error_rows(examples),
        steps_succeeded: steps_of(examples, true),
        steps_failed: steps_of(examples, false),
        sequences: sequence_rows(examples, failed as f64 / n.max(1) as f64),
        failure_types: failure_type_rows(examples),
    }
}

/// Calls, errors and trajectories per tool, most called first.
fn tool_rows(examples: &[Example]) -> Vec<ToolRow> {
    let mut tools: BTreeMap<&str, ToolRow> = BTreeMap::new();
    for e in examples {
        let used: BTreeSet<&str> = e.actions.iter().map(|a| a.tool.as_str()).collect();
        for a in &e.actions {
            let row = tools.entry(&a.tool).or_insert_with(|| ToolRow {
                tool: a.tool.clone(),
                calls: 0,
                errors: 0,
                error_rate: 0.0,
                failed_trajectories: 0,
                trajectories: 0,
            });
            row.calls += 1;
            row.errors += usize::from(a.error.is_some());
        }
        for tool in used {
            let row = tools.get_mut(tool).expect("inserted above");
            row.trajectories += 1;
            row.failed_trajectories += usize::from(!e.outcome.success);
        }
    }
    let mut tools: Vec<ToolRow> = tools
        .into_values()
        .map(|mut r| {
            r.error_rate = r.errors as f64 / r.calls.max(1) as f64;
            r
        })
        .collect();
    tools.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.tool.cmp(&b.tool)));
    tools
}

/// The most frequent normalised errors, from steps and from trajectory outcomes without a
/// failing step.
fn error_rows(examples: &[Example]) -> Vec<ErrorRow> {
    let mut errors: HashMap<String, ErrorRow> = HashMap::new();
    let mut add_error = |message: &str, tool: &str| {
        let key = normalize_error(message);
        let row = errors.entry(key.clone()).or_insert_with(|| ErrorRow {
            message: key,
            count: 0,
            tools: Vec::new(),
            example: message.to_string(),
        });
        row.count += 1;
        if !row.tools.iter().any(|t| t == tool) {
            row.tools.push(tool.to_string());
        }
    };
    for e in examples {
        let mut any_step_error = false;
        for a in &e.actions {
            if let Some(err) = &a.error {
                add_error(err, &a.tool);
                any_step_error = true;
            }
        }
        if let (false, false, Some(err)) = (e.outcome.success, any_step_error, &e.outcome.error) {
            add_error(err, "(outcome)");
        }
    }
    let mut errors: Vec<ErrorRow> = errors.into_values().collect();
    errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
    errors.truncate(TOP_ERRORS);
    errors
}

/// Steps per trajectory of the successes or of the failures.
fn steps_of(examples: &[Example], success: bool) -> StepStats {
    let mut v: Vec<usize> = examples
        .iter()
        .filter(|e| e.outcome.success == success)
        .map(|e| e.actions.len())
        .collect();
    v.sort_unstable();
    step_stats(&v)
}

/// 2- and 3-grams of consecutive tools (counted once per trajectory) over-represented in
/// failures: lift = failure rate of runs containing it ÷ `base_rate`.
fn sequence_rows(examples: &[Example], base_rate: f64) -> Vec<SequenceRow> {
    let mut grams: HashMap<Vec<String>, (usize, usize)> = HashMap::new();
    for e in examples {
        let names: Vec<&str> = e.actions.iter().map(|a| a.tool.as_str()).collect();
        let mut seen: BTreeSet<Vec<String>> = BTreeSet::new();
        for len in [2usize, 3] {
            for w in names.windows(len) {
                seen.insert(w.iter().map(|s| s.to_string()).collect());
            }
        }
        for g in seen {
            let entry = grams.entry(g).or_default();
            if e.outcome.success {
                entry.1 += 1;
            } else {
                entry.0 += 1;
            }
        }
    }
    let mut sequences: Vec<SequenceRow> = grams
        .into_iter()
        .filter(|(_, (f, _))| *f >= 2)
        .filter_map(|(sequence, (f, s))| {
            let rate = f as f64 / (f + s) as f64;
            let lift = if base_rate > 0.0 {
                rate / base_rate
            } else {
                0.0
            };
            (lift > 1.2).then_some(SequenceRow {
                sequence,
                failed: f,
                succeeded: s,
                lift,
            })
        })
        .collect();
    sequences.sort_by(|a, b| {
        (b.lift * b.failed as f64)
            .total_cmp(&(a.lift * a.failed as f64))
            .then(a.sequence.cmp(&b.sequence))
    });
    sequences.truncate(TOP_SEQUENCES);
    sequences
}

/// The largest failure types.
fn failure_type_rows(examples: &[Example]) -> Vec<FailureTypeRow> {
    let mut types: BTreeMap<&str, usize> = BTreeMap::new();
    for e in examples {
        if let Some(t) = &e.failure_type {
            *types.entry(t).or_default() += 1;
        }
    }
    let mut failure_types: Vec<FailureTypeRow> = types
        .into_iter()
        .map(|(t, count)| FailureTypeRow {
            failure_type: t.to_string(),
            count,
        })
        .collect();
    failure_types.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.failure_type.cmp(&b.failure_type))
    });
    failure_types.truncate(TOP_FAILURE_TYPES);
    failure_types
}

fn step_stats(sorted: &[usize]) -> StepStats {
    if sorted.is_empty() {
        return StepStats::default();
    }
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2] as f64
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0
    };
    StepStats {
        trajectories: n,
        mean: Some(sorted.iter().sum::<usize>() as f64 / n as f64),
        median: Some(median),
        max: sorted.last().copied(),
    }
}

/// A short text summary for the critique prompt.
pub fn summary(a: &Analysis) -> String {
    let mut out = format!(
        "{} trajectories: {} succeeded, {} failed.\n",
        a.trajectories, a.succeeded, a.failed
    );
    let risky: Vec<String> = a
        .tools
        .iter()
        .filter(|t| t.errors > 0)
        .take(5)
        .map(|t| {
            format!(
                "{} ({} calls, {:.0}% errors)",
                t.tool,
                t.calls,
                t.error_rate * 100.0
            )
        })
        .collect();
    if !risky.is_empty() {
        out.push_str(&format!("Tools with errors: {}.\n", risky.join(", ")));
    }
    if !a.errors.is_empty() {
        out.push_str("Most frequent errors:\n");
        for e in a.errors.iter().take(5) {
            out.push_str(&format!(
                "  - {}× {} [{}]\n",
                e.count,
                e.message,
                e.tools.join(", ")
            ));
        }
    }
    if let (Some(s), Some(f)) = (a.steps_succeeded.mean, a.steps_failed.mean) {
        out.push_str(&format!(
            "Mean tool calls: {s:.1} in successes vs {f:.1} in failures.\n"
        ));
    }
    if !a.sequences.is_empty() {
        out.push_str("Tool sequences over-represented in failures:\n");
        for s in a.sequences.iter().take(3) {
            out.push_str(&format!(
                "  - {} (in {} failed vs {} successful runs)\n",
                s.sequence.join(" → "),
                s.failed,
                s.succeeded
            ));
        }
    }
    out
}

/// The terminal report of `lightning analyze`.
pub fn render_table(a: &Analysis) -> String {
    use crate::report::Table;
    let mut out = String::new();
    out.push_str(&format!(
        "{} trajectories: {} succeeded, {} failed (success rate {})\n\n",
        a.trajectories,
        a.succeeded,
        a.failed,
        a.success_rate
            .map(|r| format!("{:.1}%", r * 100.0))
            .unwrap_or_else(|| "n/a".into())
    ));
    let mut t = Table::new(&["tool", "calls", "errors", "error rate", "in failed runs"]);
    for r in &a.tools {
        t.row(vec![
            r.tool.clone(),
            r.calls.to_string(),
            r.errors.to_string(),
            format!("{:.1}%", r.error_rate * 100.0),
            format!("{}/{}", r.failed_trajectories, r.trajectories),
        ]);
    }
    out.push_str(&t.render());
    out.push('\n');
    let fmt = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
    let mut t = Table::new(&["outcome", "trajectories", "mean steps", "median", "max"]);
    for (name, s) in [
        ("succeeded", &a.steps_succeeded),
        ("failed", &a.steps_failed),
    ] {
        t.row(vec![
            name.into(),
            s.trajectories.to_string(),
            fmt(s.mean),
            fmt(s.median),
            s.max.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
        ]);
    }
    out.push_str(&t.render());
    if !a.errors.is_empty() {
        out.push('\n');
        let mut t = Table::new(&["count", "error (normalised)", "tools"]);
        for e in &a.errors {
            t.row(vec![
                e.count.to_string(),
                e.message.clone(),
                e.tools.join(", "),
            ]);
        }
        out.push_str(&t.render());
    }
    if !a.sequences.is_empty() {
        out.push('\n');
        let mut t = Table::new(&["tool sequence", "failed", "succeeded", "lift"]);
        for s in &a.sequences {
            t.row(vec![
                s.sequence.join(" → "),
                s.failed.to_string(),
                s.succeeded.to_string(),
                format!("{:.2}", s.lift),
            ]);
        }
        out.push_str(&t.render());
    }
    if !a.failure_types.is_empty() {
        out.push('\n');
        let mut t = Table::new(&["failures", "failure type"]);
        for f in &a.failure_types {
            t.row(vec![f.count.to_string(), f.failure_type.clone()]);
        }
        out.push_str(&t.render());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Action, Outcome};

    fn ex(success: bool, tools: &[(&str, Option<&str>)]) -> Example {
        Example {
            trajectory_id: uuid::Uuid::now_v7(),
            agent_id: "a".into(),
            task_type: None,
            task: "t".into(),
            system_prompt: None,
            prompt_version: None,
            actions: tools
                .iter()
                .map(|(t, e)| Action {
                    tool: t.to_string(),
                    input: None,
                    error: e.map(String::from),
                    output: None,
                })
                .collect(),
            outcome: Outcome {
                success,
                error: None,
                feedback_score: None,
                result: None,
            },
            failure_type: (!success).then(|| "x".into()),
        }
    }

    #[test]
    fn counts_tools_errors_steps_and_sequences() {
        let examples = vec![
            ex(true, &[("Read", None), ("Edit", None)]),
            ex(true, &[("Read", None), ("Edit", None), ("Read", None)]),
            ex(false, &[("Bash", Some("exit 1")), ("Bash", Some("exit 2"))]),
            ex(
                false,
                &[("Read", None), ("Bash", Some("exit 3")), ("Bash", None)],
            ),
        ];
        let a = analyze(&examples);
        assert_eq!((a.trajectories, a.succeeded, a.failed), (4, 2, 2));
        let bash = a.tools.iter().find(|t| t.tool == "Bash").unwrap();
        assert_eq!(
            (bash.calls, bash.errors, bash.failed_trajectories),
            (4, 3, 2)
        );
        assert_eq!(a.errors[0].message, "exit <n>");
        assert_eq!(a.errors[0].count, 3);
        assert_eq!(a.steps_succeeded.mean, Some(2.5));
        assert_eq!(a.steps_failed.max, Some(3));
        assert_eq!(a.sequences[0].sequence, vec!["Bash", "Bash"]);
        assert_eq!(a.sequences[0].failed, 2);
        assert!((a.sequences[0].lift - 2.0).abs() < 1e-9);
        let table = render_table(&a);
        assert!(
            table.contains("Bash") && table.contains("exit <n>"),
            "{table}"
        );
    }
}
