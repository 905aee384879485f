//! The shared backend: PostgreSQL, for many stateless credvault instances on one database.
//!
//! The pool connects lazily, so a server can start while the database is still down (the vault
//! reports UNAVAILABLE and health NOT_SERVING until [`Store::migrate`] succeeds). Changes that
//! touch one row are single statements (a data-modifying CTE updates the row and inserts its
//! audit row atomically, in one round trip); Get's uses are committed in groups
//! ([`committers`]); Store is a short transaction.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions as _, Connection as _, Postgres, Row, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    ChainReport, Inserted, NewCredential, NewCustomer, PoolSettings, SealedCredential, Store, StoreError,
    UseClaim,
};
use crate::domain::{
    AuditAction, AuditEntry, AuditEvent, AuditFilter, AuditSigner, CredentialId, CredentialMetadata,
    CredentialSelector, Cursor, Customer, CustomerId, CustomerStatus, ListFilter, Provider, TokenId,
    TokenName, TokenRecord, VersionChange, VersionMetadata, VersionNumber, quoted,
};
use crate::store::rows::{self, StoredRow};
use crate::store::sql::{Taken, conflict_on_unique, from_micros, to_stored_precision};

macro_rules! audit_columns {
    () => {
        "id, credential_id, customer_id, action, action_details, host(ip_address) AS ip_address, actor, \
         created_at, row_mac"
    };
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../../../migrations/postgres/0001_initial.sql")),
    (2, "tokens", include_str!("../../../migrations/postgres/0002_tokens.sql")),
    (3, "audit seal", include_str!("../../../migrations/postgres/0003_audit_seal.sql")),
    (4, "audit chain", include_str!("../../../migrations/postgres/0004_audit_chain.sql")),
    (5, "versions", include_str!("../../../migrations/postgres/0005_versions.sql")),
    (6, "recovery window", include_str!("../../../migrations/postgres/0006_recovery_window.sql")),
    (7, "key rotation", include_str!("../../../migrations/postgres/0007_key_rotation.sql")),
    (8, "key retirement", include_str!("../../../migrations/postgres/0008_key_retirement.sql")),
    (9, "customer keys", include_str!("../../../migrations/postgres/0009_customer_keys.sql")),
    (10, "verification state", include_str!("../../../migrations/postgres/0010_verification_state.sql")),
    (11, "summary counts", include_str!("../../../migrations/postgres/0011_summary_counts.sql")),
    (12, "list by provider", include_str!("../../../migrations/postgres/0012_list_by_provider.sql")),
    (13, "audit by tx btree", include_str!("../../../migrations/postgres/0013_audit_by_tx_btree.sql")),
    (14, "credential uses", include_str!("../../../migrations/postgres/0014_credential_uses.sql")),
];

fn migrator() -> Migrator {
    crate::store::sql::migrator(MIGRATIONS, true)
}

/// A credential's metadata columns, optionally each prefixed (`"cred."`), its usage counted in:
/// what its row stores plus what its Gets added in `credential_uses` (migration 0014), found by
/// its primary key. Where the statement joins `credential_uses` itself, [`usage_columns!`] with
/// [`stored_credential_columns!`] reads it once instead of twice.
macro_rules! credential_columns {
    () => {
        credential_columns!("")
    };
    ($p:literal) => {
        concat!(
            stored_credential_columns!($p),
            ", ",
            $p,
            "usage_count + coalesce((SELECT u.uses FROM credential_uses u WHERE u.credential_id = ",
            $p,
            "id), 0) AS usage_count, greatest(",
            $p,
            "last_used_at, (SELECT u.last_used_at FROM credential_uses u WHERE u.credential_id = ",
            $p,
            "id)) AS last_used_at"
        )
    };
}

/// A credential's usage as `usage_count` and `last_used_at`, from its row (prefix `$stored`) and
/// its row in `credential_uses` (prefix `$uses`; NULLs when it has none).
macro_rules! usage_columns {
    ($stored:literal, $uses:literal) => {
        concat!(
            $stored,
            "usage_count + coalesce(",
            $uses,
            "uses, 0) AS usage_count, greatest(",
            $stored,
            "last_used_at, ",
            $uses,
            "last_used_at) AS last_used_at"
        )
    };
}

