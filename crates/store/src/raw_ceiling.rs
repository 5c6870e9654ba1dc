//! The database's raw ceiling for the bench: the same step rows, written with no collector
//! logic at all (no merge, no counters, no rollup) into a table of the same columns and primary
//! key, by plain multi-row INSERTs of a fixed number of rows per transaction or, on PostgreSQL,
//! by COPY. `lightning bench` prints the collector as a ratio of these.

use std::time::{Duration, Instant};

use sqlx::{Connection, QueryBuilder};

use crate::{scratch::ScratchStore, Backend, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawMode {
    /// One multi-row INSERT of this many rows per transaction.
    Insert { rows_per_tx: usize },
    /// One `COPY … FROM STDIN` of this many rows per transaction (PostgreSQL only).
    Copy { rows_per_tx: usize },
}

#[derive(Debug, Clone, Copy)]
pub struct RawResult {
    pub steps_per_sec: f64,
    pub transactions: usize,
    /// Rows written.
    pub steps: u64,
}

const COLUMNS: &str = "trajectory_id, step_number, \"timestamp\", tool_name, tool_input, \
    tool_output, error, duration_ms, tool_use_id, metadata";

/// One bench row: the `i`-th step of writer `w`, about `bytes` of output.
struct Row {
    trajectory: String,
    step: i64,
    input: String,
    output: String,
    tool_use_id: String,
}

fn row(writer: usize, step: i64, bytes: usize) -> Row {
    Row {
        trajectory: format!("00000000-0000-7000-8000-{writer:012x}"),
        step,
        input: format!("{{\"command\":\"cargo test --package p{step}\",\"timeout\":120000}}"),
        output: serde_json::Value::String("x".repeat(bytes)).to_string(),
        tool_use_id: format!("toolu_{writer}_{step}"),
    }
}

/// COPY text format: backslash, tab, newline and carriage return escaped.
fn copy_field(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

impl ScratchStore {
    /// Writes rows for `duration` from `clients` connections (SQLite: one, it has one writer)
    /// into a fresh `raw_steps` table in this store's database.
    pub async fn raw_ceiling(
        &self,
        mode: RawMode,
        clients: usize,
        duration: Duration,
        bytes: usize,
    ) -> StoreResult<RawResult> {
        match self.store.backend() {
            Backend::Postgres => self.raw_postgres(mode, clients, duration, bytes).await,
            Backend::Sqlite => self.raw_sqlite(mode, duration, bytes).await,
        }
    }

    async fn raw_postgres(
        &self,
        mode: RawMode,
        clients: usize,
        duration: Duration,
        bytes: usize,
    ) -> StoreResult<RawResult> {
        let mut setup = sqlx::PgConnection::connect(&self.database_url).await?;
        sqlx::query("DROP TABLE IF EXISTS raw_steps")
            .execute(&mut setup)
            .await?;
        sqlx::query(
            "CREATE TABLE raw_steps (trajectory_id uuid NOT NULL, step_number bigint NOT NULL, \
             \"timestamp\" timestamptz NOT NULL, tool_name text NOT NULL, tool_input jsonb, \
             tool_output jsonb, error text, duration_ms bigint, tool_use_id text, metadata jsonb, \
             PRIMARY KEY (trajectory_id, step_number))",
        )
        .execute(&mut setup)
        .await?;
        setup.close().await.ok();
        let started = Instant::now();
        let deadline = started + duration;
        let tasks: Vec<_> = (0..clients.max(1))
            .map(|w| {
                let url = self.database_url.clone();
                tokio::spawn(async move {
                    let mut c = sqlx::PgConnection::connect(&url).await?;
                    let (mut step, mut txs) = (0i64, 0usize);
                    while Instant::now() < deadline {
                        let n = match mode {
                            RawMode::Insert { rows_per_tx } | RawMode::Copy { rows_per_tx } => {
                                rows_per_tx
                            }
                        };
                        let rows: Vec<Row> =
                            (0..n as i64).map(|i| row(w, step + i, bytes)).collect();
                        step += n as i64;
                        let now = chrono::Utc::now();
                        match mode {
                            RawMode::Insert { .. } => {
                                let mut tx = c.begin().await?;
                                let mut qb: QueryBuilder<'_, sqlx::Postgres> = QueryBuilder::new(
                                    format!("INSERT INTO raw_steps ({COLUMNS}) "),
                                );
                                qb.push_values(&rows, |mut b, r| {
                                    b.push_bind(
                                        r.trajectory.parse::<uuid::Uuid>().unwrap_or_default(),
                                    )
                                    .push_bind(r.step)
                                    .push_bind(now)
                                    .push_bind("Bash")
                                    .push_bind(sqlx::types::Json(
                                        serde_json::from_str::<serde_json::Value>(&r.input)
                                            .unwrap_or_default(),
                                    ))
                                    .push_bind(sqlx::types::Json(
                                        serde_json::from_str::<serde_json::Value>(&r.output)
                                            .unwrap_or_default(),
                                    ))
                                    .push_bind(None::<String>)
                                    .push_bind(15i64)
                                    .push_bind(r.tool_use_id.clone())
                                    .push_bind(None::<sqlx::types::Json<serde_json::Value>>);
                                });
                                qb.build().execute(&mut *tx).await?;
                                tx.commit().await?;
                            }
                            RawMode::Copy { .. } => {
                                let ts = lightning_core::time::format(now);
                                let mut data = String::new();
                                for r in &rows {
                                    data.push_str(&format!(
                                        "{}\t{}\t{ts}\tBash\t{}\t{}\t\\N\t15\t{}\t\\N\n",
                                        r.trajectory,
                                        r.step,
                                        copy_field(&r.input),
                                        copy_field(&r.output),
                                        copy_field(&r.tool_use_id)
                                    ));
                                }
                                let mut copy = c
                                    .copy_in_raw(&format!("COPY raw_steps ({COLUMNS}) FROM STDIN"))
                                    .await?;
                                copy.send(data.into_bytes()).await?;
                                copy.finish().await?;
                            }
                        }
                        txs += 1;
                    }
                    c.close().await.ok();
                    Ok::<_, crate::StoreError>((txs, step))
                })
            })
            .collect();
        let (mut transactions, mut steps) = (0usize, 0i64);
        for task in tasks {
            let (t, s) = task
                .await
                .map_err(|e| crate::StoreError::Corrupt(e.to_string()))??;
            transactions += t;
            steps += s;
        }
        Ok(RawResult {
            steps_per_sec: steps as f64 / started.elapsed().as_secs_f64(),
            transactions,
            steps: steps as u64,
        })
    }

    async fn raw_sqlite(
        &self,
        mode: RawMode,
        duration: Duration,
        bytes: usize,
    ) -> StoreResult<RawResult> {
        use std::str::FromStr;
        let RawMode::Insert { rows_per_tx } = mode else {
            return Err(crate::StoreError::Config("COPY is PostgreSQL only".into()));
        };
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&self.database_url)
            .map_err(|e| crate::StoreError::Config(e.to_string()))?
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let mut c = sqlx::SqliteConnection::connect_with(&options).await?;
        sqlx::query("DROP TABLE IF EXISTS raw_steps")
            .execute(&mut c)
            .await?;
        sqlx::query(
            "CREATE TABLE raw_steps (trajectory_id text NOT NULL, step_number integer NOT NULL, \
             \"timestamp\" text NOT NULL, tool_name text NOT NULL, tool_input text, \
             tool_output text, error text, duration_ms integer, tool_use_id text, metadata text, \
             PRIMARY KEY (trajectory_id, step_number))",
        )
        .execute(&mut c)
        .await?;
        let started = Instant::now();
        let deadline = started + duration;
        let (mut step, mut transactions) = (0i64, 0usize);
        while Instant::now() < deadline {
            let rows: Vec<Row> = (0..rows_per_tx as i64)
                .map(|i| row(0, step + i, bytes))
                .collect();
            step += rows_per_tx as i64;
            let ts = lightning_core::time::format(chrono::Utc::now());
            let mut tx = c.begin().await?;
            let mut qb: QueryBuilder<'_, sqlx::Sqlite> =
                QueryBuilder::new(format!("INSERT INTO raw_steps ({COLUMNS}) "));
            qb.push_values(&rows, |mut b, r| {
                b.push_bind(r.trajectory.clone())
                    .push_bind(r.step)
                    .push_bind(ts.clone())
                    .push_bind("Bash")
                    .push_bind(r.input.clone())
                    .push_bind(r.output.clone())
                    .push_bind(None::<String>)
                    .push_bind(15i64)
                    .push_bind(r.tool_use_id.clone())
                    .push_bind(None::<String>);
            });
            qb.build().execute(&mut *tx).await?;
            tx.commit().await?;
            transactions += 1;
        }
        c.close().await.ok();
        Ok(RawResult {
            steps_per_sec: step as f64 / started.elapsed().as_secs_f64(),
            transactions,
            steps: step as u64,
        })
    }
}
