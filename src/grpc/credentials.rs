//! `credvault.v1.CredentialService`.

use tonic::{Request, Response, Status};

use super::convert::{
    credential_to_proto, permission_from_proto, provider_filter_from_proto, provider_from_proto,
    secret_from_proto, secret_to_proto, summary_to_proto, verification_result_to_proto,
    verification_to_proto, version_to_proto,
};
use super::{context, invalid, status_from};
use crate::domain::{
    CredentialId, CredentialName, CredentialSelector, CredentialType, CustomerId, Etag, FieldViolation,
    IdempotencyKey, ListFilter, PageCursor, Summary, VersionChange, VersionCursor, quoted,
};
use crate::proto::{self as pb, credential_service_server::CredentialService};
use crate::vault::{CredentialChanges, NewCredentialRequest, NewVersionRequest, Vault, VerifyTarget};

/// The gRPC face of the vault's credential use cases.
pub struct CredentialApi {
    vault: Vault,
}

impl CredentialApi {
    pub fn new(vault: Vault) -> Self {
        Self { vault }
    }

    pub fn into_server(self) -> pb::credential_service_server::CredentialServiceServer<Self> {
        pb::credential_service_server::CredentialServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl CredentialService for CredentialApi {
    async fn store(&self, request: Request<pb::StoreRequest>) -> Result<Response<pb::StoreResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let parsed = (|| {
            let customer_id = CustomerId::parse(&r.customer_id, "customer_id")?;
            let name = CredentialName::parse(&r.credential_name, "credential_name")?;
            let permissions = permission_from_proto(r.permissions, "permissions")?;
            let idempotency_key = IdempotencyKey::parse_optional(&r.idempotency_key, "idempotency_key")?;
            let secret = secret_from_proto(r.secret, "secret")?;
            let credential_type =
                CredentialType::parse_or_default(&r.credential_type, secret.provider(), "credential_type")?;
            Ok(NewCredentialRequest {
                customer_id,
                name,
                credential_type,
                permissions,
                secret,
                idempotency_key,
                make_default: r.make_default,
                verify: r.verify,
            })
        })()
        .map_err(invalid)?;
        let stored = self.vault.store_credential(ctx, parsed).await.map_err(status_from)?;
        Ok(Response::new(pb::StoreResponse {
            credential: Some(credential_to_proto(stored.credential)),
            replayed: stored.replayed,
            verification: stored.verification.map(verification_result_to_proto),
        }))
    }

    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        use pb::get_request::Selector;
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let version = (r.version != 0).then_some(r.version);
        let selector = match r.selector {
            Some(Selector::CredentialId(id)) => {
                CredentialSelector::Id(CredentialId::parse(&id, "credential_id").map_err(invalid)?)
            }
            Some(Selector::ByProvider(by)) => CredentialSelector::Preferred {
                customer_id: CustomerId::parse(&by.customer_id, "by_provider.customer_id")
                    .map_err(invalid)?,
                provider: provider_from_proto(by.provider, "by_provider.provider").map_err(invalid)?,
            },
            None => {
                return Err(invalid(FieldViolation::new(
                    "selector",
                    "is required: set credential_id, or by_provider with customer_id and provider",
                )));
            }
        };
        let fetched = self.vault.get_credential(ctx, selector, version).await.map_err(status_from)?;
        Ok(Response::new(pb::GetResponse {
            secret: Some(secret_to_proto(&fetched.secret)),
            credential: Some(credential_to_proto(fetched.credential)),
            version: fetched.version,
        }))
    }

