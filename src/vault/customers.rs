//! Customer and audit-log use cases. They need no key, so the CLI runs them too (as the
//! operator) with only a store: see [`Directory`].

use std::sync::Arc;

use time::OffsetDateTime;

use super::access::{authorize, authorize_all_customers};
use super::{RequestContext, VaultError};
use crate::domain::{
    AuditAction, AuditEvent, AuditFilter, CredentialMetadata, Cursor, Customer, CustomerBinding, CustomerId,
    CustomerStatus, Email, FieldViolation, Scope, SubscriptionTier, company_name,
};
use crate::store::{NewCustomer, Store, StoreError};

/// Page tokens of the customer and audit lists.
pub const CUSTOMER_CURSOR: &str = "u1";
pub const AUDIT_CURSOR: &str = "a1";

/// A customer to create, as asked.
#[derive(Debug)]
pub struct NewCustomerRequest {
    pub email: Email,
    pub company_name: String,
    pub status: CustomerStatus,
    pub tier: SubscriptionTier,
}

impl NewCustomerRequest {
    pub fn parse(
        email: &str,
        company: &str,
        status: CustomerStatus,
        tier: SubscriptionTier,
    ) -> Result<Self, FieldViolation> {
        Ok(Self {
            email: Email::parse(email, "email")?,
            company_name: company_name(company, "company_name")?,
            status,
            tier,
        })
    }
}

/// A page of a keyset-paged list.
#[derive(Debug)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

/// Customers and the audit log over a store.
#[derive(Clone)]
pub struct Directory {
    pub(super) store: Arc<dyn Store>,
}

impl Directory {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn create_customer(
        &self,
        ctx: &RequestContext,
        request: NewCustomerRequest,
    ) -> Result<Customer, VaultError> {
        let id = CustomerId::new_random();
        self.ensure_customer(ctx, id, request).await?;
        self.store.customer(id).await?.ok_or(VaultError::Internal)
    }

    /// Creates the customer with this id unless one exists (`serve --dev`'s demo customer);
    /// whether it was created.
    pub async fn ensure_customer(
        &self,
        ctx: &RequestContext,
        id: CustomerId,
        request: NewCustomerRequest,
    ) -> Result<bool, VaultError> {
        authorize_all_customers(self.store.as_ref(), ctx, Scope::Admin, "create a customer").await?;
        let new = NewCustomer {
            id,
            email: request.email.as_str().to_owned(),
            company_name: request.company_name,
            status: request.status,
            tier: request.tier,
        };
        Ok(self.store.ensure_customer(&new).await?)
    }

    pub async fn customer(&self, ctx: &RequestContext, id: CustomerId) -> Result<Customer, VaultError> {
        authorize(self.store.as_ref(), ctx, Scope::Admin, Some(id), None, "read a customer").await?;
        self.store.customer(id).await?.ok_or_else(|| VaultError::NotFound(format!("customer {id} not found")))
    }

    pub async fn list_customers(
        &self,
        ctx: &RequestContext,
        after: Option<Cursor>,
        page_size: u32,
    ) -> Result<Listed<Customer>, VaultError> {
        authorize_all_customers(self.store.as_ref(), ctx, Scope::Admin, "list customers").await?;
        let mut items = self.store.list_customers(after, page_size + 1).await?;
        let next = page_end(&mut items, page_size, |c| Cursor {
            at_micros: crate::domain::unix_micros(c.created_at),
            id: *c.id.as_uuid(),
        });
        Ok(Listed { items, next })
    }

    pub async fn set_customer_status(
        &self,
        ctx: &RequestContext,
        id: CustomerId,
        status: CustomerStatus,
    ) -> Result<Customer, VaultError> {
        authorize(self.store.as_ref(), ctx, Scope::Admin, Some(id), None, "change a customer's status")
            .await?;
        let audit =
            ctx.audit(AuditAction::Updated, Some(id), None, format!("customer status set to {status}"));
        // A cancelled customer's credentials are deleted in the same transaction, each audited
        // and scheduled for purge after the customer's recovery window.
        let deleted = |credential: &CredentialMetadata| {
            ctx.audit(
                AuditAction::Deleted,
                Some(id),
                Some(credential.id),
                format!(
                    "soft-deleted {} credential {:?}: the customer was cancelled",
                    credential.provider,
                    credential.name.as_str()
                ),
            )
        };
        self.store.set_customer_status(id, status, audit, &deleted, OffsetDateTime::now_utc()).await.map_err(
            |e| match e {
                StoreError::NotFound(_) => VaultError::NotFound(format!("customer {id} not found")),
                other => other.into(),
            },
        )
    }

    /// Sets how long the customer's deleted credentials can be restored.
    pub async fn set_recovery_window(
        &self,
        ctx: &RequestContext,
        id: CustomerId,
        window: std::time::Duration,
    ) -> Result<Customer, VaultError> {
        authorize(
            self.store.as_ref(),
            ctx,
            Scope::Admin,
            Some(id),
            None,
            "change a customer's recovery window",
        )
        .await?;
        if window > crate::domain::MAX_RECOVERY_WINDOW {
            return Err(crate::domain::FieldViolation::new(
                "recovery_window",
                "must be at most 365 days (0 purges deleted credentials at once)",
            )
            .into());
        }
        let audit = ctx.audit(
            AuditAction::Updated,
            Some(id),
            None,
            format!("recovery window set to {} seconds", window.as_secs()),
        );
        self.store.set_recovery_window(id, window, audit, OffsetDateTime::now_utc()).await.map_err(
            |e| match e {
                StoreError::NotFound(_) => VaultError::NotFound(format!("customer {id} not found")),
                other => other.into(),
            },
        )
    }

    /// Audit events, newest first. A token bound to one customer sees that customer's only.
    pub async fn audit_events(
        &self,
        ctx: &RequestContext,
        mut filter: AuditFilter,
    ) -> Result<Listed<AuditEvent>, VaultError> {
        if let (None, Some(CustomerBinding::One(bound))) =
            (filter.customer_id, ctx.principal.as_ref().map(|p| p.customer))
        {
            filter.customer_id = Some(bound);
        }
        let (customer, credential) = (filter.customer_id, filter.credential_id);
        authorize(self.store.as_ref(), ctx, Scope::AuditRead, customer, credential, "read the audit log")
            .await?;
        let page_size = filter.page_size;
        let mut items = self.store.list_audit(&filter).await?;
        let next = page_end(&mut items, page_size, |e| Cursor {
            at_micros: crate::domain::unix_micros(e.created_at),
            id: e.id,
        });
        Ok(Listed { items, next })
    }
}

/// Trims a `page_size + 1` fetch to the page and says where the next one starts.
pub(super) fn page_end<T, C>(items: &mut Vec<T>, page_size: u32, cursor: impl Fn(&T) -> C) -> Option<C> {
    let page_size = page_size as usize;
    if items.len() > page_size {
        items.truncate(page_size);
        items.last().map(cursor)
    } else {
        None
    }
}
