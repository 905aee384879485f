//! The gRPC transport: proto messages in, domain values to the vault, proto messages out.
//! [`status_from`] is the one place vault errors become gRPC statuses.

mod audit;
mod convert;
mod credentials;
mod customers;
mod keys;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub use audit::AuditApi;
pub use credentials::CredentialApi;
pub use customers::CustomerApi;
pub use keys::KeyApi;

use crate::call_log::CallIdentity;
use crate::domain::FieldViolation;
use crate::vault::{RequestContext, Vault, VaultError};

/// Maps a vault error to the gRPC status clients see. Field errors carry the standard
/// `google.rpc.BadRequest` detail naming the field, so generated clients can read it.
pub fn status_from(err: VaultError) -> Status {
    match err {
        VaultError::InvalidArgument(v) => invalid_argument(v),
        VaultError::Unauthenticated(m) => Status::unauthenticated(m),
        VaultError::PermissionDenied(m) => Status::permission_denied(m),
        VaultError::NotFound(m) => Status::not_found(m),
        VaultError::AlreadyExists(m) => Status::already_exists(m),
        VaultError::FailedPrecondition(m) => Status::failed_precondition(m),
        VaultError::Aborted(m) => Status::aborted(m),
        VaultError::Unavailable(m) => Status::unavailable(m),
        VaultError::Unimplemented(m) => Status::unimplemented(m),
        VaultError::DataLoss(m) => Status::data_loss(m),
        VaultError::Internal => Status::internal("internal error; the server log has the details"),
    }
}

/// A request field that failed parsing.
fn invalid(v: FieldViolation) -> Status {
    invalid_argument(v)
}

fn invalid_argument(v: FieldViolation) -> Status {
    let message = v.to_string();
    Status::with_error_details(
        Code::InvalidArgument,
        message,
        ErrorDetails::with_bad_request_violation(v.field, v.description),
    )
}

/// Authenticates the call (`authorization: Bearer ...` metadata) and records who is asking.
async fn context<T>(vault: &Vault, request: &tonic::Request<T>) -> Result<RequestContext, Status> {
    let mut values =
        request.metadata().get_all("authorization").iter().map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let authorization = values.next();
    // Two different tokens on one call: which caller is it? Refused rather than taking the first.
    if values.any(|other| Some(other) != authorization) {
        return Err(invalid(FieldViolation::new(
            "authorization",
            "metadata is given more than once with different values; send one bearer token",
        )));
    }
    let peer_ip = vault.client_ip(
        request.remote_addr().map(|addr| addr.ip()),
        request.metadata().get("x-forwarded-for").and_then(|v| v.to_str().ok()),
    );
    let identity = request.extensions().get::<CallIdentity>();
    if let Some(identity) = identity {
        identity.record_client(peer_ip);
    }
    let principal = vault.authenticate(authorization).await.map_err(status_from)?;
    if let Some(identity) = identity {
        identity.record_token(&principal.name);
    }
    Ok(RequestContext { principal: Some(principal), peer_ip, acting_for: None })
}
