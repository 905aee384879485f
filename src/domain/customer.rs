//! Customers: who owns credentials, and whether they may use them now.

use std::fmt;

use time::OffsetDateTime;

use super::{CustomerId, FieldViolation};

/// Where a customer stands (the seed's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CustomerStatus {
    #[default]
    Active,
    Trial,
    Suspended,
    Cancelled,
}

impl CustomerStatus {
    pub const ALL: [CustomerStatus; 4] =
        [CustomerStatus::Active, CustomerStatus::Trial, CustomerStatus::Suspended, CustomerStatus::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            CustomerStatus::Active => "active",
            CustomerStatus::Trial => "trial",
            CustomerStatus::Suspended => "suspended",
            CustomerStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the customer's secrets may be handed out and new credentials stored.
    pub fn in_good_standing(self) -> bool {
        matches!(self, CustomerStatus::Active | CustomerStatus::Trial)
    }
}

impl fmt::Display for CustomerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The customer's plan (the seed's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionTier {
    #[default]
    Free,
    Starter,
    Professional,
    Enterprise,
}

impl SubscriptionTier {
    pub const ALL: [SubscriptionTier; 4] = [
        SubscriptionTier::Free,
        SubscriptionTier::Starter,
        SubscriptionTier::Professional,
        SubscriptionTier::Enterprise,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionTier::Free => "free",
            SubscriptionTier::Starter => "starter",
            SubscriptionTier::Professional => "professional",
            SubscriptionTier::Enterprise => "enterprise",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A customer's contact email: one `@`, something either side, at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(value: &str, field: &str) -> Result<Self, FieldViolation> {
        let value = value.trim();
        let ok = value.len() <= 254
            && value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !value.contains(char::is_whitespace)
            });
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(FieldViolation::new(field, "is not an email address like ops@example.com"))
        }
    }

    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A customer as stored.
#[derive(Debug, Clone)]
pub struct Customer {
    pub id: CustomerId,
    pub email: Email,
    pub company_name: String,
    pub status: CustomerStatus,
    pub tier: SubscriptionTier,
    pub created_at: OffsetDateTime,
    /// How long a deleted credential can be restored before the purger destroys it.
    pub recovery_window: std::time::Duration,
}

/// The longest recovery window a customer may have: a year.
pub const MAX_RECOVERY_WINDOW: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// Checks a company name: 1 to 255 characters after trimming.
pub fn company_name(value: &str, field: &str) -> Result<String, FieldViolation> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 255 {
        Err(FieldViolation::new(field, "must be 1 to 255 characters"))
    } else {
        Ok(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_active_and_trial_customers_are_in_good_standing() {
        for status in CustomerStatus::ALL {
            assert_eq!(CustomerStatus::parse(status.as_str()), Some(status));
        }
        assert!(CustomerStatus::Trial.in_good_standing());
        assert!(!CustomerStatus::Suspended.in_good_standing());
        assert!(!CustomerStatus::Cancelled.in_good_standing());
    }

    #[test]
    fn emails_are_checked_loosely_but_surely() {
        assert_eq!(Email::parse(" ops@example.com ", "email").unwrap().as_str(), "ops@example.com");
        for bad in ["", "ops", "@example.com", "ops@", "a@b@c", "o ps@example.com"] {
            assert!(Email::parse(bad, "email").is_err(), "{bad}");
        }
    }
}
