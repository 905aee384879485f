//! The embedded backend: one SQLite file in WAL mode.
//!
//! SQLite allows one writer at a time. Get's audited uses and Stores commit in groups, each on
//! its committer's own connection ([`committer`], [`stores`]), every other write on a pool of
//! exactly one connection; all take turns ([`writer`]), so writes queue instead of failing with
//! SQLITE_BUSY. Reads use a separate pool of read-only connections that WAL lets run beside the
//! writer.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    ChainHead, ChainReport, Inserted, NewCredential, NewCustomer, SealedCredential, Store, StoreError,
    UseClaim,
};
use crate::domain::{
    AuditAction, AuditEntry, AuditEvent, AuditFilter, AuditSigner, CredentialId, CredentialMetadata,
    CredentialSelector, Cursor, Customer, CustomerId, CustomerStatus, ListFilter, Provider, TokenId,
    TokenName, TokenRecord, VersionChange, VersionMetadata, VersionNumber,
};
use crate::store::rows::{self, StoredRow, corrupt};
use crate::store::sql::{Taken, conflict_on_unique, from_micros};
use journal::{AuditedTx, insert_audit, insert_audit_as};

macro_rules! audit_columns {
    () => {
        "id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, \
         row_mac"
    };
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../../../migrations/sqlite/0001_initial.sql")),
    (2, "tokens", include_str!("../../../migrations/sqlite/0002_tokens.sql")),
    (3, "audit seal", include_str!("../../../migrations/sqlite/0003_audit_seal.sql")),
    (4, "audit chain", include_str!("../../../migrations/sqlite/0004_audit_chain.sql")),
    (5, "use journal", include_str!("../../../migrations/sqlite/0005_use_journal.sql")),
    (6, "journal counts uses", include_str!("../../../migrations/sqlite/0006_journal_counts_uses.sql")),
    (7, "audit by time", include_str!("../../../migrations/sqlite/0007_audit_by_time.sql")),
    (8, "versions", include_str!("../../../migrations/sqlite/0008_versions.sql")),
    (9, "recovery window", include_str!("../../../migrations/sqlite/0009_recovery_window.sql")),
    (10, "key rotation", include_str!("../../../migrations/sqlite/0010_key_rotation.sql")),
    (11, "key retirement", include_str!("../../../migrations/sqlite/0011_key_retirement.sql")),
    (12, "customer keys", include_str!("../../../migrations/sqlite/0012_customer_keys.sql")),
    (13, "verification state", include_str!("../../../migrations/sqlite/0013_verification_state.sql")),
    (14, "journal by credential", include_str!("../../../migrations/sqlite/0014_journal_by_credential.sql")),
    (15, "summary counts", include_str!("../../../migrations/sqlite/0015_summary_counts.sql")),
    (16, "list by provider", include_str!("../../../migrations/sqlite/0016_list_by_provider.sql")),
];

/// The SQLite schema's migrations, embedded in the binary.
fn migrator() -> Migrator {
    crate::store::sql::migrator(MIGRATIONS, false)
}

macro_rules! select_credentials {
    ($($tail:literal)*) => {
        concat!(
            "SELECT id, customer_id, provider, credential_name, credential_type, permissions, ",
            "is_active, is_verified, is_default, last_verified_at, last_used_at, usage_count, created_at, updated_at, ",
            "current_version, latest_version, rotated_at, revision, purge_at, purged_at, ",
            "verified_identity, verification_findings, verification_failures, first_failed_at, failing_since ",
            $($tail,)*
        )
    };
}

macro_rules! returning_credential {
    ($head:expr $(, $extra:literal)?) => {
        concat!(
            $head,
            " RETURNING id, customer_id, provider, credential_name, credential_type, permissions, ",
            "is_active, is_verified, is_default, last_verified_at, last_used_at, usage_count, created_at, updated_at, ",
            "current_version, latest_version, rotated_at, revision, purge_at, purged_at, ",
            "verified_identity, verification_findings, verification_failures, first_failed_at, failing_since"
            $(, $extra)?
        )
    };
}

/// Soft-deletes the active credentials `$which` selects (`?1` is the time): each is scheduled for
/// purge after its customer's recovery window.
macro_rules! soft_deleting {
    ($which:literal) => {
        concat!(
            "UPDATE cloud_credentials SET is_active = 0, is_default = 0, updated_at = ?1, deleted_at = ?1, \
             purge_at = ?1 + 1000000 * (SELECT recovery_window_secs FROM customers \
               WHERE customers.id = cloud_credentials.customer_id), \
             revision = revision + 1 WHERE is_active = 1 AND ",
            $which
        )
    };
}

