//! The vault's one error enum, in domain words: what each transport maps to its codes.

use std::time::Duration;

use crate::domain::FieldViolation;
use crate::store::StoreError;
use crate::telemetry::RateLimited;

/// What went wrong in a use case, in domain words. Each transport maps it to its own codes in
/// exactly one function. Messages are safe to show clients: they never carry SQL, keys or
/// secrets, and say what the caller can do.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("invalid argument: {0}")]
    InvalidArgument(FieldViolation),
    /// No valid token: missing, malformed, unknown, expired or revoked.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid token without the scope, or for another customer. Audited as `denied`.
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// A conditional change whose etag no longer matches: re-read and retry.
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Unimplemented(String),
    /// Stored data is corrupt or was tampered with.
    #[error("{0}")]
    DataLoss(String),
    /// Something unexpected; the cause was logged where it happened.
    #[error("internal error")]
    Internal,
}

impl From<FieldViolation> for VaultError {
    fn from(v: FieldViolation) -> Self {
        VaultError::InvalidArgument(v)
    }
}

impl From<StoreError> for VaultError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => VaultError::NotFound(format!("{what} not found")),
            StoreError::Conflict(why) => VaultError::AlreadyExists(why),
            StoreError::Stale(why) => VaultError::Aborted(why),
            StoreError::FailedPrecondition(why) => VaultError::FailedPrecondition(why),
            StoreError::Unavailable(source) => {
                // While it lasts, every call fails this way: a line every few seconds is enough.
                static UNAVAILABLE: RateLimited = RateLimited::new(Duration::from_secs(5));
                if let Some(held_back) = UNAVAILABLE.allow() {
                    tracing::warn!(error = %error_chain(source.as_ref()), held_back, "database unavailable");
                }
                VaultError::Unavailable("the credential database is unavailable; retry shortly".into())
            }
            StoreError::ReadOnly(why) => {
                static READ_ONLY: RateLimited = RateLimited::new(Duration::from_secs(5));
                if let Some(held_back) = READ_ONLY.allow() {
                    tracing::warn!(reason = %why, held_back, "database read-only");
                }
                VaultError::Unavailable(
                    "the credential database cannot be written right now; retry shortly".into(),
                )
            }
            other => {
                tracing::error!(error = %error_chain(&other), "storage failure");
                VaultError::Internal
            }
        }
    }
}

/// An error and all its causes on one line, for logs.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
