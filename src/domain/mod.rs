//! Pure types and rules: what a credential is, which values are valid, what gets audited.
//! Nothing here does I/O; every value is parsed once at the edge and trusted afterwards.

mod access;
mod audit;
mod credential;
mod cursor;
mod customer;
mod ids;
mod network;
mod provider;
mod secret;
mod selector;
mod verification;
mod version;
mod violation;

pub use access::{CustomerBinding, Principal, Scope, Scopes, TokenName, TokenRecord};
pub use audit::{
    AuditAction, AuditEntry, AuditEvent, AuditFilter, AuditSigner, MacProblem, chain_hash,
    check_checkpoint_mac, check_head_mac, checkpoint_mac, head_mac,
};
pub use credential::{
    CredentialMetadata, CredentialName, CredentialType, IdempotencyKey, ListFilter, PageCursor,
    ProviderCounts, ProviderSummary, Summary, rfc3339, unix_micros,
};
pub use cursor::Cursor;
pub use customer::{Customer, CustomerStatus, Email, MAX_RECOVERY_WINDOW, SubscriptionTier, company_name};
pub use ids::{CredentialId, CustomerId, TokenId, new_audit_row_id};
pub use network::TrustedProxies;
pub use provider::{Permission, Provider};
pub use secret::{MAX_SECRET_BYTES, SecretPayload};
pub use selector::CredentialSelector;
pub use verification::{
    Finding, Verification, VerificationRecord, VerificationState, VerificationStatus, VerifyOutcome,
};
pub use version::{Etag, VersionChange, VersionCursor, VersionMetadata, VersionNumber, VersionState};
pub use violation::{FieldViolation, QUOTED_CHARS, quoted, shortened, shortened_to};

/// The seed's demo customer, created by `credvault serve --dev`.
pub const DEMO_CUSTOMER_ID: &str = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
