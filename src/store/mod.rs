//! Persistence: the [`Store`] trait and its backends. The only place SQL lives.
//!
//! Every method that changes a credential takes the audit entry describing the change and
//! commits both in one transaction: there is no change without its audit row, and no audit row
//! for a change that did not happen.

/// The customer statuses whose secrets may be handed out, as an SQL list: the statuses for
/// which [`CustomerStatus::in_good_standing`] holds (a test keeps the two in step).
macro_rules! good_standing_sql {
    () => {
        "('active', 'trial')"
    };
}

/// The columns a customer row is read with, the same on both backends.
macro_rules! customer_columns {
    () => {
        "id, email, company_name, status, subscription_tier, created_at, recovery_window_secs"
    };
}

/// The columns a token row is read with, the same on both backends.
macro_rules! token_columns {
    () => {
        "id, name, scopes, customer, secret_hash, created_at, expires_at, revoked_at"
    };
}

/// The columns a version row is read with, the same on both backends.
macro_rules! version_columns {
    () => {
        "credential_id, version, state, created_by, created_at, destroyed_at"
    };
}

mod chain;
mod connect;
mod customer_keys;
mod error;
mod group_commit;
pub mod import;
mod keys;
pub(crate) mod metrics;
mod postgres;
mod rows;
pub mod seed;
pub mod seed_source;
mod sql;
mod sqlite;
mod standing;
mod versions;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

pub(crate) use chain::link;
pub use chain::{AuditChain, ChainHead, ChainLink, ChainPart, ChainReport, Checkpoint, SignedRow};
pub use connect::{PoolSettings, open};
pub use customer_keys::{CustomerKeyCounts, CustomerKeyStore, RewrappedCustomerKey, StoredCustomerKey};
pub use error::StoreError;
pub use keys::{KeyCheck, KeyStore, KeyUsage, MakeCurrent, RewrappedDataKey, WrappedDataKey};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use sqlite::backup as sqlite_backup;
pub use standing::CancelledCredentialAudit;
pub use versions::{NewVersion, PurgeReason, VersionAdded, VersionChanged, VersionUpdate};

use crate::domain::{
    AuditEntry, AuditEvent, AuditFilter, CredentialId, CredentialMetadata, CredentialName,
    CredentialSelector, CredentialType, Cursor, Customer, CustomerId, CustomerStatus, Etag, IdempotencyKey,
    ListFilter, Permission, Provider, ProviderCounts, SubscriptionTier, TokenId, TokenName, TokenRecord,
    VerificationRecord, VerificationState, VersionMetadata, VersionNumber, VersionState,
};

/// A credential to insert, its secret already sealed.
#[derive(Debug, Clone)]
pub struct NewCredential {
    pub id: CredentialId,
    pub customer_id: CustomerId,
    pub provider: Provider,
    pub name: CredentialName,
    pub credential_type: CredentialType,
    pub permissions: Permission,
    pub sealed: Vec<u8>,
    /// The master-key version wrapping its data key; `None` when its customer's key does.
    pub key_version: Option<u32>,
    /// Make it the customer's default for the provider (clearing any other default).
    pub make_default: bool,
    pub idempotency: Option<(IdempotencyKey, [u8; 32])>,
    pub now: OffsetDateTime,
}

/// A change of a credential's metadata; `None` fields stay as they are. Conditional on
/// `expected` when given.
#[derive(Debug, Clone)]
pub struct CredentialUpdate {
    pub id: CredentialId,
    /// The customer the caller was authorized for: the credential must still be theirs.
    pub customer_id: CustomerId,
    pub name: Option<CredentialName>,
    pub credential_type: Option<CredentialType>,
    pub permissions: Option<Permission>,
    /// `Some(true)` makes it the provider's default (clearing any other); `Some(false)` clears it.
    pub is_default: Option<bool>,
    pub expected: Option<Etag>,
    pub now: OffsetDateTime,
}

/// What an insert did.
#[derive(Debug, Clone)]
pub enum Inserted {
    Created(CredentialMetadata),
    /// A credential with the same idempotency key already existed; nothing was written.
    Existing {
        credential: CredentialMetadata,
        fingerprint: Vec<u8>,
    },
}

/// A credential's metadata and one version's sealed secret, as read for Get, with its
/// customer's status (read in the same statement).
#[derive(Debug, Clone)]
pub struct SealedCredential {
    pub metadata: CredentialMetadata,
    /// The version asked for (the current one when none was named); `None` if there is no
    /// such version (or, for the current one, no enabled version).
    pub version: Option<SealedVersion>,
    pub customer_status: CustomerStatus,
}

