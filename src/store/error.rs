//! The store's errors, in terms the vault acts on, and how each driver's errors map to them.

/// What went wrong in storage, in terms the vault can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database configuration: {0}")]
    Config(String),
    /// The database cannot be reached or written right now (retrying later may work), or the
    /// store is closed or stopped; the source says why, whichever driver reported it.
    #[error("database unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database can be read but not written (a read-only file or mount, a hot standby);
    /// the text says which and what to change.
    #[error("{0}")]
    ReadOnly(String),
    /// The caller's etag no longer matches: something changed since they read.
    #[error("{0}")]
    Stale(String),
    /// The change is not allowed in the current state (e.g. enabling a destroyed version).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The version number a new version was sealed for was taken meanwhile; seal it again.
    #[error("the version number was taken by a concurrent AddVersion")]
    VersionTaken,
    #[error("database error")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub(crate) fn unavailable(why: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Unavailable(why.into())
    }

    /// A call after [`crate::store::Store::close`], or after the store stopped itself.
    pub(crate) fn closed() -> Self {
        Self::unavailable("the store is closed")
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) {
            StoreError::Unavailable(Box::new(err))
        } else {
            StoreError::Other(Box::new(err))
        }
    }
}

/// Whether the error means "the database cannot be reached right now" (retrying later may
/// work), as opposed to a bug or bad data.
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
            true
        }
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // PostgreSQL 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect now;
            // 53300: too many connections; 57014: statement timeout or cancel.
            // 25006: read-only transaction (a standby, default_transaction_read_only); 53100:
            // disk full. SQLite 5 / 517: busy past the busy timeout; 8 and its extended codes:
            // read-only; 13: disk full. A database that cannot be written now may be writable
            // again later: 503, not 500.
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "57P01"
                        | "57P02"
                        | "57P03"
                        | "53300"
                        | "57014"
                        | "25006"
                        | "53100"
                        | "5"
                        | "517"
                        | "8"
                        | "264"
                        | "520"
                        | "776"
                        | "1032"
                        | "1288"
                        | "1544"
                        | "13"
                )
        }),
        _ => false,
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError;
        match err {
            MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) if is_unavailable(&e) => {
                StoreError::Unavailable(Box::new(e))
            }
            other => StoreError::Other(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::ConnectOptions as _;
    use sqlx::sqlite::SqliteConnectOptions;

    use super::*;

    /// A write SQLite refuses because the database cannot be written now is "unavailable"
    /// (503, worth retrying once fixed), not a bug (500).
    #[tokio::test]
    async fn a_write_to_a_read_only_database_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro.db");
        let mut rw =
            SqliteConnectOptions::new().filename(&path).create_if_missing(true).connect().await.unwrap();
        sqlx::query("CREATE TABLE t (v)").execute(&mut rw).await.unwrap();
        drop(rw);
        let mut ro = SqliteConnectOptions::new().filename(&path).read_only(true).connect().await.unwrap();
        let refused = sqlx::query("INSERT INTO t VALUES (1)").execute(&mut ro).await.unwrap_err();
        assert!(matches!(StoreError::from(refused), StoreError::Unavailable(_)));
        let bug = sqlx::query("INSERT INTO missing VALUES (1)").execute(&mut ro).await.unwrap_err();
        assert!(matches!(StoreError::from(bug), StoreError::Other(_)));
    }
}
