//! Master-key rotation: every instance follows the database's current key version (and whether
//! customer keys are on); `credvault key rotate` changes it; the rewrap ([`super::rewrap`])
//! then moves customer keys to it; retiring a version that wraps nothing re-anchors the audit log.

use time::OffsetDateTime;

use super::super::access::authorize_all_customers;
use super::super::{RequestContext, Vault, VaultError};
use crate::domain::{AuditAction, Scope, checkpoint_mac};
use crate::store::{Checkpoint, MakeCurrent};

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

impl Vault {
    /// The master-key version new secrets are sealed with here.
    pub fn sealing_key_version(&self) -> u32 {
        self.keyring.current_version()
    }

    /// Adopts the database's current key version (every instance, every second); whether it
    /// changed. A version this configuration lacks is not adopted: new secrets stay sealed with
    /// the previous one, which every instance can open, and the log says what to fix.
    pub async fn follow_current_key(&self) -> Result<bool, VaultError> {
        let customer_keys = self.follow_customer_keys().await?;
        Ok(self.follow_current_version().await? || customer_keys)
    }

    async fn follow_current_version(&self) -> Result<bool, VaultError> {
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
        if key.data_keys + key.customer_keys > 0 {
            return refuse(format!(
                "key version {version} still wraps {} data keys and {} customer keys: a running server rewraps \
                 them; retire it once `credvault key status` shows 0 for both",
                key.data_keys, key.customer_keys
            ));
        }
        if !self.keyring.has_version(version) {
            return refuse(format!(
                "key version {version} is not in this key configuration: it is needed once more, to verify the \
                 audit rows it MACed before they are vouched for without it"
            ));
        }
        self.chain_audit().await?;
        let head = match super::super::audit_log::verify_chain(self.store.as_ref(), self.keyring.as_ref())
            .await?
        {
            Ok((_, head)) => head,
            Err(tampered) => {
                return refuse(format!(
                    "the audit log does not verify ({tampered}); a checkpoint now would vouch for it: investigate first"
                ));
            }
        };
        let hash: [u8; 32] = head.hash.as_slice().try_into().unwrap_or([0; 32]);
        let checkpoint = Checkpoint {
            seq: head.seq,
            hash: hash.to_vec(),
            mac: checkpoint_mac(self.keyring.as_ref(), head.seq, &hash, version),
            retired_version: version,
        };
        let current = self.keyring.current_version();
        let audit = ctx.audit(
            AuditAction::KeyRetired,
            None,
            None,
            format!(
                "key version {version} retired; a checkpoint MACed with version {current} vouches for the {} sealed audit rows before it",
                head.seq
            ),
        );
        self.store.retire_key(version, checkpoint, audit, OffsetDateTime::now_utc()).await?;
        Ok(Retired { version, checkpoint_seq: head.seq })
    }
}
