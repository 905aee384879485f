//! Opening a store: the backend named by the URL's scheme, and the pool settings it takes.

use std::sync::Arc;
use std::time::Duration;

use super::{PostgresStore, SqliteStore, Store, StoreError};
use crate::domain::AuditSigner;

/// Connection pool settings (PostgreSQL; SQLite uses one writer and a few readers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections one instance opens.
    pub max_connections: u32,
    /// How long a call waits for a connection (including connecting) before UNAVAILABLE.
    pub connect_timeout: Duration,
    /// Server-side limit on one statement.
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    /// Sized for a 2-core machine: PostgreSQL does best with a few busy connections per core,
    /// and several instances share its `max_connections` (100 by default).
    fn default() -> Self {
        Self {
            max_connections: 8,
            connect_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// Opens the backend named by the URL's scheme. SQLite opens (creating) its file now;
/// PostgreSQL connects lazily, so the server can start before the database is reachable.
/// Neither migrates: call [`Store::migrate`].
/// `signer` MACs every audit row written; without one (CLI commands run without the key) rows
/// are written unsigned, which `audit verify` reports.
pub async fn open(
    url: &str,
    settings: &PoolSettings,
    signer: Option<Arc<dyn AuditSigner>>,
) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, signer).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect_lazy(url, settings, signer)?))
    } else {
        Err(StoreError::Config(
            "the database URL must start with sqlite:, postgres:// or postgresql://".into(),
        ))
    }
}
