//! Follows the database's current master-key version and customer-key setting (every instance,
//! every interval), and runs the rewrap when there may be keys to move: at start-up, when the
//! current version or the setting changes, after a pass another instance was running, and every
//! [`RECHECK`] for keys sealed by an instance that learnt of a rotation late. One instance at a
//! time rewraps (a lease); a pass stops between batches when the server stops.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use uuid::Uuid;

use crate::vault::{RewrapPass, Vault};

/// How often to look for data keys left under older versions when nothing else prompts it.
const RECHECK: Duration = Duration::from_secs(600);
/// How long to wait before trying again while another instance holds the rewrap lease.
const WAIT_FOR_LEASE: Duration = Duration::from_secs(2);

/// Whether a rewrap pass is wanted, when one was last tried, and how secrets were sealed then
/// (the master-key version, and whether under customer keys).
struct Progress {
    pending: bool,
    last_try: Option<Instant>,
    sealing_with: (u32, bool),
}

pub(super) async fn run(
    vault: Vault,
    interval: Duration,
    rate: Option<NonZeroU32>,
    stopped: watch::Receiver<bool>,
) {
    let holder = Uuid::new_v4();
    let stop = stopped.clone();
    let progress = tokio::sync::Mutex::new(Progress {
        pending: true,
        last_try: None,
        sealing_with: (vault.sealing_key_version(), vault.customer_keys_enabled()),
    });
    super::repeat(Duration::ZERO, interval, stopped, || async {
        if !vault.is_ready() {
            return;
        }
        let mut progress = progress.lock().await;
        if let Err(e) = vault.follow_current_key().await {
            tracing::warn!(error = %e, "reading the current key version failed; retrying");
            return;
        }
        // Changed by the database's word, or by a rotation this instance made.
        let sealing_with = (vault.sealing_key_version(), vault.customer_keys_enabled());
        if sealing_with != progress.sealing_with {
            progress.sealing_with = sealing_with;
            progress.pending = true;
            progress.last_try = None;
        }
        let due = match progress.last_try {
            None => true,
            Some(at) if progress.pending => at.elapsed() >= WAIT_FOR_LEASE,
            Some(at) => at.elapsed() >= RECHECK,
        };
        if !due {
            return;
        }
        progress.last_try = Some(Instant::now());
        progress.pending = match vault.rewrap(holder, rate, &stop).await {
            Ok(RewrapPass::NothingToDo) => false,
            // Keys sealed during the pass by an instance not yet on the new version: go again.
            // Keys that would not move (unopenable) wait for the recheck.
            Ok(RewrapPass::Finished { moved, left }) => left > 0 && moved > 0,
            Ok(RewrapPass::HeldElsewhere | RewrapPass::Interrupted { .. }) => true,
            Err(e) => {
                tracing::warn!(error = %e, "the rewrap failed; retrying");
                true
            }
        };
    })
    .await;
}
