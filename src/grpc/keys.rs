//! `credvault.v1.KeyService` (admin scope, every customer): the master key's versions, rotating
//! to a new one, and turning customer keys on.

use tonic::{Request, Response, Status};

use super::convert::timestamp;
use super::{context, status_from};
use crate::proto::{self as pb, key_service_server::KeyService};
use crate::vault::Vault;

pub struct KeyApi {
    vault: Vault,
}

impl KeyApi {
    pub fn new(vault: Vault) -> Self {
        Self { vault }
    }

    pub fn into_server(self) -> pb::key_service_server::KeyServiceServer<Self> {
        pb::key_service_server::KeyServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl KeyService for KeyApi {
    async fn get_key_status(
        &self,
        request: Request<pb::GetKeyStatusRequest>,
    ) -> Result<Response<pb::GetKeyStatusResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let status = self.vault.key_status(&ctx).await.map_err(status_from)?;
        let versions = status
            .versions
            .into_iter()
            .map(|v| pb::KeyVersion {
                version: v.version,
                state: v.state.as_str().to_owned(),
                data_keys: v.data_keys,
                recorded_at: v.recorded_at.map(timestamp),
                customer_keys: v.customer_keys,
            })
            .collect();
        Ok(Response::new(pb::GetKeyStatusResponse {
            versions,
            customer_keys_since: status.customer_keys_since.map(timestamp),
            shredded_customers: status.shredded_customers,
        }))
    }

    async fn enable_customer_keys(
        &self,
        request: Request<pb::EnableCustomerKeysRequest>,
    ) -> Result<Response<pb::EnableCustomerKeysResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let since = self.vault.enable_customer_keys(&ctx).await.map_err(status_from)?;
        Ok(Response::new(pb::EnableCustomerKeysResponse { since: Some(timestamp(since)) }))
    }

    async fn rotate_key(
        &self,
        request: Request<pb::RotateKeyRequest>,
    ) -> Result<Response<pb::RotateKeyResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let version = Some(request.get_ref().version).filter(|v| *v != 0);
        let rotated = self.vault.rotate_key(&ctx, version).await.map_err(status_from)?;
        Ok(Response::new(pb::RotateKeyResponse {
            version: rotated.version,
            previous_version: rotated.previous,
        }))
    }
}
