//! Group commit (see [`crate::store::group`]) for Get's audited use on SQLite. SQLite has one
//! writer and every durable commit is a sync of the WAL, so one commit per Get would cap Get at
//! the disk's sync rate.
//!
//! The committer runs on a thread of its own and owns a connection of its own (rusqlite, on the
//! same SQLite library as sqlx): a group is a direct, synchronous call into SQLite (begin, one
//! INSERT for every audit row, one UPDATE for every use, commit), not a query handed to sqlx's
//! worker thread with the committer waiting to be woken by each result. On two busy cores every
//! such hand-off was a scheduling delay that each Get of the group waited through, and sqlx's
//! per-parameter and per-row work ran on top. While it commits groups (a session), the
//! committer holds the store's turn to write (see [`Writer`]), so that no other write runs
//! between two of its groups.
//!
//! The connection commits with synchronous=NORMAL and the WAL is synced on another thread
//! before any caller of a group hears back (see [`Wal`]): the committer runs the next group
//! while the disk flushes the last ones. Every other write (the sqlx writer) commits with
//! synchronous=FULL.
//!
//! The audit rows go to the use journal (migration 0005), which has no index but its rowid: a
//! group appends to one or two pages instead of dirtying a random page of each of the log's
//! indexes per use. Every [`MOVE_AT`] journal rows, the committer moves the journal into the
//! audit log in one transaction, on its connection, between two groups; every other audit
//! row is written after moving the journal in its own transaction, so the log's rowid order
//! stays the order in which rows committed (the order the sealer chains them in).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::OwnedMutexGuard;

use super::writer::Writer;
use super::{BUSY_TIMEOUT, Columns, checkpoint, metadata_from_row, micros};
use crate::domain::{AuditSigner, CredentialMetadata, TokenName};
use crate::store::StoreError;
use crate::store::group::{MAX_BATCH, Recorder, Use};

/// Journal rows after which the committer moves the journal into the audit log. Larger
/// batches touch each page of the log's indexes fewer times per row; each move holds the writer
/// for its whole transaction (a few milliseconds for this many rows), delaying one group.
const MOVE_AT: usize = 4096;

/// SQLite's committer: one group at a time, on its own connection.
pub(super) struct Committer {
    /// The committer's connection; only its thread locks it.
    connection: Mutex<Connection>,
    /// The store's writer, whose turn a session holds to keep other writes out.
    writer: Writer,
    signer: Option<Arc<dyn AuditSigner>>,
    /// Rows this process appended to the journal since it last moved it.
    journaled: Arc<AtomicUsize>,
    wal: Wal,
}

impl Committer {
    /// Opens the committer's connection to the database file at `database` (which exists: the
    /// writer pool created it).
    pub(super) fn open(
        database: &Path,
        writer: Writer,
        signer: Option<Arc<dyn AuditSigner>>,
        journaled: Arc<AtomicUsize>,
    ) -> Result<Self, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(database, flags).map_err(store_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(store_error)?;
        // NORMAL: the sync thread syncs the WAL before any caller hears back (see `Wal`). No
        // automatic checkpoints inside a commit (see `checkpoint`), and a WAL that grew is cut
        // back when it starts over, as on the sqlx writer.
        connection
            .execute_batch(&format!(
                "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0; \
                 PRAGMA journal_size_limit = {};",
                checkpoint::RESTART_BYTES
            ))
            .map_err(store_error)?;
        // Two statements per group size, the journal's move, begin and commit.
        connection.set_prepared_statement_cache_capacity(2 * SIZES + 4);
        Ok(Self { connection: Mutex::new(connection), writer, signer, journaled, wal: Wal::of(database) })
    }
}

#[async_trait]
impl Recorder for Committer {
    type Item = Use;
    type Outcome = Option<CredentialMetadata>;
    /// The store's turn to write, held so that no other write runs between two groups.
    type Session = OwnedMutexGuard<()>;

    async fn open(&self) -> Result<Self::Session, StoreError> {
        Ok(self.writer.turn().await)
    }

    /// Blocks: runs on the committer's own thread ([`crate::store::group::Group::start_on_thread`]).
    async fn record(
        &self,
        _writer: &mut Self::Session,
        batch: &[Use],
    ) -> Result<Vec<Option<CredentialMetadata>>, StoreError> {
        let mut conn =
            self.connection.lock().expect("the committer's connection is never held across a panic");
        let outcomes = record(&mut conn, self.signer.as_deref(), batch)?;
        let journaled = self.journaled.fetch_add(batch.len(), Ordering::Relaxed) + batch.len();
        if journaled >= MOVE_AT {
            // The group above is committed whatever happens here: a failed move leaves the
            // rows in the journal, for the next move.
            match move_journal(&mut conn) {
                Ok(()) => self.journaled.store(0, Ordering::Relaxed),
                Err(e) => tracing::warn!(error = %e, "could not move the use journal into the audit log"),
            }
        }
        Ok(outcomes)
    }

