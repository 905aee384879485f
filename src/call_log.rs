//! One DEBUG line per gRPC and REST call (`RUST_LOG=credvault=debug`): the method or route
//! template, the status, the latency, the caller's token name and address; never a secret, a
//! request body or a header value. The listeners' layers ([`crate::metrics`]) put a
//! [`CallIdentity`] in each request's extensions while DEBUG is on, the transports record in it
//! who the caller turned out to be, and the layer writes the line when the call ends.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::domain::TokenName;

/// Who made one call, as far as the transport learned it.
#[derive(Debug, Clone, Default)]
pub struct CallIdentity(Arc<Learned>);

#[derive(Debug, Default)]
struct Learned {
    token: OnceLock<TokenName>,
    client: OnceLock<IpAddr>,
}

impl CallIdentity {
    /// A new identity for a call, only while DEBUG lines are written (else nothing is kept).
    pub(crate) fn for_new_call() -> Option<Self> {
        tracing::enabled!(tracing::Level::DEBUG).then(Self::default)
    }

    /// The client's address, as the audit log records it.
    pub fn record_client(&self, client: Option<IpAddr>) {
        if let Some(client) = client {
            let _ = self.0.client.set(client);
        }
    }

    /// The name of the token the call authenticated with.
    pub fn record_token(&self, token: &TokenName) {
        let _ = self.0.token.set(token.clone());
    }

    /// The call's line: `call` is the gRPC method or the REST method and route template.
    pub(crate) fn log(&self, transport: &'static str, call: &str, status: &str, elapsed: Duration) {
        tracing::debug!(
            transport,
            call,
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            token = self.0.token.get().map_or("-", TokenName::as_str),
            client = %self.0.client.get().map_or_else(|| "-".to_owned(), ToString::to_string),
            "call"
        );
    }
}
