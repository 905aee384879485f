//! A credential's versions: AddVersion (rotation), ListVersions, and disabling, enabling and
//! destroying one version. Each change commits with its audit row and changes the credential's
//! etag, which is what keeps Get's cache and concurrent editors honest.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use time::OffsetDateTime;

use super::secrets::binding_of;
use super::{RequestContext, Vault, VaultError};
use crate::domain::{
    AuditAction, CredentialId, CredentialMetadata, CredentialSelector, Etag, FieldViolation, IdempotencyKey,
    Scope, SecretPayload, VersionChange, VersionMetadata, VersionNumber,
};
use crate::store::{NewVersion, StoreError, VersionAdded, VersionUpdate};

/// How often AddVersion seals again when concurrent AddVersions took the number it sealed for.
const ADD_ATTEMPTS: usize = 5;

/// A validated AddVersion request.
#[derive(Debug)]
pub struct NewVersionRequest {
    pub credential_id: CredentialId,
    pub secret: SecretPayload,
    pub disable_previous: bool,
    pub expected: Option<Etag>,
    pub idempotency_key: Option<IdempotencyKey>,
    /// Also verify the new secret with its provider once added.
    pub verify: bool,
}

/// The answer to AddVersion.
#[derive(Debug)]
pub struct VersionStored {
    pub credential: CredentialMetadata,
    pub version: VersionMetadata,
    /// True when an earlier AddVersion with the same idempotency key is being replayed.
    pub replayed: bool,
    /// The provider's verdict, when the request asked for one (never on a replay).
    pub verification: Option<crate::domain::Verification>,
}

/// The answer to a version's state change.
#[derive(Debug)]
pub struct VersionSet {
    pub credential: CredentialMetadata,
    pub version: VersionMetadata,
}

/// One page of ListVersions, newest first.
#[derive(Debug)]
pub struct VersionPage {
    pub versions: Vec<VersionMetadata>,
    /// The last version listed, when more follow.
    pub next: Option<VersionNumber>,
}

fn missing(id: CredentialId) -> impl FnOnce() -> VaultError {
    move || VaultError::NotFound(format!("no active credential {id} (unknown, or deleted)"))
}

impl Vault {
    /// The active credential `id`, for a caller with `scope` acting on it (another customer's
    /// credential is NOT_FOUND, and the refusal audited).
    pub(super) async fn credential_for(
        &self,
        ctx: &RequestContext,
        scope: Scope,
        id: CredentialId,
        attempt: &str,
    ) -> Result<CredentialMetadata, VaultError> {
        let found = self.store.fetch_sealed(CredentialSelector::Id(id), None).await?;
        let owner = found.as_ref().map(|f| f.metadata.customer_id);
        self.authorize_credential(ctx, scope, id, owner, attempt, missing(id)).await?;
        Ok(found.ok_or_else(missing(id))?.metadata)
    }

