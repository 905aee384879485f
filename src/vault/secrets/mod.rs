//! Every use of the keyring for credentials' secrets, in one place: sealing a secret for its row
//! (under its customer's key, [`customer_keys`], or before those are enabled under the current
//! master-key version), the fingerprints idempotent requests are compared by, and opening a
//! stored secret (a blob that fails to open is audited as `failed` and answers DATA_LOSS);
//! master-key rotation ([`rotation`]) and the rewrap that follows it ([`rewrap`]).

mod customer_keys;
mod rewrap;
mod rotation;

use time::OffsetDateTime;

use super::access::authorize_all_customers;
use super::{RequestContext, Vault, VaultError, error_chain};
use crate::crypto::{Binding, Wrapping, wrapping};
use crate::domain::{AuditAction, CredentialMetadata, Scope, SecretPayload, VersionNumber};

/// What a master-key version is to this vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Configured, and what new secrets are sealed with.
    Current,
    /// Configured, and still wrapping data keys: it must stay until they are rewrapped.
    DecryptOnly,
    /// Wraps no data key, but was current once, so audit rows carry its MACs: it stays
    /// configured for `audit verify`.
    AuditKey,
    /// Wraps nothing (configured or only recorded).
    Unused,
    /// Retired (`credvault key retire`): needed for nothing, a checkpoint vouches for its MACs.
    Retired,
    /// Wraps data keys, but is not configured: those secrets cannot be opened.
    Missing,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Current => "current",
            KeyState::DecryptOnly => "decrypt-only",
            KeyState::AuditKey => "audit-key",
            KeyState::Unused => "unused",
            KeyState::Retired => "retired",
            KeyState::Missing => "missing",
        }
    }
}

/// One master-key version: its state, how many data keys (sealed before customer keys) and
/// customer keys it wraps, when a server first used it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersionStatus {
    pub version: u32,
    pub state: KeyState,
    pub data_keys: i64,
    pub customer_keys: i64,
    pub recorded_at: Option<OffsetDateTime>,
}

/// The key status: each master-key version, and the customer keys' own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub versions: Vec<KeyVersionStatus>,
    /// Since when new secrets are sealed under customer keys; `None` while not yet.
    pub customer_keys_since: Option<OffsetDateTime>,
    /// Customers whose key was destroyed (`PurgeCustomer`).
    pub shredded_customers: i64,
}

/// A secret sealed for one row, and the master-key version that wraps its data key (`None`:
/// its customer's key does).
pub(super) struct Sealed {
    pub(super) bytes: Vec<u8>,
    pub(super) key_version: Option<u32>,
}

pub(super) use customer_keys::CustomerKeys;
pub use rewrap::{REWRAP_LEASE, RewrapPass};
pub use rotation::{Retired, Rotated};

/// What a stored data key's blob is bound to.
fn binding_of_key(key: &crate::store::WrappedDataKey) -> Binding {
    Binding {
        credential_id: key.credential_id,
        customer_id: key.customer_id,
        provider: key.provider,
        version: key.version,
    }
}

/// What the ciphertext of `metadata`'s `version` is bound to.
pub(super) fn binding_of(metadata: &CredentialMetadata, version: VersionNumber) -> Binding {
    Binding {
        credential_id: metadata.id,
        customer_id: metadata.customer_id,
        provider: metadata.provider,
        version,
    }
}

impl Vault {
    /// Seals `plaintext` for the row `binding` describes: under its customer's key (made now if
    /// the customer has none) once customer keys are enabled, else under the current master-key
    /// version. FAILED_PRECONDITION for a purged customer.
    pub(super) async fn seal(&self, binding: &Binding, plaintext: &[u8]) -> Result<Sealed, VaultError> {
        if !self.customer_keys_enabled() {
            return self.seal_under_master(binding, plaintext);
        }
        let customer = binding.customer_id;
        let key = self.customer_key(customer, true).await.map_err(|e| e.into_error(customer))?;
        let bytes = key.seal(binding, plaintext).map_err(|e| {
            tracing::error!(error = %e, "sealing failed");
            VaultError::Internal
        })?;
        Ok(Sealed { bytes, key_version: None })
    }

    /// Seals `plaintext` for the row `binding` describes under the current master-key version
    /// (as before customer keys; the rewrap moves it under the customer's key).
    pub(super) fn seal_under_master(
        &self,
        binding: &Binding,
        plaintext: &[u8],
    ) -> Result<Sealed, VaultError> {
        let (bytes, key_version) = self.keyring.seal(binding, plaintext).map_err(|e| {
            tracing::error!(error = %e, "sealing failed");
            VaultError::Internal
        })?;
        Ok(Sealed { bytes, key_version: Some(key_version) })
    }