    fn defers_sync(&self) -> bool {
        true
    }

    fn sync(&self) -> std::io::Result<()> {
        self.wal.sync()
    }
}

/// A rusqlite error as the store reports it: busy past the busy timeout, or the file gone or
/// full, is "unavailable" (a retry may work), anything else a database error. SQLite's messages
/// carry no bound values.
fn store_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{CannotOpen, DatabaseBusy, DatabaseLocked, DiskFull, SystemIoFailure};
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | CannotOpen | DiskFull | SystemIoFailure) => {
            StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(e)))
        }
        _ => StoreError::Other(Box::new(e)),
    }
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.get(column).map_err(store_error)
    }

    fn optional_integer(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.get(column).map_err(store_error)
    }
}

/// The database's write-ahead log, as the committer syncs it. A commit with synchronous=NORMAL
/// has written its frames, commit frame last, into the WAL without syncing it; one
/// `fdatasync` of the file, begun after that commit returned, makes it as durable as
/// synchronous=FULL would have (which syncs the same file at the end of the commit). SQLite
/// recovers a WAL up to its last valid commit frame, so a crash before the sync loses at most
/// groups nobody was answered for.
pub(super) struct Wal {
    path: PathBuf,
    /// The inode of the WAL last synced: a new file (SQLite deletes the WAL when its last
    /// connection closes) needs its directory entry synced too, once.
    synced_inode: Mutex<Option<u64>>,
}

impl Wal {
    /// The WAL of the database file at `database`.
    pub(super) fn of(database: &Path) -> Self {
        let mut name = database.file_name().unwrap_or_default().to_owned();
        name.push("-wal");
        Self { path: database.with_file_name(name), synced_inode: Mutex::new(None) }
    }

    fn sync(&self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt as _;
        let wal = std::fs::File::open(&self.path)?;
        wal.sync_data()?;
        let inode = wal.metadata()?.ino();
        let mut synced_inode = self.synced_inode.lock().expect("never held across a panic");
        if *synced_inode != Some(inode)
            && let Some(dir) = self.path.parent()
        {
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            std::fs::File::open(dir)?.sync_all()?;
        }
        *synced_inode = Some(inode);
        Ok(())
    }
}

/// The fields of one claim in the journal's INSERT, in this order.
const JOURNAL_FIELDS: &[&str] =
    &["id", "customer", "sealed", "audit_id", "action", "details", "ip", "actor", "at", "mac"];

/// The fields of one claim in the count's UPDATE.
const COUNT_FIELDS: &[&str] = &["id", "customer", "sealed"];

/// Sizes of the groups the committer has statements for: powers of two up to the largest
/// group. A group is padded with claims of NULLs (which hold for no row) to the next size, so
/// that SQLite keeps a few prepared statements, not one per group size.
const SIZES: usize = MAX_BATCH.ilog2() as usize + 1;

