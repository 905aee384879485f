//! Master-key rotation: every instance follows the database's current key version; `credvault
//! key rotate` changes it; the rewrap moves every data key to it, one instance at a time,
//! without ever opening a secret (see [`crate::crypto::Keyring::rewrap`]).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

use super::super::access::authorize_all_customers;
use super::super::{RequestContext, Vault, VaultError, error_chain};
use super::binding_of_key;
use crate::domain::{AuditAction, Principal, Scope, checkpoint_mac};
use crate::store::{Checkpoint, MakeCurrent, RewrappedDataKey};

/// The rewrap's lease (one instance at a time on a shared database).
const REWRAP_JOB: &str = "rewrap";
/// Data keys read and rewritten per transaction: short, so that a Get never waits long for it.
const REWRAP_BATCH: u32 = 200;
/// After each batch the rewrap pauses this many times as long as the batch took, so that it
/// takes at most a tenth of the database's (and the process's) time from serving.
const REWRAP_PAUSE_FACTOR: u32 = 9;
/// How long a lease outlives its last renewal: after a crash, another instance (or the restarted
/// one) resumes the rewrap this long after the last batch.
pub const REWRAP_LEASE: Duration = Duration::from_secs(10);

/// What `credvault key rotate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    pub version: u32,
    pub previous: u32,
}

/// What `credvault key retire` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retired {
    pub version: u32,
    /// The sealed audit rows the checkpoint vouches for.
    pub checkpoint_seq: i64,
}

/// What one rewrap pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewrapPass {
    /// Every data key is wrapped by the current version.
    NothingToDo,
    /// Another instance holds the lease.
    HeldElsewhere,
    /// Stopped before the end (shutdown, lost lease, or the current version changed); the next
    /// pass resumes.
    Interrupted { moved: u64 },
    /// Went through every data key; `left` were still under older versions after it (sealed
    /// meanwhile by an instance that had not yet learnt the current version, or unopenable).
    Finished { moved: u64, left: i64 },
}

impl Vault {
    /// The master-key version new secrets are sealed with here.
    pub fn sealing_key_version(&self) -> u32 {
        self.keyring.current_version()
    }

    /// Adopts the database's current key version (every instance, every second); whether it
    /// changed. A version this configuration lacks is not adopted: new secrets stay sealed with
    /// the previous one, which every instance can open, and the log says what to fix.
    pub async fn follow_current_key(&self) -> Result<bool, VaultError> {
        let Some(current) = self.store.current_key().await? else { return Ok(false) };
        let ours = self.keyring.current_version();
        if current == ours {
            return Ok(false);
        }
        if !self.keyring.set_current(current) {
            tracing::error!(
                key_version = current,
                sealing_with = ours,
                "the database's current key version is not in this instance's key configuration: \
                 add it (every instance learns a key before `credvault key rotate` makes it current)"
            );
            return Ok(false);
        }
        tracing::info!(
            key_version = current,
            previous = ours,
            "new secrets are now sealed with another key version"
        );
        metrics::gauge!(crate::metrics::CURRENT_KEY_VERSION).set(f64::from(current));
        Ok(true)
    }

    /// Makes `version` (by default the highest configured) the version new secrets are sealed
    /// with, recorded in the database with a `key_rotated` audit row; every instance follows
    /// within a second, and the rewrap moves stored data keys to it.
    pub async fn rotate_key(
        &self,
        ctx: &RequestContext,
        version: Option<u32>,
    ) -> Result<Rotated, VaultError> {
        authorize_all_customers(self.store.as_ref(), ctx, Scope::Admin, "rotate the master key").await?;
        let target =
            version.unwrap_or_else(|| self.keyring.versions().max().expect("a keyring is never empty"));
        if !self.keyring.has_version(target) {
            return Err(VaultError::InvalidArgument(crate::domain::FieldViolation::new(
                "version",
                format!(
                    "key version {target} is not in this key configuration; add it as `{target}:<key>` \
                     (from `credvault keygen`) to the key file of every instance first"
                ),
            )));
        }
        let retired =
            self.store.key_usage().await?.iter().any(|k| k.version == target && k.retired_at.is_some());
        if retired {
            return Err(VaultError::FailedPrecondition(format!(
                "key version {target} is retired; add a new key under a new version number instead"
            )));
        }
        let previous = self.store.current_key().await?.unwrap_or_else(|| self.keyring.current_version());
        if previous == target {
            return Ok(Rotated { version: target, previous });
        }
        let audit = ctx.audit(
            AuditAction::KeyRotated,
            None,
            None,
            format!("key version {target} made current (was {previous}); stored data keys move to it in the background"),
        );
        let now = OffsetDateTime::now_utc();
        let current = self.store.make_key_current(target, MakeCurrent::Rotate, Some(audit), now).await?;
        self.keyring.set_current(current);
        metrics::gauge!(crate::metrics::CURRENT_KEY_VERSION).set(f64::from(current));
        Ok(Rotated { version: current, previous })
    }

