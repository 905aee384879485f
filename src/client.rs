//! Client-side helpers for programs that call credvault over gRPC (the load generator, tests).

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::proto::credential_service_client::CredentialServiceClient;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Fails if the token holds characters a header cannot carry.
    pub fn new(token: &str) -> Result<Self, String> {
        let mut value: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| "the token holds characters a header cannot carry".to_owned())?;
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }

    /// Sends no token: what an unauthenticated caller sees.
    pub fn anonymous() -> Self {
        Self(None)
    }
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer([REDACTED])")
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A credential-service client that authenticates every call.
pub type Client = CredentialServiceClient<InterceptedService<Channel, Bearer>>;

pub fn client(channel: Channel, bearer: Bearer) -> Client {
    CredentialServiceClient::with_interceptor(channel, bearer)
}
