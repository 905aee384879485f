//! What the version operations take and return, and the checks both backends make, in the
//! same order, before they change a credential's versions or metadata. The SQL stays in each backend.

use time::OffsetDateTime;

use super::StoreError;
use crate::domain::{
    CredentialId, CredentialMetadata, CustomerId, Etag, IdempotencyKey, Provider, TokenName, VersionChange,
    VersionMetadata, VersionNumber, VersionState,
};

/// A version to add, its secret already sealed for number `version` (the associated data binds
/// the number, so it is chosen before sealing: the credential's latest number plus one).
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub credential_id: CredentialId,
    /// The customer the caller was authorized for: the credential must still be theirs.
    pub customer_id: CustomerId,
    pub version: VersionNumber,
    pub sealed: Vec<u8>,
    /// The master-key version wrapping its data key; `None` when its customer's key does.
    pub key_version: Option<u32>,
    /// Disable the version that was current until now.
    pub disable_previous: bool,
    pub expected: Option<Etag>,
    pub idempotency: Option<(IdempotencyKey, [u8; 32])>,
    pub created_by: Option<TokenName>,
    pub now: OffsetDateTime,
}

/// What adding a version did.
#[derive(Debug, Clone)]
pub enum VersionAdded {
    Added {
        credential: CredentialMetadata,
        version: VersionMetadata,
    },
    /// A version with the same idempotency key already existed; nothing was written.
    Existing {
        credential: CredentialMetadata,
        version: VersionMetadata,
        fingerprint: Vec<u8>,
    },
}

/// A change of one version's state, conditional on `expected` when given.
#[derive(Debug, Clone, Copy)]
pub struct VersionUpdate {
    pub credential_id: CredentialId,
    pub customer_id: CustomerId,
    pub version: VersionNumber,
    pub change: VersionChange,
    pub expected: Option<Etag>,
}

/// The credential and the version after a [`VersionUpdate`]; `changed` is false when the
/// version was in the target state already (nothing was written, nothing audited).
#[derive(Debug, Clone)]
pub struct VersionChanged {
    pub credential: CredentialMetadata,
    pub version: VersionMetadata,
    pub changed: bool,
}

/// The part of a credential's row the version operations check, read in their transaction
/// (locked on PostgreSQL).
#[derive(Debug, Clone, Copy)]
pub(super) struct VersionHead {
    pub customer_id: CustomerId,
    pub provider: Provider,
    pub current_version: Option<VersionNumber>,
    pub latest_version: VersionNumber,
    pub etag: Etag,
}

impl VersionHead {
    /// The checks every change makes: the active credential exists and is the caller's
    /// customer's (`None`, or another customer's: NOT_FOUND), and the etag matches if one was
    /// given (`Stale`).
    pub(super) fn check(
        head: Option<Self>,
        id: CredentialId,
        customer_id: CustomerId,
        expected: Option<Etag>,
    ) -> Result<Self, StoreError> {
        let head = head
            .filter(|h| h.customer_id == customer_id)
            .ok_or_else(|| StoreError::NotFound(format!("active credential {id}")))?;
        match expected {
            Some(etag) if etag != head.etag => Err(StoreError::Stale(format!(
                "credential {id} changed since it was read (etag {etag}, now {}); read it again and retry",
                head.etag
            ))),
            _ => Ok(head),
        }
    }

    /// AddVersion's own check: `version` must be the next number. Another AddVersion may have
    /// taken it since the caller read the credential (`VersionTaken`: seal again for the next).
    pub(super) fn check_next(&self, version: VersionNumber) -> Result<(), StoreError> {
        if self.latest_version.checked_add(1) == Some(version) {
            Ok(())
        } else {
            Err(StoreError::VersionTaken)
        }
    }
}

/// What a state change writes: the new state, and whether the ciphertext goes.
pub(super) fn decide(update: &VersionUpdate, from: Option<VersionState>) -> Result<bool, StoreError> {
    let from = from.ok_or_else(|| {
        StoreError::NotFound(format!("version {} of credential {}", update.version, update.credential_id))
    })?;
    update.change.apply_to(update.version, from).map_err(StoreError::FailedPrecondition)
}

/// Why a credential is purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeReason {
    /// PurgeCredential: now, whatever its state.
    Requested,
    /// The purger: only if it is still deleted and its purge is due at this time.
    Due(OffsetDateTime),
}

/// RestoreCredential's checks on the credential as stored (`None`: no such credential).
pub(super) fn check_restore(
    found: Option<&CredentialMetadata>,
    id: CredentialId,
    customer_id: CustomerId,
) -> Result<(), StoreError> {
    let found = found
        .filter(|c| c.customer_id == customer_id)
        .ok_or_else(|| StoreError::NotFound(format!("credential {id}")))?;
    if found.purged_at.is_some() {
        return Err(StoreError::FailedPrecondition(format!(
            "credential {id} was purged: its versions are destroyed and it cannot be restored"
        )));
    }
    if found.is_active {
        return Err(StoreError::FailedPrecondition(format!(
            "credential {id} is not deleted; only a deleted credential can be restored"
        )));
    }
    Ok(())
}

/// Purge's checks: `Ok(true)` to purge, `Ok(false)` to leave it (the purger's credential was
/// restored, rescheduled or purged meanwhile).
pub(super) fn check_purge(
    found: Option<&CredentialMetadata>,
    id: CredentialId,
    customer_id: CustomerId,
    reason: PurgeReason,
) -> Result<bool, StoreError> {
    let found = found
        .filter(|c| c.customer_id == customer_id)
        .ok_or_else(|| StoreError::NotFound(format!("credential {id}")))?;
    match reason {
        PurgeReason::Due(now) => {
            Ok(found.purged_at.is_none() && !found.is_active && found.purge_at.is_some_and(|at| at <= now))
        }
        PurgeReason::Requested if found.purged_at.is_some() => {
            Err(StoreError::FailedPrecondition(format!("credential {id} was purged already")))
        }
        PurgeReason::Requested => Ok(true),
    }
}