    /// Retires `version`, which must wrap no data key and not be current: the audit log is
    /// sealed and verified (with `version` still configured), then a checkpoint of the chain's
    /// head, MACed by the current version, vouches for the rows only `version` could check, so
    /// that its key can leave every configuration. Audited as `key_retired`.
    pub async fn retire_key(&self, ctx: &RequestContext, version: u32) -> Result<Retired, VaultError> {
        authorize_all_customers(self.store.as_ref(), ctx, Scope::Admin, "retire a master-key version")
            .await?;
        let usage = self.store.key_usage().await?;
        let Some(key) = usage.iter().find(|k| k.version == version) else {
            return Err(VaultError::NotFound(format!("key version {version} is not known to this database")));
        };
        let refuse = |why: String| Err(VaultError::FailedPrecondition(why));
        if key.retired_at.is_some() {
            return refuse(format!("key version {version} is retired already"));
        }
        if version == self.keyring.current_version() {
            return refuse(format!(
                "key version {version} is current: make another version current first (`credvault key rotate`)"
            ));
        }
        if key.made_current_at.is_none() {
            return refuse(format!(
                "key version {version} was never current: it made no audit MAC and wraps nothing, so there is \
                 nothing to retire; remove it from the key configuration if it is not wanted"
            ));
        }
        if key.data_keys > 0 {
            return refuse(format!(
                "key version {version} still wraps {} data keys: a running server rewraps them to the current \
                 version; retire it once `credvault key status` shows 0",
                key.data_keys
            ));
        }
        if !self.keyring.has_version(version) {
            return refuse(format!(
                "key version {version} is not in this key configuration: it is needed once more, to verify the \
                 audit rows it MACed before they are vouched for without it"
            ));
        }
        self.chain_audit().await?;
        let chain = self.store.audit_chain().await?;
        let checked = super::super::audit_log::check_chain(
            self.keyring.as_ref(),
            &chain.head,
            &chain.links,
            &chain.rows,
            chain.checkpoint.as_ref(),
        );
        if let Err(tampered) = checked {
            return refuse(format!(
                "the audit log does not verify ({tampered}); a checkpoint now would vouch for it: investigate first"
            ));
        }
        let hash: [u8; 32] = chain.head.hash.as_slice().try_into().unwrap_or([0; 32]);
        let checkpoint = Checkpoint {
            seq: chain.head.seq,
            hash: hash.to_vec(),
            mac: checkpoint_mac(self.keyring.as_ref(), chain.head.seq, &hash, version),
            retired_version: version,
        };
        let current = self.keyring.current_version();
        let audit = ctx.audit(
            AuditAction::KeyRetired,
            None,
            None,
            format!(
                "key version {version} retired; a checkpoint MACed with version {current} vouches for the {} sealed audit rows before it",
                chain.head.seq
            ),
        );
        self.store.retire_key(version, checkpoint, audit, OffsetDateTime::now_utc()).await?;
        Ok(Retired { version, checkpoint_seq: chain.head.seq })
    }

