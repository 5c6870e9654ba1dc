//! SQL of the score tables (`scores`, `score_names`), shared by both backends through
//! [`Dialect`]. Every value is a bound parameter.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lightning_core::{
    DataType, LabelCount, NewScore, PromptVersionScores, Score, ScoreFilter, ScoreSource,
    ScoreStats, ScoreTimelinePoint, ScoreValue, StatsFilter, TimeBucket,
};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::{exec::ColumnRow, sql::Dialect, StoreError, StoreResult};

const SCORE_COLUMNS: &str = "s.id, s.trajectory_id, s.name, s.data_type, s.value_number, \
    s.value_label, s.comment, s.source, s.step_number, s.metadata, s.created_at, s.updated_at";

/// Trajectories per `IN (…)` list when reading scores in bulk.
pub(crate) const ID_CHUNK: usize = 500;

/// The agent of a trajectory (and whether it exists), inside a score write.
pub(crate) fn trajectory_agent<'a, DB: Dialect>(id: Uuid) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("SELECT agent_id FROM trajectories WHERE id = ");
    DB::bind_id(&mut qb, id);
    qb
}

/// Registers `name`'s data type for the agent unless it has one, and returns the stored type.
/// The no-op update makes the row returned (and, on PostgreSQL, locked) in either case.
pub(crate) fn register_name<'a, DB: Dialect>(
    agent_id: &str,
    name: &str,
    data_type: DataType,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("INSERT INTO score_names (agent_id, name, data_type) VALUES (");
    DB::bind_text(&mut qb, Some(agent_id.to_string()));
    qb.push(", ");
    DB::bind_text(&mut qb, Some(name.to_string()));
    qb.push(", ");
    DB::bind_text(&mut qb, Some(data_type.as_str().to_string()));
    qb.push(
        ") ON CONFLICT (agent_id, name) DO UPDATE SET name = excluded.name RETURNING data_type",
    );
    qb
}

/// Inserts a score, or updates the one with the same id when it belongs to the same trajectory
/// (0 rows affected otherwise). Last write wins for every field the newer write carries;
/// absent optional fields keep what is stored, and `createdAt` is the first write's.
pub(crate) fn upsert_score<'a, DB: Dialect>(
    id: &str,
    trajectory_id: Uuid,
    s: &NewScore,
    now: DateTime<Utc>,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "INSERT INTO scores (id, trajectory_id, name, data_type, value_number, value_label, \
         comment, source, step_number, metadata, created_at, updated_at) VALUES (",
    );
    DB::bind_text(&mut qb, Some(id.to_string()));
    qb.push(", ");
    DB::bind_id(&mut qb, trajectory_id);
    qb.push(", ");
    DB::bind_text(&mut qb, Some(s.name.clone()));
    qb.push(", ");
    DB::bind_text(&mut qb, Some(s.value.data_type().as_str().to_string()));
    qb.push(", ");
    DB::bind_float(&mut qb, s.value.as_f64());
    qb.push(", ");
    DB::bind_text(&mut qb, s.value.label().map(str::to_string));
    qb.push(", ");
    DB::bind_text(&mut qb, s.comment.clone());
    qb.push(", ");
    DB::bind_text(
        &mut qb,
        Some(s.source.unwrap_or_default().as_str().to_string()),
    );
    qb.push(", ");
    DB::bind_int(&mut qb, s.step_number);
    qb.push(", ");
    DB::bind_json(&mut qb, s.metadata.as_ref());
    for ts in [now, now] {
        qb.push(", ");
        DB::bind_ts(&mut qb, ts);
    }
    qb.push(
        ") ON CONFLICT (id) DO UPDATE SET name = excluded.name, data_type = excluded.data_type, \
         value_number = excluded.value_number, value_label = excluded.value_label, \
         comment = COALESCE(excluded.comment, scores.comment), source = ",
    );
    // The stored source stays when the repeat does not name one (the insert's default is `sdk`).
    match s.source {
        Some(source) => DB::bind_text(&mut qb, Some(source.as_str().to_string())),
        None => {
            qb.push("scores.source");
        }
    }
    qb.push(
        ", step_number = COALESCE(excluded.step_number, scores.step_number), \
         metadata = COALESCE(excluded.metadata, scores.metadata), \
         updated_at = excluded.updated_at \
         WHERE scores.trajectory_id = excluded.trajectory_id",
    );
    qb
}

pub(crate) fn list_scores<'a, DB: Dialect>(trajectory_id: Uuid) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {SCORE_COLUMNS} FROM scores s WHERE s.trajectory_id = "
    ));
    DB::bind_id(&mut qb, trajectory_id);
    qb.push(" ORDER BY s.created_at, s.id");
    qb
}

/// Scores of several trajectories at once (at most [`ID_CHUNK`] ids).
pub(crate) fn scores_of<'a, DB: Dialect>(ids: &[Uuid]) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {SCORE_COLUMNS} FROM scores s WHERE s.trajectory_id IN ("
    ));
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        DB::bind_id(&mut qb, *id);
    }
    qb.push(") ORDER BY s.trajectory_id, s.created_at, s.id");
    qb
}

