//! The cloud providers credvault holds keys for, and the permission a stored key grants.

use std::fmt;

/// A cloud provider whose credentials credvault holds.
///
/// Adding a provider: a variant here, its secret fields in [`super::SecretPayload`], its case in
/// the proto `CredentialSecret` oneof, and its verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    Vultr,
    Aws,
    Gcp,
    Azure,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Provider::Vultr, Provider::Aws, Provider::Gcp, Provider::Azure];

    /// The stable lowercase name used in the database, the REST API and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Vultr => "vultr",
            Provider::Aws => "aws",
            Provider::Gcp => "gcp",
            Provider::Azure => "azure",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The credential type recorded when the request does not name one.
    pub fn default_credential_type(self) -> &'static str {
        match self {
            Provider::Vultr => "api_key",
            Provider::Aws => "access_key",
            Provider::Gcp => "service_account",
            Provider::Azure => "client_secret",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the customer says a credential may do at its provider (the seed's `permissions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Permission {
    #[default]
    ReadOnly,
    ReadWrite,
    Admin,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ReadOnly => "read_only",
            Permission::ReadWrite => "read_write",
            Permission::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Permission::ReadOnly, Permission::ReadWrite, Permission::Admin]
            .into_iter()
            .find(|p| p.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.as_str()), Some(p));
        }
        assert_eq!(Provider::parse("digitalocean"), None);
        for p in [Permission::ReadOnly, Permission::ReadWrite, Permission::Admin] {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
    }
}
