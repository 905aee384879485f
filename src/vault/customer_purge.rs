//! Purging a customer: destroying its key once it is cancelled and its recovery window has
//! passed (or before, by force), so that every copy of its secrets' ciphertext anywhere (the
//! database, its WAL and dead rows, backups) is unreadable: crypto-shredding. Its metadata and
//! audit rows stay; it stays cancelled for good. The purger does it by itself at the end of the
//! window.

use time::OffsetDateTime;

use super::access::authorize_all_customers;
use super::{RequestContext, Vault, VaultError};
use crate::domain::{AuditAction, CustomerId, Principal, Scope, rfc3339};
use crate::store::StoreError;

/// Customers the purger destroys the keys of per pass, at most.
const PURGE_BATCH: u32 = 100;

/// What `PurgeCustomer` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerPurged {
    pub customer_id: CustomerId,
    pub purged_at: OffsetDateTime,
    /// Whether it was purged before its recovery window ended.
    pub forced: bool,
}

impl Vault {
    /// Destroys cancelled customer `id`'s key once its recovery window has passed, or before with
    /// `force` (audited as such); needs the admin scope for every customer. Audited as
    /// `customer_purged`.
    pub async fn purge_customer(
        &self,
        ctx: &RequestContext,
        id: CustomerId,
        force: bool,
    ) -> Result<CustomerPurged, VaultError> {
        self.ensure_ready()?;
        authorize_all_customers(self.store.as_ref(), ctx, Scope::Admin, "purge a customer").await?;
        let now = OffsetDateTime::now_utc();
        let due = match self.store.purge_due_at(id).await {
            Err(StoreError::NotFound(_)) => {
                return Err(VaultError::NotFound(format!("customer {id} not found")));
            }
            other => other?,
        };
        let Some(due) = due else {
            return Err(VaultError::FailedPrecondition(format!(
                "customer {id} is not cancelled: only a cancelled customer can be purged (cancelling deletes its \
                 credentials and starts its recovery window)"
            )));
        };
        let forced = due > now;
        if forced && !force {
            return Err(VaultError::FailedPrecondition(format!(
                "customer {id}'s recovery window ends at {}: the purger destroys its key then; pass force to \
                 destroy it now (nothing of it can be restored afterwards)",
                rfc3339(due)
            )));
        }
        let details = if forced {
            format!(
                "customer's key destroyed by force, before its recovery window ended (at {}): its secrets can \
                 never be opened again",
                rfc3339(due)
            )
        } else {
            "customer's key destroyed after its recovery window: its secrets can never be opened again"
                .to_owned()
        };
        let audit = ctx.audit(AuditAction::CustomerPurged, Some(id), None, details);
        match self.store.destroy_customer_key(id, audit, now).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(VaultError::FailedPrecondition(format!("customer {id} was purged already")));
            }
            Err(StoreError::NotFound(_)) => {
                return Err(VaultError::NotFound(format!("customer {id} not found")));
            }
            Err(e) => return Err(e.into()),
        }
        self.forget_customer_key(id);
        tracing::info!(customer_id = %id, forced, "customer purged: its key is destroyed");
        Ok(CustomerPurged { customer_id: id, purged_at: now, forced })
    }

    /// The purger's part: destroys the key of every cancelled customer whose recovery window
    /// has passed. Safe on every instance at once (each key is destroyed once). Returns how
    /// many this pass purged.
    pub async fn purge_due_customers(&self) -> Result<usize, VaultError> {
        self.ensure_ready()?;
        let now = OffsetDateTime::now_utc();
        let ctx = RequestContext { principal: Some(Principal::purger()), ..RequestContext::default() };
        let mut purged = 0;
        for id in self.store.customers_due_for_purge(now, PURGE_BATCH).await? {
            let audit = ctx.audit(
                AuditAction::CustomerPurged,
                Some(id),
                None,
                "customer's key destroyed at the end of its recovery window: its secrets can never be opened again"
                    .into(),
            );
            match self.store.destroy_customer_key(id, audit, now).await {
                Ok(()) => {
                    self.forget_customer_key(id);
                    purged += 1;
                }
                // Another instance's purger was first.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if purged > 0 {
            tracing::info!(purged, "purged customers whose recovery window ended");
        }
        Ok(purged)
    }
}
