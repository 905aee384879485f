//! What `credvault import` writes: another system's rows kept as they were (ids, customers,
//! times, counts, verification), each credential's secret sealed anew as its version 1. Every
//! write is skipped when a row with the same id exists, so a rerun (after a stop anywhere)
//! writes only what the last one did not.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::{
    AuditEntry, CredentialId, CredentialName, CredentialType, CustomerId, CustomerStatus, Permission,
    Provider, SubscriptionTier,
};

/// A customer to import.
#[derive(Debug, Clone)]
pub struct ImportedCustomer {
    pub id: CustomerId,
    pub email: String,
    pub company_name: String,
    pub status: CustomerStatus,
    pub tier: SubscriptionTier,
    pub created_at: OffsetDateTime,
}

/// A credential to import, its secret already sealed for version 1.
#[derive(Debug, Clone)]
pub struct ImportedCredential {
    pub id: CredentialId,
    pub customer_id: CustomerId,
    pub provider: Provider,
    pub name: CredentialName,
    pub credential_type: CredentialType,
    pub permissions: Permission,
    /// False: it comes in deleted, its purge due after the customer's recovery window.
    pub is_active: bool,
    pub is_verified: bool,
    pub last_verified_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub usage_count: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub sealed: Vec<u8>,
    /// The master-key version wrapping its data key; `None` when its customer's key does.
    pub key_version: Option<u32>,
}

/// Writes of `credvault import`.
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Creates the customer unless one with its id exists (then nothing changes); whether it was
    /// created. `Conflict` if another customer has its email.
    async fn import_customer(&self, customer: &ImportedCustomer) -> Result<bool, StoreError>;

    /// Inserts the credential (version 1 holding `sealed`) with its audit row, in one
    /// transaction, unless a credential with its id exists (`Ok(false)`, nothing written).
    /// `NotFound` for a missing customer, `Conflict` for a name an active credential has.
    async fn import_credential(
        &self,
        credential: &ImportedCredential,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Adds a historical audit row under its own id and time, MACed like any row and chained
    /// by the sealer after the rows already there, unless a row with that id exists.
    async fn import_audit(
        &self,
        id: uuid::Uuid,
        audit: AuditEntry,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}
