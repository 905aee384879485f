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
    pub const ALL: [AuditAction; 7] = [
        AuditAction::Created,
        AuditAction::Updated,
        AuditAction::Deleted,
        AuditAction::Verified,
        AuditAction::Used,
        AuditAction::Failed,
        AuditAction::Denied,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

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

/// One audit-log row as read back.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: uuid::Uuid,
    pub credential_id: Option<CredentialId>,
    pub customer_id: Option<CustomerId>,
    pub action: String,
    pub details: String,
    pub ip_address: Option<String>,
    pub actor: Option<String>,
    pub created_at: time::OffsetDateTime,
}

/// Which audit events to list, newest first.
#[derive(Debug, Clone)]
pub struct AuditFilter {
    pub customer_id: Option<CustomerId>,
    pub credential_id: Option<CredentialId>,
    pub action: Option<AuditAction>,
    pub since: Option<time::OffsetDateTime>,
    pub until: Option<time::OffsetDateTime>,
    /// 1 to 500.
    pub page_size: u32,
    pub after: Option<super::Cursor>,
}
