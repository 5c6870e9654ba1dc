//! Storage of named, scoped API keys (`api_keys`): only each secret's digest is kept.
//! A supertrait of [`Store`](crate::Store), so `Arc<dyn Store>` offers these methods too;
//! implemented once, generically, for every backend that lends an `SqlExec`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lightning_core::{ApiKeyInfo, NewApiKey, Scope};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::{
    exec::{ColumnRow, SqlExec},
    optimization_sql::is_unique_violation,
    sql::Dialect,
    StoreError, StoreResult,
};

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a key. `Conflict` when a key in use already has the name.
    async fn create_key(&self, key: &NewApiKey) -> StoreResult<ApiKeyInfo>;

    /// Every key, revoked ones included, oldest first.
    async fn list_keys(&self) -> StoreResult<Vec<ApiKeyInfo>>;

    /// Revokes the key in use with this id or name; `NotFound` if there is none.
    async fn revoke_key(&self, id_or_name: &str, at: DateTime<Utc>) -> StoreResult<ApiKeyInfo>;

    /// The key in use whose secret has this digest (lowercase hex SHA-256).
    async fn find_key(&self, hash: &str) -> StoreResult<Option<ApiKeyInfo>>;
}

const KEY_COLUMNS: &str = "id, name, scope, prefix, created_at, revoked_at";

pub(crate) fn key_not_found(what: &str) -> StoreError {
    StoreError::NotFound(format!("API key {what:?}"))
}

pub(crate) fn insert_key<'a, DB: Dialect>(key: &NewApiKey) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "INSERT INTO api_keys (id, name, scope, key_hash, prefix, created_at) VALUES (",
    );
    DB::bind_id(&mut qb, key.info.id);
    for text in [
        key.info.name.clone(),
        key.info.scope.as_str().to_string(),
        key.hash.clone(),
        key.info.prefix.clone(),
    ] {
        qb.push(", ");
        DB::bind_text(&mut qb, Some(text));
    }
    qb.push(", ");
    DB::bind_ts(&mut qb, key.info.created_at);
    qb.push(")");
    qb
}

pub(crate) fn list_keys<'a, DB: Dialect>() -> QueryBuilder<'a, DB> {
    QueryBuilder::new(format!(
        "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
    ))
}

pub(crate) fn find_key<'a, DB: Dialect>(hash: &str) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL AND key_hash = "
    ));
    DB::bind_text(&mut qb, Some(hash.to_string()));
    qb
}

/// Revokes by id when `id_or_name` is a UUID, else by name; returns the revoked row.
pub(crate) fn revoke_key<'a, DB: Dialect>(
    id_or_name: &str,
    at: DateTime<Utc>,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("UPDATE api_keys SET revoked_at = ");
    DB::bind_ts(&mut qb, at);
    qb.push(" WHERE revoked_at IS NULL AND ");
    match id_or_name.parse::<Uuid>() {
        Ok(id) => {
            qb.push("id = ");
            DB::bind_id(&mut qb, id);
        }
        Err(_) => {
            qb.push("name = ");
            DB::bind_text(&mut qb, Some(id_or_name.to_string()));
        }
    }
    qb.push(format_args!(" RETURNING {KEY_COLUMNS}"));
    qb
}

pub(crate) fn decode_key<R: ColumnRow>(r: &R) -> StoreResult<ApiKeyInfo> {
    let scope = r.text("scope")?;
    Ok(ApiKeyInfo {
        id: r.id("id")?,
        name: r.text("name")?,
        scope: Scope::parse(&scope)
            .ok_or_else(|| StoreError::Corrupt(format!("key scope {scope:?}")))?,
        prefix: r.text("prefix")?,
        created_at: r.ts("created_at")?,
        revoked_at: r.opt_ts("revoked_at")?,
    })
}

/// A unique-index violation on insert means the name is taken by a key in use.
fn name_taken(e: StoreError, name: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!(
            "a key named {name:?} exists: revoke it first or pick another name"
        ))
    } else {
        e
    }
}

#[async_trait]
impl<S: SqlExec> KeyStore for S {
    async fn create_key(&self, key: &NewApiKey) -> StoreResult<ApiKeyInfo> {
        self.execute(insert_key(key))
            .await
            .map_err(|e| name_taken(e, &key.info.name))?;
        Ok(key.info.clone())
    }

    async fn list_keys(&self) -> StoreResult<Vec<ApiKeyInfo>> {
        let rows = self.fetch_all(list_keys()).await?;
        rows.iter().map(decode_key).collect()
    }

    async fn revoke_key(&self, id_or_name: &str, at: DateTime<Utc>) -> StoreResult<ApiKeyInfo> {
        let row = self
            .write_returning(revoke_key(id_or_name, at))
            .await?
            .ok_or_else(|| key_not_found(id_or_name))?;
        decode_key(&row)
    }

    async fn find_key(&self, hash: &str) -> StoreResult<Option<ApiKeyInfo>> {
        let row = self.fetch_optional(find_key(hash)).await?;
        row.as_ref().map(decode_key).transpose()
    }
}
