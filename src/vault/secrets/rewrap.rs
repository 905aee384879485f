//! The rewrap: moves every customer key to the current master-key version, and every data key
//! still wrapped by a master-key version either under its customer's key (once customer keys
//! are enabled: the migration of a vault from before them) or to the current version (before
//! that). One instance at a time (a lease), in short batches with pauses, resumable from any
//! point, and never opening a secret (see [`crate::crypto::Keyring::rewrap_for_customer`]).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

use super::super::{RequestContext, Vault, VaultError, error_chain};
use super::binding_of_key;
use super::customer_keys::Unusable;
use crate::domain::{AuditAction, Principal};
use crate::store::{RewrappedCustomerKey, RewrappedDataKey};

/// The rewrap's lease (one instance at a time on a shared database).
const REWRAP_JOB: &str = "rewrap";
/// Keys read and rewritten per transaction: short, so that a Get never waits long for it.
const REWRAP_BATCH: u32 = 200;
/// After each batch the rewrap pauses this many times as long as the batch took, so that it
/// takes at most a twentieth of the database's (and the process's) time from serving: it is a
/// background job that may take its time (master-key rotation moves customer keys only; the
/// one long pass is the move under customer keys, once).
const REWRAP_PAUSE_FACTOR: u32 = 19;
/// How long a lease outlives its last renewal: after a crash, another instance (or the restarted
/// one) resumes the rewrap this long after the last batch.
pub const REWRAP_LEASE: Duration = Duration::from_secs(10);

/// What one rewrap pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewrapPass {
    /// Every key is where it belongs.
    NothingToDo,
    /// Another instance holds the lease.
    HeldElsewhere,
    /// Stopped before the end (shutdown, lost lease, or the current version or the customer-key
    /// setting changed); the next pass resumes.
    Interrupted { moved: u64 },
    /// Went through every key; `left` were still to move after it (sealed meanwhile by an
    /// instance that had not yet followed the database, or unopenable).
    Finished { moved: u64, left: i64 },
}

/// Customer keys not under `current`, and data keys still under a master-key version (with
/// customer keys enabled) or under one other than `current` (before), summed over `usage`
/// (counted, or capped at 1 by [`crate::store::KeyStore::key_usage_present`]).
fn to_move(usage: &[crate::store::KeyUsage], current: u32, under_customers: bool) -> ToMove {
    ToMove {
        customer_keys: usage.iter().filter(|k| k.version != current).map(|k| k.customer_keys).sum(),
        data_keys: usage
            .iter()
            .filter(|k| under_customers || k.version != current)
            .map(|k| k.data_keys)
            .sum(),
    }
}

/// Keys not yet where they belong.
#[derive(Debug, Clone, Copy)]
struct ToMove {
    customer_keys: i64,
    data_keys: i64,
}

/// One pass's settings and progress.
struct Pass<'a> {
    holder: Uuid,
    current: u32,
    under_customers: bool,
    batch: u32,
    rate: Option<NonZeroU32>,
    stop: &'a watch::Receiver<bool>,
    to_move: i64,
    moved: u64,
}

/// How a phase of the pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Done,
    Stopped,
    LostLease,
}

