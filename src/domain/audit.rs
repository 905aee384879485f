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
    /// A master-key version that wraps nothing was retired; a checkpoint anchors the chain.
    KeyRetired,
    /// New secrets are sealed under customer keys from now on, and older ones move under them.
    CustomerKeysEnabled,
    /// A customer's key was destroyed: every copy of its secrets' ciphertext is unreadable.
    CustomerPurged,
    /// A credential's verifications failed often enough in a row that it is marked failing.
    VerificationFailed,
}

impl AuditAction {
    pub const ALL: [AuditAction; 20] = [
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
        AuditAction::KeyRetired,
        AuditAction::CustomerKeysEnabled,
        AuditAction::CustomerPurged,
        AuditAction::VerificationFailed,
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
            AuditAction::KeyRetired => "key_retired",
            AuditAction::CustomerKeysEnabled => "customer_keys_enabled",
            AuditAction::CustomerPurged => "customer_purged",
            AuditAction::VerificationFailed => "verification_failed",
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

/// The keyed MACs that make audit rows tamper-evident. Implemented by the crypto keyring; the
/// store applies them to exactly what it writes, and `audit verify` to exactly what it reads.
///
/// Each master-key version has its own audit key. A MAC is stored with the version that made
/// it: 4 bytes (big-endian) then the 32-byte tag, or the tag alone for the database's first
/// version (every MAC written before rotation existed), so that rows stay verifiable while the
/// key that made them is configured, whichever version is current.
pub trait AuditSigner: Send + Sync {
    /// The version new MACs are made with.
    fn signing_version(&self) -> u32;
    /// The version a bare 32-byte MAC was made with.
    fn first_version(&self) -> u32;
    /// HMAC-SHA256 over the length-prefixed parts with `version`'s audit key; `None` if that
    /// version is not configured.
    fn mac_with(&self, version: u32, parts: &[&[u8]]) -> Option<[u8; 32]>;
}

/// Why a stored MAC could not be checked, or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacProblem {
    /// Not 32 or 36 bytes.
    Malformed,
    /// Made with a key version that is not configured.
    UnknownVersion(u32),
    /// Does not match: the content was changed, or the MAC forged.
    Mismatch,
}

/// A MAC over `parts` with the signing version, in its stored form.
fn sign(signer: &dyn AuditSigner, parts: &[&[u8]]) -> Vec<u8> {
    let version = signer.signing_version();
    let tag = signer.mac_with(version, parts).expect("the signing version is configured");
    if version == signer.first_version() {
        tag.to_vec()
    } else {
        let mut stored = version.to_be_bytes().to_vec();
        stored.extend_from_slice(&tag);
        stored
    }
}

/// The version a stored MAC names, and its tag.
fn split_mac<'a>(signer: &dyn AuditSigner, stored: &'a [u8]) -> Result<(u32, &'a [u8]), MacProblem> {
    match stored.len() {
        32 => Ok((signer.first_version(), stored)),
        36 => {
            let (version, tag) = stored.split_at(4);
            Ok((u32::from_be_bytes(version.try_into().expect("4 bytes")), tag))
        }
        _ => Err(MacProblem::Malformed),
    }
}

/// Checks a stored MAC over `parts`, with the key version it names.
fn check(signer: &dyn AuditSigner, parts: &[&[u8]], stored: &[u8]) -> Result<u32, MacProblem> {
    let (version, tag) = split_mac(signer, stored)?;
    let expected = signer.mac_with(version, parts).ok_or(MacProblem::UnknownVersion(version))?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(tag, &expected).is_ok() {
        Ok(version)
    } else {
        Err(MacProblem::Mismatch)
    }
}

impl AuditEvent {
    /// Every column credvault writes but the MAC itself.
    fn mac_parts<R>(&self, with: impl FnOnce(&[&[u8]]) -> R) -> R {
        let id = |v: Option<uuid::Uuid>| v.map(|u| u.to_string()).unwrap_or_default();
        with(&[
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

    /// The row's MAC, as stored, made with the signing version.
    pub fn mac(&self, signer: &dyn AuditSigner) -> Vec<u8> {
        self.mac_parts(|parts| sign(signer, parts))
    }

    /// Checks the row's stored MAC; the key version that made it.
    pub fn check_mac(&self, signer: &dyn AuditSigner, stored: &[u8]) -> Result<u32, MacProblem> {
        self.mac_parts(|parts| check(signer, parts, stored))
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

/// The chain link of the `seq`-th sealed row, keyed with the version that made the row's MAC;
/// `None` if that version is not configured (or the MAC is malformed).
pub fn chain_hash(signer: &dyn AuditSigner, prev: &[u8; 32], seq: i64, row_mac: &[u8]) -> Option<[u8; 32]> {
    let (version, _) = split_mac(signer, row_mac).ok()?;
    signer.mac_with(version, &[b"credvault audit seal v1", prev, &seq.to_be_bytes(), row_mac])
}

/// The MAC of the chain's head, as stored, so that dropping the newest sealed rows is caught.
pub fn head_mac(signer: &dyn AuditSigner, seq: i64, hash: &[u8; 32]) -> Vec<u8> {
    sign(signer, &[b"credvault audit head v1", &seq.to_be_bytes(), hash])
}

/// Checks the head's stored MAC.
pub fn check_head_mac(
    signer: &dyn AuditSigner,
    seq: i64,
    hash: &[u8; 32],
    stored: &[u8],
) -> Result<u32, MacProblem> {
    check(signer, &[b"credvault audit head v1", &seq.to_be_bytes(), hash], stored)
}

/// The MAC of a checkpoint: the chain's `seq`-th link had `hash` when key version `retired` was
/// retired (as stored, by the signing version).
pub fn checkpoint_mac(signer: &dyn AuditSigner, seq: i64, hash: &[u8; 32], retired: u32) -> Vec<u8> {
    sign(signer, &[b"credvault audit checkpoint v1", &seq.to_be_bytes(), hash, &retired.to_be_bytes()])
}

/// Checks a checkpoint's stored MAC.
pub fn check_checkpoint_mac(
    signer: &dyn AuditSigner,
    seq: i64,
    hash: &[u8; 32],
    retired: u32,
    stored: &[u8],
) -> Result<u32, MacProblem> {
    check(
        signer,
        &[b"credvault audit checkpoint v1", &seq.to_be_bytes(), hash, &retired.to_be_bytes()],
        stored,
    )
}
