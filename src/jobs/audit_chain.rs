//! Seals new audit rows onto the tamper-evident chain, while the database is reachable, and
//! reports how far behind the chain is (`credvault_audit_chain_lag_seconds`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::vault::Vault;

pub(super) async fn run(vault: Vault, interval: Duration, stopped: watch::Receiver<bool>) {
    // When the chain last caught up with the log.
    let caught_up = Mutex::new(Instant::now());
    // Scrapes before the first pass see the gauge too.
    metrics::gauge!(crate::metrics::AUDIT_CHAIN_LAG).set(0.0);
    let since = |at: &Mutex<Instant>| at.lock().unwrap_or_else(std::sync::PoisonError::into_inner).elapsed();
    super::repeat(interval, interval, stopped, || {
        let vault = vault.clone();
        let caught_up = &caught_up;
        async move {
            metrics::gauge!(crate::metrics::AUDIT_CHAIN_LAG).set(since(caught_up).as_secs_f64());
            if !vault.is_ready() {
                return;
            }
            match vault.chain_audit().await {
                Ok(report) => {
                    *caught_up.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
                    metrics::counter!(crate::metrics::AUDIT_CHAINED).increment(u64::from(report.sealed));
                }
                Err(e) => tracing::warn!(error = %e, "sealing the audit log failed; retrying"),
            }
        }
    })
    .await;
}