/// A credential's metadata columns but its usage (`usage_count`, `last_used_at`), optionally
/// each prefixed: for statements that read the usage another way (joining `credential_uses`
/// for [`usage_columns!`], or returning the count they just made).
macro_rules! stored_credential_columns {
    ($p:literal) => {
        concat!(
            $p,
            "id, ",
            $p,
            "customer_id, ",
            $p,
            "provider, ",
            $p,
            "credential_name, ",
            $p,
            "credential_type, ",
            $p,
            "permissions, ",
            $p,
            "is_active, ",
            $p,
            "is_verified, ",
            $p,
            "is_default, ",
            $p,
            "last_verified_at, ",
            $p,
            "created_at, ",
            $p,
            "updated_at, ",
            $p,
            "current_version, ",
            $p,
            "latest_version, ",
            $p,
            "rotated_at, ",
            $p,
            "revision, ",
            $p,
            "purge_at, ",
            $p,
            "purged_at, ",
            $p,
            "verified_identity, ",
            $p,
            "verification_findings, ",
            $p,
            "verification_failures, ",
            $p,
            "first_failed_at, ",
            $p,
            "failing_since"
        )
    };
}

/// Soft-deletes the active credentials `$which` selects (`$at` is the time): each is scheduled
/// for purge after its customer's recovery window.
macro_rules! soft_deleting {
    ($at:literal, $which:literal) => {
        concat!(
            "UPDATE cloud_credentials SET is_active = false, is_default = false, updated_at = ",
            $at,
            ", deleted_at = ",
            $at,
            ", purge_at = ",
            $at,
            " + make_interval(secs => (SELECT recovery_window_secs FROM customers \
               WHERE customers.id = cloud_credentials.customer_id)), \
             revision = revision + 1 WHERE is_active AND ",
            $which
        )
    };
}

/// A single-row change and its audit row as ONE statement: the audit insert takes its credential
/// and customer ids from the CTE `changed`, so it inserts nothing when the change matched no row.
/// `$1`..`$7` are the audit row's (see [`audited`]); the change's own parameters start at `$8`.
macro_rules! audited_change {
    ($change:expr) => {
        audited_change!($change, "")
    };
    // `$also`: more CTEs (", name AS (...)"), which may read `changed`.
    ($change:expr, $also:expr) => {
        concat!(
            "WITH changed AS (",
            $change,
            " RETURNING ",
            credential_columns!(),
            ")",
            $also,
            ", audit AS (INSERT INTO credential_audit_log \
             (id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac) \
             SELECT $1, id, customer_id, $2, $3, $4::inet, $6, $5, $7 FROM changed) \
             SELECT * FROM changed"
        )
    };
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Starts an `audited_change!` query with the audit row's parameters bound.
fn audited<'q>(
    sql: &'static str,
    signer: Option<&dyn AuditSigner>,
    audit: &'q AuditEntry,
    now: OffsetDateTime,
) -> PgQuery<'q> {
    let id = crate::domain::new_audit_row_id();
    let now = to_stored_precision(now);
    let mac = signer.map(|signer| audit.to_event(id, now).mac(signer));
    sqlx::query(sql)
        .bind(id)
        .bind(audit.action.as_str())
        .bind(&audit.details)
        .bind(audit.ip_address.map(|ip| ip.to_string()))
        .bind(now)
        .bind(audit.actor.as_ref().map(TokenName::as_str))
        .bind(mac)
}

mod committers;
mod refused;

// The Store traits, one aggregate per file.
mod audit;
mod credentials;
mod customer_keys;
mod customers;
mod import;
mod inserts;
mod keys;
mod life;
mod seed;
mod tokens;
mod versions;

pub struct PostgresStore {
    pool: PgPool,
    signer: Option<Arc<dyn AuditSigner>>,
    /// Get's audited uses, committed in groups (see [`committers`]).
    uses: super::group_commit::Group<committers::UseCommitter>,
    /// Stores that do not move a default, committed in groups.
    stores: super::group_commit::Group<committers::StoreCommitter>,
    /// Forged rows the sealer has reported (see [`refused`]).
    refused: refused::Refused,
}

