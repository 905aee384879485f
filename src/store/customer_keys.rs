//! Customer keys as stored: each customer's key wrapped by a master-key version, the pass that
//! rewraps them when that version changes, their destruction (crypto-shredding), and whether
//! new secrets are sealed under them yet.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::crypto::WrappedCustomerKey;
use crate::domain::{AuditEntry, CustomerId};

/// A customer's key record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCustomerKey {
    pub customer_id: CustomerId,
    /// The key, wrapped; `None` once destroyed.
    pub wrapped: Option<WrappedCustomerKey>,
    pub created_at: OffsetDateTime,
    pub destroyed_at: Option<OffsetDateTime>,
}

/// A customer key rewrapped by the current master-key version: it replaces the stored one if
/// that is still wrapped by `old_key_version`.
#[derive(Debug, Clone)]
pub struct RewrappedCustomerKey {
    pub customer_id: CustomerId,
    pub old_key_version: u32,
    pub wrapped: WrappedCustomerKey,
}

/// How many customer keys each master-key version wraps, and how many were destroyed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerKeyCounts {
    /// (master-key version, customer keys it wraps), by version.
    pub by_version: Vec<(u32, i64)>,
    pub destroyed: i64,
}

#[async_trait]
pub trait CustomerKeyStore: Send + Sync {
    /// `customer`'s key record; `None` if it has none yet.
    async fn customer_key(&self, customer: CustomerId) -> Result<Option<StoredCustomerKey>, StoreError>;

    /// Stores `wrapped` as `customer`'s key unless it has a record already; returns the record
    /// that holds afterwards (this one, or one another instance stored first, or a destroyed
    /// one). `NotFound` for a customer that does not exist.
    async fn add_customer_key(
        &self,
        customer: CustomerId,
        wrapped: &WrappedCustomerKey,
        now: OffsetDateTime,
    ) -> Result<StoredCustomerKey, StoreError>;

    /// Up to `limit` customer keys wrapped by a master-key version other than `current`, in
    /// customer order after `after`.
    async fn customer_keys_to_rewrap(
        &self,
        current: u32,
        after: Option<CustomerId>,
        limit: u32,
    ) -> Result<Vec<(CustomerId, WrappedCustomerKey)>, StoreError>;

    /// Writes each rewrapped key in one transaction where it is still wrapped by its old
    /// version; returns how many were written.
    async fn replace_customer_keys(&self, moved: &[RewrappedCustomerKey]) -> Result<u64, StoreError>;

    /// Destroys `customer`'s key (a record without a key stays, so no key is ever made for it
    /// again), and the ciphertext of its credential versions still wrapped by a master-key
    /// version (sealed before customer keys, not yet moved under the key), with `audit`, in one
    /// transaction; `Conflict` if it was destroyed already, `NotFound` for a customer that does
    /// not exist.
    async fn destroy_customer_key(
        &self,
        customer: CustomerId,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Every customer whose key was destroyed, and when (a restore re-applies them).
    async fn purged_customers(&self) -> Result<Vec<(CustomerId, OffsetDateTime)>, StoreError>;

    /// Customer keys by the master-key version wrapping them, and destroyed ones.
    async fn customer_key_counts(&self) -> Result<CustomerKeyCounts, StoreError>;

    /// When `customer`'s recovery window ends: its cancellation plus its window; `None` while it
    /// is not cancelled. `NotFound` for a customer that does not exist.
    async fn purge_due_at(&self, customer: CustomerId) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Up to `limit` cancelled customers whose recovery window ended by `now` and whose key is
    /// not destroyed yet (the purger destroys them).
    async fn customers_due_for_purge(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<CustomerId>, StoreError>;

    /// Since when new secrets are sealed under customer keys; `None` while not yet.
    async fn customer_keys_since(&self) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Seals new secrets under customer keys from now on, with `audit`; returns since when
    /// (now, or when it was enabled before: then nothing is written).
    async fn enable_customer_keys(
        &self,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, StoreError>;
}

/// Customer-key counts from (key version or NULL for destroyed keys, count) rows.
pub(super) fn counts_of(rows: Vec<(Option<i64>, i64)>) -> Result<CustomerKeyCounts, StoreError> {
    let mut counts = CustomerKeyCounts::default();
    for (version, n) in rows {
        match version {
            Some(v) => counts.by_version.push((
                u32::try_from(v).map_err(|_| super::rows::corrupt("key version", &v.to_string()))?,
                n,
            )),
            None => counts.destroyed += n,
        }
    }
    Ok(counts)
}

/// The refusal to bring a purged customer back: its key is gone for good.
pub(super) fn purged_stays_cancelled(customer: CustomerId) -> StoreError {
    StoreError::FailedPrecondition(format!(
        "customer {customer} was purged (its key destroyed): it stays cancelled; create a new customer instead"
    ))
}