impl Vault {
    /// One rewrap pass, while it holds the rewrap lease as `holder`: customer keys to the
    /// current master-key version, then data keys still under a master-key version (see the
    /// module). Pauses after each batch [`REWRAP_PAUSE_FACTOR`] times as long as it took (so
    /// serving keeps at least nineteen twentieths of the time), and longer if needed to stay under
    /// `rate` keys a second. Stops between batches when `stop` turns true, or when the current
    /// version or the customer-key setting changes (a later pass goes on from there).
    pub async fn rewrap(
        &self,
        holder: Uuid,
        rate: Option<NonZeroU32>,
        stop: &watch::Receiver<bool>,
    ) -> Result<RewrapPass, VaultError> {
        self.ensure_ready()?;
        let current = self.keyring.current_version();
        let under_customers = self.customer_keys_enabled();
        // The keys job asks at every start and every few minutes: whether anything is to move
        // is answered by index seeks; the keys are counted (every data key read) only if so.
        let present = to_move(&self.store.key_usage_present().await?, current, under_customers);
        if present.customer_keys + present.data_keys == 0 {
            metrics::gauge!(crate::metrics::REWRAP_REMAINING).set(0.0);
            return Ok(RewrapPass::NothingToDo);
        }
        let to_move = self.keys_to_move(current, under_customers).await?;
        let total = to_move.customer_keys + to_move.data_keys;
        metrics::gauge!(crate::metrics::REWRAP_REMAINING).set(total as f64);
        if total == 0 {
            return Ok(RewrapPass::NothingToDo);
        }
        if !self.renew_rewrap_lease(holder).await? {
            return Ok(RewrapPass::HeldElsewhere);
        }
        let ctx = RequestContext { principal: Some(Principal::rewrap()), ..RequestContext::default() };
        let started = Instant::now();
        let data_keys_to = if under_customers {
            "under their customers' keys".to_string()
        } else {
            format!("to key version {current}")
        };
        self.audit_rewrap(
            &ctx,
            AuditAction::RewrapStarted,
            format!(
                "moving {} customer keys to key version {current} and {} data keys {data_keys_to}",
                to_move.customer_keys, to_move.data_keys
            ),
        )
        .await;
        tracing::info!(
            customer_keys = to_move.customer_keys,
            data_keys = to_move.data_keys,
            key_version = current,
            under_customers,
            "rewrap started"
        );

        let mut pass = Pass {
            holder,
            current,
            under_customers,
            batch: rate.map_or(REWRAP_BATCH, |r| r.get().min(REWRAP_BATCH)),
            rate,
            stop,
            to_move: total,
            moved: 0,
        };
        let mut ended = self.rewrap_customer_keys(&mut pass).await?;
        if ended == Ended::Done {
            ended = self.rewrap_data_keys(&mut pass).await?;
        }
        let moved = pass.moved;
        if ended == Ended::LostLease {
            tracing::warn!("the rewrap lease was taken over by another instance; stopping");
            return Ok(RewrapPass::Interrupted { moved });
        }
        if let Err(e) = self.store.release_lease(REWRAP_JOB, holder).await {
            tracing::warn!(error = %error_chain(&e), "could not release the rewrap lease; it expires by itself");
        }
        if ended == Ended::Stopped {
            tracing::info!(moved, "rewrap interrupted; the next pass resumes");
            return Ok(RewrapPass::Interrupted { moved });
        }
        let left = self.keys_to_move(current, under_customers).await?;
        let left = left.customer_keys + left.data_keys;
        metrics::gauge!(crate::metrics::REWRAP_REMAINING).set(left as f64);
        let seconds = started.elapsed().as_secs_f64();
        self.audit_rewrap(&ctx, AuditAction::RewrapFinished, format!(
            "moved {moved} keys (customer keys to key version {current}, data keys {data_keys_to}) in {seconds:.1} s; \
             {left} left"
        ))
        .await;
        tracing::info!(moved, left, seconds, key_version = current, "rewrap finished");
        Ok(RewrapPass::Finished { moved, left })
    }

    /// Customer keys wrapped by older master-key versions, to the current one.
    async fn rewrap_customer_keys(&self, pass: &mut Pass<'_>) -> Result<Ended, VaultError> {
        let mut after = None;
        loop {
            if self.rewrap_should_stop(pass).await {
                return Ok(Ended::Stopped);
            }
            let started = Instant::now();
            let keys = self.store.customer_keys_to_rewrap(pass.current, after, pass.batch).await?;
            let Some((last, _)) = keys.last() else { return Ok(Ended::Done) };
            after = Some(*last);
            let mut moved = Vec::with_capacity(keys.len());
            for (customer_id, wrapped) in keys {
                match self.keyring.rewrap_customer_key(customer_id, &wrapped.bytes) {
                    Ok(Some(new)) => moved.push(RewrappedCustomerKey {
                        customer_id,
                        old_key_version: wrapped.key_version,
                        wrapped: new,
                    }),
                    Ok(None) => {}
                    Err(e) => tracing::error!(
                        customer_id = %customer_id,
                        error = %e,
                        "a stored customer key cannot be rewrapped; it stays under its key version"
                    ),
                }
            }
            let written = self.store.replace_customer_keys(&moved).await?;
            if let Some(ended) = self.after_rewrap_batch(pass, written, started.elapsed()).await? {
                return Ok(ended);
            }
        }
    }

