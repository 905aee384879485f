//! The master key's records: each version's check value, which version is current (new secrets
//! are sealed with it), the data keys each wraps, and the rewrap that moves data keys to the
//! current version; plus the leases that let one instance at a time run such a job.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Checkpoint, StoreError};
use crate::domain::{AuditEntry, CredentialId, CustomerId, Provider, VersionNumber};

/// One master-key version as the database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    pub version: u32,
    /// When a server first started with it; `None` if only data keys name it.
    pub recorded_at: Option<OffsetDateTime>,
    /// Data keys (credential versions not destroyed) it wraps directly: those sealed before
    /// their customer had a key.
    pub data_keys: i64,
    /// Customer keys it wraps (not destroyed).
    pub customer_keys: i64,
    /// When it was last made current; `None` if never (then it has made no audit MAC).
    pub made_current_at: Option<OffsetDateTime>,
    /// When it was retired (`credvault key retire`): no longer needed for anything.
    pub retired_at: Option<OffsetDateTime>,
}

/// The outcome of comparing the configured key with the database's record of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// The database had no record of this key version; it has one now.
    Recorded,
    /// The record matches.
    Matches,
    /// The database was written with a different key.
    Mismatch,
}

/// When [`KeyStore::make_key_current`] changes the current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MakeCurrent {
    /// Only if no version is current yet (a new database's first start).
    IfNone,
    /// Always (`credvault key rotate`).
    Rotate,
}

/// A stored data key and the row its blob is bound to.
#[derive(Debug, Clone)]
pub struct WrappedDataKey {
    pub credential_id: CredentialId,
    pub customer_id: CustomerId,
    pub provider: Provider,
    pub version: VersionNumber,
    pub key_version: u32,
    pub sealed: Vec<u8>,
}

/// A data key rewrapped: its new blob replaces the old one if the row still holds that.
#[derive(Debug, Clone)]
pub struct RewrappedDataKey {
    pub credential_id: CredentialId,
    pub version: VersionNumber,
    pub old_key_version: u32,
    pub sealed: Vec<u8>,
    /// The master-key version wrapping it now; `None` when its customer's key does.
    pub key_version: Option<u32>,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Records `check_value` for `version` if absent, else compares it with the record.
    async fn check_key(&self, version: u32, check_value: &[u8; 32]) -> Result<KeyCheck, StoreError>;

    /// Every master-key version the database knows of (recorded at a start, or named by a stored
    /// data key), oldest first, with how many data keys it wraps.
    async fn key_usage(&self) -> Result<Vec<KeyUsage>, StoreError>;

    /// [`KeyStore::key_usage`] with each count at most 1: whether a version wraps any data key
    /// or customer key, found by index seeks rather than counted (start-up needs no more, and
    /// counting the data keys of a million credentials read ~1 s from a cold page cache).
    async fn key_usage_present(&self) -> Result<Vec<KeyUsage>, StoreError>;

    /// The version new secrets are sealed with: the one last made current. `None` before the
    /// first start.
    async fn current_key(&self) -> Result<Option<u32>, StoreError>;

    /// The version first made current: audit MACs and request fingerprints are keyed with it.
    async fn first_key(&self) -> Result<Option<u32>, StoreError>;

    /// Makes the recorded `version` current (see [`MakeCurrent`]), with `audit` in the same
    /// transaction when it changed; returns the version current afterwards. `NotFound` for a
    /// version no start or command has recorded (its check value proves the key is known).
    async fn make_key_current(
        &self,
        version: u32,
        rule: MakeCurrent,
        audit: Option<AuditEntry>,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError>;

    /// Records `version` as retired, the audit `checkpoint` and the `audit` row, in one
    /// transaction; `Conflict` if it is retired already, `NotFound` if it is not recorded.
    async fn retire_key(
        &self,
        version: u32,
        checkpoint: Checkpoint,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Up to `limit` stored data keys wrapped by a master-key version other than `except` (any
    /// version for `None`: the data keys to move under their customers' keys), in (credential,
    /// version) order after `after`: one pass over the table in pages, resumable from any point.
    async fn data_keys_to_rewrap(
        &self,
        except: Option<u32>,
        after: Option<(CredentialId, VersionNumber)>,
        limit: u32,
    ) -> Result<Vec<WrappedDataKey>, StoreError>;

    /// Writes each rewrapped blob in one transaction, where the row is still wrapped by its
    /// old version (a version destroyed or already moved meanwhile is left alone); returns how
    /// many were written.
    async fn replace_wrapped(&self, moved: &[RewrappedDataKey]) -> Result<u64, StoreError>;

    /// Takes or renews the lease on `job` for `holder` until `until`; false while another
    /// holder's lease runs.
    async fn take_lease(
        &self,
        job: &str,
        holder: Uuid,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Gives up `holder`'s lease on `job`, if it holds it.
    async fn release_lease(&self, job: &str, holder: Uuid) -> Result<(), StoreError>;
}

/// A key version no start or command has recorded.
pub(super) fn unrecorded(version: u32) -> StoreError {
    StoreError::NotFound(format!("key version {version} has not been recorded"))
}

/// Whether `version` may be retired, given its `retired_at` as read (`None`: no such row).
pub(super) fn check_retirable<T>(version: u32, retired_at: Option<Option<T>>) -> Result<(), StoreError> {
    match retired_at {
        None => Err(unrecorded(version)),
        Some(Some(_)) => Err(StoreError::Conflict(format!("key version {version} is retired already"))),
        Some(None) => Ok(()),
    }
}
