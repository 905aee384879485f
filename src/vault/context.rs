//! Who is asking, as every use case receives it: the caller, their address, the customer they
//! act for; and the audit rows that record them.

use std::net::IpAddr;

use crate::domain::{AuditAction, AuditEntry, CredentialId, CustomerId, Principal, TokenName};

/// Who is asking: the authenticated caller, and what the audit log records about them.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The caller, once authenticated; use cases refuse a context without one.
    pub principal: Option<Principal>,
    pub peer_ip: Option<IpAddr>,
    /// The customer the caller acts for (the dashboard's `X-Customer-ID`). When set, another
    /// customer's credential is NOT_FOUND, exactly as if it did not exist.
    pub acting_for: Option<CustomerId>,
}

impl RequestContext {
    /// The operator at a terminal that already holds the database credentials (the CLI,
    /// `serve --dev`'s set-up): every scope, every customer.
    pub fn operator() -> Self {
        RequestContext { principal: Some(Principal::operator()), ..Default::default() }
    }

    pub(crate) fn actor(&self) -> Option<TokenName> {
        self.principal.as_ref().map(|p| p.name.clone())
    }

    /// The audit row for `action` by this caller, from its address, about `customer`'s
    /// `credential` (either may be unknown).
    pub(crate) fn audit(
        &self,
        action: AuditAction,
        customer: Option<CustomerId>,
        credential: Option<CredentialId>,
        details: String,
    ) -> AuditEntry {
        AuditEntry {
            credential_id: credential,
            customer_id: customer,
            action,
            details,
            ip_address: self.peer_ip,
            actor: self.actor(),
        }
    }
}