/// One version's state and ciphertext (`None` once destroyed).
#[derive(Clone)]
pub struct SealedVersion {
    pub number: VersionNumber,
    pub state: VersionState,
    pub sealed: Option<Vec<u8>>,
}

impl std::fmt::Debug for SealedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedVersion").field("number", &self.number).field("state", &self.state).finish()
    }
}

/// A Get's claim to one use: the credential, the customer it was authorized for, the version
/// and exact ciphertext the caller has opened, and (for a copy served from a cache) the etag it
/// was read at. Every change of a credential's versions or metadata changes its etag, so an
/// unchanged etag proves a cached version is still as it was read (enabled, and current if it
/// was served as current). A Get that has just read the row claims without an etag: it may
/// hand out a version superseded meanwhile (it raced the rotation), but only one still enabled.
/// The ciphertext comparison catches a row altered behind the store's back.
#[derive(Clone)]
pub struct UseClaim {
    pub id: CredentialId,
    pub customer_id: CustomerId,
    pub etag: Option<Etag>,
    pub version: VersionNumber,
    pub sealed: Arc<[u8]>,
}

impl std::fmt::Debug for UseClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UseClaim")
            .field("id", &self.id)
            .field("customer_id", &self.customer_id)
            .field("etag", &self.etag)
            .field("version", &self.version)
            .field("sealed_len", &self.sealed.len())
            .finish()
    }
}

/// A customer to create.
#[derive(Debug, Clone)]
pub struct NewCustomer {
    pub id: CustomerId,
    pub email: String,
    pub company_name: String,
    pub status: CustomerStatus,
    pub tier: SubscriptionTier,
}

/// The storage operations the vault needs, implemented once per backend: the store's own life
/// (schema, writability, close) here, and one trait per aggregate, each in its own
/// file per backend (`credentials.rs`, `versions.rs`, `customers.rs`, `tokens.rs`, `audit.rs`, `keys.rs`), so the two
/// backends read side by side.
#[async_trait]
pub trait Store:
    CredentialStore
    + VersionStore
    + CustomerStore
    + TokenStore
    + AuditStore
    + import::ImportStore
    + seed::SeedStore
    + KeyStore
    + CustomerKeyStore
    + Send
    + Sync
    + 'static
{
    /// Brings the schema up to date. Safe to run from several instances at once.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Proves the database can be written now, without writing: `ReadOnly` (saying what to
    /// change) if it can be read only, `Unavailable` if it cannot be reached. Start-up calls it
    /// before anything else, and readiness every second.
    async fn check_writable(&self) -> Result<(), StoreError>;

    /// Closes the connections (SQLite checkpoints its WAL). Later calls fail with `Unavailable`.
    async fn close(&self);
}

