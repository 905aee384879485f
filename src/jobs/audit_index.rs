//! Brings the store's index of the audit log by credential up to date (SQLite's, in a file of
//! its own: see `store/sqlite/by_credential.rs`), while the database is reachable.

use std::time::Duration;

use tokio::sync::watch;

use crate::vault::Vault;

pub(super) async fn run(vault: Vault, interval: Duration, stopped: watch::Receiver<bool>) {
    super::repeat(interval, interval, stopped, || {
        let vault = vault.clone();
        async move {
            if !vault.is_ready() {
                return;
            }
            if let Err(e) = vault.index_audit().await {
                tracing::warn!(error = %e, "indexing the audit log by credential failed; retrying");
            }
        }
    })
    .await;
}
