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
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Created => "created",
            AuditAction::Updated => "updated",
            AuditAction::Deleted => "deleted",
            AuditAction::Verified => "verified",
            AuditAction::Used => "used",
            AuditAction::Failed => "failed",
            AuditAction::Denied => "denied",
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
