//! What a backend lends to backend-independent store code: running queries that
//! [`crate::sql`]-style builders produced, on its reader, its writer, or inside a transaction.
//!
//! Everything that reads or writes the database ([`crate::sql_store`], [`crate::keys`],
//! [`crate::scores`], [`crate::rollout`], the group commit) is a plain generic function or a
//! blanket impl over [`SqlExec`] / [`SqlTx`], visible to rustfmt and the IDE. Each backend
//! implements these traits with [`impl_sql_exec!`], the only place sqlx's executor bounds are met.
//!
//! # Why traits over the backend, not a generic `SqlStore<DB: Database>`
//!
//! A trial `impl<DB> Trait for SqlStore<DB>` (bounds: `for<'c> &'c mut DB::Connection:
//! Executor<'c, Database = DB>`, `for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>`), with one
//! write and one read method under `async_trait`, failed to compile with sqlx 0.8 on two counts:
//! `DB::QueryResult` offers no generic `rows_affected` (it is inherent on each backend's result
//! type, so a per-backend shim is needed anyway), and a `QueryBuilder` built inside the method is
//! reported as borrowed beyond it (E0597) under the higher-ranked executor bounds. Fixing the
//! backend inside one macro that only runs built queries, and writing all logic against the
//! associated `Db`/`Row`/`Tx` types, keeps the logic generic and the bounds concrete.

use std::future::Future;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{ColumnIndex, QueryBuilder};
use uuid::Uuid;

use crate::{
    sql::{Dialect, PlainRow, TypedRow},
    StoreError, StoreResult,
};

/// A row whose columns decode the same way on every backend, read by column name (so adding a
/// column to a SELECT shifts nothing). Blanket-implemented for the backends' rows; unlike
/// [`TypedRow`] its methods are not generic over the index type, so generic code over an
/// associated row type needs no `ColumnIndex` bound, which it could not state without recursing.
pub(crate) trait ColumnRow: Send + Sync {
    fn int(&self, name: &str) -> StoreResult<i64>;
    fn opt_int(&self, name: &str) -> StoreResult<Option<i64>>;
    fn opt_float(&self, name: &str) -> StoreResult<Option<f64>>;
    fn text(&self, name: &str) -> StoreResult<String>;
    fn opt_text(&self, name: &str) -> StoreResult<Option<String>>;
    fn id(&self, name: &str) -> StoreResult<Uuid>;
    fn opt_ts(&self, name: &str) -> StoreResult<Option<DateTime<Utc>>>;
    fn ts(&self, name: &str) -> StoreResult<DateTime<Utc>>;
    fn json(&self, name: &str) -> StoreResult<Option<Value>>;
    fn opt_bool(&self, name: &str) -> StoreResult<Option<bool>>;
}

impl<R> ColumnRow for R
where
    R: TypedRow + Send + Sync,
    for<'n> &'n str: ColumnIndex<R>,
{
    fn int(&self, name: &str) -> StoreResult<i64> {
        PlainRow::int(self, name)
    }
    fn opt_int(&self, name: &str) -> StoreResult<Option<i64>> {
        PlainRow::opt_int(self, name)
    }
    fn opt_float(&self, name: &str) -> StoreResult<Option<f64>> {
        PlainRow::opt_float(self, name)
    }
    fn text(&self, name: &str) -> StoreResult<String> {
        PlainRow::text(self, name)
    }
    fn opt_text(&self, name: &str) -> StoreResult<Option<String>> {
        PlainRow::opt_text(self, name)
    }
    fn id(&self, name: &str) -> StoreResult<Uuid> {
        TypedRow::id(self, name)
    }
    fn opt_ts(&self, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
        TypedRow::opt_ts(self, name)
    }
    fn ts(&self, name: &str) -> StoreResult<DateTime<Utc>> {
        TypedRow::ts(self, name)
    }
    fn json(&self, name: &str) -> StoreResult<Option<Value>> {
        TypedRow::json(self, name)
    }
    fn opt_bool(&self, name: &str) -> StoreResult<Option<bool>> {
        TypedRow::opt_bool(self, name)
    }
}

/// An open write transaction. Dropping it without [`SqlTx::commit`] rolls back, but
/// [`finish_tx`] always ends it explicitly, so no connection idles in a transaction holding locks.
#[async_trait]
pub(crate) trait SqlTx: Send {
    type Db: Dialect;
    type Row: ColumnRow;

