//! Ids: customers', credentials' and tokens' UUIDs, parsed from requests, and new audit row ids.

use std::fmt;

use uuid::Uuid;

use super::FieldViolation;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Parses a request field holding a UUID; `field` names it in the error.
            pub fn parse(value: &str, field: &str) -> Result<Self, FieldViolation> {
                if value.is_empty() {
                    return Err(FieldViolation::new(field, "is required (a UUID)"));
                }
                Uuid::try_parse(value).map(Self).map_err(|_| {
                    FieldViolation::new(
                        field,
                        "is not a valid UUID (expected 8-4-4-4-12 hex digits, e.g. a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11)",
                    )
                })
            }

            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A customer's id.
    CustomerId
);
uuid_id!(
    /// A credential's id.
    CredentialId
);

uuid_id!(
    /// An API token's id (the public half of a bearer token).
    TokenId
);

impl TokenId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl CredentialId {
    /// A new credential's id: time-ordered (UUIDv7: milliseconds, then 74 random bits), so that
    /// the indexes keyed by it (the credentials' primary key, the versions') grow at their end:
    /// a random id dirtied a random page of each per Store, written to the WAL and synced before
    /// its answer. It tells nothing its metadata's `created_at` does not.
    pub fn new_random() -> Self {
        Self(Uuid::now_v7())
    }
}

impl CustomerId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

/// A new audit row's id: time-ordered (UUIDv7), so the log's primary-key index grows at its
/// end instead of dirtying a random page per row.
pub fn new_audit_row_id() -> Uuid {
    Uuid::now_v7()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_uuid_and_names_the_field_when_malformed() {
        let id = CustomerId::parse("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "customer_id").unwrap();
        assert_eq!(id.to_string(), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");

        let err = CustomerId::parse("not-a-uuid", "customer_id").unwrap_err();
        assert_eq!(err.field, "customer_id");
        assert!(err.description.contains("not a valid UUID"));

        let err = CredentialId::parse("", "credential_id").unwrap_err();
        assert!(err.description.contains("required"));
    }
}
