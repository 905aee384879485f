//! Customer keys in the vault: whether new secrets are sealed under them (the database's word,
//! followed every second like the current master-key version), finding a customer's key (made
//! on first need, unwrapped once and then cached), and turning them on.
//!
//! The cache holds unwrapped keys in memory only, bounded by count and by age: a key destroyed
//! on one instance (`PurgeCustomer`) leaves every other instance's memory within [`KEY_TTL`],
//! and is never used meanwhile, because a purged customer is cancelled and nothing of a
//! cancelled customer is handed out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::super::access::authorize_all_customers;
use super::super::{RequestContext, Vault, VaultError};
use crate::crypto::{CryptoError, CustomerKey};
use crate::domain::{AuditAction, CustomerId, Scope};
use crate::store::StoredCustomerKey;

/// Unwrapped customer keys kept: at the bound, the oldest makes room (a miss costs one read and
/// one unwrap).
const CAPACITY: usize = 4096;
/// How long an unwrapped key stays in memory after it was read.
const KEY_TTL: Duration = Duration::from_secs(60);

/// Customer keys as this process holds them.
#[derive(Default)]
pub(in crate::vault) struct CustomerKeys {
    /// Whether new secrets are sealed under customer keys (see [`Vault::follow_current_key`]).
    enabled: AtomicBool,
    cache: Mutex<HashMap<CustomerId, (Arc<CustomerKey>, Instant)>>,
}

impl CustomerKeys {
    fn get(&self, customer: CustomerId) -> Option<Arc<CustomerKey>> {
        let mut cache = self.cache.lock().expect("the customer-key cache is never poisoned");
        match cache.get(&customer) {
            Some((key, at)) if at.elapsed() < KEY_TTL => Some(key.clone()),
            Some(_) => {
                cache.remove(&customer);
                None
            }
            None => None,
        }
    }

    fn insert(&self, customer: CustomerId, key: Arc<CustomerKey>) {
        let mut cache = self.cache.lock().expect("the customer-key cache is never poisoned");
        if cache.len() >= CAPACITY && !cache.contains_key(&customer) {
            cache.retain(|_, (_, at)| at.elapsed() < KEY_TTL);
            if cache.len() >= CAPACITY
                && let Some(oldest) = cache.iter().min_by_key(|(_, (_, at))| *at).map(|(id, _)| *id)
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(customer, (key, Instant::now()));
    }

    fn forget(&self, customer: CustomerId) {
        self.cache.lock().expect("the customer-key cache is never poisoned").remove(&customer);
    }

    pub(super) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Records the database's word; whether it changed.
    pub(super) fn set_enabled(&self, enabled: bool) -> bool {
        self.enabled.swap(enabled, Ordering::AcqRel) != enabled
    }
}

/// Why a customer's key cannot be used.
#[derive(Debug)]
pub(super) enum Unusable {
    /// Destroyed (`PurgeCustomer`), at this time.
    Shredded(OffsetDateTime),
    /// No key was ever made for the customer (only [`Vault::customer_key`] without `create`).
    Missing,
    /// The stored key does not open: the master-key version wrapping it is not configured, or the
    /// row was altered.
    Broken(CryptoError),
    Vault(VaultError),
}

impl From<crate::store::StoreError> for Unusable {
    fn from(e: crate::store::StoreError) -> Self {
        Unusable::Vault(e.into())
    }
}

impl Unusable {
    /// The answer for a caller who needed the key.
    pub(super) fn into_error(self, customer: CustomerId) -> VaultError {
        match self {
            Unusable::Shredded(at) => shredded(customer, at),
            Unusable::Missing => {
                tracing::error!(customer_id = %customer, "a secret is sealed under a customer key that was never stored");
                VaultError::DataLoss(format!(
                    "customer {customer}'s key is missing from the database, so its secrets cannot be opened"
                ))
            }
            Unusable::Broken(e) => {
                tracing::error!(customer_id = %customer, error = %e, "a customer key does not open");
                match e {
                    CryptoError::UnknownKeyVersion(v) => VaultError::Unavailable(format!(
                        "customer {customer}'s key is wrapped by master-key version {v}, which this instance's key \
                         configuration lacks"
                    )),
                    _ => VaultError::DataLoss(format!(
                        "customer {customer}'s stored key was altered and cannot be opened"
                    )),
                }
            }
            Unusable::Vault(e) => e,
        }
    }
}

/// The answer for anything that needs a purged customer's key.
pub(super) fn shredded(customer: CustomerId, at: OffsetDateTime) -> VaultError {
    VaultError::FailedPrecondition(format!(
        "customer {customer} was purged at {}: its key was destroyed, so its secrets can never be opened again",
        crate::domain::rfc3339(at)
    ))
}

impl Vault {
    /// Whether new secrets are sealed under customer keys here.
    pub fn customer_keys_enabled(&self) -> bool {
        self.customer_keys.enabled()
    }