    async fn fetch_all(&mut self, qb: QueryBuilder<'_, Self::Db>) -> StoreResult<Vec<Self::Row>>;

    async fn fetch_optional(
        &mut self,
        qb: QueryBuilder<'_, Self::Db>,
    ) -> StoreResult<Option<Self::Row>>;

    /// Rows affected.
    async fn execute(&mut self, qb: QueryBuilder<'_, Self::Db>) -> StoreResult<u64>;

    async fn commit(self) -> StoreResult<()>;

    async fn rollback(self) -> StoreResult<()>;

    /// Exactly one row; a missing row is the same error sqlx's `fetch_one` gives.
    async fn fetch_one(&mut self, qb: QueryBuilder<'_, Self::Db>) -> StoreResult<Self::Row> {
        self.fetch_optional(qb)
            .await?
            .ok_or_else(|| StoreError::from(sqlx::Error::RowNotFound))
    }
}

/// Something that opens write transactions: a backend's writer pool (what the group commit holds).
#[async_trait]
pub(crate) trait BeginTx: Send + Sync {
    type Tx: SqlTx;

    async fn begin_tx(&self) -> StoreResult<Self::Tx>;

    /// Runs one statement as its own transaction (committed when it answers) and returns its
    /// one row.
    async fn fetch_one_alone(
        &self,
        qb: QueryBuilder<'_, <Self::Tx as SqlTx>::Db>,
    ) -> StoreResult<<Self::Tx as SqlTx>::Row>;
}

/// A backend store: reads go to its reader pool, writes to its writer pool.
#[async_trait]
pub(crate) trait SqlExec: Send + Sync {
    type Db: Dialect;
    type Row: ColumnRow;
    type Tx: SqlTx<Db = Self::Db, Row = Self::Row>;

    /// A transaction on the writer.
    async fn begin(&self) -> StoreResult<Self::Tx>;

    /// All rows, from a reader.
    async fn fetch_all(&self, qb: QueryBuilder<'_, Self::Db>) -> StoreResult<Vec<Self::Row>>;

    /// At most one row, from a reader.
    async fn fetch_optional(
        &self,
        qb: QueryBuilder<'_, Self::Db>,
    ) -> StoreResult<Option<Self::Row>>;

    /// One statement on the writer, outside any explicit transaction; rows affected.
    async fn execute(&self, qb: QueryBuilder<'_, Self::Db>) -> StoreResult<u64>;

    /// One statement with `RETURNING` on the writer: the row it returned, if any.
    async fn write_returning(
        &self,
        qb: QueryBuilder<'_, Self::Db>,
    ) -> StoreResult<Option<Self::Row>>;

    /// In one write transaction: runs `first`; when it affected no row, rolls back and answers
    /// `false`; otherwise runs `rest` in order, commits and answers `true`. This is how
    /// "insert if absent / update or delete if still current, and record why" stays atomic.
    async fn write_if(
        &self,
        first: QueryBuilder<'_, Self::Db>,
        rest: Vec<QueryBuilder<'_, Self::Db>>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let result = async {
            if tx.execute(first).await? == 0 {
                return Ok(false);
            }
            for qb in rest {
                tx.execute(qb).await?;
            }
            Ok(true)
        }
        .await;
        finish_conditional(tx, result).await
    }
}

/// Commits on success; on failure rolls back at once, so no connection sits idle in a
/// transaction holding locks until the pool happens to reuse it.
pub(crate) async fn finish_tx<T: SqlTx, V>(tx: T, result: StoreResult<V>) -> StoreResult<V> {
    match result {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(e)
        }
    }
}

/// Commits when the guarded write happened, rolls back at once when it did not or failed.
pub(crate) async fn finish_conditional<T: SqlTx>(
    tx: T,
    result: StoreResult<bool>,
) -> StoreResult<bool> {
    match result {
        Ok(true) => {
            tx.commit().await?;
            Ok(true)
        }
        Ok(false) => {
            tx.rollback().await?;
            Ok(false)
        }
        Err(e) => finish_tx(tx, Err(e)).await,
    }
}

/// Runs `attempt` again while it fails in a way `retryable` accepts, at most `retries` more
/// times; answers the first success, the first other error, or the last error. For writes that
/// can lose a race on a unique index (a concurrent writer took the same key) and succeed when
/// re-read and re-done.
pub(crate) async fn retry<T, F, Fut>(
    retries: usize,
    retryable: impl Fn(&StoreError) -> bool,
    mut attempt: F,
) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut failed = 0;
    loop {
        match attempt().await {
            Err(e) if retryable(&e) && failed < retries => failed += 1,
            other => return other,
        }
    }
}

/// Implements [`SqlTx`] for the backend's transaction, [`BeginTx`] for its pool, and [`SqlExec`]
/// for the store (which has `reader` and `writer` pools). A macro only
/// because sqlx's executor bounds over a generic `Database` do not compose with `async_trait`
/// (see the module documentation); it holds no logic beyond running the built queries.
macro_rules! impl_sql_exec {
    ($store:ident, $db:ty, $row:ty) => {
        #[async_trait::async_trait]
        impl $crate::exec::SqlTx for sqlx::Transaction<'static, $db> {
            type Db = $db;
            type Row = $row;

            async fn fetch_all(
                &mut self,
                mut qb: sqlx::QueryBuilder<'_, $db>,
            ) -> $crate::StoreResult<Vec<$row>> {
                Ok(qb.build().fetch_all(&mut **self).await?)
            }
            async fn fetch_optional(
                &mut self,
                mut qb: sqlx::QueryBuilder<'_, $db>,
            ) -> $crate::StoreResult<Option<$row>> {
                Ok(qb.build().fetch_optional(&mut **self).await?)
            }
            async fn execute(
                &mut self,
                mut qb: sqlx::QueryBuilder<'_, $db>,
            ) -> $crate::StoreResult<u64> {
                Ok(qb.build().execute(&mut **self).await?.rows_affected())
            }
            async fn commit(self) -> $crate::StoreResult<()> {
                Ok(sqlx::Transaction::commit(self).await?)
            }
            async fn rollback(self) -> $crate::StoreResult<()> {
                Ok(sqlx::Transaction::rollback(self).await?)
            }
        }

        #[async_trait::async_trait]
        impl $crate::exec::BeginTx for sqlx::Pool<$db> {
            type Tx = sqlx::Transaction<'static, $db>;

            async fn begin_tx(&self) -> $crate::StoreResult<Self::Tx> {
                Ok(self.begin().await?)
            }
            async fn fetch_one_alone(
                &self,
                mut qb: sqlx::QueryBuilder<'_, $db>,
            ) -> $crate::StoreResult<$row> {
                Ok(qb.build().fetch_one(self).await?)
            }
        }

        #[async_trait::async_trait]
        impl $crate::exec::SqlExec for $store {
            type Db = $db;
            type Row = $row;
            type Tx = sqlx::Transaction<'static, $db>;

            async fn begin(&self) -> $crate::StoreResult<Self::Tx> {
                Ok(self.writer.begin().await?)
            }
            async fn fetch_all(
                &self,
                mut qb: sqlx::QueryBuilder<'_, $db>,
            ) -> $crate::StoreResult<Vec<$row>> {
                Ok(qb.build().fetch_all(&self.reader).await?)
            }
            async fn fetch_optional(
                &self,
                mut qb: sqlx::QueryBuilder<'_, $db>,
            ) -> $crate::StoreResult<Option<$row>> {
                Ok(qb.build().fetch_optional(&self.reader).await?)
            }
            async fn execute(
                &self,
                mut qb: sqlx::QueryBuilder<'_, $db>,
            ) -> $crate::StoreResult<u64> {
                Ok(qb.build().execute(&self.writer).await?.rows_affected())
            }
            async fn write_returning(
                &self,
                mut qb: sqlx::QueryBuilder<'_, $db>,
            ) -> $crate::StoreResult<Option<$row>> {
                Ok(qb.build().fetch_optional(&self.writer).await?)
            }
        }
    };
}
pub(crate) use impl_sql_exec;

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn conflict() -> StoreError {
        StoreError::Conflict("taken".into())
    }

    #[tokio::test]
    async fn retry_repeats_a_retryable_failure_until_it_succeeds() {
        let calls = Cell::new(0);
        let result = retry(
            8,
            |e| matches!(e, StoreError::Conflict(_)),
            || async {
                calls.set(calls.get() + 1);
                if calls.get() < 3 {
                    Err(conflict())
                } else {
                    Ok(calls.get())
                }
            },
        )
        .await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn retry_gives_up_after_the_limit_with_the_last_error() {
        let calls = Cell::new(0);
        let result: StoreResult<()> = retry(
            2,
            |_| true,
            || async {
                calls.set(calls.get() + 1);
                Err(conflict())
            },
        )
        .await;
        assert!(matches!(result, Err(StoreError::Conflict(_))));
        // The first attempt and two retries.
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn retry_returns_other_errors_at_once() {
        let calls = Cell::new(0);
        let result: StoreResult<()> = retry(
            8,
            |e| matches!(e, StoreError::Conflict(_)),
            || async {
                calls.set(calls.get() + 1);
                Err(StoreError::Corrupt("bad".into()))
            },
        )
        .await;
        assert!(matches!(result, Err(StoreError::Corrupt(_))));
        assert_eq!(calls.get(), 1);
    }
}
