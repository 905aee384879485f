//! Get: hand out a secret (the current version's, or a named enabled version's), its `used`
//! audit row durable first.
//!
//! The secret is opened before anything is written, so a ciphertext that fails to open is
//! audited as `failed` and never counted. The use is then recorded by one statement that holds
//! only if the credential still is as it was read (active, same owner, same etag, customer in
//! good standing). For a current version seen before, owner and ciphertext come from the
//! [`ServedCache`](super::served_cache::ServedCache) and that statement is Get's only database
//! round trip; otherwise (or when it no longer holds) the row is read first.

use std::sync::Arc;

use time::OffsetDateTime;

use super::served_cache::Served;
use super::{Fetched, RequestContext, Vault, VaultError, error_chain};
use crate::domain::{
    AuditAction, CredentialId, CredentialMetadata, CredentialSelector, CustomerStatus, Scope, VersionNumber,
    VersionState,
};
use crate::store::SealedCredential;

const ATTEMPT: &str = "get a secret";

/// Get's answer for an id that names no active credential the caller may see.
fn missing(id: CredentialId) -> VaultError {
    VaultError::NotFound(format!("no active credential {id} (unknown, or deleted)"))
}

impl Vault {
    /// Hands out `version` of the selected credential, or its current version for `None`.
    #[tracing::instrument(skip_all, fields(selector = ?selector, version = ?version))]
    pub async fn get_credential(
        &self,
        ctx: RequestContext,
        selector: CredentialSelector,
        version: Option<VersionNumber>,
    ) -> Result<Fetched, VaultError> {
        self.ensure_ready()?;
        if let CredentialSelector::Id(id) = selector
            && version.is_none()
            && let Some(cached) = self.served.get(id)
        {
            let owner = Some(cached.customer_id);
            self.authorize_credential(&ctx, Scope::SecretsRead, id, owner, ATTEMPT, || missing(id)).await?;
            if let Some(fetched) = self.hand_out(&ctx, &cached, true).await? {
                return Ok(fetched);
            }
            // Changed, deleted, or its customer's standing changed: read what is there now.
            self.served.remove(id);
        }
        // A version disabled or destroyed between the read and the use fails the use's claim:
        // read again, once; a second such change in that window is answered as a conflict.
        for attempt in 0..2 {
            let (found, owner) = match selector {
                CredentialSelector::Preferred { customer_id, .. } => {
                    if attempt == 0 {
                        self.authorize(&ctx, Scope::SecretsRead, Some(customer_id), None, ATTEMPT).await?;
                    }
                    (self.store.fetch_sealed(selector, version).await?, Some(customer_id))
                }
                CredentialSelector::Id(id) => {
                    let found = self.store.fetch_sealed(selector, version).await?;
                    // A deleted credential's owner too: a purged customer's is answered as such.
                    let owner = match &found {
                        Some(found) => Some(found.metadata.customer_id),
                        None => self.store.find_credential(id).await?.map(|c| c.customer_id),
                    };
                    self.authorize_credential(&ctx, Scope::SecretsRead, id, owner, ATTEMPT, || missing(id))
                        .await?;
                    (found, owner)
                }
            };
            let Some(found) = found else {
                return Err(self.not_found(selector, owner).await?);
            };
            if !found.customer_status.in_good_standing() {
                return Err(self.refuse_for_standing(&ctx, &found.metadata, found.customer_status).await);
            }
            let sealed = Arc::new(servable(found, version)?);
            if let Some(fetched) = self.hand_out(&ctx, &sealed, false).await? {
                if version.is_none() {
                    self.served.insert(sealed);
                }
                return Ok(fetched);
            }
        }
        Err(VaultError::Aborted("the credential changed twice while being fetched; retry".into()))
    }