    async fn list(&self, request: Request<pb::ListRequest>) -> Result<Response<pb::ListResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let filter = (|| {
            Ok(ListFilter {
                customer_id: CustomerId::parse(&r.customer_id, "customer_id")?,
                provider: provider_filter_from_proto(r.provider, "provider")?,
                include_inactive: r.include_inactive,
                page_size: ListFilter::page_size_from_request(r.page_size, "page_size")?,
                after: match r.page_token.as_str() {
                    "" => None,
                    token => Some(PageCursor::decode(token, "page_token")?),
                },
            })
        })()
        .map_err(invalid)?;
        let page = self.vault.list_credentials(ctx, filter).await.map_err(status_from)?;
        Ok(Response::new(pb::ListResponse {
            credentials: page.credentials.into_iter().map(credential_to_proto).collect(),
            next_page_token: page.next.map(|c| c.encode()).unwrap_or_default(),
        }))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        use pb::verify_request::Target;
        let ctx = context(&self.vault, &request).await?;
        let target = match request.into_inner().target {
            Some(Target::CredentialId(id)) => {
                VerifyTarget::Stored(CredentialId::parse(&id, "credential_id").map_err(invalid)?)
            }
            Some(Target::Secret(secret)) => {
                VerifyTarget::Inline(secret_from_proto(Some(secret), "secret").map_err(invalid)?)
            }
            None => {
                return Err(invalid(FieldViolation::new(
                    "target",
                    "is required: set credential_id (a stored credential) or secret (inline, not stored)",
                )));
            }
        };
        let verified = self.vault.verify_credential(ctx, target).await.map_err(status_from)?;
        Ok(Response::new(verification_to_proto(verified)))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let id = CredentialId::parse(&request.get_ref().credential_id, "credential_id").map_err(invalid)?;
        let deleted = self.vault.delete_credential(ctx, id).await.map_err(status_from)?;
        Ok(Response::new(pb::DeleteResponse { credential: Some(credential_to_proto(deleted)) }))
    }

    async fn summary(
        &self,
        request: Request<pb::SummaryRequest>,
    ) -> Result<Response<pb::SummaryResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let message = request.get_ref();
        let customer_id = CustomerId::parse(&message.customer_id, "customer_id").map_err(invalid)?;
        let per_provider =
            Summary::credentials_per_provider(message.credentials_per_provider, "credentials_per_provider")
                .map_err(invalid)?;
        let summary = self.vault.summary(ctx, customer_id, per_provider).await.map_err(status_from)?;
        Ok(Response::new(summary_to_proto(summary)))
    }

    async fn add_version(
        &self,
        request: Request<pb::AddVersionRequest>,
    ) -> Result<Response<pb::AddVersionResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let parsed = (|| {
            Ok(NewVersionRequest {
                credential_id: CredentialId::parse(&r.credential_id, "credential_id")?,
                secret: secret_from_proto(r.secret, "secret")?,
                disable_previous: r.disable_previous,
                expected: Etag::parse_optional(&r.etag, "etag")?,
                idempotency_key: IdempotencyKey::parse_optional(&r.idempotency_key, "idempotency_key")?,
                verify: r.verify,
            })
        })()
        .map_err(invalid)?;
        let stored = self.vault.add_version(ctx, parsed).await.map_err(status_from)?;
        Ok(Response::new(pb::AddVersionResponse {
            credential: Some(credential_to_proto(stored.credential)),
            version: Some(version_to_proto(stored.version)),
            replayed: stored.replayed,
            verification: stored.verification.map(verification_result_to_proto),
        }))
    }

    async fn list_versions(
        &self,
        request: Request<pb::ListVersionsRequest>,
    ) -> Result<Response<pb::ListVersionsResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let (id, page_size, after) = (|| {
            Ok::<_, FieldViolation>((
                CredentialId::parse(&r.credential_id, "credential_id")?,
                ListFilter::page_size_from_request(r.page_size, "page_size")?,
                VersionCursor::decode_optional(&r.page_token, "page_token")?,
            ))
        })()
        .map_err(invalid)?;
        let page =
            self.vault.list_versions(ctx, id, after.map(|c| c.0), page_size).await.map_err(status_from)?;
        Ok(Response::new(pb::ListVersionsResponse {
            versions: page.versions.into_iter().map(version_to_proto).collect(),
            next_page_token: page.next.map(|n| VersionCursor(n).encode()).unwrap_or_default(),
        }))
    }

    async fn restore_credential(
        &self,
        request: Request<pb::RestoreCredentialRequest>,
    ) -> Result<Response<pb::RestoreCredentialResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let id = CredentialId::parse(&request.get_ref().credential_id, "credential_id").map_err(invalid)?;
        let restored = self.vault.restore_credential(ctx, id).await.map_err(status_from)?;
        Ok(Response::new(pb::RestoreCredentialResponse { credential: Some(credential_to_proto(restored)) }))
    }

    async fn purge_credential(
        &self,
        request: Request<pb::PurgeCredentialRequest>,
    ) -> Result<Response<pb::PurgeCredentialResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let id = CredentialId::parse(&request.get_ref().credential_id, "credential_id").map_err(invalid)?;
        let purged = self.vault.purge_credential(ctx, id).await.map_err(status_from)?;
        Ok(Response::new(pb::PurgeCredentialResponse { credential: Some(credential_to_proto(purged)) }))
    }

    async fn update_credential(
        &self,
        request: Request<pb::UpdateCredentialRequest>,
    ) -> Result<Response<pb::UpdateCredentialResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let (id, changes, expected) = (|| {
            let mut changes = CredentialChanges::default();
            let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
            for path in &paths {
                match path.as_str() {
                    "credential_name" => {
                        changes.name = Some(CredentialName::parse(&r.credential_name, "credential_name")?)
                    }
                    "credential_type" => changes.credential_type = Some(r.credential_type.clone()),
                    "permissions" => changes.permissions = Some(permission_from_proto(r.permissions, "permissions")?),
                    "is_default" => changes.is_default = Some(r.is_default),
                    other => {
                        return Err(FieldViolation::new(
                            "update_mask",
                            format!(
                                "names {}, which cannot be changed; use credential_name, credential_type, permissions                                  or is_default",
                                quoted(other)
                            ),
                        ));
                    }
                }
            }
            Ok((CredentialId::parse(&r.credential_id, "credential_id")?, changes, Etag::parse_optional(&r.etag, "etag")?))
        })()
        .map_err(invalid)?;
        let updated = self.vault.update_credential(ctx, id, changes, expected).await.map_err(status_from)?;
        Ok(Response::new(pb::UpdateCredentialResponse { credential: Some(credential_to_proto(updated)) }))
    }

    async fn disable_version(
        &self,
        request: Request<pb::DisableVersionRequest>,
    ) -> Result<Response<pb::DisableVersionResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let set =
            self.change_version(ctx, &r.credential_id, r.version, &r.etag, VersionChange::Disable).await?;
        Ok(Response::new(pb::DisableVersionResponse { credential: set.0, version: set.1 }))
    }

    async fn enable_version(
        &self,
        request: Request<pb::EnableVersionRequest>,
    ) -> Result<Response<pb::EnableVersionResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let set =
            self.change_version(ctx, &r.credential_id, r.version, &r.etag, VersionChange::Enable).await?;
        Ok(Response::new(pb::EnableVersionResponse { credential: set.0, version: set.1 }))
    }

    async fn destroy_version(
        &self,
        request: Request<pb::DestroyVersionRequest>,
    ) -> Result<Response<pb::DestroyVersionResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let set =
            self.change_version(ctx, &r.credential_id, r.version, &r.etag, VersionChange::Destroy).await?;
        Ok(Response::new(pb::DestroyVersionResponse { credential: set.0, version: set.1 }))
    }
}

impl CredentialApi {
    /// The three version changes share their fields and their answer.
    async fn change_version(
        &self,
        ctx: crate::vault::RequestContext,
        credential_id: &str,
        version: u32,
        etag: &str,
        change: VersionChange,
    ) -> Result<(Option<pb::Credential>, Option<pb::CredentialVersion>), Status> {
        let (id, expected) = (|| {
            if version == 0 {
                return Err(FieldViolation::new("version", "is required: a version number, 1 or more"));
            }
            Ok((CredentialId::parse(credential_id, "credential_id")?, Etag::parse_optional(etag, "etag")?))
        })()
        .map_err(invalid)?;
        let set = self.vault.change_version(ctx, id, version, change, expected).await.map_err(status_from)?;
        Ok((Some(credential_to_proto(set.credential)), Some(version_to_proto(set.version))))
    }
}