    /// Follows the database's word on customer keys; whether it changed.
    pub(in crate::vault) async fn follow_customer_keys(&self) -> Result<bool, VaultError> {
        let since = self.store.customer_keys_since().await?;
        let changed = self.customer_keys.set_enabled(since.is_some());
        if changed && since.is_some() {
            tracing::info!(
                "new secrets are now sealed under customer keys; older ones move under them in the background"
            );
        }
        Ok(changed)
    }

    /// `customer`'s key, unwrapped: from the cache, else read from the database and unwrapped;
    /// with `create`, a customer without a key gets one (concurrent creators agree on one).
    pub(super) async fn customer_key(
        &self,
        customer: CustomerId,
        create: bool,
    ) -> Result<Arc<CustomerKey>, Unusable> {
        if let Some(key) = self.customer_keys.get(customer) {
            return Ok(key);
        }
        let record = match self.store.customer_key(customer).await? {
            Some(record) => record,
            None if create => {
                let (_, wrapped) = self.keyring.new_customer_key(customer).map_err(Unusable::Broken)?;
                self.store.add_customer_key(customer, &wrapped, OffsetDateTime::now_utc()).await?
            }
            None => return Err(Unusable::Missing),
        };
        let key = Arc::new(self.unwrap_customer_key(&record)?);
        self.customer_keys.insert(customer, key.clone());
        Ok(key)
    }

    fn unwrap_customer_key(&self, record: &StoredCustomerKey) -> Result<CustomerKey, Unusable> {
        match (&record.wrapped, record.destroyed_at) {
            (Some(wrapped), _) => {
                self.keyring.open_customer_key(record.customer_id, &wrapped.bytes).map_err(Unusable::Broken)
            }
            (None, Some(at)) => Err(Unusable::Shredded(at)),
            (None, None) => Err(Unusable::Missing),
        }
    }

    /// Drops `customer`'s key from this process's memory (it was destroyed).
    pub(in crate::vault) fn forget_customer_key(&self, customer: CustomerId) {
        self.customer_keys.forget(customer);
    }

    /// Why `customer`'s secrets cannot be handed out, if it was purged: FAILED_PRECONDITION
    /// naming when.
    pub(in crate::vault) async fn purged(
        &self,
        customer: CustomerId,
    ) -> Result<Option<VaultError>, VaultError> {
        Ok(self
            .store
            .customer_key(customer)
            .await?
            .and_then(|record| record.destroyed_at)
            .map(|at| shredded(customer, at)))
    }

    /// Seals new secrets under customer keys from now on, on every instance within a second
    /// (`credvault key enable-customer-keys`, after every instance runs a build that reads them);
    /// the rewrap moves older secrets' data keys under them. Audited as `customer_keys_enabled`;
    /// returns since when they are on.
    pub async fn enable_customer_keys(&self, ctx: &RequestContext) -> Result<OffsetDateTime, VaultError> {
        authorize_all_customers(self.store.as_ref(), ctx, Scope::Admin, "enable customer keys").await?;
        let audit = ctx.audit(
            AuditAction::CustomerKeysEnabled,
            None,
            None,
            "new secrets are sealed under customer keys; stored data keys move under them in the background"
                .into(),
        );
        let since = self.store.enable_customer_keys(audit, OffsetDateTime::now_utc()).await?;
        self.customer_keys.set_enabled(true);
        Ok(since)
    }
}
