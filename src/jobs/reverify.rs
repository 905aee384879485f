//! Scheduled re-verification: every credential is verified again about once per interval (see
//! [`crate::vault::VerificationPolicy`]). Each pass claims the credentials that are due (a claim
//! moves their due time a whole interval on, so instances sharing a database verify each one
//! once) and verifies them: per provider at most `concurrency` at a time and `rate` a second,
//! pausing a provider that answered 429 for as long as its `Retry-After` asks. What a pass could
//! not verify (a provider asking for a long pause, or the server stopping) is handed back, due
//! when it can be done.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::domain::{CredentialId, Provider};
use crate::vault::Vault;

/// How the scheduler paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReverifySettings {
    /// Whether this instance verifies on schedule at all (`CREDVAULT_REVERIFY_INTERVAL=off`).
    pub enabled: bool,
    /// How often to look for due credentials.
    pub tick: Duration,
    /// Verifications in flight per provider (`CREDVAULT_VERIFY_CONCURRENCY`).
    pub concurrency: usize,
    /// Verifications started per provider per second (`CREDVAULT_VERIFY_RATE`).
    pub rate: NonZeroU32,
}

impl Default for ReverifySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            tick: Duration::from_secs(1),
            concurrency: 4,
            rate: NonZeroU32::new(5).unwrap(),
        }
    }
}

/// Credentials claimed per pass: enough for a few seconds of every provider's rate.
const CLAIM: u32 = 200;
/// A provider asking to wait longer than this has its claimed credentials handed back, due when
/// it asked, rather than holding the pass.
const LONGEST_WAIT_IN_PASS: Duration = Duration::from_secs(5);
/// How often the per-state gauge is counted (a scan of the active credentials), unless the
/// scan is slow ([`COUNT_SPACING`]).
const COUNT_EVERY: Duration = Duration::from_secs(30);
/// A count that took `t` is followed by at least `t * COUNT_SPACING` without one: the gauge's
/// scan takes at most 1% of one database connection's time, whatever the number of credentials
/// (at a million on PostgreSQL it takes ~0.5 s: once a minute or so, not every 30 s).
const COUNT_SPACING: u32 = 100;
/// However slow the scan, the gauge is counted at least this often.
const COUNT_AT_LEAST_EVERY: Duration = Duration::from_secs(600);

/// Until when each provider (in [`Provider::ALL`] order) asked to be left alone; kept across
/// passes.
type QuietUntil = [Arc<Mutex<Instant>>; 4];

pub(super) async fn run(vault: Vault, settings: ReverifySettings, mut stopped: watch::Receiver<bool>) {
    let quiet: QuietUntil = std::array::from_fn(|_| Arc::new(Mutex::new(Instant::now())));
    // When the gauge was last counted, and how long that took.
    let mut counted: Option<(Instant, Duration)> = None;
    // Whether a pass verified something since the gauge was counted.
    let mut changed = false;
    let mut every = tokio::time::interval(settings.tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopped.changed() => return,
        }
        if !vault.is_ready() {
            continue;
        }
        if counted.is_none_or(|(at, took)| at.elapsed() >= count_after(took, changed, settings.tick)) {
            let began = Instant::now();
            count_states(&vault).await;
            (counted, changed) = (Some((Instant::now(), began.elapsed())), false);
        }
        if !settings.enabled {
            continue;
        }
        match vault.claim_due_verifications(CLAIM).await {
            Ok(claimed) if claimed.is_empty() => {}
            Ok(claimed) => {
                let full = claimed.len() == CLAIM as usize;
                pass(&vault, settings, &quiet, claimed, &stopped).await;
                changed = true;
                if full {
                    // More may be due: go on at once.
                    every.reset_immediately();
                }
            }
            Err(e) => tracing::warn!(error = %e, "claiming due verifications failed; retrying"),
        }
    }
}