/// The name and agent of a score, inside its deletion.
pub(crate) fn score_owner<'a, DB: Dialect>(score_id: &str) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "SELECT s.name, t.agent_id FROM scores s JOIN trajectories t ON t.id = s.trajectory_id \
         WHERE s.id = ",
    );
    DB::bind_text(&mut qb, Some(score_id.to_string()));
    qb
}

pub(crate) fn delete_score<'a, DB: Dialect>(score_id: &str) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("DELETE FROM scores WHERE id = ");
    DB::bind_text(&mut qb, Some(score_id.to_string()));
    qb
}

/// Releases a name's data type once the agent has no score of that name left.
pub(crate) fn release_name<'a, DB: Dialect>(agent_id: &str, name: &str) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("DELETE FROM score_names WHERE agent_id = ");
    DB::bind_text(&mut qb, Some(agent_id.to_string()));
    qb.push(" AND name = ");
    DB::bind_text(&mut qb, Some(name.to_string()));
    qb.push(
        " AND NOT EXISTS (SELECT 1 FROM scores s JOIN trajectories t ON t.id = s.trajectory_id \
         WHERE t.agent_id = ",
    );
    DB::bind_text(&mut qb, Some(agent_id.to_string()));
    qb.push(" AND s.name = ");
    DB::bind_text(&mut qb, Some(name.to_string()));
    qb.push(")");
    qb
}

/// Appends ` AND …` selecting trajectories (aliased `t`) by their scores.
pub(crate) fn push_score_filter<DB: Dialect>(
    qb: &mut QueryBuilder<'_, DB>,
    filter: Option<&ScoreFilter>,
) {
    let Some(f) = filter else {
        return;
    };
    if f.missing {
        qb.push(
            " AND NOT EXISTS (SELECT 1 FROM scores sf WHERE sf.trajectory_id = t.id AND sf.name = ",
        );
        DB::bind_text(qb, Some(f.name.clone()));
        qb.push(")");
        return;
    }
    qb.push(" AND EXISTS (SELECT 1 FROM scores sf WHERE sf.trajectory_id = t.id AND sf.name = ");
    DB::bind_text(qb, Some(f.name.clone()));
    if let Some(min) = f.min {
        qb.push(" AND sf.value_number >= ");
        DB::bind_float(qb, Some(min));
    }
    if let Some(max) = f.max {
        qb.push(" AND sf.value_number <= ");
        DB::bind_float(qb, Some(max));
    }
    if let Some(label) = &f.label {
        qb.push(" AND sf.value_label = ");
        DB::bind_text(qb, Some(label.clone()));
    }
    qb.push(")");
}

const FROM_SCORES: &str =
    " FROM scores s JOIN trajectories t ON t.id = s.trajectory_id WHERE 1 = 1";

/// Per (name, type, prompt version): count, trajectories, sum and count of numeric values.
pub(crate) fn stats_by_version<'a, DB: Dialect>(f: &StatsFilter) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT s.name, s.data_type, t.prompt_version, COUNT(*) AS count, \
         COUNT(DISTINCT s.trajectory_id) AS trajectories, \
         CAST(SUM(s.value_number) AS DOUBLE PRECISION) AS value_sum, \
         COUNT(s.value_number) AS numeric_count{FROM_SCORES}"
    ));
    crate::sql::push_time_and_agent(&mut qb, &f.agent_id, f.since, f.until);
    crate::sql::push_evaluations(&mut qb, !f.include_evaluations);
    qb.push(" GROUP BY s.name, s.data_type, t.prompt_version");
    qb
}

/// Per (name, type, prompt version, label): how often; booleans count as `true`/`false`.
pub(crate) fn stats_labels<'a, DB: Dialect>(f: &StatsFilter) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT s.name, s.data_type, t.prompt_version, CASE WHEN s.data_type = 'categorical' \
         THEN s.value_label WHEN s.value_number <> 0 THEN 'true' ELSE 'false' END AS label, \
         COUNT(*) AS count{FROM_SCORES} AND s.data_type <> 'numeric'"
    ));
    crate::sql::push_time_and_agent(&mut qb, &f.agent_id, f.since, f.until);
    crate::sql::push_evaluations(&mut qb, !f.include_evaluations);
    qb.push(" GROUP BY 1, 2, 3, 4");
    qb
}

/// Per (name, type, time bucket of the trajectory's start): count and mean.
pub(crate) fn stats_timeline<'a, DB: Dialect>(
    f: &StatsFilter,
    bucket: TimeBucket,
) -> QueryBuilder<'a, DB> {
    let expr = DB::bucket_expr(bucket);
    let mut qb = QueryBuilder::new(format!(
        "SELECT s.name, s.data_type, {expr} AS bucket, COUNT(*) AS count, \
         CAST(AVG(s.value_number) AS DOUBLE PRECISION) AS mean{FROM_SCORES}"
    ));
    crate::sql::push_time_and_agent(&mut qb, &f.agent_id, f.since, f.until);
    crate::sql::push_evaluations(&mut qb, !f.include_evaluations);
    qb.push(" GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
    qb
}

