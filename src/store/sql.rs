//! What both SQL backends do the same way: building a migrator from embedded files, timestamps
//! as stored, and the conflicts their unique indexes report. Each backend's own SQL stays in
//! its module; this holds only the parts that would otherwise be written twice.

use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::{ListFilter, quoted};

/// A migrator over `migrations` (version, description, SQL), embedded in the binary. With
/// `locking`, PostgreSQL's advisory lock makes instances starting together apply each
/// migration exactly once.
pub(super) fn migrator(migrations: &[(i64, &'static str, &'static str)], locking: bool) -> Migrator {
    let migrations = migrations
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                sqlx::SqlSafeStr::into_sql_str(*sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator { migrations: Cow::Owned(migrations), locking, ..Migrator::DEFAULT }
}

/// List's statements, one per combination of its optional filters (a provider; a cursor), each
/// a constant prepared once: a filter switched off by a NULL parameter (`$2 IS NULL OR provider
/// = $2`) cannot lead an index (nor, on PostgreSQL, in the generic plan it settles on), so a
/// provider's page or a later page would read the customer's rows from the newest.
pub(super) struct ListStatements {
    pub(super) all: &'static str,
    pub(super) by_provider: &'static str,
    pub(super) after: &'static str,
    pub(super) by_provider_after: &'static str,
}

impl ListStatements {
    /// The statement for `filter`'s filters.
    pub(super) fn pick(&self, filter: &ListFilter) -> &'static str {
        match (filter.provider.is_some(), filter.after.is_some()) {
            (false, false) => self.all,
            (true, false) => self.by_provider,
            (false, true) => self.after,
            (true, true) => self.by_provider_after,
        }
    }
}

/// A stored time, in microseconds since the Unix epoch.
pub(super) fn from_micros(value: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(value) * 1_000)
        .map_err(|e| StoreError::Other(format!("stored timestamp {value} out of range: {e}").into()))
}

/// `t` cut to the microsecond precision both backends store.
pub(super) fn to_stored_precision(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000).expect("truncating nanoseconds stays in range")
}

/// What a unique index refused, in words for the caller.
pub(super) enum Taken<'a> {
    CustomerEmail(&'a str),
    TokenName(&'a str),
    CredentialName { customer: crate::domain::CustomerId, provider: crate::domain::Provider, name: &'a str },
}

/// `e` as the store reports it: a unique index's refusal is a `Conflict` naming what is
/// `taken`; anything else as usual.
pub(super) fn conflict_on_unique(e: sqlx::Error, taken: Taken<'_>) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(match taken {
            Taken::CustomerEmail(email) => format!("a customer with email {} already exists", quoted(email)),
            Taken::TokenName(name) => format!("a token named {} already exists", quoted(name)),
            Taken::CredentialName { customer, provider, name } => {
                format!(
                    "customer {customer} already has an active {provider} credential named {}",
                    quoted(name)
                )
            }
        }),
        _ => e.into(),
    }
}

/// Active credentials per verification state (the rule of
/// [`crate::domain::CredentialMetadata::verification_state`], in SQL both backends run).
pub(super) const VERIFICATION_STATE_COUNTS: &str = "SELECT CASE \
     WHEN failing_since IS NOT NULL THEN 'failing' \
     WHEN is_verified THEN 'verified' \
     WHEN last_verified_at IS NOT NULL THEN 'invalid' \
     ELSE 'unverified' END AS state, count(*) AS credentials \
     FROM cloud_credentials WHERE is_active GROUP BY 1";

/// One customer's credentials counted per provider (the rule of
/// [`crate::domain::ProviderCounts::add`], in SQL both backends run; `$1` is the customer, a
/// placeholder SQLite reads as its first parameter too). Read from the index that carries every
/// column it looks at (`cloud_credentials_summary`); each count `FILTER`ed rather than a
/// `sum(CASE ...)`, which SQLite evaluates in ~2/3 of the time (1.9 against 2.9 ms over 10,000).
pub(super) const SUMMARY_COUNTS: &str = "SELECT provider, count(*) AS total, \
     count(*) FILTER (WHERE is_active) AS active, \
     count(*) FILTER (WHERE is_active AND is_verified) AS verified, \
     count(*) FILTER (WHERE is_active AND current_version IS NULL) AS disabled, \
     count(*) FILTER (WHERE NOT is_active AND purged_at IS NULL) AS pending_deletion, \
     count(*) FILTER (WHERE is_active AND failing_since IS NOT NULL) AS failing, \
     count(*) FILTER (WHERE is_active AND verification_findings IS NOT NULL) AS risky \
     FROM cloud_credentials WHERE customer_id = $1 GROUP BY provider";

/// [`crate::store::KeyStore::key_usage_present`]: every master-key version with whether it wraps
/// any data key or customer key (0 or 1), in SQL both backends run. `wrapping` finds the data
/// keys' distinct versions by one index seek each past the last (`ORDER BY ... LIMIT 1`: SQLite's
/// plan for `min()` walked the table by its primary key).
pub(super) const KEY_USAGE_PRESENT: &str = "WITH RECURSIVE wrapping(version) AS (\
     SELECT (SELECT key_version FROM credential_versions WHERE key_version IS NOT NULL \
     ORDER BY key_version LIMIT 1) \
     UNION ALL SELECT (SELECT key_version FROM credential_versions WHERE key_version > wrapping.version \
     ORDER BY key_version LIMIT 1) FROM wrapping WHERE wrapping.version IS NOT NULL) \
     SELECT CAST(version AS bigint) AS version, created_at, \
     CAST(CAST(EXISTS (SELECT 1 FROM credential_versions v WHERE v.key_version = k.version) AS integer) AS bigint) \
     AS data_keys, \
     CAST(CAST(EXISTS (SELECT 1 FROM customer_keys c WHERE c.key_version = k.version) AS integer) AS bigint) \
     AS customer_keys, made_current_at, retired_at FROM encryption_keys k \
     UNION ALL SELECT CAST(version AS bigint), NULL, CAST(1 AS bigint), CAST(0 AS bigint), NULL, NULL \
     FROM wrapping WHERE version IS NOT NULL AND version NOT IN (SELECT version FROM encryption_keys) \
     ORDER BY version";

/// The spread of scheduled verifications: the next one is due `interval` after a claim, give or
/// take a tenth, as (the least delay, the width of the random part), in microseconds.
pub(super) fn verify_jitter(interval: std::time::Duration) -> (i64, i64) {
    let micros = i64::try_from(interval.as_micros()).unwrap_or(i64::MAX / 2);
    let spread = (micros / 5).max(1);
    (micros - spread / 2, spread)
}