pub mod backup;
mod by_credential;
mod chain_walk;
mod checkpoint;
mod committer;
mod get_reads;
#[macro_use]
mod journal;
mod stores;
mod writer;

// The Store traits, one aggregate per file (after `journal`, whose macros they use).
mod audit;
mod credentials;
mod customer_keys;
mod customers;
mod import;
mod keys;
mod seed;
mod tokens;
mod versions;

/// How long a connection waits for a lock another process (or a checkpoint) holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    writer: writer::Writer,
    reader: SqlitePool,
    /// Copies the WAL into the database file in the background (see [`checkpoint`]).
    checkpoints: std::sync::Mutex<Option<checkpoint::Checkpointer>>,
    signer: Option<Arc<dyn AuditSigner>>,
    /// Get's audited uses, committed in groups (see [`committer`]).
    uses: super::group_commit::Group<committer::Committer>,
    /// Stores, committed in groups (see [`stores`]).
    stores: super::group_commit::Group<stores::StoreCommitter>,
    /// Get's reads by id, in groups (see [`get_reads`]).
    get_reads: super::group_commit::Group<get_reads::GetReads>,
    /// The database file, for messages that tell an operator which file to fix.
    database: std::path::PathBuf,
    /// The WAL the committers sync (tests make its sync fail).
    wal: Arc<committer::Wal>,
    /// The audit log indexed by credential, in a file of its own; `None` if it cannot be opened
    /// (listings by credential then walk the log).
    by_credential: Option<by_credential::ByCredential>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url`.
    pub async fn connect(url: &str, signer: Option<Arc<dyn AuditSigner>>) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed audit row survives power loss before the secret leaves.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::Config(
                "an in-memory SQLite database cannot keep secrets or their audit rows; give a file \
                 (sqlite://path/to/vault.db)"
                    .into(),
            ));
        }
        let database = options.get_filename().to_owned();
        // The database holds ciphertexts, token hashes and the audit log: nobody else's to read.
        if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::private_files::create_private_dir(dir).map_err(|e| {
                StoreError::Config(format!("cannot create the database directory {}: {e}", dir.display()))
            })?;
        }
        crate::private_files::create_private_file_if_missing(&database).map_err(|e| {
            StoreError::Config(format!("cannot create the database file {}: {e}", database.display()))
        })?;
        let writer = in_process_pool(1)
            // Checkpoints run beside the writer, not inside its commits (see `checkpoint`).
            // A WAL that grew past the checkpointer's restart point (a burst of writes) is cut
            // back to that size when it starts over, instead of keeping its largest size.
            .connect_with(
                options
                    .clone()
                    // A destroyed version's ciphertext is overwritten with zeros where it lay,
                    // not just marked free (only this connection changes versions).
                    .pragma("secure_delete", "ON")
                    .pragma("wal_autocheckpoint", "0")
                    .pragma("journal_size_limit", checkpoint::RESTART_BYTES.to_string()),
            )
            .await
            .map_err(|e| read_only(&database, e))?;
        let writer = writer::Writer::new(writer);
        let checkpointer = in_process_pool(1)
            // Copying WAL frames into the file needs no page cache of its own.
            .connect_with(options.clone().pragma("cache_size", "16"))
            .await?;
        let checkpoints = checkpoint::start(checkpointer, writer.clone(), checkpoint::RESTART_AT);
        // Two readers: Get reads only for a credential it has not served before, so reads are
        // List, Summary and audit queries; each reader holds its own page cache.
        let reader = in_process_pool(2)
            // Half SQLite's default page cache each: Get's rows are cached by the vault itself.
            .connect_with(options.read_only(true).pragma("cache_size", "-1024"))
            .await?;
        let wal = Arc::new(committer::Wal::of(&database));
        let committing =
            || committer::Committing { writer: writer.clone(), signer: signer.clone(), wal: wal.clone() };
        let committer = committer::Committer::open(&database, committing())?;
        let uses =
            super::group_commit::Group::start_on_thread(committer, "credvault-commit").map_err(|e| {
                StoreError::unavailable(format!("cannot start the group committer's thread: {e}"))
            })?;
        let store_committer = stores::StoreCommitter::open(&database, committing())?;
        let stores = super::group_commit::Group::start_on_thread(store_committer, "credvault-store")
            .map_err(|e| {
                StoreError::unavailable(format!("cannot start the Store committer's thread: {e}"))
            })?;
        let get_reads = super::group_commit::Group::start_on_thread(
            get_reads::GetReads::open(&database)?,
            "credvault-get-reads",
        )
        .map_err(|e| StoreError::unavailable(format!("cannot start the Get reads' thread: {e}")))?;
        let by_credential = by_credential::ByCredential::open(&database)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "the audit index by credential is unavailable"))
            .ok();
        Ok(Self {
            writer,
            reader,
            checkpoints: std::sync::Mutex::new(Some(checkpoints)),
            signer,
            uses,
            stores,
            get_reads,
            database,
            wal,
            by_credential,
        })
    }

    /// Moves the use journal into the audit log, so that a read of the log that follows sees
    /// every committed use.
    async fn move_journal(&self) -> Result<(), StoreError> {
        let mut writer = self.writer.acquire().await?;
        AuditedTx::begin(&mut writer).await?.commit().await
    }

    /// Makes every write committed so far durable, as the committers' syncs do: for an answer
    /// that reports a write one of their groups committed and may not have synced yet.
    async fn sync_wal(&self) -> Result<(), StoreError> {
        let (writer, wal) = (self.writer.clone(), self.wal.clone());
        tokio::task::spawn_blocking(move || committer::sync_wal(&writer, &wal))
            .await
            .map_err(|e| StoreError::unavailable(format!("the WAL's sync did not finish: {e}")))?
            .map_err(|e| StoreError::unavailable(e.to_string()))
    }

    fn signer(&self) -> Option<&dyn AuditSigner> {
        self.signer.as_deref()
    }

    /// Runs `change` (an UPDATE of one active credential, RETURNING its columns) and its audit
    /// row in one transaction; `NotFound` if no active credential matched.
    async fn audited_change(
        &self,
        change: sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments>,
        id: CredentialId,
        audit: &AuditEntry,
        now: OffsetDateTime,
    ) -> Result<CredentialMetadata, StoreError> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = AuditedTx::begin(&mut writer).await?;
        let row = change
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("active credential {id}")))?;
        let credential = rows::metadata(&row)?;
        insert_audit(&mut tx, self.signer(), audit, now).await?;
        tx.commit().await?;
        Ok(credential)
    }
}

/// `e`, or, when it says the file cannot be written (SQLITE_READONLY and its extended codes,
/// 8 in the low byte; SQLITE_CANTOPEN, 14: the file or the -wal / -shm files beside it cannot
/// be opened or created), what to change to make it writable.
fn read_only(database: &std::path::Path, e: sqlx::Error) -> StoreError {
    let code = |db: &dyn sqlx::error::DatabaseError| db.code().and_then(|c| c.parse::<u32>().ok());
    match &e {
        sqlx::Error::Database(db) if code(db.as_ref()).is_some_and(|c| matches!(c & 0xff, 8 | 14)) => {
            StoreError::ReadOnly(format!(
                "the database file {} cannot be written ({}); credvault reads and writes it and creates \
                 its -wal and -shm files beside it: make the file and its directory writable by the user \
                 credvault runs as, on a writable disk, and do not open it with mode=ro",
                database.display(),
                db.message()
            ))
        }
        _ => e.into(),
    }
}

/// A pool of `size` connections that live as long as the store. No ping before each acquire: the
/// connections are in this process and do not go away, and a ping is one more round trip to
/// SQLite's thread on every write, in the group committer's path.
fn in_process_pool(size: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(size)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
}

fn micros(t: OffsetDateTime) -> i64 {
    crate::domain::unix_micros(t)
}

/// The columns of a stored row, as either SQLite binding reads them: sqlx for the store's
/// pools, rusqlite for the group committer's own connection. Ids are stored as text, times as
/// microseconds since the epoch, flags as integers.
trait Columns {
    fn raw_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn raw_integer(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn raw_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

impl<R: Columns> StoredRow for R {
    fn optional_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Columns::raw_text(self, column)
    }

    fn optional_uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError> {
        Columns::raw_text(self, column)?
            .map(|text| Uuid::try_parse(&text).map_err(|_| corrupt(column, &text)))
            .transpose()
    }

    fn optional_integer(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Columns::raw_integer(self, column)
    }

    fn optional_time(&self, column: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        Columns::raw_integer(self, column)?.map(from_micros).transpose()
    }

    fn optional_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Columns::raw_bytes(self, column)
    }

    fn flag(&self, column: &str) -> Result<bool, StoreError> {
        Ok(self.integer(column)? != 0)
    }
}

impl Columns for SqliteRow {
    fn raw_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn raw_integer(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn raw_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.try_get(column)?)
    }
}

#[async_trait]
impl Store for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn check_writable(&self) -> Result<(), StoreError> {
        // Rewrites the header's user_version with its own value inside a transaction that is
        // rolled back: a real write that leaves nothing behind. (BEGIN IMMEDIATE alone is not
        // enough: in WAL mode a connection that opened the file read-only takes the write lock
        // too, and fails only when it writes.)
        let mut writer = self.writer.acquire().await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut **writer).await?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut **writer).await?;
        // Only a number read from SQLite goes into the statement (a PRAGMA takes no parameters).
        let wrote = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA user_version = {version}")))
            .execute(&mut **writer)
            .await;
        if let Err(e) = sqlx::query("ROLLBACK").execute(&mut **writer).await {
            writer.close_on_drop();
            return Err(e.into());
        }
        wrote.map(drop).map_err(|e| read_only(&self.database, e))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn migrate(&self) -> Result<(), StoreError> {
        migrator().run_direct(None, &mut **self.writer.acquire().await?, false).await?;
        Ok(())
    }

    /// Stops every worker the store started, in the order their work depends on, and waits
    /// for each: the group committer commits and syncs what was queued, then ends with its sync
    /// thread and its connection; the checkpointer ends with its own; the readers close; a last
    /// checkpoint empties the WAL into the file; the writer stops writing and closes. Every
    /// later call answers UNAVAILABLE.
    #[tracing::instrument(level = "debug", skip_all)]
    async fn close(&self) {
        self.stores.close().await;
        self.uses.close().await;
        self.get_reads.close().await;
        let checkpoints = self.checkpoints.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(checkpoints) = checkpoints {
            checkpoints.stop().await;
        }
        self.reader.close().await;
        if let Some(index) = &self.by_credential {
            index.close().await;
        }
        // A clean stop leaves everything in the database file and an empty WAL, so that the
        // file alone is the whole vault (an operator's copy of it, a move to another disk).
        match self.writer.acquire().await {
            Ok(mut writer) => {
                let truncated: Result<(i64, i64, i64), _> =
                    sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut **writer).await;
                match truncated {
                    Ok((0, _, _)) => {}
                    Ok(_) => tracing::warn!("a reader kept the WAL from being emptied at shutdown"),
                    Err(e) => tracing::warn!(error = %e, "could not checkpoint the WAL at shutdown"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not checkpoint the WAL at shutdown"),
        }
        self.writer.close().await;
    }
}

/// One page of the audit log, newest first: the rows before the cursor `(?6, ?7)` (`(i64::MAX,
/// '')` for the first page) that pass the optional filters, walked in the time index
/// (migration 0007) from `?5` (`until`, or just past the cursor's time if earlier) back to
/// `since` (`?4`).
const LIST_AUDIT: &str = "SELECT id, credential_id, customer_id, action, action_details, ip_address, actor, \
     created_at FROM credential_audit_log \
     WHERE (?1 IS NULL OR customer_id = ?1) AND (?2 IS NULL OR credential_id = ?2) \
     AND (?3 IS NULL OR action = ?3) AND created_at >= ?4 AND created_at < ?5 \
     AND (created_at, id) < (?6, ?7) \
     ORDER BY created_at DESC, id DESC LIMIT ?8";

/// The chain's head, and the rowid the next sealing pass starts after.
async fn read_head<'e>(executor: impl sqlx::SqliteExecutor<'e>) -> Result<(ChainHead, i64), StoreError> {
    let head = sqlx::query("SELECT seq, hash, mac, next_rowid FROM audit_seal WHERE id = 1")
        .fetch_one(executor)
        .await?;
    Ok((rows::chain_head(&head)?, head.integer("next_rowid")?))
}

#[cfg(test)]
mod tests;
