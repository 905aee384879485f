//! Audit rows: their actions, what the vault writes and the log returns, the listing's filter,
//! and the MACs that make the log tamper-evident (see docs/design/audit-chain.md).

use std::net::IpAddr;

use super::{CredentialId, CustomerId, TokenName};

/// What happened to a credential (the seed's audit actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Created,
    Updated,
    Deleted,
    Verified,
    Used,
    Failed,
    Denied,
    Rotated,
    VersionDisabled,
    VersionEnabled,
    VersionDestroyed,
    Restored,
    Purged,
    /// A master-key version was made current (`credvault key rotate`).
    KeyRotated,
    /// The rewrap began moving data keys to the current master-key version.
    RewrapStarted,
    /// The rewrap moved every data key it found to the current master-key version.
    RewrapFinished,
}

impl AuditAction {
    pub const ALL: [AuditAction; 16] = [
        AuditAction::Created,
        AuditAction::Updated,
        AuditAction::Deleted,
        AuditAction::Verified,
        AuditAction::Used,
        AuditAction::Failed,
        AuditAction::Denied,
        AuditAction::Rotated,
        AuditAction::VersionDisabled,
        AuditAction::VersionEnabled,
        AuditAction::VersionDestroyed,
        AuditAction::Restored,
        AuditAction::Purged,
        AuditAction::KeyRotated,
        AuditAction::RewrapStarted,
        AuditAction::RewrapFinished,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Created => "created",
            AuditAction::Updated => "updated",
            AuditAction::Deleted => "deleted",
            AuditAction::Verified => "verified",
            AuditAction::Used => "used",
            AuditAction::Failed => "failed",
            AuditAction::Denied => "denied",
            AuditAction::Rotated => "rotated",
            AuditAction::VersionDisabled => "version_disabled",
            AuditAction::VersionEnabled => "version_enabled",
            AuditAction::VersionDestroyed => "version_destroyed",
            AuditAction::Restored => "restored",
            AuditAction::Purged => "purged",
            AuditAction::KeyRotated => "key_rotated",
            AuditAction::RewrapStarted => "rewrap_started",
            AuditAction::RewrapFinished => "rewrap_finished",
        }
    }
}

/// One audit-log row to write. `details` is free text for people and must never hold a secret:
/// it is built only from metadata (names, providers, reasons).
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub credential_id: Option<CredentialId>,
    /// `None` only when a request was denied before its customer could be known.
    pub customer_id: Option<CustomerId>,
    pub action: AuditAction,
    pub details: String,
    pub ip_address: Option<IpAddr>,
    /// The acting token's name.
    pub actor: Option<TokenName>,
}

/// One audit-log row as read back.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: uuid::Uuid,
    pub credential_id: Option<CredentialId>,
    pub customer_id: Option<CustomerId>,
    pub action: String,
    pub details: String,
    pub ip_address: Option<String>,
    pub actor: Option<String>,
    pub created_at: time::OffsetDateTime,
}

/// Which audit events to list, newest first.
#[derive(Debug, Clone)]
pub struct AuditFilter {
    pub customer_id: Option<CustomerId>,
    pub credential_id: Option<CredentialId>,
    pub action: Option<AuditAction>,
    pub since: Option<time::OffsetDateTime>,
    pub until: Option<time::OffsetDateTime>,
    /// 1 to 500.
    pub page_size: u32,
    pub after: Option<super::Cursor>,
}

/// The keyed MAC that makes audit rows tamper-evident. Implemented by the crypto keyring; the
/// store applies it to exactly what it writes, and `audit verify` to exactly what it reads.
pub trait AuditSigner: Send + Sync {
    /// HMAC-SHA256 over the length-prefixed parts.
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32];
}

impl AuditEvent {
    /// The row's MAC: over every column credvault writes but the MAC itself.
    pub fn mac(&self, signer: &dyn AuditSigner) -> [u8; 32] {
        let id = |v: Option<uuid::Uuid>| v.map(|u| u.to_string()).unwrap_or_default();
        signer.mac(&[
            b"credvault audit row v1",
            self.id.as_bytes(),
            id(self.credential_id.map(|c| *c.as_uuid())).as_bytes(),
            id(self.customer_id.map(|c| *c.as_uuid())).as_bytes(),
            self.action.as_bytes(),
            self.details.as_bytes(),
            self.ip_address.as_deref().unwrap_or_default().as_bytes(),
            self.actor.as_deref().unwrap_or_default().as_bytes(),
            &super::unix_micros(self.created_at).to_be_bytes(),
        ])
    }
}

impl AuditEntry {
    /// The row this entry becomes, given the id and time the store gives it.
    pub fn to_event(&self, id: uuid::Uuid, created_at: time::OffsetDateTime) -> AuditEvent {
        AuditEvent {
            id,
            credential_id: self.credential_id,
            customer_id: self.customer_id,
            action: self.action.as_str().to_owned(),
            details: self.details.clone(),
            ip_address: self.ip_address.map(|ip| ip.to_string()),
            actor: self.actor.as_ref().map(|a| a.as_str().to_owned()),
            created_at,
        }
    }
}

/// The chain link of the `seq`-th sealed row.
pub fn chain_hash(signer: &dyn AuditSigner, prev: &[u8; 32], seq: i64, row_mac: &[u8]) -> [u8; 32] {
    signer.mac(&[b"credvault audit seal v1", prev, &seq.to_be_bytes(), row_mac])
}

/// The MAC of the chain's head, so that dropping the newest sealed rows is caught.
pub fn head_mac(signer: &dyn AuditSigner, seq: i64, hash: &[u8; 32]) -> [u8; 32] {
    signer.mac(&[b"credvault audit head v1", &seq.to_be_bytes(), hash])
}
