//! Who may do what: scopes, the customer a token is bound to, and the authenticated caller.

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use super::{CustomerId, FieldViolation, TokenId};

/// One permission a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Store, Delete, Restore, updates and versions.
    CredentialsWrite,
    /// List, Summary: metadata only.
    CredentialsRead,
    /// Get: the plaintext secret.
    SecretsRead,
    /// Verify against the provider.
    CredentialsVerify,
    /// Read the audit log.
    AuditRead,
    /// Customers and tokens.
    Admin,
    /// PurgeCredential: destroy every version of a credential now, past any recovery.
    CredentialsPurge,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::CredentialsWrite,
        Scope::CredentialsRead,
        Scope::SecretsRead,
        Scope::CredentialsVerify,
        Scope::AuditRead,
        Scope::Admin,
        Scope::CredentialsPurge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::CredentialsWrite => "credentials:write",
            Scope::CredentialsRead => "credentials:read",
            Scope::SecretsRead => "secrets:read",
            Scope::CredentialsVerify => "credentials:verify",
            Scope::AuditRead => "audit:read",
            Scope::Admin => "admin",
            Scope::CredentialsPurge => "credentials:purge",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub fn all() -> Self {
        Self::ALL_BITS
    }

    const ALL_BITS: Scopes = Scopes((1 << Scope::ALL.len()) - 1);

    /// Parses a comma- or space-separated list, e.g. `secrets:read,credentials:read`; `*` is
    /// every scope.
    pub fn parse(list: &str, field: &str) -> Result<Self, FieldViolation> {
        let mut scopes = Scopes::default();
        for name in list.split([',', ' ']).filter(|s| !s.is_empty()) {
            if name == "*" {
                return Ok(Self::all());
            }
            let scope = Scope::parse(name).ok_or_else(|| {
                FieldViolation::new(
                    field,
                    format!("unknown scope {}; expected some of {}", super::quoted(name), Scopes::all()),
                )
            })?;
            scopes.0 |= scope.bit();
        }
        if scopes.0 == 0 {
            return Err(FieldViolation::new(field, format!("is empty; give some of {}", Scopes::all())));
        }
        Ok(scopes)
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl From<Scope> for Scopes {
    fn from(scope: Scope) -> Self {
        Scopes(scope.bit())
    }
}

/// Space-separated, in a fixed order: the stored form.
impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
            first = false;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

/// Which customers' data a token reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerBinding {
    /// Every customer (`*`): the platform's own services.
    All,
    One(CustomerId),
}

impl CustomerBinding {
    /// `*` or a customer id.
    pub fn parse(value: &str, field: &str) -> Result<Self, FieldViolation> {
        match value {
            "*" => Ok(CustomerBinding::All),
            id => CustomerId::parse(id, field).map(CustomerBinding::One).map_err(|v| {
                FieldViolation::new(v.field, "must be * (every customer) or one customer's id (a UUID)")
            }),
        }
    }

    pub fn allows(self, customer: CustomerId) -> bool {
        match self {
            CustomerBinding::All => true,
            CustomerBinding::One(bound) => bound == customer,
        }
    }
}

impl fmt::Display for CustomerBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CustomerBinding::All => f.write_str("*"),
            CustomerBinding::One(id) => id.fmt(f),
        }
    }
}

/// A token's name: 1 to 64 letters, digits, `-`, `_` or `.`; it names the caller in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(Arc<str>);

impl TokenName {
    pub fn parse(value: &str, field: &str) -> Result<Self, FieldViolation> {
        let ok = (1..=64).contains(&value.len())
            && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(Self(value.into()))
        } else {
            Err(FieldViolation::new(field, "must be 1 to 64 letters, digits, '-', '_' or '.'"))
        }
    }

    pub fn from_stored(value: String) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An API token as stored: never its secret, only a hash of it.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: TokenId,
    pub name: TokenName,
    pub scopes: Scopes,
    pub customer: CustomerBinding,
    /// SHA-256 of the token's 32 random secret bytes.
    pub secret_hash: [u8; 32],
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl TokenRecord {
    /// Whether the token may be used at `now`.
    pub fn usable_at(&self, now: OffsetDateTime) -> Result<(), &'static str> {
        if self.revoked_at.is_some() {
            Err("the token was revoked")
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Err("the token has expired")
        } else {
            Ok(())
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: TokenId,
    pub name: TokenName,
    pub scopes: Scopes,
    pub customer: CustomerBinding,
}

impl Principal {
    /// The background purger, as the audit log names it.
    pub fn purger() -> Self {
        Principal { name: TokenName::from_stored("purger".into()), ..Self::operator() }
    }

    /// The background rewrap (master-key rotation), as the audit log names it.
    pub fn rewrap() -> Self {
        Principal { name: TokenName::from_stored("rewrap".into()), ..Self::operator() }
    }

    /// Scheduled re-verification, as the audit log names it.
    pub fn verifier() -> Self {
        Principal { name: TokenName::from_stored("verifier".into()), ..Self::operator() }
    }

    /// The operator at a terminal (`credvault` CLI commands): every scope, every customer.
    pub fn operator() -> Self {
        Principal {
            token_id: TokenId::from_uuid(uuid::Uuid::nil()),
            name: TokenName::from_stored("cli".into()),
            scopes: Scopes::all(),
            customer: CustomerBinding::All,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_print_and_refuse_unknown_names() {
        let scopes = Scopes::parse("secrets:read, credentials:read", "scopes").unwrap();
        assert!(scopes.contains(Scope::SecretsRead) && scopes.contains(Scope::CredentialsRead));
        assert!(!scopes.contains(Scope::Admin));
        assert_eq!(scopes.to_string(), "credentials:read secrets:read");
        assert_eq!(Scopes::parse(&scopes.to_string(), "s").unwrap(), scopes);
        assert_eq!(Scopes::parse("*", "s").unwrap(), Scopes::all());
        assert_eq!(Scopes::all().iter().count(), 7);
        let err = Scopes::parse("secrets:write", "scopes").unwrap_err();
        assert!(err.description.contains("unknown scope") && err.description.contains("secrets:read"));
        assert!(Scopes::parse(" , ", "scopes").is_err());
    }

    #[test]
    fn a_binding_allows_its_customer_only() {
        let a = CustomerId::new_random();
        let b = CustomerId::new_random();
        assert!(CustomerBinding::All.allows(a));
        let one = CustomerBinding::parse(&a.to_string(), "customer").unwrap();
        assert!(one.allows(a) && !one.allows(b));
        assert!(CustomerBinding::parse("everyone", "customer").is_err());
    }

    #[test]
    fn token_names_are_plain() {
        assert!(TokenName::parse("collector-1.prod", "name").is_ok());
        for bad in ["", "has space", "x".repeat(65).as_str(), "naïve"] {
            assert!(TokenName::parse(bad, "name").is_err(), "{bad}");
        }
    }
}
