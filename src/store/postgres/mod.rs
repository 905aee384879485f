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
use sqlx::{Postgres, Row, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    AuditChain, ChainHead, ChainLink, ChainReport, Inserted, KeyCheck, NewCredential, NewCustomer,
    PoolSettings, SealedCredential, SignedRow, Store, StoreError, UseClaim,
};
use crate::domain::{
    AuditAction, AuditEntry, AuditEvent, AuditFilter, AuditSigner, CredentialId, CredentialMetadata,
    CredentialName, CredentialSelector, CredentialType, Cursor, Customer, CustomerId, CustomerStatus,
    ListFilter, Permission, Provider, TokenId, TokenName, TokenRecord, quoted,
};
use crate::store::sql::{Taken, conflict_on_unique, from_micros, to_stored_precision};

macro_rules! audit_columns {
    () => {
        "id, credential_id, customer_id, action, action_details, host(ip_address) AS ip_address, actor, \
         created_at, row_mac"
    };
}

macro_rules! customer_columns {
    () => {
        "id, email, company_name, status, subscription_tier, created_at"
    };
}

macro_rules! token_columns {
    () => {
        "id, name, scopes, customer, secret_hash, created_at, expires_at, revoked_at"
    };
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../../../migrations/postgres/0001_initial.sql")),
    (2, "tokens", include_str!("../../../migrations/postgres/0002_tokens.sql")),
    (3, "audit seal", include_str!("../../../migrations/postgres/0003_audit_seal.sql")),
    (4, "audit chain", include_str!("../../../migrations/postgres/0004_audit_chain.sql")),
];

fn migrator() -> Migrator {
    crate::store::sql::migrator(MIGRATIONS, true)
}

/// A credential's metadata columns, optionally each prefixed (`"cred."`).
macro_rules! credential_columns {
    () => {
        credential_columns!("")
    };
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
            "last_used_at, ",
            $p,
            "usage_count, ",
            $p,
            "created_at, ",
            $p,
            "updated_at"
        )
    };
}

