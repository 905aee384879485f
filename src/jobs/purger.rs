//! Destroys the versions of deleted credentials whose recovery window ended, and the keys of
//! cancelled customers whose window ended (crypto-shredding). Several instances' purgers may
//! find the same credential or customer due: the store purges it once (see
//! [`crate::store::PurgeReason::Due`]).

use std::time::Duration;

use tokio::sync::watch;

use crate::vault::Vault;

pub(super) async fn run(vault: Vault, interval: Duration, stopped: watch::Receiver<bool>) {
    super::repeat(Duration::ZERO, interval, stopped, || {
        let vault = vault.clone();
        async move {
            if vault.is_ready()
                && let Err(e) = vault.purge_due().await
            {
                tracing::warn!(error = %e, "purging deleted credentials failed; retrying");
            }
            if vault.is_ready()
                && let Err(e) = vault.purge_due_customers().await
            {
                tracing::warn!(error = %e, "purging cancelled customers failed; retrying");
            }
        }
    })
    .await;
}
