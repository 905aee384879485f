//! Every use of the keyring for credentials' secrets, in one place: sealing a secret for its row
//! (and which key version sealed it), the fingerprints idempotent requests are compared by, and
//! opening a stored secret (a blob that fails to open is audited as `failed` and answers
//! DATA_LOSS); and master-key rotation ([`rotation`]). Per-customer keys change this module,
//! not the use cases.

mod rotation;

use time::OffsetDateTime;

use super::access::authorize_all_customers;
use super::{RequestContext, Vault, VaultError, error_chain};
use crate::crypto::Binding;
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

/// One master-key version: its state, how many data keys it wraps, when a server first used it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersionStatus {
    pub version: u32,
    pub state: KeyState,
    pub data_keys: i64,
    pub recorded_at: Option<OffsetDateTime>,
}

/// A secret sealed for one row, and the key version that sealed it.
pub(super) struct Sealed {
    pub(super) bytes: Vec<u8>,
    pub(super) key_version: u32,
}

pub use rotation::{REWRAP_LEASE, Retired, RewrapPass, Rotated};

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
    /// Seals `plaintext` for the row `binding` describes, with the current key version.
    pub(super) fn seal(&self, binding: &Binding, plaintext: &[u8]) -> Result<Sealed, VaultError> {
        let (bytes, key_version) = self.keyring.seal(binding, plaintext).map_err(|e| {
            tracing::error!(error = %e, "sealing failed");
            VaultError::Internal
        })?;
        Ok(Sealed { bytes, key_version })
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
        let opened = self.keyring.open(binding, sealed).map_err(|e| e.to_string()).and_then(|plaintext| {
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
    /// state and the data keys it wraps (`credvault key status`).
    pub async fn key_status(&self, ctx: &RequestContext) -> Result<Vec<KeyVersionStatus>, VaultError> {
        authorize_all_customers(self.store.as_ref(), ctx, Scope::Admin, "read the key status").await?;
        let mut known = self.store.key_usage().await?;
        for version in self.keyring.versions() {
            if !known.iter().any(|k| k.version == version) {
                known.push(crate::store::KeyUsage {
                    retired_at: None,
                    version,
                    recorded_at: None,
                    data_keys: 0,
                    made_current_at: None,
                });
            }
        }
        known.sort_by_key(|k| k.version);
        let configured = |version| self.keyring.versions().any(|v| v == version);
        Ok(known
            .into_iter()
            .map(|k| KeyVersionStatus {
                version: k.version,
                state: match (
                    k.version == self.keyring.current_version(),
                    configured(k.version),
                    k.data_keys > 0,
                ) {
                    (true, _, _) => KeyState::Current,
                    (false, _, false) if k.retired_at.is_some() => KeyState::Retired,
                    (false, true, true) => KeyState::DecryptOnly,
                    (false, false, true) => KeyState::Missing,
                    (false, _, false) if k.made_current_at.is_some() => KeyState::AuditKey,
                    (false, _, false) => KeyState::Unused,
                },
                data_keys: k.data_keys,
                recorded_at: k.recorded_at,
            })
            .collect())
    }
}
