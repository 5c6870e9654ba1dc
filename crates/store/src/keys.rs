//! Storage of named, scoped API keys (`api_keys`): only each secret's digest is kept.
//! A supertrait of [`Store`](crate::Store), so `Arc<dyn Store>` offers these methods too.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lightning_core::{ApiKeyInfo, NewApiKey, Scope};
use sqlx::{ColumnIndex, QueryBuilder};
use uuid::Uuid;

use crate::{
    sql::{Dialect, TypedRow},
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

pub(crate) fn decode_key<R: TypedRow>(r: &R) -> StoreResult<ApiKeyInfo>
where
    usize: ColumnIndex<R>,
{
    let scope = r.text(2)?;
    Ok(ApiKeyInfo {
        id: r.id(0)?,
        name: r.text(1)?,
        scope: Scope::parse(&scope)
            .ok_or_else(|| StoreError::Corrupt(format!("key scope {scope:?}")))?,
        prefix: r.text(3)?,
        created_at: r.ts(4)?,
        revoked_at: r.opt_ts(5)?,
    })
}

/// Implements [`KeyStore`] for a backend with `writer`/`reader` pools; invoked inside the
/// backend's module so it can reach them.
macro_rules! impl_key_store {
    ($store:ident, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::keys::KeyStore for $store {
            async fn create_key(
                &self,
                key: &lightning_core::NewApiKey,
            ) -> $crate::StoreResult<lightning_core::ApiKeyInfo> {
                match $crate::keys::insert_key::<$db>(key)
                    .build()
                    .execute(&self.writer)
                    .await
                {
                    Ok(_) => Ok(key.info.clone()),
                    Err(e) => {
                        let e = $crate::StoreError::from(e);
                        if $crate::optimization_sql::is_unique_violation(&e) {
                            Err($crate::StoreError::Conflict(format!(
                                "a key named {:?} exists: revoke it first or pick another name",
                                key.info.name
                            )))
                        } else {
                            Err(e)
                        }
                    }
                }
            }

            async fn list_keys(&self) -> $crate::StoreResult<Vec<lightning_core::ApiKeyInfo>> {
                let rows = $crate::keys::list_keys::<$db>()
                    .build()
                    .fetch_all(&self.reader)
                    .await?;
                rows.iter().map($crate::keys::decode_key).collect()
            }

            async fn revoke_key(
                &self,
                id_or_name: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<lightning_core::ApiKeyInfo> {
                let row = $crate::keys::revoke_key::<$db>(id_or_name, at)
                    .build()
                    .fetch_optional(&self.writer)
                    .await?
                    .ok_or_else(|| $crate::keys::key_not_found(id_or_name))?;
                $crate::keys::decode_key(&row)
            }

            async fn find_key(
                &self,
                hash: &str,
            ) -> $crate::StoreResult<Option<lightning_core::ApiKeyInfo>> {
                let row = $crate::keys::find_key::<$db>(hash)
                    .build()
                    .fetch_optional(&self.reader)
                    .await?;
                row.as_ref().map($crate::keys::decode_key).transpose()
            }
        }
    };
}
pub(crate) use impl_key_store;