/// How long after a count that took `took` the next one is due: [`COUNT_EVERY`], sooner after a
/// pass verified something (`changed`), never sooner than [`COUNT_SPACING`] times `took` allows.
fn count_after(took: Duration, changed: bool, tick: Duration) -> Duration {
    let wanted = if changed { (tick * 5).min(COUNT_EVERY) } else { COUNT_EVERY };
    wanted.max(took.saturating_mul(COUNT_SPACING).min(COUNT_AT_LEAST_EVERY))
}

/// Sets the per-state gauge.
async fn count_states(vault: &Vault) {
    match vault.verification_state_counts().await {
        Ok(counts) => {
            for (state, n) in counts {
                metrics::gauge!(crate::metrics::CREDENTIALS_BY_VERIFICATION, "state" => state.as_str())
                    .set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "counting credentials by verification state failed"),
    }
}

/// Verifies what was claimed, each provider on its own pace, all providers at once.
async fn pass(
    vault: &Vault,
    settings: ReverifySettings,
    quiet: &QuietUntil,
    claimed: Vec<(CredentialId, Provider)>,
    stopped: &watch::Receiver<bool>,
) {
    let group = |i: usize| {
        let provider = Provider::ALL[i];
        let ids = claimed.iter().filter(|(_, p)| *p == provider).map(|(id, _)| *id).collect();
        verify_provider(vault, settings, provider, quiet[i].clone(), ids, stopped.clone())
    };
    tokio::join!(group(0), group(1), group(2), group(3));
}

/// One provider's share of a pass.
async fn verify_provider(
    vault: &Vault,
    settings: ReverifySettings,
    provider: Provider,
    quiet_until: Arc<Mutex<Instant>>,
    ids: Vec<CredentialId>,
    stopped: watch::Receiver<bool>,
) {
    if ids.is_empty() {
        return;
    }
    let in_flight = Arc::new(Semaphore::new(settings.concurrency));
    let spacing = Duration::from_secs(1) / settings.rate.get();
    let mut next_start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut remaining = ids.into_iter();
    while let Some(id) = remaining.next() {
        let quiet = *quiet_until.lock().expect("never poisoned");
        let start = next_start.max(quiet);
        if *stopped.borrow() || start.saturating_duration_since(Instant::now()) > LONGEST_WAIT_IN_PASS {
            let left: Vec<CredentialId> = std::iter::once(id).chain(remaining).collect();
            let at = OffsetDateTime::now_utc() + start.saturating_duration_since(Instant::now());
            if quiet > Instant::now() {
                metrics::counter!(crate::metrics::VERIFICATIONS_DEFERRED, "provider" => provider.as_str())
                    .increment(left.len() as u64);
                tracing::info!(%provider, deferred = left.len(), "provider asked to wait; verifications put off");
            }
            if let Err(e) = vault.defer_verifications(&left, at).await {
                tracing::warn!(error = %e, "handing back claimed verifications failed; they wait a whole interval");
            }
            break;
        }
        tokio::time::sleep_until(start).await;
        next_start = Instant::now() + spacing;
        let permit = in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (vault, quiet_until) = (vault.clone(), quiet_until.clone());
        tasks.spawn(async move {
            let _permit = permit;
            match vault.reverify(id).await {
                Ok(Some(verification)) => {
                    if let Some(wait) = verification.retry_after {
                        let mut quiet = quiet_until.lock().expect("never poisoned");
                        *quiet = (*quiet).max(Instant::now() + wait);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(credential_id = %id, error = %e, "scheduled verification failed"),
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_count_spaces_the_next_one_out_and_a_fast_one_does_not() {
        let (ms, s, tick) = (Duration::from_millis, Duration::from_secs, Duration::from_secs(1));
        // A thousand credentials: every 30 s, every 5 s after a pass changed states.
        assert_eq!(count_after(ms(3), false, tick), s(30));
        assert_eq!(count_after(ms(3), true, tick), s(5));
        // A million on PostgreSQL: a 560 ms scan waits 56 s, changed or not.
        assert_eq!(count_after(ms(560), false, tick), s(56));
        assert_eq!(count_after(ms(560), true, tick), s(56));
        // However slow, at least every ten minutes.
        assert_eq!(count_after(s(30), false, tick), s(600));
    }
}