    /// Adds a version with a new secret of the credential's provider; it becomes current.
    #[tracing::instrument(skip_all, fields(credential_id = %request.credential_id))]
    pub async fn add_version(
        &self,
        ctx: RequestContext,
        request: NewVersionRequest,
    ) -> Result<VersionStored, VaultError> {
        self.ensure_ready()?;
        let id = request.credential_id;
        let mut credential = self.credential_for(&ctx, Scope::CredentialsWrite, id, "add a version").await?;
        request.secret.validate("secret")?;
        if request.secret.provider() != credential.provider {
            return Err(FieldViolation::new(
                "secret",
                format!(
                    "is a {} secret, but credential {id} is a {} credential; a new version keeps the provider",
                    request.secret.provider(),
                    credential.provider
                ),
            )
            .into());
        }
        let plaintext = request.secret.to_plaintext();
        let idempotency = request.idempotency_key.map(|key| {
            let fingerprint = self.fingerprint(&[
                id.as_bytes(),
                key.as_str().as_bytes(),
                &[u8::from(request.disable_previous)],
                &plaintext,
            ]);
            (key, fingerprint)
        });
        for _ in 0..ADD_ATTEMPTS {
            let number = credential.latest_version + 1;
            let sealed = self.seal(&binding_of(&credential, number), &plaintext).await?;
            let audit = ctx.audit(
                AuditAction::Rotated,
                Some(credential.customer_id),
                Some(id),
                format!(
                    "added version {number} of {} credential {:?}{}",
                    credential.provider,
                    credential.name.as_str(),
                    match credential.current_version {
                        Some(previous) if request.disable_previous =>
                            format!("; version {previous} disabled"),
                        _ => String::new(),
                    }
                ),
            );
            let new = NewVersion {
                credential_id: id,
                customer_id: credential.customer_id,
                version: number,
                sealed: sealed.bytes,
                key_version: sealed.key_version,
                disable_previous: request.disable_previous,
                expected: request.expected,
                idempotency: idempotency.clone(),
                created_by: ctx.actor(),
                now: OffsetDateTime::now_utc(),
            };
            match self.store.add_version(new, audit).await {
                Ok(VersionAdded::Added { credential, version }) => {
                    self.served.remove(id);
                    tracing::info!(version = version.version, "credential version added");
                    let (credential, verification) = if request.verify {
                        let (credential, verification) =
                            self.verify_written(&ctx, credential, &request.secret).await;
                        (credential, Some(verification))
                    } else {
                        (credential, None)
                    };
                    return Ok(VersionStored { credential, version, replayed: false, verification });
                }
                Ok(VersionAdded::Existing { credential, version, fingerprint }) => {
                    let sent = idempotency.as_ref().map(|(_, f)| *f).expect("only idempotent adds replay");
                    return if verify_slices_are_equal(&fingerprint, &sent).is_ok() {
                        Ok(VersionStored { credential, version, replayed: true, verification: None })
                    } else {
                        Err(FieldViolation::new(
                            "idempotency_key",
                            "was already used for a different AddVersion request; use a new key for new content",
                        )
                        .into())
                    };
                }
                // Another AddVersion took the number: seal for the next one.
                Err(StoreError::VersionTaken) => {
                    credential =
                        self.credential_for(&ctx, Scope::CredentialsWrite, id, "add a version").await?;
                }
                Err(StoreError::NotFound(_)) => return Err(missing(id)()),
                Err(other) => return Err(other.into()),
            }
        }
        Err(VaultError::Aborted(format!(
            "credential {id} was rotated by {ADD_ATTEMPTS} concurrent requests meanwhile; retry"
        )))
    }

    /// Disables, enables or destroys one version. Repeating a change that is already in effect
    /// answers the version as it is, and writes nothing.
    #[tracing::instrument(skip_all, fields(credential_id = %id, version, change = ?change))]
    pub async fn change_version(
        &self,
        ctx: RequestContext,
        id: CredentialId,
        version: VersionNumber,
        change: VersionChange,
        expected: Option<Etag>,
    ) -> Result<VersionSet, VaultError> {
        self.ensure_ready()?;
        let attempt = format!("{} a version", change.verb());
        let credential = self.credential_for(&ctx, Scope::CredentialsWrite, id, &attempt).await?;
        let (action, done) = match change {
            VersionChange::Disable => (AuditAction::VersionDisabled, "disabled"),
            VersionChange::Enable => (AuditAction::VersionEnabled, "enabled"),
            VersionChange::Destroy => (AuditAction::VersionDestroyed, "destroyed (its ciphertext deleted)"),
        };
        let audit = ctx.audit(
            action,
            Some(credential.customer_id),
            Some(id),
            format!(
                "{done} version {version} of {} credential {:?}",
                credential.provider,
                credential.name.as_str()
            ),
        );
        let update = VersionUpdate {
            credential_id: id,
            customer_id: credential.customer_id,
            version,
            change,
            expected,
        };
        let changed = self.store.change_version(update, audit, OffsetDateTime::now_utc()).await.map_err(
            |e| match e {
                StoreError::NotFound(what) if what.starts_with("active credential") => missing(id)(),
                other => other.into(),
            },
        )?;
        if changed.changed {
            self.served.remove(id);
            tracing::info!(state = %changed.version.state, "credential version changed");
        }
        Ok(VersionSet { credential: changed.credential, version: changed.version })
    }

    /// A credential's versions, newest first; never a secret.
    #[tracing::instrument(skip_all, fields(credential_id = %id))]
    pub async fn list_versions(
        &self,
        ctx: RequestContext,
        id: CredentialId,
        before: Option<VersionNumber>,
        page_size: u32,
    ) -> Result<VersionPage, VaultError> {
        self.ensure_ready()?;
        self.credential_for(&ctx, Scope::CredentialsRead, id, "list a credential's versions").await?;
        let mut versions = self.store.list_versions(id, before, page_size + 1).await?;
        let next = if versions.len() > page_size as usize {
            versions.truncate(page_size as usize);
            versions.last().map(|v| v.version)
        } else {
            None
        };
        Ok(VersionPage { versions, next })
    }
}