    /// Opens the secret, then records its use; `None` (nothing handed out, nothing counted) if
    /// the row no longer is what was opened.
    async fn hand_out(
        &self,
        ctx: &RequestContext,
        sealed: &Served,
        cached: bool,
    ) -> Result<Option<Fetched>, VaultError> {
        let secret = self.open(ctx, &sealed.binding(), &sealed.sealed).await?;
        let audit = ctx.audit(
            AuditAction::Used,
            Some(sealed.customer_id),
            Some(sealed.id),
            format!(
                "secret of {} credential {:?} version {} handed out",
                sealed.provider,
                sealed.name.as_str(),
                sealed.version
            ),
        );
        // The audit row commits before the secret leaves this function.
        let counted = self.store.record_use(sealed.claim(cached), audit, OffsetDateTime::now_utc()).await?;
        Ok(counted.map(|credential| Fetched { credential, version: sealed.version, secret }))
    }

    /// A suspended or cancelled customer's secret is not handed out; the refusal is audited.
    async fn refuse_for_standing(
        &self,
        ctx: &RequestContext,
        metadata: &CredentialMetadata,
        status: CustomerStatus,
    ) -> VaultError {
        let reason = match self.purged(metadata.customer_id).await {
            Ok(Some(purged)) => purged.to_string(),
            _ => format!(
                "customer {} is {status}: its secrets cannot be fetched until it is active again",
                metadata.customer_id
            ),
        };
        let audit =
            ctx.audit(AuditAction::Denied, Some(metadata.customer_id), Some(metadata.id), reason.clone());
        if let Err(e) = self.store.append_audit(audit, OffsetDateTime::now_utc()).await {
            tracing::error!(error = %error_chain(&e), "could not audit a refused Get");
            return e.into();
        }
        VaultError::FailedPrecondition(reason)
    }

    /// Why nothing was found, for a caller authorized for `owner` (the customer asked for, or
    /// the one a deleted credential belongs to): a purged customer's credential or customer is
    /// FAILED_PRECONDITION saying so; anything else NOT_FOUND.
    async fn not_found(
        &self,
        selector: CredentialSelector,
        owner: Option<crate::domain::CustomerId>,
    ) -> Result<VaultError, VaultError> {
        Ok(match selector {
            CredentialSelector::Id(id) => match owner {
                Some(owner) => self.purged(owner).await?.unwrap_or_else(|| missing(id)),
                None => missing(id),
            },
            CredentialSelector::Preferred { customer_id, provider } => {
                if let Some(purged) = self.purged(customer_id).await? {
                    purged
                } else if self.store.customer_exists(customer_id).await? {
                    VaultError::NotFound(format!(
                        "no active {provider} credential for customer {customer_id}; add one in the dashboard"
                    ))
                } else {
                    VaultError::NotFound(format!("customer {customer_id} not found"))
                }
            }
        })
    }
}

/// The version of `found` that Get may hand out, or why not: there is no such version (asked
/// for by number), no enabled version (asked for the current one), or it is not enabled.
fn servable(found: SealedCredential, asked: Option<VersionNumber>) -> Result<Served, VaultError> {
    let metadata = found.metadata;
    let id = metadata.id;
    let Some(version) = found.version else {
        return Err(match asked {
            Some(n) => VaultError::NotFound(format!("credential {id} has no version {n}")),
            None => VaultError::FailedPrecondition(format!(
                "credential {id} has no enabled version; add one (AddVersion) or enable a disabled one \
                 (EnableVersion; ListVersions shows them)"
            )),
        });
    };
    let sealed = match (version.state, version.sealed) {
        (VersionState::Enabled, Some(sealed)) => sealed,
        (state, _) => {
            return Err(VaultError::FailedPrecondition(format!(
                "version {} of credential {id} is {state}; only enabled versions are handed out",
                version.number
            )));
        }
    };
    Ok(Served {
        id,
        customer_id: metadata.customer_id,
        provider: metadata.provider,
        name: metadata.name,
        version: version.number,
        etag: metadata.etag,
        sealed: sealed.into(),
    })
}
