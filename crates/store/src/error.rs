use thiserror::Error;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The named thing does not exist, e.g. "trajectory 0190…".
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with stored state.
    #[error("{0}")]
    Conflict(String),
    /// The database cannot be reached right now; the caller may retry.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Too much is already waiting to be written; the caller should retry shortly.
    #[error("write queue full: {0}")]
    Overloaded(String),
    #[error("invalid store configuration: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// Stored data that cannot be decoded (e.g. a corrupted timestamp).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                StoreError::Unavailable(e)
            }
            E::Database(db) if is_connection_failure(db.code().as_deref()) => {
                StoreError::Unavailable(e)
            }
            E::RowNotFound => StoreError::NotFound("row".into()),
            E::ColumnDecode { .. } | E::Decode(_) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Database(e),
        }
    }
}

/// PostgreSQL SQLSTATEs meaning "the server is going away or not accepting work", and SQLite's
/// BUSY/LOCKED, all of which a client should retry rather than treat as a bug.
fn is_connection_failure(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(c) if c.starts_with("08") || c == "57P01" || c == "57P02" || c == "57P03" || c == "53300"
            || c == "5" || c == "6" || c == "261" || c == "517"
    )
}