/// The claims as a table `c` (`n`, then `fields`), one row of bound parameters per claim:
/// ?1 is the time of the group, claim `k`'s fields are ?(2 + k * fields.len()) onwards. Bound
/// values reach SQLite as they are; a JSON array (the way this was first written) was encoded,
/// hex-encoded and parsed again for every group, about half of SQLite's time per Get.
fn claims_table(rows: usize, fields: &[&str]) -> String {
    let mut values = String::with_capacity(rows * 8 * fields.len());
    for k in 0..rows {
        let first = 2 + fields.len() * k;
        let params = (first..first + fields.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
        values.push_str(&format!("{}({k}, {params})", if k == 0 { "" } else { ", " }));
    }
    format!("c (n, {}) AS MATERIALIZED (VALUES {values})", fields.join(", "))
}

/// The condition under which the claim `$claim` (a row of [`claims_table`]) on the row `$row`
/// holds.
macro_rules! claim_holds {
    ($row:literal, $claim:literal) => {
        concat!(
            $row,
            ".id = ",
            $claim,
            ".id AND ",
            $row,
            ".customer_id = ",
            $claim,
            ".customer AND ",
            $row,
            ".encrypted_credentials = ",
            $claim,
            ".sealed AND ",
            $row,
            ".is_active = 1 AND (SELECT status FROM customers WHERE customers.id = ",
            $row,
            ".customer_id) IN ",
            good_standing_sql!()
        )
    };
}

/// Moves every journal row into the audit log, in journal order; run inside a transaction.
macro_rules! move_journal_sql {
    () => {
        concat!(
            "INSERT INTO credential_audit_log (",
            audit_columns!(),
            ") SELECT ",
            audit_columns!(),
            " FROM credential_use_journal ORDER BY seq; DELETE FROM credential_use_journal"
        )
    };
}
pub(super) use move_journal_sql;

/// The journal's move, in one transaction of its own on the committer's connection.
fn move_journal(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
    tx.execute_batch(move_journal_sql!()).map_err(store_error)?;
    tx.commit().map_err(store_error)
}

/// A group's two statements for up to `rows` claims (see [`claims_table`]). A claim counts,
/// and gets its audit row, only if the row still holds: same owner, same ciphertext, active,
/// customer in good standing. Claims on one credential with the same owner and ciphertext count
/// together.
struct GroupStatements {
    /// Appends the audit rows of the claims that hold to the journal, in claim order.
    journal: String,
    /// Counts the uses and returns each counted credential's metadata and ciphertext.
    count: String,
}

impl GroupStatements {
    fn new(rows: usize) -> Self {
        let journal = format!(
            "WITH {claims} INSERT INTO credential_use_journal \
             (id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac) \
             SELECT c.audit_id, cred.id, cred.customer_id, c.action, c.details, c.ip, c.actor, c.at, c.mac \
             FROM c CROSS JOIN cloud_credentials AS cred ON {holds} ORDER BY c.n",
            claims = claims_table(rows, JOURNAL_FIELDS),
            holds = claim_holds!("cred", "c"),
        );
        let count = format!(
            "WITH {claims} UPDATE cloud_credentials SET usage_count = usage_count + claims.uses, last_used_at = ?1 \
             FROM (SELECT id, customer, sealed, count(*) AS uses FROM c GROUP BY id, customer, sealed) AS claims \
             WHERE {holds}{returning}, encrypted_credentials",
            claims = claims_table(rows, COUNT_FIELDS),
            holds = claim_holds!("cloud_credentials", "claims"),
            returning = returning_credential!(""),
        );
        Self { journal, count }
    }

    /// The statements for groups of up to `rows` claims, built once per size, and that size.
    fn for_group(rows: usize) -> (&'static Self, usize) {
        static STATEMENTS: [OnceLock<GroupStatements>; SIZES] = [const { OnceLock::new() }; SIZES];
        let size = rows.next_power_of_two();
        (STATEMENTS[size.ilog2() as usize].get_or_init(|| Self::new(size)), size)
    }
}

/// One claim's values, as bound to both statements.
struct Claim<'a> {
    id: String,
    customer: String,
    sealed: &'a [u8],
    audit_id: String,
    action: &'static str,
    details: &'a str,
    ip: Option<String>,
    actor: Option<&'a str>,
    at: i64,
    mac: Option<[u8; 32]>,
}

impl<'a> Claim<'a> {
    fn new(signer: Option<&dyn AuditSigner>, u: &'a Use) -> Self {
        let audit = &u.audit;
        let audit_id = crate::domain::new_audit_row_id();
        Claim {
            id: u.claim.id.to_string(),
            customer: u.claim.customer_id.to_string(),
            sealed: &u.claim.sealed,
            audit_id: audit_id.to_string(),
            action: audit.action.as_str(),
            details: &audit.details,
            ip: audit.ip_address.map(|ip| ip.to_string()),
            actor: audit.actor.as_ref().map(TokenName::as_str),
            at: micros(u.now),
            mac: signer.map(|signer| audit.to_event(audit_id, u.now).mac(signer)),
        }
    }

    /// Binds this claim as row `k` of the journal's claims table.
    fn bind_journal(&self, statement: &mut rusqlite::CachedStatement<'_>, k: usize) -> rusqlite::Result<()> {
        let first = 2 + JOURNAL_FIELDS.len() * k;
        statement.raw_bind_parameter(first, &self.id)?;
        statement.raw_bind_parameter(first + 1, &self.customer)?;
        statement.raw_bind_parameter(first + 2, self.sealed)?;
        statement.raw_bind_parameter(first + 3, &self.audit_id)?;
        statement.raw_bind_parameter(first + 4, self.action)?;
        statement.raw_bind_parameter(first + 5, self.details)?;
        statement.raw_bind_parameter(first + 6, self.ip.as_deref())?;
        statement.raw_bind_parameter(first + 7, self.actor)?;
        statement.raw_bind_parameter(first + 8, self.at)?;
        statement.raw_bind_parameter(first + 9, self.mac.as_ref().map(<[u8; 32]>::as_slice))
    }

