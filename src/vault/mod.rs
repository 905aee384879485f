//! The use cases, one method each: validate what the transports could not, seal or open the
//! secret, persist with its audit row, and answer in domain terms.

mod access;
mod audit_log;
mod context;
mod customer_purge;
mod customers;
mod error;
mod get;
mod history;
mod import;
mod recovery;
mod secrets;
mod served_cache;
mod startup;
mod tokens;
mod update;
mod verification;
mod versions;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use time::OffsetDateTime;

pub use audit_log::{AuditVerified, CHAIN_INTERVAL, Tampered, verify_audit_log};
pub use context::RequestContext;
pub use customer_purge::CustomerPurged;
pub use customers::{AUDIT_CURSOR, CUSTOMER_CURSOR, Directory, Listed, NewCustomerRequest};
pub use error::{VaultError, error_chain};
pub use secrets::{KeyState, KeyStatus, KeyVersionStatus, REWRAP_LEASE, Retired, RewrapPass, Rotated};
pub use startup::{StartupError, adopt_current_key, prove_key};
pub use update::CredentialChanges;
pub use verification::{VerificationPolicy, Verified, VerifyTarget};
pub use versions::{NewVersionRequest, VersionPage, VersionSet, VersionStored};

use crate::auth::Authenticator;
use crate::crypto::{Binding, Keyring};
use crate::domain::{
    AuditAction, CredentialId, CredentialMetadata, CredentialName, CredentialSelector, CredentialType,
    CustomerId, IdempotencyKey, ListFilter, PageCursor, Permission, Provider, ProviderSummary, Scope,
    SecretPayload, Summary, TrustedProxies, Verification, VersionNumber,
};
use crate::store::{Inserted, NewCredential, Store, StoreError};
use crate::verify::Verifiers;

/// A validated Store request.
#[derive(Debug)]
pub struct NewCredentialRequest {
    pub customer_id: CustomerId,
    pub name: CredentialName,
    pub credential_type: CredentialType,
    pub permissions: Permission,
    pub secret: SecretPayload,
    pub idempotency_key: Option<IdempotencyKey>,
    pub make_default: bool,
    /// Also verify the secret with its provider once stored.
    pub verify: bool,
}

/// The answer to Store.
#[derive(Debug)]
pub struct Stored {
    pub credential: CredentialMetadata,
    /// True when an earlier Store with the same idempotency key is being replayed.
    pub replayed: bool,
    /// The provider's verdict, when the request asked for one (never on a replay).
    pub verification: Option<Verification>,
}

/// The answer to Get: metadata after the use was counted, the version handed out, and its
/// secret.
#[derive(Debug)]
pub struct Fetched {
    pub credential: CredentialMetadata,
    pub version: VersionNumber,
    pub secret: SecretPayload,
}

/// One page of List.
#[derive(Debug)]
pub struct Page {
    pub credentials: Vec<CredentialMetadata>,
    pub next: Option<PageCursor>,
}

/// The credential use cases over one store and keyring. Cheap to clone.
#[derive(Clone)]
pub struct Vault {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    verifiers: Arc<Verifiers>,
    auth: Arc<Authenticator>,
    directory: Directory,
    trusted_proxies: Arc<TrustedProxies>,
    /// Owner, provider, name and ciphertext of credentials Get has seen (see [`served_cache`]).
    served: Arc<served_cache::ServedCache>,
    /// Unwrapped customer keys, and whether new secrets are sealed under them.
    customer_keys: Arc<secrets::CustomerKeys>,
    /// How verification answers are judged.
    verification: VerificationPolicy,
    /// Set once [`Vault::prepare`] has migrated the schema and proved the key; until then every
    /// use case answers UNAVAILABLE.
    ready: Arc<AtomicBool>,
    /// What the last [`Vault::probe_database`] found: reachable and writable.
    database_ok: Arc<AtomicBool>,
}

impl Vault {
    /// A vault that serves nothing until [`Vault::prepare`] succeeds.
    pub fn new(store: Arc<dyn Store>, keyring: Arc<Keyring>, verifiers: Arc<Verifiers>) -> Self {
        let auth = Arc::new(Authenticator::new(store.clone(), crate::auth::DEFAULT_CACHE_TTL));
        let directory = Directory::new(store.clone());
        Self {
            store,
            keyring,
            verifiers,
            auth,
            directory,
            trusted_proxies: Arc::default(),
            served: Arc::default(),
            customer_keys: Arc::default(),
            verification: VerificationPolicy::default(),
            ready: Arc::new(AtomicBool::new(false)),
            database_ok: Arc::new(AtomicBool::new(true)),
        }
    }

