//! Who is calling (authentication) and whether they may (authorization). Every use case asks
//! [`Vault::authorize`] before it touches a secret or a row; a refusal is audited as `denied`.

use time::OffsetDateTime;

use super::{RequestContext, Vault, VaultError, error_chain};
use crate::auth::AuthError;
use crate::domain::{AuditAction, AuditEntry, CredentialId, CustomerBinding, CustomerId, Principal, Scope};
use crate::store::Store;

impl Vault {
    /// The caller named by an `authorization` header value (`Bearer cvt_...`).
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, VaultError> {
        self.ensure_ready()?;
        self.auth.authenticate(authorization).await.map_err(|e| match e {
            AuthError::Store(e) => e.into(),
            other => VaultError::Unauthenticated(other.to_string()),
        })
    }

    pub(super) async fn authorize(
        &self,
        ctx: &RequestContext,
        scope: Scope,
        customer: Option<CustomerId>,
        credential: Option<CredentialId>,
        attempt: &str,
    ) -> Result<(), VaultError> {
        authorize(self.store.as_ref(), ctx, scope, customer, credential, attempt).await
    }
}

/// Refuses, with a `denied` audit row, a caller without `scope` or bound to a customer other
/// than `customer` (when the request concerns a known customer).
pub(super) async fn authorize(
    store: &dyn Store,
    ctx: &RequestContext,
    scope: Scope,
    customer: Option<CustomerId>,
    credential: Option<CredentialId>,
    attempt: &str,
) -> Result<(), VaultError> {
    let principal = caller(ctx)?;
    let refusal = if !principal.scopes.contains(scope) {
        format!("token {:?} lacks the scope {scope} needed to {attempt}", principal.name.as_str())
    } else {
        match customer {
            Some(customer) if !principal.customer.allows(customer) => format!(
                "token {:?} is bound to customer {}, not {customer}; it cannot {attempt}",
                principal.name.as_str(),
                principal.customer
            ),
            _ => return Ok(()),
        }
    };
    deny(store, ctx, principal, customer, credential, refusal).await
}

/// As [`authorize`], for acts on every customer (creating or listing customers): a token bound
/// to one customer is refused too.
pub(super) async fn authorize_all_customers(
    store: &dyn Store,
    ctx: &RequestContext,
    scope: Scope,
    attempt: &str,
) -> Result<(), VaultError> {
    authorize(store, ctx, scope, None, None, attempt).await?;
    let principal = caller(ctx)?;
    match principal.customer {
        CustomerBinding::All => Ok(()),
        CustomerBinding::One(bound) => {
            let refusal = format!(
                "token {:?} is bound to customer {bound}; only a token for every customer (*) can {attempt}",
                principal.name.as_str()
            );
            deny(store, ctx, principal, Some(bound), None, refusal).await
        }
    }
}

fn caller(ctx: &RequestContext) -> Result<&Principal, VaultError> {
    ctx.principal.as_ref().ok_or_else(|| VaultError::Unauthenticated(AuthError::Missing.to_string()))
}

/// Records the refusal as a `denied` audit row, then refuses.
async fn deny(
    store: &dyn Store,
    ctx: &RequestContext,
    principal: &Principal,
    customer: Option<CustomerId>,
    credential: Option<CredentialId>,
    refusal: String,
) -> Result<(), VaultError> {
    let audit = AuditEntry {
        credential_id: credential,
        customer_id: customer,
        action: AuditAction::Denied,
        details: refusal.clone(),
        ip_address: ctx.peer_ip,
        actor: Some(principal.name.clone()),
    };
    tracing::warn!(token = principal.name.as_str(), reason = %refusal, "request denied");
    if let Err(e) = store.append_audit(audit, OffsetDateTime::now_utc()).await {
        tracing::error!(error = %error_chain(&e), "could not audit a denied request");
        return Err(e.into());
    }
    Err(VaultError::PermissionDenied(refusal))
}