    /// Binds this claim as row `k` of the count's claims table.
    fn bind_count(&self, statement: &mut rusqlite::CachedStatement<'_>, k: usize) -> rusqlite::Result<()> {
        let first = 2 + COUNT_FIELDS.len() * k;
        statement.raw_bind_parameter(first, &self.id)?;
        statement.raw_bind_parameter(first + 1, &self.customer)?;
        statement.raw_bind_parameter(first + 2, self.sealed)
    }
}

/// Binds NULL to every parameter from `first` on: the padding claims, which hold for no row.
fn bind_padding(statement: &mut rusqlite::CachedStatement<'_>, first: usize) -> rusqlite::Result<()> {
    for i in first..=statement.parameter_count() {
        statement.raw_bind_parameter(i, rusqlite::types::Null)?;
    }
    Ok(())
}

/// Commits one group in one transaction; the metadata of each claim's credential if the claim
/// held (its use counted and audited), in batch order. An error means nothing was committed.
fn record(
    conn: &mut Connection,
    signer: Option<&dyn AuditSigner>,
    batch: &[Use],
) -> Result<Vec<Option<CredentialMetadata>>, StoreError> {
    let now = batch.iter().map(|u| u.now).max().expect("a batch holds at least one use");
    let (statements, _) = GroupStatements::for_group(batch.len());
    let claims: Vec<Claim<'_>> = batch.iter().map(|u| Claim::new(signer, u)).collect();
    // Dropped without a commit (any error below), the transaction rolls back.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
    {
        let mut journal = tx.prepare_cached(&statements.journal).map_err(store_error)?;
        for (k, claim) in claims.iter().enumerate() {
            claim.bind_journal(&mut journal, k).map_err(store_error)?;
        }
        bind_padding(&mut journal, 2 + JOURNAL_FIELDS.len() * claims.len()).map_err(store_error)?;
        journal.raw_execute().map_err(store_error)?;
    }
    let mut counted = HashMap::with_capacity(claims.len());
    {
        let mut count = tx.prepare_cached(&statements.count).map_err(store_error)?;
        count.raw_bind_parameter(1, micros(now)).map_err(store_error)?;
        for (k, claim) in claims.iter().enumerate() {
            claim.bind_count(&mut count, k).map_err(store_error)?;
        }
        bind_padding(&mut count, 2 + COUNT_FIELDS.len() * claims.len()).map_err(store_error)?;
        let mut rows = count.raw_query();
        while let Some(row) = rows.next().map_err(store_error)? {
            let sealed: Vec<u8> = row.get("encrypted_credentials").map_err(store_error)?;
            let metadata = metadata_from_row(row)?;
            counted.insert(metadata.id, (metadata, sealed));
        }
    }
    tx.commit().map_err(store_error)?;
    Ok(batch
        .iter()
        .map(|u| {
            counted.get(&u.claim.id).and_then(|(metadata, sealed)| {
                let holds = metadata.customer_id == u.claim.customer_id && **sealed == *u.claim.sealed;
                holds.then(|| metadata.clone())
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn the_committers_connection_defers_its_syncs_and_the_writer_stays_at_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()), None).await.unwrap();
        let committer =
            Committer::open(&path, store.writer.clone(), None, Arc::new(AtomicUsize::new(0))).unwrap();
        let synchronous: i64 = committer
            .connection
            .lock()
            .unwrap()
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap();
        assert_eq!(synchronous, 1, "NORMAL: the sync thread syncs the WAL");
        let mut writer = store.writer.acquire().await.unwrap();
        let synchronous: i64 =
            sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut **writer).await.unwrap();
        assert_eq!(synchronous, 2, "FULL for every other write");
    }

    #[tokio::test]
    async fn the_wal_syncs_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        let _store = SqliteStore::connect(&format!("sqlite://{}", path.display()), None).await.unwrap();
        Wal::of(&path).sync().expect("the store's WAL syncs");
        let missing = Wal::of(&dir.path().join("absent.db"));
        assert!(missing.sync().is_err(), "no WAL to sync is a failure, not a success");
    }
}