/// A single-row change and its audit row as ONE statement: the audit insert takes its credential
/// and customer ids from the CTE `changed`, so it inserts nothing when the change matched no row.
/// `$1`..`$7` are the audit row's (see [`audited`]); the change's own parameters start at `$8`.
macro_rules! audited_change {
    ($change:expr) => {
        concat!(
            "WITH changed AS (",
            $change,
            " RETURNING ",
            credential_columns!(),
            "), audit AS (INSERT INTO credential_audit_log \
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
    let mac = signer.map(|signer| audit.to_event(id, now).mac(signer).to_vec());
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

fn metadata_from_row(row: &PgRow) -> Result<CredentialMetadata, StoreError> {
    let provider: String = row.try_get("provider")?;
    let permissions: String = row.try_get("permissions")?;
    let corrupt =
        |what: &str, value: &str| StoreError::Other(format!("stored {what} {value:?} is not valid").into());
    Ok(CredentialMetadata {
        id: CredentialId::from_uuid(row.try_get("id")?),
        customer_id: CustomerId::from_uuid(row.try_get("customer_id")?),
        provider: Provider::parse(&provider).ok_or_else(|| corrupt("provider", &provider))?,
        name: CredentialName::from_stored(row.try_get("credential_name")?),
        credential_type: CredentialType::from_stored(row.try_get("credential_type")?),
        permissions: Permission::parse(&permissions).ok_or_else(|| corrupt("permissions", &permissions))?,
        is_active: row.try_get("is_active")?,
        is_verified: row.try_get("is_verified")?,
        is_default: row.try_get("is_default")?,
        last_verified_at: row.try_get("last_verified_at")?,
        last_used_at: row.try_get("last_used_at")?,
        usage_count: row.try_get("usage_count")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
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
        .bind(i64::from(new.key_version))
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
    let id = crate::domain::new_audit_row_id();
    let now = to_stored_precision(now);
    let mac = signer.map(|signer| audit.to_event(id, now).mac(signer).to_vec());
    sqlx::query(
        "INSERT INTO credential_audit_log \
         (id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac) \
         VALUES ($1, $2, $3, $4, $5, $6::inet, $7, $8, $9)",
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
    Ok(())
}

impl PostgresStore {
    /// Store's common case as ONE statement: the credential (if its customer exists) and its
    /// audit row. `None` if there is no such customer.
    async fn insert_plain(
        &self,
        new: &NewCredential,
        audit: &AuditEntry,
    ) -> Result<Option<PgRow>, sqlx::Error> {
        let sql = audited_change!(
            "INSERT INTO cloud_credentials (id, customer_id, provider, credential_name, encrypted_credentials, \
             key_version, credential_type, permissions, is_default, idempotency_key, request_fingerprint, \
             created_at, updated_at) \
             SELECT $8, $9, $10, $11, $12, $13, $14, $15, false, $16, $17, $5, $5 \
             WHERE EXISTS (SELECT 1 FROM customers WHERE id = $9)"
        );
        bind_credential(audited(sql, self.signer(), audit, new.now), new).fetch_optional(&self.pool).await
    }

    /// Store of a credential that becomes its provider's default: a short transaction that
    /// moves the default. `None` if there is no such customer.
    async fn insert_default(
        &self,
        new: &NewCredential,
        audit: &AuditEntry,
    ) -> Result<Option<PgRow>, sqlx::Error> {
        let now = to_stored_precision(new.now);
        let mut tx = self.pool.begin().await?;
        // Lock the customer row, so two concurrent "make default" Stores queue instead of
        // colliding on the one-default index.
        let customer: Option<i32> = sqlx::query_scalar("SELECT 1 FROM customers WHERE id = $1 FOR UPDATE")
            .bind(new.customer_id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
        if customer.is_none() {
            return Ok(None);
        }
        sqlx::query(
            "UPDATE cloud_credentials SET is_default = false, updated_at = $1 \
             WHERE customer_id = $2 AND provider = $3 AND is_default",
        )
        .bind(now)
        .bind(new.customer_id.as_uuid())
        .bind(new.provider.as_str())
        .execute(&mut *tx)
        .await?;
        let query = sqlx::query(concat!(
            "INSERT INTO cloud_credentials (id, customer_id, provider, credential_name, encrypted_credentials, \
             key_version, credential_type, permissions, is_default, idempotency_key, request_fingerprint, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true, $9, $10, $11, $11) RETURNING ",
            credential_columns!()
        ));
        let row = bind_credential(query, new).bind(now).fetch_one(&mut *tx).await?;
        insert_audit(&mut tx, self.signer(), audit, now).await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    async fn fetch_changed(
        &self,
        query: PgQuery<'_>,
        id: CredentialId,
    ) -> Result<CredentialMetadata, StoreError> {
        let row = query.fetch_optional(&self.pool).await?;
        let row = row.ok_or_else(|| StoreError::NotFound(format!("active credential {id}")))?;
        metadata_from_row(&row)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn check_writable(&self) -> Result<(), StoreError> {
        // A new transaction's transaction_read_only is on on a hot standby and under
        // default_transaction_read_only (for the server, the database or the role).
        let read_only: bool = sqlx::query_scalar("SELECT current_setting('transaction_read_only') = 'on'")
            .fetch_one(&self.pool)
            .await?;
        if read_only {
            return Err(StoreError::ReadOnly(
                "the PostgreSQL database accepts reads only (a hot standby, or default_transaction_read_only \
                 is on for the server, the database or credvault's role): point --database-url at the \
                 primary, or turn default_transaction_read_only off"
                    .into(),
            ));
        }
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        migrator().run(&self.pool).await?;
        Ok(())
    }

    async fn check_key(&self, version: u32, check_value: &[u8; 32]) -> Result<KeyCheck, StoreError> {
        let version = i32::try_from(version)
            .map_err(|_| StoreError::Config(format!("key version {version} is too large")))?;
        // ON CONFLICT makes concurrent first starts agree: exactly one inserts, all compare.
        let inserted = sqlx::query(
            "INSERT INTO encryption_keys (version, check_value, created_at) VALUES ($1, $2, now()) \
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(version)
        .bind(check_value.as_slice())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(KeyCheck::Recorded);
        }
        let stored: Vec<u8> =
            sqlx::query_scalar("SELECT check_value FROM encryption_keys WHERE version = $1")
                .bind(version)
                .fetch_one(&self.pool)
                .await?;
        Ok(if stored == check_value { KeyCheck::Matches } else { KeyCheck::Mismatch })
    }

    async fn ensure_customer(&self, customer: &NewCustomer) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO customers (id, email, company_name, status, subscription_tier, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(customer.id.as_uuid())
        .bind(&customer.email)
        .bind(&customer.company_name)
        .bind(customer.status.as_str())
        .bind(customer.tier.as_str())
        .bind(to_stored_precision(OffsetDateTime::now_utc()))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on_unique(e, Taken::CustomerEmail(&customer.email)))?;
        Ok(result.rows_affected() == 1)
    }

    async fn customer_exists(&self, id: CustomerId) -> Result<bool, StoreError> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM customers WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    async fn insert_credential(&self, new: NewCredential, audit: AuditEntry) -> Result<Inserted, StoreError> {
        if let Some(existing) = self.find_idempotent(&new).await? {
            return Ok(existing);
        }
        let inserted = if new.make_default {
            self.insert_default(&new, &audit).await
        } else {
            let store = Arc::new(committers::NewStore { new: new.clone(), audit });
            if let Some(created) = self.stores.submit(store.clone()).await? {
                return Ok(Inserted::Created(created));
            }
            // Not inserted by the group: on its own, for the precise answer.
            self.insert_plain(&new, &store.audit).await
        };
        match inserted {
            Ok(Some(row)) => Ok(Inserted::Created(metadata_from_row(&row)?)),
            Ok(None) => Err(StoreError::NotFound(format!("customer {}", new.customer_id))),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                // A concurrent Store with the same idempotency key may have committed first; it
                // can trip the name index before the key index, so look before calling it a
                // conflict, and answer as that Store did.
                if let Some(existing) = self.find_idempotent(&new).await? {
                    return Ok(existing);
                }
                Err(StoreError::Conflict(format!(
                    "customer {} already has an active {} credential named {}",
                    new.customer_id,
                    new.provider,
                    quoted(new.name.as_str())
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn fetch_sealed(
        &self,
        selector: CredentialSelector,
    ) -> Result<Option<SealedCredential>, StoreError> {
        let row = match selector {
            CredentialSelector::Id(id) => {
                sqlx::query(concat!(
                    "SELECT ",
                    credential_columns!(),
                    ", encrypted_credentials, (SELECT status FROM customers WHERE customers.id = cloud_credentials.customer_id) AS customer_status \
                     FROM cloud_credentials WHERE id = $1 AND is_active"
                ))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await?
            }
            CredentialSelector::Preferred { customer_id, provider } => {
                sqlx::query(concat!(
                    "SELECT ",
                    credential_columns!(),
                    ", encrypted_credentials, (SELECT status FROM customers WHERE customers.id = cloud_credentials.customer_id) AS customer_status \
                     FROM cloud_credentials WHERE customer_id = $1 AND provider = $2 AND is_active \
                     ORDER BY is_default DESC, is_verified DESC, created_at DESC, id DESC LIMIT 1"
                ))
                .bind(customer_id.as_uuid())
                .bind(provider.as_str())
                .fetch_optional(&self.pool)
                .await?
            }
        };
        row.map(|row| {
            Ok(SealedCredential {
                metadata: metadata_from_row(&row)?,
                sealed: row.try_get("encrypted_credentials")?,
                customer_status: super::customer_status(row.try_get("customer_status")?)?,
            })
        })
        .transpose()
    }

    async fn record_use(
        &self,
        claim: UseClaim,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<Option<CredentialMetadata>, StoreError> {
        self.uses.submit(super::group_commit::Use { claim, audit, now }).await
    }

    async fn record_verification(
        &self,
        id: CredentialId,
        verified: bool,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<CredentialMetadata, StoreError> {
        let sql = audited_change!(
            "UPDATE cloud_credentials SET is_verified = $10, last_verified_at = $9, updated_at = $9 \
             WHERE id = $8 AND is_active"
        );
        let query = audited(sql, self.signer(), &audit, now)
            .bind(id.as_uuid())
            .bind(to_stored_precision(now))
            .bind(verified);
        self.fetch_changed(query, id).await
    }

    async fn append_audit(&self, audit: AuditEntry, now: OffsetDateTime) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<CredentialMetadata>, StoreError> {
        let (after_created, after_id) = match &filter.after {
            Some(cursor) => (
                Some(
                    OffsetDateTime::from_unix_timestamp_nanos(i128::from(cursor.created_at_micros) * 1_000)
                        .map_err(|e| StoreError::Other(Box::new(e)))?,
                ),
                Some(*cursor.id.as_uuid()),
            ),
            None => (None, None),
        };
        let rows = sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM cloud_credentials WHERE customer_id = $1 \
             AND ($2::text IS NULL OR provider = $2) \
             AND ($3 OR is_active) \
             AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid)) \
             ORDER BY created_at DESC, id DESC LIMIT $6"
        ))
        .bind(filter.customer_id.as_uuid())
        .bind(filter.provider.map(Provider::as_str))
        .bind(filter.include_inactive)
        .bind(after_created)
        .bind(after_id)
        .bind(i64::from(filter.page_size) + 1)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(metadata_from_row).collect()
    }

    async fn all_for_customer(&self, customer_id: CustomerId) -> Result<Vec<CredentialMetadata>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM cloud_credentials WHERE customer_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(customer_id.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(metadata_from_row).collect()
    }

    /// Ends the group committers (each commits what was queued first), then closes the pool.
    /// Every later call answers UNAVAILABLE.
    async fn close(&self) {
        self.uses.close().await;
        self.stores.close().await;
        self.pool.close().await;
    }

    async fn soft_delete(
        &self,
        id: CredentialId,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<CredentialMetadata, StoreError> {
        let sql = audited_change!(
            "UPDATE cloud_credentials SET is_active = false, is_default = false, updated_at = $9, deleted_at = $9 \
             WHERE id = $8 AND is_active"
        );
        let query =
            audited(sql, self.signer(), &audit, now).bind(id.as_uuid()).bind(to_stored_precision(now));
        self.fetch_changed(query, id).await
    }

    async fn customer(&self, id: CustomerId) -> Result<Option<Customer>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", customer_columns!(), " FROM customers WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(customer_from_row).transpose()
    }

    async fn list_customers(&self, after: Option<Cursor>, limit: u32) -> Result<Vec<Customer>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            customer_columns!(),
            " FROM customers WHERE $1::timestamptz IS NULL OR (created_at, id) > ($1, $2) \
             ORDER BY created_at, id LIMIT $3"
        ))
        .bind(after.map(|c| from_micros(c.at_micros)).transpose()?)
        .bind(after.map(|c| c.id))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(customer_from_row).collect()
    }

    async fn set_customer_status(
        &self,
        id: CustomerId,
        status: CustomerStatus,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<Customer, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(concat!(
            "UPDATE customers SET status = $1 WHERE id = $2 RETURNING ",
            customer_columns!()
        ))
        .bind(status.as_str())
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("customer {id}")))?;
        let customer = customer_from_row(&row)?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(customer)
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, credential_id, customer_id, action, action_details, host(ip_address) AS ip_address, \
             actor, created_at FROM credential_audit_log \
             WHERE ($1::uuid IS NULL OR customer_id = $1) AND ($2::uuid IS NULL OR credential_id = $2) \
             AND ($3::text IS NULL OR action = $3) AND ($4::timestamptz IS NULL OR created_at >= $4) \
             AND ($5::timestamptz IS NULL OR created_at < $5) \
             AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7)) \
             ORDER BY created_at DESC, id DESC LIMIT $8",
        )
        .bind(filter.customer_id.map(|c| *c.as_uuid()))
        .bind(filter.credential_id.map(|c| *c.as_uuid()))
        .bind(filter.action.map(AuditAction::as_str))
        .bind(filter.since.map(to_stored_precision))
        .bind(filter.until.map(to_stored_precision))
        .bind(filter.after.map(|c| from_micros(c.at_micros)).transpose()?)
        .bind(filter.after.map(|c| c.id))
        .bind(i64::from(filter.page_size) + 1)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_event_from_row).collect()
    }

    async fn chain_audit(&self, limit: u32) -> Result<ChainReport, StoreError> {
        let signer = self.signer().ok_or_else(|| StoreError::Config("sealing needs the audit key".into()))?;
        let mut tx = self.pool.begin().await?;
        // Taken before anything else, so it is at most the xmin of the snapshot the rows are read
        // in: every row that read cannot see belongs to a transaction at or above it.
        let xmin: i64 = sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            .fetch_one(&mut *tx)
            .await?;
        // The head's row lock serializes sealers across instances; requests never take it.
        let head =
            sqlx::query("SELECT seq, hash, mac, next_tx, next_id FROM audit_seal WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        let from: (i64, Option<Uuid>) = (head.try_get("next_tx")?, head.try_get("next_id")?);
        let head =
            ChainHead { seq: head.try_get("seq")?, hash: head.try_get("hash")?, mac: head.try_get("mac")? };
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            ", tx FROM credential_audit_log a WHERE tx >= $1 AND ($2::uuid IS NULL OR (tx, id) > ($1, $2)) \
             AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = a.id) ORDER BY tx, id LIMIT $3"
        ))
        .bind(from.0)
        .bind(from.1)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        // A full batch resumes right after its last row; otherwise every row below xmin is done.
        let next = match rows.last() {
            Some(last) if rows.len() >= usize::try_from(limit).unwrap_or(usize::MAX) => {
                (last.try_get("tx")?, Some(last.try_get::<Uuid, _>("id")?))
            }
            _ => (xmin, None),
        };
        let signed = rows.iter().map(signed_row).collect::<Result<Vec<_>, _>>()?;
        let (links, head, refused) = super::link(signer, &head, &signed);
        let passed_over = refused.len();
        // The writing transaction of each refused row (usually none), in the order read.
        let refused = rows
            .iter()
            .zip(&signed)
            .filter(|(_, signed)| refused.contains(&signed.event.id))
            .map(|(row, signed)| Ok((signed.event.id, row.try_get::<i64, _>("tx")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let refused = self.refused.newly(refused, next.0);
        let passed_over = u32::try_from(passed_over - refused.len()).unwrap_or(u32::MAX);
        if !links.is_empty() {
            sqlx::query(
                "INSERT INTO audit_chain (seq, audit_id, hash) \
                 SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bytea[])",
            )
            .bind(links.iter().map(|l| l.seq).collect::<Vec<_>>())
            .bind(links.iter().map(|l| l.audit_id).collect::<Vec<_>>())
            .bind(links.iter().map(|l| l.hash.as_slice()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE audit_seal SET seq = $1, hash = $2, mac = $3, next_tx = $4, next_id = $5, updated_at = now() \
             WHERE id = 1",
        )
        .bind(head.seq)
        .bind(&head.hash)
        .bind(&head.mac)
        .bind(next.0)
        .bind(next.1)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ChainReport { sealed: u32::try_from(links.len()).unwrap_or(u32::MAX), refused, passed_over })
    }

    async fn audit_chain(&self) -> Result<AuditChain, StoreError> {
        // One snapshot, so a sealing pass committing meanwhile cannot look like tampering.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let head =
            sqlx::query("SELECT seq, hash, mac FROM audit_seal WHERE id = 1").fetch_one(&mut *tx).await?;
        let head =
            ChainHead { seq: head.try_get("seq")?, hash: head.try_get("hash")?, mac: head.try_get("mac")? };
        let links = sqlx::query("SELECT seq, audit_id, hash FROM audit_chain ORDER BY seq")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                Ok(ChainLink {
                    seq: row.try_get("seq")?,
                    audit_id: row.try_get("audit_id")?,
                    hash: row.try_get("hash")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM credential_audit_log ORDER BY created_at, id"
        ))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(signed_row)
        .collect::<Result<_, _>>()?;
        tx.commit().await?;
        Ok(AuditChain { head, links, rows })
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, scopes, customer, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token.id.as_uuid())
        .bind(token.name.as_str())
        .bind(token.scopes.to_string())
        .bind(token.customer.to_string())
        .bind(token.secret_hash.as_slice())
        .bind(to_stored_precision(token.created_at))
        .bind(token.expires_at.map(to_stored_precision))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on_unique(e, Taken::TokenName(token.name.as_str())))?;
        Ok(())
    }

    async fn find_token(&self, id: TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", token_columns!(), " FROM api_tokens WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows =
            sqlx::query(concat!("SELECT ", token_columns!(), " FROM api_tokens ORDER BY created_at, id"))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, name: &TokenName, now: OffsetDateTime) -> Result<TokenRecord, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $1) WHERE name = $2 RETURNING ",
            token_columns!()
        ))
        .bind(to_stored_precision(now))
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("token {:?}", name.as_str())))?;
        token_from_row(&row)
    }
}

