//! What the operator commands share: the database and key arguments, and opening the store.

use std::sync::Arc;

use credvault::config::{self, DEFAULT_DATABASE_URL};
use credvault::crypto::Keyring;
use credvault::domain::AuditSigner;
use credvault::store::{self, PoolSettings, Store};
use credvault::vault::{adopt_current_key, error_chain, prove_key};

/// The database every command but `keygen` and `bench` works on.
#[derive(clap::Args)]
pub(crate) struct DatabaseArg {
    /// Database URL: sqlite://path/to/file.db or postgres://user:password@host:port/db
    /// (the default is the database `serve --dev` creates).
    #[arg(long, env = "CREDVAULT_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub(crate) database_url: String,
}

/// The master key, for commands that sign or check audit rows.
#[derive(clap::Args)]
pub(crate) struct KeyArg {
    /// File holding the base64 master key; or set CREDENTIAL_ENCRYPTION_KEY. Without either,
    /// next to `serve --dev`'s database its .credvault/dev.key is used.
    #[arg(long, env = "CREDVAULT_KEY_FILE")]
    pub(crate) key_file: Option<std::path::PathBuf>,
}

/// Runs `work` on `store`, then closes it whatever the outcome: a clean close leaves a SQLite
/// database whole in its file (no WAL left beside it).
pub(crate) async fn closing<T>(store: &Arc<dyn Store>, work: impl std::future::Future<Output = T>) -> T {
    let outcome = work.await;
    store.close().await;
    outcome
}

pub(crate) async fn open_migrated(database_url: &str) -> Result<Arc<dyn Store>, String> {
    open_signing(database_url, None).await
}

/// Opens the store with the audit signer of the master key, for commands that write or check
/// audit rows; the key must be the database's, and seals with the database's current version.
pub(crate) async fn open_signing(
    database_url: &str,
    keyring: Option<Arc<Keyring>>,
) -> Result<Arc<dyn Store>, String> {
    let signer = keyring.clone().map(|k| k as Arc<dyn AuditSigner>);
    let store =
        store::open(database_url, &PoolSettings::default(), signer).await.map_err(|e| error_chain(&e))?;
    store.migrate().await.map_err(|e| error_chain(&e))?;
    if let Some(keyring) = keyring {
        prove_key(store.as_ref(), &keyring).await.map_err(|e| e.to_string())?;
        adopt_current_key(store.as_ref(), &keyring).await.map_err(|e| e.to_string())?;
    }
    Ok(store)
}

pub(crate) fn keyring(key: &KeyArg, database_url: &str) -> Result<Arc<Keyring>, String> {
    let keys = config::load_master_keys(key.key_file.as_deref(), database_url).map_err(|e| e.to_string())?;
    Ok(Arc::new(Keyring::new(&keys)))
}
