//! Which credential a Get asks for: by id, or a customer's preferred one of a provider.

use super::{CredentialId, CustomerId, Provider};

/// Which active credential a Get wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSelector {
    /// One credential by id.
    Id(CredentialId),
    /// The customer's preferred active credential of a provider: the one marked default, else
    /// the most recently stored verified one, else the most recently stored one.
    Preferred { customer_id: CustomerId, provider: Provider },
}
