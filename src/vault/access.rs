//! Who is calling (authentication) and whether they may (authorization). Every use case asks
//! [`Vault::authorize`] before it touches a secret or a row; a refusal is audited as `denied`.

use time::OffsetDateTime;

use super::{RequestContext, Vault, VaultError, error_chain};
use crate::auth::AuthError;
use crate::domain::{AuditAction, CredentialId, CustomerBinding, CustomerId, Principal, Scope};
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

    /// Authorizes an act on the stored credential `id`, whose owner is `owner` (`None`: there
    /// is no such active credential), and returns that owner.
    ///
    /// A caller without `scope` is refused (PERMISSION_DENIED) whether or not the credential
    /// exists. A credential of another customer than the one the caller's token is bound to, or
    /// than the one it acts for (the dashboard's `X-Customer-ID`), is answered `missing()`
    /// exactly as one that does not exist, so that no caller learns that an id exists or who
    /// owns it; the attempt is still audited as `denied`, with the credential and its owner.
    pub(super) async fn authorize_credential(
        &self,
        ctx: &RequestContext,
        scope: Scope,
        id: CredentialId,
        owner: Option<CustomerId>,
        attempt: &str,
        missing: impl FnOnce() -> VaultError,
    ) -> Result<CustomerId, VaultError> {
        let principal = caller(ctx)?;
        if !principal.scopes.contains(scope) {
            let refusal =
                format!("token {:?} lacks the scope {scope} needed to {attempt}", principal.name.as_str());
            deny(self.store.as_ref(), ctx, principal, owner, Some(id), refusal).await?;
        }
        let Some(owner) = owner else { return Err(missing()) };
        let refusal = if !principal.customer.allows(owner) {
            format!(
                "token {:?} is bound to customer {}, not {owner}; it cannot {attempt} (answered as not found)",
                principal.name.as_str(),
                principal.customer
            )
        } else if let Some(acting_for) = ctx.acting_for.filter(|c| *c != owner) {
            format!(
                "token {:?} acting for customer {acting_for} cannot {attempt} of customer {owner} \
                 (answered as not found)",
                principal.name.as_str()
            )
        } else {
            return Ok(owner);
        };
        match deny(self.store.as_ref(), ctx, principal, Some(owner), Some(id), refusal).await {
            Err(VaultError::PermissionDenied(_)) => Err(missing()),
            other => other.map(|()| owner),
        }
    }
}

/// Refuses, with a `denied` audit row, a caller without `scope` or bound to a customer other
/// than `customer` (when the request concerns a known customer), or acting for another one.
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
            Some(customer) if ctx.acting_for.is_some_and(|acting_for| acting_for != customer) => format!(
                "token {:?} acts for another customer than {customer}; it cannot {attempt}",
                principal.name.as_str()
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
    let audit = ctx.audit(AuditAction::Denied, customer, credential, refusal.clone());
    tracing::warn!(token = principal.name.as_str(), reason = %refusal, "request denied");
    if let Err(e) = store.append_audit(audit, OffsetDateTime::now_utc()).await {
        tracing::error!(error = %error_chain(&e), "could not audit a denied request");
        return Err(e.into());
    }
    Err(VaultError::PermissionDenied(refusal))
}