    /// Data keys still wrapped by a master-key version: under their customers' keys, or before
    /// those are enabled, to the current version.
    async fn rewrap_data_keys(&self, pass: &mut Pass<'_>) -> Result<Ended, VaultError> {
        let except = (!pass.under_customers).then_some(pass.current);
        let mut after = None;
        loop {
            if self.rewrap_should_stop(pass).await {
                return Ok(Ended::Stopped);
            }
            let started = Instant::now();
            let keys = self.store.data_keys_to_rewrap(except, after, pass.batch).await?;
            let Some(last) = keys.last() else { return Ok(Ended::Done) };
            after = Some((last.credential_id, last.version));
            let mut moved = Vec::with_capacity(keys.len());
            for key in &keys {
                let binding = binding_of_key(key);
                let rewrapped = if pass.under_customers {
                    match self.customer_key(key.customer_id, true).await {
                        Ok(customer) => self
                            .keyring
                            .rewrap_for_customer(&binding, &key.sealed, &customer)
                            .map(|blob| blob.map(|blob| (blob, None))),
                        Err(Unusable::Vault(e)) => return Err(e),
                        Err(why) => {
                            tracing::warn!(
                                customer_id = %key.customer_id,
                                reason = ?why,
                                "a customer's key cannot be used; its data keys stay under their key version"
                            );
                            continue;
                        }
                    }
                } else {
                    self.keyring
                        .rewrap(&binding, &key.sealed)
                        .map(|moved| moved.map(|(blob, v)| (blob, Some(v))))
                };
                match rewrapped {
                    Ok(Some((sealed, key_version))) => moved.push(RewrappedDataKey {
                        credential_id: key.credential_id,
                        version: key.version,
                        old_key_version: key.key_version,
                        sealed,
                        key_version,
                    }),
                    Ok(None) => {}
                    Err(e) => tracing::error!(
                        credential_id = %key.credential_id,
                        version = key.version,
                        error = %e,
                        "a stored data key cannot be rewrapped; it stays under its key version"
                    ),
                }
            }
            let written = self.store.replace_wrapped(&moved).await?;
            if let Some(ended) = self.after_rewrap_batch(pass, written, started.elapsed()).await? {
                return Ok(ended);
            }
        }
    }

    /// Whether the pass should stop before its next batch: the server is stopping, or the
    /// database's current version or customer-key setting is no longer the pass's.
    async fn rewrap_should_stop(&self, pass: &Pass<'_>) -> bool {
        if let Err(e) = self.follow_current_key().await {
            tracing::warn!(error = %e, "reading the current key version failed");
        }
        *pass.stop.borrow()
            || self.keyring.current_version() != pass.current
            || self.customer_keys_enabled() != pass.under_customers
    }

    /// Counts a batch, renews the lease (`LostLease` if another instance took it) and pauses.
    async fn after_rewrap_batch(
        &self,
        pass: &mut Pass<'_>,
        written: u64,
        took: Duration,
    ) -> Result<Option<Ended>, VaultError> {
        pass.moved += written;
        metrics::counter!(crate::metrics::REWRAPPED).increment(written);
        let remaining = pass.to_move.saturating_sub(i64::try_from(pass.moved).unwrap_or(i64::MAX)).max(0);
        metrics::gauge!(crate::metrics::REWRAP_REMAINING).set(remaining as f64);
        metrics::gauge!(crate::metrics::REWRAP_RATE).set(written as f64 / took.as_secs_f64().max(1e-6));
        if !self.renew_rewrap_lease(pass.holder).await? {
            return Ok(Some(Ended::LostLease));
        }
        let paced = pass
            .rate
            .map_or(Duration::ZERO, |r| Duration::from_secs_f64(f64::from(pass.batch) / f64::from(r.get())));
        tokio::time::sleep((took * REWRAP_PAUSE_FACTOR).max(paced.saturating_sub(took))).await;
        Ok(None)
    }

    async fn renew_rewrap_lease(&self, holder: Uuid) -> Result<bool, VaultError> {
        let now = OffsetDateTime::now_utc();
        Ok(self.store.take_lease(REWRAP_JOB, holder, now + REWRAP_LEASE, now).await?)
    }

    /// [`to_move`], counted.
    async fn keys_to_move(&self, current: u32, under_customers: bool) -> Result<ToMove, VaultError> {
        Ok(to_move(&self.store.key_usage().await?, current, under_customers))
    }

    async fn audit_rewrap(&self, ctx: &RequestContext, action: AuditAction, details: String) {
        let audit = ctx.audit(action, None, None, details);
        if let Err(e) = self.store.append_audit(audit, OffsetDateTime::now_utc()).await {
            tracing::error!(error = %error_chain(&e), "could not audit the rewrap");
        }
    }
}