fn data_type(raw: &str) -> StoreResult<DataType> {
    DataType::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("score data type {raw:?}")))
}

/// Decodes a row selected with `SCORE_COLUMNS`.
pub(crate) fn decode_score<R: ColumnRow>(r: &R) -> StoreResult<Score> {
    let data_type = data_type(&r.text("data_type")?)?;
    let number = r.opt_float("value_number")?;
    let value = match (data_type, number, r.opt_text("value_label")?) {
        (DataType::Numeric, Some(n), _) => ScoreValue::Number(n),
        (DataType::Boolean, Some(n), _) => ScoreValue::Boolean(n != 0.0),
        (DataType::Categorical, _, Some(label)) => ScoreValue::Label(label),
        (dt, _, _) => {
            return Err(StoreError::Corrupt(format!(
                "{} score without a value",
                dt.as_str()
            )))
        }
    };
    let source = r.text("source")?;
    Ok(Score {
        id: r.text("id")?,
        trajectory_id: r.id("trajectory_id")?,
        name: r.text("name")?,
        value,
        data_type,
        comment: r.opt_text("comment")?,
        source: ScoreSource::parse(&source)
            .ok_or_else(|| StoreError::Corrupt(format!("score source {source:?}")))?,
        step_number: r.opt_int("step_number")?,
        metadata: r.json("metadata")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

/// Count, sum and count of numeric values, and labels, of one prompt version.
type VersionAcc = (i64, f64, i64, BTreeMap<String, i64>);

#[derive(Default)]
struct Acc {
    count: i64,
    trajectories: i64,
    sum: f64,
    numeric: i64,
    labels: BTreeMap<String, i64>,
    versions: BTreeMap<Option<String>, VersionAcc>,
    timeline: Vec<ScoreTimelinePoint>,
}

fn label_counts(map: BTreeMap<String, i64>) -> Vec<LabelCount> {
    let mut labels: Vec<LabelCount> = map
        .into_iter()
        .map(|(label, count)| LabelCount { label, count })
        .collect();
    labels.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.label.cmp(&b.label)));
    labels
}

/// Folds the three aggregate queries into one entry per (name, data type), by name.
pub(crate) fn decode_score_stats<R: ColumnRow>(
    by_version: &[R],
    labels: &[R],
    timeline: &[R],
) -> StoreResult<Vec<ScoreStats>> {
    let mut acc: BTreeMap<(String, DataType), Acc> = BTreeMap::new();
    for r in by_version {
        let key = (r.text("name")?, data_type(&r.text("data_type")?)?);
        let a = acc.entry(key).or_default();
        let (count, trajectories) = (r.int("count")?, r.int("trajectories")?);
        let (sum, numeric) = (
            r.opt_float("value_sum")?.unwrap_or(0.0),
            r.int("numeric_count")?,
        );
        a.count += count;
        a.trajectories += trajectories;
        a.sum += sum;
        a.numeric += numeric;
        let v = a.versions.entry(r.opt_text("prompt_version")?).or_default();
        v.0 += count;
        v.1 += sum;
        v.2 += numeric;
    }
    for r in labels {
        let key = (r.text("name")?, data_type(&r.text("data_type")?)?);
        let (label, count) = (r.text("label")?, r.int("count")?);
        let a = acc.entry(key).or_default();
        *a.labels.entry(label.clone()).or_default() += count;
        *a.versions
            .entry(r.opt_text("prompt_version")?)
            .or_default()
            .3
            .entry(label)
            .or_default() += count;
    }
    for r in timeline {
        let key = (r.text("name")?, data_type(&r.text("data_type")?)?);
        let bucket = r.text("bucket")?;
        acc.entry(key)
            .or_default()
            .timeline
            .push(ScoreTimelinePoint {
                bucket: lightning_core::time::parse(&bucket)
                    .map_err(|e| StoreError::Corrupt(format!("time bucket {bucket:?}: {e}")))?,
                count: r.int("count")?,
                mean: r.opt_float("mean")?,
            });
    }
    let mean = |sum: f64, n: i64| (n > 0).then(|| sum / n as f64);
    Ok(acc
        .into_iter()
        .map(|((name, data_type), a)| ScoreStats {
            name,
            data_type,
            count: a.count,
            trajectories: a.trajectories,
            mean: mean(a.sum, a.numeric),
            labels: label_counts(a.labels),
            by_prompt_version: a
                .versions
                .into_iter()
                .map(
                    |(prompt_version, (count, sum, n, labels))| PromptVersionScores {
                        prompt_version,
                        count,
                        mean: mean(sum, n),
                        labels: label_counts(labels),
                    },
                )
                .collect(),
            timeline: a.timeline,
        })
        .collect())
}