    /// Moves data keys wrapped by older versions to the current one, in batches, pausing after
    /// each [`REWRAP_PAUSE_FACTOR`] times as long as it took (so serving keeps at least nine
    /// tenths of the time), and longer if needed to stay under `rate` data keys a second, while
    /// it holds the rewrap lease as `holder`. Stops between batches when `stop` turns true, or
    /// when the current version changes (a later pass moves keys to the new one).
    pub async fn rewrap(
        &self,
        holder: Uuid,
        rate: Option<NonZeroU32>,
        stop: &watch::Receiver<bool>,
    ) -> Result<RewrapPass, VaultError> {
        self.ensure_ready()?;
        let current = self.keyring.current_version();
        let to_move = self.wrapped_by_others(current).await?;
        metrics::gauge!(crate::metrics::REWRAP_REMAINING).set(to_move as f64);
        if to_move == 0 {
            return Ok(RewrapPass::NothingToDo);
        }
        let lease = |now: OffsetDateTime| self.store.take_lease(REWRAP_JOB, holder, now + REWRAP_LEASE, now);
        if !lease(OffsetDateTime::now_utc()).await? {
            return Ok(RewrapPass::HeldElsewhere);
        }
        let ctx = RequestContext { principal: Some(Principal::rewrap()), ..RequestContext::default() };
        let started = Instant::now();
        self.audit_rewrap(
            &ctx,
            AuditAction::RewrapStarted,
            format!("moving {to_move} data keys wrapped by older key versions to key version {current}"),
        )
        .await;
        tracing::info!(data_keys = to_move, key_version = current, "rewrap started");

        let batch = rate.map_or(REWRAP_BATCH, |r| r.get().min(REWRAP_BATCH));
        let mut after = None;
        let mut moved = 0u64;
        let finished = loop {
            if let Err(e) = self.follow_current_key().await {
                tracing::warn!(error = %e, "reading the current key version failed");
            }
            if *stop.borrow() || self.keyring.current_version() != current {
                break false;
            }
            let batch_started = Instant::now();
            let keys = self.store.data_keys_to_rewrap(current, after, batch).await?;
            let Some(last) = keys.last() else { break true };
            after = Some((last.credential_id, last.version));
            let mut rewrapped = Vec::with_capacity(keys.len());
            for key in &keys {
                match self.keyring.rewrap(&binding_of_key(key), &key.sealed) {
                    Ok(Some((sealed, key_version))) => rewrapped.push(RewrappedDataKey {
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
            let written = self.store.replace_wrapped(&rewrapped).await?;
            moved += written;
            let took = batch_started.elapsed();
            metrics::counter!(crate::metrics::REWRAPPED).increment(written);
            let remaining = to_move.saturating_sub(i64::try_from(moved).unwrap_or(i64::MAX)).max(0);
            metrics::gauge!(crate::metrics::REWRAP_REMAINING).set(remaining as f64);
            metrics::gauge!(crate::metrics::REWRAP_RATE).set(written as f64 / took.as_secs_f64().max(1e-6));
            if !lease(OffsetDateTime::now_utc()).await? {
                tracing::warn!("the rewrap lease was taken over by another instance; stopping");
                return Ok(RewrapPass::Interrupted { moved });
            }
            let paced = rate
                .map_or(Duration::ZERO, |r| Duration::from_secs_f64(f64::from(batch) / f64::from(r.get())));
            tokio::time::sleep((took * REWRAP_PAUSE_FACTOR).max(paced.saturating_sub(took))).await;
        };
        if let Err(e) = self.store.release_lease(REWRAP_JOB, holder).await {
            tracing::warn!(error = %error_chain(&e), "could not release the rewrap lease; it expires by itself");
        }
        if !finished {
            tracing::info!(moved, "rewrap interrupted; the next pass resumes");
            return Ok(RewrapPass::Interrupted { moved });
        }
        let left = self.wrapped_by_others(current).await?;
        metrics::gauge!(crate::metrics::REWRAP_REMAINING).set(left as f64);
        let seconds = started.elapsed().as_secs_f64();
        self.audit_rewrap(&ctx, AuditAction::RewrapFinished, format!(
            "moved {moved} data keys to key version {current} in {seconds:.1} s; {left} left under older versions"
        ))
        .await;
        tracing::info!(moved, left, seconds, key_version = current, "rewrap finished");
        Ok(RewrapPass::Finished { moved, left })
    }

    /// Data keys wrapped by a version other than `current`.
    async fn wrapped_by_others(&self, current: u32) -> Result<i64, VaultError> {
        Ok(self.store.key_usage().await?.iter().filter(|k| k.version != current).map(|k| k.data_keys).sum())
    }

    async fn audit_rewrap(&self, ctx: &RequestContext, action: AuditAction, details: String) {
        let audit = ctx.audit(action, None, None, details);
        if let Err(e) = self.store.append_audit(audit, OffsetDateTime::now_utc()).await {
            tracing::error!(error = %error_chain(&e), "could not audit the rewrap");
        }
    }
}