impl PostgresStore {
    async fn find_idempotent(&self, new: &NewCredential) -> Result<Option<Inserted>, StoreError> {
        let Some((key, _)) = &new.idempotency else {
            return Ok(None);
        };
        let row = sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            ", request_fingerprint FROM cloud_credentials WHERE customer_id = $1 AND idempotency_key = $2"
        ))
        .bind(new.customer_id.as_uuid())
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Inserted::Existing {
                credential: metadata_from_row(&row)?,
                fingerprint: row.try_get::<Option<Vec<u8>>, _>("request_fingerprint")?.unwrap_or_default(),
            })
        })
        .transpose()
    }
}

fn audit_event_from_row(row: &PgRow) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        id: row.try_get("id")?,
        credential_id: row.try_get::<Option<Uuid>, _>("credential_id")?.map(CredentialId::from_uuid),
        customer_id: row.try_get::<Option<Uuid>, _>("customer_id")?.map(CustomerId::from_uuid),
        action: row.try_get("action")?,
        details: row.try_get("action_details")?,
        ip_address: row.try_get("ip_address")?,
        actor: row.try_get("actor")?,
        created_at: row.try_get("created_at")?,
    })
}

fn signed_row(row: &PgRow) -> Result<SignedRow, StoreError> {
    Ok(SignedRow { event: audit_event_from_row(row)?, row_mac: row.try_get("row_mac")? })
}

fn customer_from_row(row: &PgRow) -> Result<Customer, StoreError> {
    let status: String = row.try_get("status")?;
    let tier: String = row.try_get("subscription_tier")?;
    super::customer_from_parts(
        CustomerId::from_uuid(row.try_get("id")?),
        row.try_get("email")?,
        row.try_get("company_name")?,
        &status,
        &tier,
        row.try_get("created_at")?,
    )
}

fn token_from_row(row: &PgRow) -> Result<TokenRecord, StoreError> {
    let scopes: String = row.try_get("scopes")?;
    let customer: String = row.try_get("customer")?;
    let hash: Vec<u8> = row.try_get("secret_hash")?;
    super::token_from_parts(
        TokenId::from_uuid(row.try_get("id")?),
        row.try_get("name")?,
        &scopes,
        &customer,
        &hash,
        [row.try_get("created_at")?, row.try_get("expires_at")?, row.try_get("revoked_at")?],
    )
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
