//! The server's background workers: sealing new audit rows onto the chain ([`audit_chain`])
//! and indexing them by credential ([`audit_index`]),
//! purging deleted credentials whose recovery window ended ([`purger`]), and following the
//! current master-key version and rewrapping data keys to it ([`keys`]), and verifying every
//! credential again on schedule ([`reverify`]). Every instance runs
//! each; each is safe beside the same job of other instances on one database. [`Jobs`] owns
//! them: [`Jobs::stop`] lets a pass under way finish, then ends and joins every worker.

mod audit_chain;
mod audit_index;
mod keys;
mod purger;
mod reverify;

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use reverify::ReverifySettings;

use crate::vault::Vault;

/// How often each job runs.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub audit_chain: Duration,
    pub purge: Duration,
    /// How often to read the current master-key version.
    pub keys: Duration,
}

/// The running workers.
pub struct Jobs {
    stop: watch::Sender<bool>,
    workers: Vec<(&'static str, JoinHandle<()>)>,
}

impl Jobs {
    /// Starts every worker; the rewrap moves at most `rewrap_rate` data keys a second.
    pub fn start(
        vault: &Vault,
        every: Intervals,
        rewrap_rate: Option<std::num::NonZeroU32>,
        reverify: ReverifySettings,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let workers = vec![
            (
                "audit chain",
                tokio::spawn(audit_chain::run(vault.clone(), every.audit_chain, stopped.clone())),
            ),
            (
                "audit index",
                tokio::spawn(audit_index::run(vault.clone(), every.audit_chain, stopped.clone())),
            ),
            ("purger", tokio::spawn(purger::run(vault.clone(), every.purge, stopped.clone()))),
            ("keys", tokio::spawn(keys::run(vault.clone(), every.keys, rewrap_rate, stopped.clone()))),
            ("reverify", tokio::spawn(reverify::run(vault.clone(), reverify, stopped))),
        ];
        Self { stop, workers }
    }

    /// Asks every worker to stop, and waits for each: a pass under way completes first.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for (name, worker) in self.workers {
            if let Err(e) = worker.await {
                tracing::error!(job = name, error = %e, "a background job ended abnormally");
            }
        }
    }
}

/// Runs `pass` every `interval` (the first after `first`) until `stopped` turns true; a pass
/// is never cut short.
async fn repeat<F, P>(first: Duration, interval: Duration, mut stopped: watch::Receiver<bool>, mut pass: F)
where
    F: FnMut() -> P,
    P: Future<Output = ()>,
{
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + first, interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => pass().await,
            // The only change ever sent is the stop (a dropped sender stops too).
            _ = stopped.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_job_stops_when_asked_and_finishes_the_pass_under_way() {
        let (stop, stopped) = watch::channel(false);
        let (started, finished) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let (s, f) = (started.clone(), finished.clone());
        let job = tokio::spawn(repeat(Duration::ZERO, Duration::from_millis(5), stopped, move || {
            let (s, f) = (s.clone(), f.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                f.fetch_add(1, Ordering::SeqCst);
            }
        }));
        while started.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stop.send(true).unwrap();
        job.await.unwrap();
        assert_eq!(started.load(Ordering::SeqCst), finished.load(Ordering::SeqCst), "no pass was cut short");
        let after = started.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(started.load(Ordering::SeqCst), after, "no pass after the stop");
    }
}