/// Credentials: every change commits with its audit row.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Inserts a credential and its `created` audit row. Fails with `NotFound` for an unknown
    /// customer and `Conflict` for a duplicate active name.
    async fn insert_credential(&self, new: NewCredential, audit: AuditEntry) -> Result<Inserted, StoreError>;

    /// Reads an active credential with the sealed secret of `version` (the current version
    /// when `None`). Writes nothing. With [`CredentialSelector::Preferred`], credentials with an
    /// enabled version come first.
    async fn fetch_sealed(
        &self,
        selector: CredentialSelector,
        version: Option<VersionNumber>,
    ) -> Result<Option<SealedCredential>, StoreError>;

    /// Counts one use (usage_count, last_used_at) with its `used` audit row, in one commit,
    /// provided the credential is still active, still belongs to `claim.customer_id`, that
    /// customer is in good standing, its etag is still `claim.etag` (when given), and version
    /// `claim.version` is enabled and holds exactly `claim.sealed`; returns the
    /// credential's metadata, its usage counting this use. `None`, and nothing written, when any
    /// of that no longer holds.
    async fn record_use(
        &self,
        claim: UseClaim,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<Option<CredentialMetadata>, StoreError>;

    /// Records a definite verification outcome with its `verified` or `failed` audit row: a
    /// valid one stores its identity and findings and ends any streak of invalid ones; an
    /// invalid one keeps the identity last reported, stores its findings and lengthens the
    /// streak, marking the credential failing (since the streak's first failure) once the
    /// streak reaches `record.failing_after`. Counting is atomic: of concurrent records, exactly
    /// one sees each streak length. `NotFound` unless the credential is active and
    /// `record.version` is still its current version.
    async fn record_verification(
        &self,
        id: CredentialId,
        record: &VerificationRecord,
        audit: AuditEntry,
    ) -> Result<CredentialMetadata, StoreError>;

    /// Claims up to `limit` active credentials whose scheduled verification is due at `now`,
    /// moving each one's next due time to `now` plus `interval` give or take a tenth (so that
    /// credentials stored together spread out). An instance verifies what it claimed; other
    /// instances do not claim it again before its next due time.
    async fn claim_due_verifications(
        &self,
        now: OffsetDateTime,
        interval: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<(CredentialId, Provider)>, StoreError>;

    /// Makes claimed credentials due at `at` instead (a provider asked to be left alone until
    /// then, or the instance is stopping before it verified them).
    async fn defer_verifications(&self, ids: &[CredentialId], at: OffsetDateTime) -> Result<(), StoreError>;

    /// Active credentials per verification state, for `/metrics`.
    async fn verification_state_counts(&self) -> Result<Vec<(VerificationState, i64)>, StoreError>;

    /// One page of metadata, newest first; returns up to `filter.page_size + 1` rows so the
    /// caller can tell whether another page follows.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<CredentialMetadata>, StoreError>;

    /// A customer's credentials counted per provider (deleted ones included), in provider
    /// order; empty for a customer with none (or no such customer).
    async fn summary_counts(&self, customer_id: CustomerId) -> Result<Vec<ProviderCounts>, StoreError>;

    /// All of a customer's credentials, deleted ones included, newest first.
    async fn all_for_customer(&self, customer_id: CustomerId) -> Result<Vec<CredentialMetadata>, StoreError>;

    /// Changes an active credential's metadata with its `updated` audit row. `NotFound` unless
    /// it is active and `update.customer_id`'s, `Stale` on an etag mismatch, `Conflict` when the
    /// new name is taken.
    async fn update_credential(
        &self,
        update: CredentialUpdate,
        audit: AuditEntry,
    ) -> Result<CredentialMetadata, StoreError>;

    /// A credential's metadata, active, deleted or purged. Writes nothing.
    async fn find_credential(&self, id: CredentialId) -> Result<Option<CredentialMetadata>, StoreError>;

    /// Undoes a soft delete, with its `restored` audit row. `NotFound` unless the credential is
    /// `customer_id`'s, `FailedPrecondition` if it is active or purged, `Conflict` if an active
    /// credential took its name meanwhile.
    async fn restore_credential(
        &self,
        id: CredentialId,
        customer_id: CustomerId,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<CredentialMetadata, StoreError>;

    /// Destroys every version of the credential (their ciphertexts deleted) and marks it purged
    /// and inactive, with its `purged` audit row, in one transaction. For [`PurgeReason::Due`],
    /// only if it is still deleted and due (`Ok(None)`, nothing written, otherwise).
    async fn purge_credential(
        &self,
        id: CredentialId,
        customer_id: CustomerId,
        reason: PurgeReason,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<Option<CredentialMetadata>, StoreError>;

    /// Deleted credentials whose purge is due at `now`, oldest due first; up to `limit`.
    async fn due_for_purge(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<CredentialMetadata>, StoreError>;

    /// Soft-deletes an active credential with its `deleted` audit row, and schedules its purge
    /// after its customer's recovery window. `NotFound` if there is no such active credential.
    async fn soft_delete(
        &self,
        id: CredentialId,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<CredentialMetadata, StoreError>;
}

/// A credential's versions: every change commits with its audit row.
#[async_trait]
pub trait VersionStore: Send + Sync {
    /// Adds a version with its `rotated` audit row; it becomes current. `NotFound` unless the
    /// credential is active and `new.customer_id`'s, `Stale` on an etag mismatch,
    /// `VersionTaken` if `new.version` is not the next number. What verification established
    /// was about the old secret: it is cleared, and the credential is due for verification.
    async fn add_version(&self, new: NewVersion, audit: AuditEntry) -> Result<VersionAdded, StoreError>;

    /// Changes one version's state with its audit row (written only if the state changes), and
    /// moves the current version to the newest enabled one. A destroyed version's ciphertext
    /// is removed in the same transaction. `NotFound` for an unknown version or credential,
    /// `Stale` on an etag mismatch, `FailedPrecondition` for a change a destroyed version
    /// cannot take.
    async fn change_version(
        &self,
        update: VersionUpdate,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<VersionChanged, StoreError>;

    /// A credential's versions newest first, below `before` (all for `None`); up to `limit`.
    async fn list_versions(
        &self,
        id: CredentialId,
        before: Option<VersionNumber>,
        limit: u32,
    ) -> Result<Vec<VersionMetadata>, StoreError>;
}

/// Customers.
#[async_trait]
pub trait CustomerStore: Send + Sync {
    /// Creates the customer unless one with the same id exists. Returns whether it was created.
    async fn ensure_customer(&self, customer: &NewCustomer) -> Result<bool, StoreError>;

    async fn customer_exists(&self, id: CustomerId) -> Result<bool, StoreError>;

    async fn customer(&self, id: CustomerId) -> Result<Option<Customer>, StoreError>;

    /// Customers oldest first, after `after`; up to `limit` of them.
    async fn list_customers(&self, after: Option<Cursor>, limit: u32) -> Result<Vec<Customer>, StoreError>;

    /// Sets how long the customer's deleted credentials can be restored (at most
    /// [`crate::domain::MAX_RECOVERY_WINDOW`]), with its `updated` audit row. Credentials deleted
    /// already keep their schedule. `NotFound` for an unknown id.
    async fn set_recovery_window(
        &self,
        id: CustomerId,
        window: Duration,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<Customer, StoreError>;

    /// Changes a customer's status with its `updated` audit row. Cancelling also soft-deletes
    /// every active credential of the customer in the same transaction, each scheduled for purge
    /// after the customer's recovery window and audited with the row `deleted` makes for it, so
    /// no write racing the cancellation can leave an active credential behind (Store, AddVersion
    /// and Restore check the customer's standing in their own transactions). `NotFound` for an
    /// unknown id.
    async fn set_customer_status(
        &self,
        id: CustomerId,
        status: CustomerStatus,
        audit: AuditEntry,
        deleted: CancelledCredentialAudit<'_>,
        now: OffsetDateTime,
    ) -> Result<Customer, StoreError>;
}

/// API tokens (only their hashes are stored).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Records a new API token. `Conflict` if the name is taken.
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError>;

    async fn find_token(&self, id: TokenId) -> Result<Option<TokenRecord>, StoreError>;

    /// Every token, revoked and expired ones included, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Marks the named token revoked (idempotent). `NotFound` if there is no such token.
    async fn revoke_token(&self, name: &TokenName, now: OffsetDateTime) -> Result<TokenRecord, StoreError>;
}

/// The audit log and its chain.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an audit row about something that did not change a credential (e.g. a failure).
    async fn append_audit(&self, audit: AuditEntry, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Audit events matching the filter, newest first; up to `filter.page_size + 1` of them.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;

    /// Brings the backend's indexes of the log kept outside its transactions up to date (SQLite's
    /// index by credential, in a file of its own); answers the log rows taken. Nothing to do
    /// for a backend without one.
    async fn index_audit(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Seals up to `limit` audit rows not on the chain yet onto it, in the order they were
    /// committed (see `migrations/*/0004_audit_chain.sql`). Rows whose MAC fails are left off
    /// the chain and reported.
    async fn chain_audit(&self, limit: u32) -> Result<ChainReport, StoreError>;

    /// The whole log as `audit verify` reads it, in one snapshot, a part at a time in the order
    /// [`ChainPart`] gives, into `each`; `each` answering `Break` ends the walk early. Memory
    /// stays flat whatever the log's size; writers are not held up.
    async fn walk_audit_chain(
        &self,
        each: &mut (dyn FnMut(ChainPart) -> ControlFlow<()> + Send),
    ) -> Result<(), StoreError>;

    /// The whole log at once: its head, its links in order and every row, oldest first.
    async fn audit_chain(&self) -> Result<AuditChain, StoreError> {
        let mut chain =
            AuditChain { head: ChainHead::default(), links: Vec::new(), rows: Vec::new(), checkpoint: None };
        self.walk_audit_chain(&mut |part| {
            match part {
                ChainPart::Head { head, checkpoint } => (chain.head, chain.checkpoint) = (head, checkpoint),
                ChainPart::Sealed(link, row) => {
                    chain.links.push(link);
                    chain.rows.extend(row);
                }
                ChainPart::Unsealed(row) => chain.rows.push(row),
                ChainPart::End { .. } => {}
            }
            ControlFlow::Continue(())
        })
        .await?;
        chain.rows.sort_by_key(|row| (row.event.created_at, row.event.id));
        Ok(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_list_of_good_standing_matches_the_domain() {
        let listed: Vec<String> = CustomerStatus::ALL
            .into_iter()
            .filter(|s| s.in_good_standing())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        assert_eq!(good_standing_sql!(), format!("({})", listed.join(", ")));
    }
}