impl PostgresStore {
    /// Builds the pool without connecting: connections are made on first use and re-made after
    /// the database comes back.
    pub fn connect_lazy(
        url: &str,
        settings: &PoolSettings,
        signer: Option<Arc<dyn AuditSigner>>,
    ) -> Result<Self, StoreError> {
        let statement_timeout = format!("{}ms", settings.statement_timeout.as_millis());
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("credvault")
            .options([("statement_timeout", statement_timeout.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(0)
            // Waiting for a connection (including connecting) is bounded, so calls fail fast with
            // UNAVAILABLE while the database is down instead of hanging.
            .acquire_timeout(settings.connect_timeout)
            // Keep connections warm: re-connecting per burst costs more than idling.
            .idle_timeout(None)
            .max_lifetime(std::time::Duration::from_secs(30 * 60))
            .connect_lazy_with(options);
        let uses = super::group_commit::Group::start(committers::UseCommitter {
            pool: pool.clone(),
            signer: signer.clone(),
        });
        let stores = super::group_commit::Group::start(committers::StoreCommitter {
            pool: pool.clone(),
            signer: signer.clone(),
        });
        Ok(Self { pool, signer, uses, stores, refused: refused::Refused::default() })
    }

    fn signer(&self) -> Option<&dyn AuditSigner> {
        self.signer.as_deref()
    }
}

impl StoredRow for PgRow {
    fn optional_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn optional_uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn optional_integer(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn optional_time(&self, column: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn optional_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn flag(&self, column: &str) -> Result<bool, StoreError> {
        Ok(self.try_get(column)?)
    }
}

/// Binds a new credential's ten columns, in the order both Store statements number them (id,
/// customer, provider, name, ciphertext, key version, type, permissions, idempotency key,
/// request fingerprint).
fn bind_credential<'q>(query: PgQuery<'q>, new: &'q NewCredential) -> PgQuery<'q> {
    let (idempotency_key, fingerprint) = idempotency(new);
    query
        .bind(new.id.as_uuid())
        .bind(new.customer_id.as_uuid())
        .bind(new.provider.as_str())
        .bind(new.name.as_str())
        .bind(new.sealed.as_slice())
        .bind(new.key_version.map(i64::from))
        .bind(new.credential_type.as_str())
        .bind(new.permissions.as_str())
        .bind(idempotency_key)
        .bind(fingerprint)
}

/// A Store's idempotency key and request fingerprint, if it has them.
fn idempotency(new: &NewCredential) -> (Option<&str>, Option<&[u8]>) {
    match &new.idempotency {
        Some((key, fingerprint)) => (Some(key.as_str()), Some(fingerprint.as_slice())),
        None => (None, None),
    }
}

async fn insert_audit(
    tx: &mut Transaction<'_, Postgres>,
    signer: Option<&dyn AuditSigner>,
    audit: &AuditEntry,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    insert_audit_as(tx, signer, crate::domain::new_audit_row_id(), audit, now).await.map(drop)
}

/// [`insert_audit`] under a given id (an imported row keeps its own), unless a row with that id
/// exists; whether it was written.
async fn insert_audit_as(
    tx: &mut Transaction<'_, Postgres>,
    signer: Option<&dyn AuditSigner>,
    id: Uuid,
    audit: &AuditEntry,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let now = to_stored_precision(now);
    let mac = signer.map(|signer| audit.to_event(id, now).mac(signer));
    let written = sqlx::query(
        "INSERT INTO credential_audit_log \
         (id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac) \
         VALUES ($1, $2, $3, $4, $5, $6::inet, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(audit.credential_id.map(|id| *id.as_uuid()))
    .bind(audit.customer_id.map(|id| *id.as_uuid()))
    .bind(audit.action.as_str())
    .bind(&audit.details)
    .bind(audit.ip_address.map(|ip| ip.to_string()))
    .bind(audit.actor.as_ref().map(TokenName::as_str))
    .bind(now)
    .bind(mac)
    .execute(&mut **tx)
    .await?;
    Ok(written.rows_affected() == 1)
}

/// Locks the customer's row `FOR SHARE` and reads its status (`None`: no such customer). Taken
/// before any credential row, as cancellation takes them, so the two cannot deadlock.
async fn customer_status_locked(
    tx: &mut Transaction<'_, Postgres>,
    customer_id: CustomerId,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT status FROM customers WHERE id = $1 FOR SHARE")
        .bind(customer_id.as_uuid())
        .fetch_optional(&mut **tx)
        .await?)
}

impl PostgresStore {
    async fn fetch_changed(
        &self,
        query: PgQuery<'_>,
        id: CredentialId,
    ) -> Result<CredentialMetadata, StoreError> {
        let row = query.fetch_optional(&self.pool).await?;
        let row = row.ok_or_else(|| StoreError::NotFound(format!("active credential {id}")))?;
        rows::metadata(&row)
    }

    /// A connection outside the pool, whose statements are not logged, for work whose
    /// statements run far longer than a request's (a migration, `audit verify`'s walk), which
    /// the pool's connections would report as slow. Connecting waits at most as long as taking
    /// a connection from the pool would; the caller closes it.
    async fn connection_of_its_own(&self) -> Result<sqlx::PgConnection, StoreError> {
        let options = (*self.pool.connect_options()).clone().disable_statement_logging();
        let connect = sqlx::PgConnection::connect_with(&options);
        Ok(tokio::time::timeout(self.pool.options().get_acquire_timeout(), connect)
            .await
            .map_err(|_| StoreError::unavailable("timed out connecting to PostgreSQL"))??)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn audited_change_numbers_its_parameters_after_the_change() {
        let sql = audited_change!("UPDATE t SET a = $9 WHERE id = $8");
        assert!(
            sql.starts_with("WITH changed AS (UPDATE t SET a = $9 WHERE id = $8 RETURNING id, customer_id")
        );
        assert!(sql.contains("SELECT $1, id, customer_id, $2, $3, $4::inet, $6, $5, $7 FROM changed"));
    }
}
