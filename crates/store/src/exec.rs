//! What a backend lends to backend-independent store code: running queries that
//! [`crate::sql`]-style builders produced. Code written against [`SqlExec`] is a plain generic
//! impl (see [`crate::rollout`]), visible to rustfmt and the IDE; each backend implements these
//! three methods with [`impl_sql_exec!`], the only place sqlx's executor bounds are met.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{ColumnIndex, Database, QueryBuilder};
use uuid::Uuid;

use crate::{
    sql::{Dialect, PlainRow, TypedRow},
    sql_store::finish_tx,
    StoreResult,
};

/// A row whose columns decode the same way on every backend. Blanket-implemented for the
/// backends' rows; unlike [`TypedRow`] it carries no `usize: ColumnIndex<Self>` clause, which
/// generic code over an associated row type could not state without recursing.
pub(crate) trait ColumnRow: Send + Sync {
    fn int(&self, i: usize) -> StoreResult<i64>;
    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>>;
    fn opt_float(&self, i: usize) -> StoreResult<Option<f64>>;
    fn text(&self, i: usize) -> StoreResult<String>;
    fn opt_text(&self, i: usize) -> StoreResult<Option<String>>;
    fn id(&self, i: usize) -> StoreResult<Uuid>;
    fn ts(&self, i: usize) -> StoreResult<DateTime<Utc>>;
    fn json(&self, i: usize) -> StoreResult<Option<Value>>;
    fn opt_bool(&self, i: usize) -> StoreResult<Option<bool>>;
}

impl<R> ColumnRow for R
where
    R: TypedRow + Send + Sync,
    usize: ColumnIndex<R>,
{
    fn int(&self, i: usize) -> StoreResult<i64> {
        PlainRow::int(self, i)
    }
    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>> {
        PlainRow::opt_int(self, i)
    }
    fn opt_float(&self, i: usize) -> StoreResult<Option<f64>> {
        PlainRow::opt_float(self, i)
    }
    fn text(&self, i: usize) -> StoreResult<String> {
        PlainRow::text(self, i)
    }
    fn opt_text(&self, i: usize) -> StoreResult<Option<String>> {
        PlainRow::opt_text(self, i)
    }
    fn id(&self, i: usize) -> StoreResult<Uuid> {
        TypedRow::id(self, i)
    }
    fn ts(&self, i: usize) -> StoreResult<DateTime<Utc>> {
        TypedRow::ts(self, i)
    }
    fn json(&self, i: usize) -> StoreResult<Option<Value>> {
        TypedRow::json(self, i)
    }
    fn opt_bool(&self, i: usize) -> StoreResult<Option<bool>> {
        TypedRow::opt_bool(self, i)
    }
}

#[async_trait]
pub(crate) trait SqlExec: Send + Sync {
    type Db: Dialect;
    type Row: ColumnRow;

    /// All rows, from a reader.
    async fn rows(&self, qb: QueryBuilder<'_, Self::Db>) -> StoreResult<Vec<Self::Row>>;

    /// At most one row, from a reader.
    async fn row(&self, qb: QueryBuilder<'_, Self::Db>) -> StoreResult<Option<Self::Row>>;

    /// In one write transaction: runs `first`; when it affected no row, rolls back and answers
    /// `false`; otherwise runs `rest` in order, commits and answers `true`. This is how
    /// "insert if absent / update or delete if still current, and record why" stays atomic.
    async fn write_if(
        &self,
        first: QueryBuilder<'_, Self::Db>,
        rest: Vec<QueryBuilder<'_, Self::Db>>,
    ) -> StoreResult<bool>;
}

/// Implements [`SqlExec`] for a backend with `reader` and `writer` pools. A macro only because
/// sqlx's executor bounds over a generic `Database` do not compose with `async_trait`; it holds
/// no logic beyond running the built queries.
macro_rules! impl_sql_exec {
    ($store:ident, $db:ty, $row:ty) => {
        #[async_trait::async_trait]
        impl $crate::exec::SqlExec for $store {
            type Db = $db;
            type Row = $row;

            async fn rows(
                &self,
                mut qb: sqlx::QueryBuilder<'_, $db>,
            ) -> $crate::StoreResult<Vec<$row>> {
                Ok(qb.build().fetch_all(&self.reader).await?)
            }

            async fn row(
                &self,
                mut qb: sqlx::QueryBuilder<'_, $db>,
            ) -> $crate::StoreResult<Option<$row>> {
                Ok(qb.build().fetch_optional(&self.reader).await?)
            }

            async fn write_if(
                &self,
                mut first: sqlx::QueryBuilder<'_, $db>,
                rest: Vec<sqlx::QueryBuilder<'_, $db>>,
            ) -> $crate::StoreResult<bool> {
                let mut tx = self.writer.begin().await?;
                let result = async {
                    if first.build().execute(&mut *tx).await?.rows_affected() == 0 {
                        return Ok(false);
                    }
                    for mut qb in rest {
                        qb.build().execute(&mut *tx).await?;
                    }
                    Ok(true)
                }
                .await;
                $crate::exec::finish_conditional(tx, result).await
            }
        }
    };
}
pub(crate) use impl_sql_exec;

/// Commits when the guarded write happened, rolls back at once when it did not or failed.
pub(crate) async fn finish_conditional<DB: Database>(
    tx: sqlx::Transaction<'_, DB>,
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