    /// A keyed fingerprint of a request's parts (its secret included), for idempotency: equal
    /// requests have equal fingerprints, and a fingerprint cannot be used to test guesses of a
    /// secret without the key.
    pub(super) fn fingerprint(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.keyring.fingerprint(parts)
    }

    /// Opens a stored secret; a blob that fails to open is audited as `failed` (DATA_LOSS).
    pub(super) async fn open(
        &self,
        ctx: &RequestContext,
        binding: &Binding,
        sealed: &[u8],
    ) -> Result<SecretPayload, VaultError> {
        use customer_keys::Unusable;
        // A purged customer's secret is refused as such; anything else that keeps it shut is
        // tampering or corruption, audited below.
        let plaintext = match wrapping(sealed) {
            Ok(Wrapping::Customer) => match self.customer_key(binding.customer_id, false).await {
                Ok(key) => key.open(binding, sealed).map_err(|e| e.to_string()),
                Err(Unusable::Broken(e)) => Err(format!("its customer's key does not open: {e}")),
                Err(Unusable::Missing) => {
                    Err("it is sealed under a customer key that was never stored".into())
                }
                Err(unusable) => return Err(unusable.into_error(binding.customer_id)),
            },
            _ => self.keyring.open(binding, sealed).map_err(|e| e.to_string()),
        };
        let opened = plaintext.and_then(|plaintext| {
            SecretPayload::from_plaintext(&plaintext).map_err(|_| "sealed payload is not a secret".into())
        });
        match opened {
            Ok(secret) if secret.provider() == binding.provider => Ok(secret),
            Ok(_) => Err(self.undecryptable(ctx, binding, "sealed payload is for another provider").await),
            Err(why) => Err(self.undecryptable(ctx, binding, &why).await),
        }
    }

    /// A stored ciphertext that fails to open is tampering or corruption: audit it as `failed`
    /// and tell the caller, without handing anything out or counting a use.
    async fn undecryptable(&self, ctx: &RequestContext, binding: &Binding, why: &str) -> VaultError {
        tracing::error!(credential_id = %binding.credential_id, reason = why, "stored credential failed to decrypt");
        let audit = ctx.audit(
            AuditAction::Failed,
            Some(binding.customer_id),
            Some(binding.credential_id),
            format!("secret could not be decrypted: {why}"),
        );
        if let Err(e) = self.store.append_audit(audit, OffsetDateTime::now_utc()).await {
            tracing::error!(error = %error_chain(&e), "could not audit a decryption failure");
        }
        VaultError::DataLoss(format!(
            "credential {} cannot be decrypted: its stored ciphertext was altered or does not belong to this row; \
             store the credential again",
            binding.credential_id
        ))
    }

    /// Every master-key version configured or known to the database, oldest first, with its
    /// state and the data and customer keys it wraps, and the customer keys' own status
    /// (`credvault key status`).
    pub async fn key_status(&self, ctx: &RequestContext) -> Result<KeyStatus, VaultError> {
        authorize_all_customers(self.store.as_ref(), ctx, Scope::Admin, "read the key status").await?;
        let mut known = self.store.key_usage().await?;
        for version in self.keyring.versions() {
            if !known.iter().any(|k| k.version == version) {
                known.push(crate::store::KeyUsage {
                    retired_at: None,
                    version,
                    recorded_at: None,
                    data_keys: 0,
                    customer_keys: 0,
                    made_current_at: None,
                });
            }
        }
        known.sort_by_key(|k| k.version);
        let configured = |version| self.keyring.versions().any(|v| v == version);
        let versions = known
            .into_iter()
            .map(|k| KeyVersionStatus {
                version: k.version,
                state: match (
                    k.version == self.keyring.current_version(),
                    configured(k.version),
                    k.data_keys + k.customer_keys > 0,
                ) {
                    (true, _, _) => KeyState::Current,
                    (false, _, false) if k.retired_at.is_some() => KeyState::Retired,
                    (false, true, true) => KeyState::DecryptOnly,
                    (false, false, true) => KeyState::Missing,
                    (false, _, false) if k.made_current_at.is_some() => KeyState::AuditKey,
                    (false, _, false) => KeyState::Unused,
                },
                data_keys: k.data_keys,
                customer_keys: k.customer_keys,
                recorded_at: k.recorded_at,
            })
            .collect();
        Ok(KeyStatus {
            versions,
            customer_keys_since: self.store.customer_keys_since().await?,
            shredded_customers: self.store.customer_key_counts().await?.destroyed,
        })
    }
}