    /// How long a checked token is trusted before it is read again (the revocation bound).
    pub fn with_token_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.auth = Arc::new(Authenticator::new(self.store.clone(), ttl));
        self
    }

    /// Brings the schema up to date and proves the keyring is the one the database was written
    /// with (recording its check value on first start); then the vault serves.
    pub async fn prepare(&self) -> Result<(), StartupError> {
        // Proved before anything else: a vault that could only read would report ready, then
        // fail every write.
        self.store.check_writable().await.map_err(StartupError::from)?;
        self.store.migrate().await.map_err(StartupError::from)?;
        prove_key(self.store.as_ref(), &self.keyring).await?;
        // Which versions wrap anything serves both checks; the keys are counted only to say
        // how many a missing version wraps.
        let usage = self.store.key_usage_present().await?;
        if startup::require_versions_in_use(&usage, &self.keyring).is_err() {
            startup::require_versions_in_use(&self.store.key_usage().await?, &self.keyring)?;
        }
        startup::adopt_current_key_with(self.store.as_ref(), &self.keyring, &usage).await?;
        self.follow_customer_keys().await.map_err(|e| StartupError::Store(e.to_string()))?;
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether [`Vault::prepare`] has succeeded: use cases are served from then on.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Readiness for a load balancer: prepared, and the database reachable and writable when
    /// [`Vault::probe_database`] last looked.
    pub fn is_serving(&self) -> bool {
        self.is_ready() && self.database_ok.load(Ordering::Acquire)
    }

    /// Checks that the database can be reached and written within `limit`, and records the
    /// answer for [`Vault::is_serving`]. Calls are not refused on its word: each still tries
    /// the database, so they recover as soon as it does.
    pub async fn probe_database(&self, limit: std::time::Duration) -> Result<(), String> {
        let outcome = match tokio::time::timeout(limit, self.store.check_writable()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(error_chain(&e)),
            Err(_) => Err(format!("no answer within {limit:?}")),
        };
        self.database_ok.store(outcome.is_ok(), Ordering::Release);
        outcome
    }

    fn ensure_ready(&self) -> Result<(), VaultError> {
        if self.is_ready() {
            Ok(())
        } else {
            Err(VaultError::Unavailable(
                "credvault is starting and cannot reach its database yet; retry shortly".into(),
            ))
        }
    }

    /// Proxies whose `X-Forwarded-For` names the client in the audit log.
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = Arc::new(proxies);
        self
    }

    /// The address the audit log records for a request from `peer`.
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        peer.map(|peer| self.trusted_proxies.client_ip(peer, forwarded_for))
    }

    /// Customers and the audit log.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Closes the store (SQLite checkpoints its WAL); calls after it answer UNAVAILABLE.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Checks every audit row's MAC and the chain's links with this vault's key (what
    /// `credvault audit verify` does with the operator's).
    pub async fn verify_audit_log(&self) -> Result<Result<AuditVerified, Tampered>, VaultError> {
        Ok(verify_audit_log(self.store.as_ref(), self.keyring.as_ref()).await?)
    }

    #[tracing::instrument(skip_all, fields(customer_id = %request.customer_id, provider = %request.secret.provider()))]
    pub async fn store_credential(
        &self,
        ctx: RequestContext,
        request: NewCredentialRequest,
    ) -> Result<Stored, VaultError> {
        self.ensure_ready()?;
        let customer = Some(request.customer_id);
        self.authorize(&ctx, Scope::CredentialsWrite, customer, None, "store a credential").await?;
        request.secret.validate("secret")?;
        // The customer's existence and standing are checked by the insert, in its transaction.
        let provider = request.secret.provider();
        let id = CredentialId::new_random();
        let binding = Binding { credential_id: id, customer_id: request.customer_id, provider, version: 1 };
        let plaintext = request.secret.to_plaintext();
        let sealed = self.seal(&binding, &plaintext).await?;
        let idempotency = request.idempotency_key.map(|key| {
            let fingerprint = self.fingerprint(&[
                request.customer_id.as_bytes(),
                key.as_str().as_bytes(),
                request.name.as_str().as_bytes(),
                request.credential_type.as_str().as_bytes(),
                request.permissions.as_str().as_bytes(),
                &[u8::from(request.make_default)],
                &plaintext,
            ]);
            (key, fingerprint)
        });
        let sent_fingerprint = idempotency.as_ref().map(|(_, f)| *f);
        let audit = ctx.audit(
            AuditAction::Created,
            Some(request.customer_id),
            Some(id),
            format!(
                "stored {provider} credential {:?} ({}, {}{})",
                request.name.as_str(),
                request.credential_type.as_str(),
                request.permissions.as_str(),
                if request.make_default { ", default" } else { "" }
            ),
        );
        let new = NewCredential {
            id,
            customer_id: request.customer_id,
            provider,
            name: request.name,
            credential_type: request.credential_type,
            permissions: request.permissions,
            sealed: sealed.bytes,
            key_version: sealed.key_version,
            make_default: request.make_default,
            idempotency,
            now: OffsetDateTime::now_utc(),
        };
        match self.store.insert_credential(new, audit).await? {
            Inserted::Created(credential) => {
                tracing::info!(credential_id = %credential.id, "credential stored");
                if !request.verify {
                    return Ok(Stored { credential, replayed: false, verification: None });
                }
                let (credential, verification) = self.verify_written(&ctx, credential, &request.secret).await;
                Ok(Stored { credential, replayed: false, verification: Some(verification) })
            }
            Inserted::Existing { credential, fingerprint } => {
                let sent = sent_fingerprint.expect("only idempotent inserts find an existing row");
                if verify_slices_are_equal(&fingerprint, &sent).is_ok() {
                    Ok(Stored { credential, replayed: true, verification: None })
                } else {
                    Err(VaultError::InvalidArgument(crate::domain::FieldViolation::new(
                        "idempotency_key",
                        "was already used for a different Store request; use a new key for new content",
                    )))
                }
            }
        }
    }

    #[tracing::instrument(skip_all, fields(customer_id = %filter.customer_id))]
    pub async fn list_credentials(
        &self,
        ctx: RequestContext,
        filter: ListFilter,
    ) -> Result<Page, VaultError> {
        self.ensure_ready()?;
        let customer = Some(filter.customer_id);
        self.authorize(&ctx, Scope::CredentialsRead, customer, None, "list credentials").await?;
        let mut credentials = self.store.list(&filter).await?;
        if credentials.is_empty() && filter.after.is_none() {
            self.require_customer(filter.customer_id).await?;
        }
        let next = customers::page_end(&mut credentials, filter.page_size, PageCursor::after);
        Ok(Page { credentials, next })
    }

    /// The customer's credentials counted per provider, with the newest `per_provider` of each
    /// (a first page of List by provider, deleted ones included, and where its next page
    /// starts). The counts and each list are separate reads: a write between them shows in one
    /// and not the other.
    #[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
    pub async fn summary(
        &self,
        ctx: RequestContext,
        customer_id: CustomerId,
        per_provider: u32,
    ) -> Result<Summary, VaultError> {
        self.ensure_ready()?;
        let customer = Some(customer_id);
        self.authorize(&ctx, Scope::CredentialsRead, customer, None, "read the credential summary").await?;
        // The count and every provider's newest credentials are reads of their own, side by side
        // on the pool's connections; a provider with nothing counted is left out.
        let lists = Provider::ALL.map(|provider| async move {
            let filter = ListFilter {
                customer_id,
                provider: Some(provider),
                include_inactive: true,
                page_size: per_provider,
                after: None,
            };
            let mut credentials = self.store.list(&filter).await?;
            let next = customers::page_end(&mut credentials, per_provider, PageCursor::after);
            Ok::<_, StoreError>((credentials, next))
        });
        let (counts, mut lists) = futures_util::future::try_join(
            self.store.summary_counts(customer_id),
            futures_util::future::try_join_all(lists),
        )
        .await?;
        if counts.is_empty() {
            self.require_customer(customer_id).await?;
        }
        let providers = counts
            .into_iter()
            .map(|counts| {
                // Every provider counted was listed (ALL names every provider).
                let at = Provider::ALL.iter().position(|p| *p == counts.provider);
                let (credentials, next) = at.map(|at| std::mem::take(&mut lists[at])).unwrap_or_default();
                ProviderSummary { counts, credentials, next }
            })
            .collect::<Vec<_>>();
        let total_credentials = providers.iter().map(|p| p.counts.total).sum();
        Ok(Summary { customer_id, total_credentials, providers })
    }

    /// One credential's metadata, active, deleted or purged (never a secret).
    #[tracing::instrument(skip_all, fields(credential_id = %id))]
    pub async fn credential(
        &self,
        ctx: RequestContext,
        id: CredentialId,
    ) -> Result<CredentialMetadata, VaultError> {
        self.ensure_ready()?;
        self.any_credential_for(&ctx, Scope::CredentialsRead, id, "read a credential").await
    }

    #[tracing::instrument(skip_all, fields(credential_id = %id))]
    pub async fn delete_credential(
        &self,
        ctx: RequestContext,
        id: CredentialId,
    ) -> Result<CredentialMetadata, VaultError> {
        self.ensure_ready()?;
        // The audit row names the customer and the credential, which only the row knows; the
        // store's conditional update then settles a race with a concurrent delete.
        let missing =
            || VaultError::NotFound(format!("no active credential {id} (unknown, or already deleted)"));
        let found = self.store.fetch_sealed(CredentialSelector::Id(id), None).await?;
        let owner = found.as_ref().map(|f| f.metadata.customer_id);
        self.authorize_credential(&ctx, Scope::CredentialsWrite, id, owner, "delete a credential", missing)
            .await?;
        let found = found.ok_or_else(missing)?;
        let audit = ctx.audit(
            AuditAction::Deleted,
            Some(found.metadata.customer_id),
            Some(id),
            format!("soft-deleted {} credential {:?}", found.metadata.provider, found.metadata.name.as_str()),
        );
        let deleted =
            self.store.soft_delete(id, audit, OffsetDateTime::now_utc()).await.map_err(|e| match e {
                StoreError::NotFound(_) => missing(),
                other => other.into(),
            })?;
        self.served.remove(id);
        tracing::info!("credential deleted");
        Ok(deleted)
    }

    async fn require_customer(&self, customer_id: CustomerId) -> Result<(), VaultError> {
        if self.store.customer_exists(customer_id).await? {
            Ok(())
        } else {
            Err(VaultError::NotFound(format!("customer {customer_id} not found")))
        }
    }
}
