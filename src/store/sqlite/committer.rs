//! Group commit (see [`crate::store::group_commit`]) for Get's audited use on SQLite. SQLite has one
//! writer and every durable commit is a sync of the WAL, so one commit per Get would cap Get at
//! the disk's sync rate.
//!
//! The committer runs on a thread of its own and owns a connection of its own (rusqlite, on the
//! same SQLite library as sqlx): a group is direct, synchronous calls into SQLite (begin, for
//! each claim a read of the credential if the claim holds and an INSERT of its audit row,
//! commit), not a query handed to sqlx's worker thread with the committer waiting to be woken by
//! each result. On two busy cores every such hand-off was a scheduling delay that each Get of
//! the group waited through, and sqlx's per-parameter and per-row work ran on top. While it
//! commits groups (a session), the committer holds the store's turn to write (see [`Writer`]),
//! so that no other write runs between two of its groups.
//!
//! The connection commits with synchronous=NORMAL and the WAL is synced on another thread
//! before any caller of a group hears back (see [`Wal`]): the committer runs the next group
//! while the disk flushes the last ones. Every other write (the sqlx writer) commits with
//! synchronous=FULL.
//!
//! The audit rows go to the use journal (see [`journal`]), counted in memory by
//! [`JournaledUses`] to answer each Get with its credential's usage; once the journal holds
//! [`journal::MOVE_AT`] rows, the committer moves it into the audit log between two groups.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, TransactionBehavior};
use tokio::sync::OwnedMutexGuard;

use super::journal::{self, JournaledUses};
use super::writer::Writer;
use super::{BUSY_TIMEOUT, Columns, checkpoint, from_micros, micros};
use crate::domain::{AuditSigner, CredentialMetadata, Etag, TokenName};
use crate::store::StoreError;
use crate::store::group_commit::{Recorder, Use};
use crate::store::rows;

/// SQLite's committer: one group at a time, on its own connection.
pub(super) struct Committer {
    /// Only the committer's thread locks it.
    own: Mutex<Own>,
    on: Committing,
}

/// What only the committer's thread uses.
struct Own {
    connection: Connection,
    uses: JournaledUses,
    /// The claim's columns, known from its first prepared statement.
    claim_columns: Option<ColumnIndex>,
}

impl Committer {
    /// Opens the committer's connection to the database file at `database` (which exists: the
    /// writer pool created it).
    pub(super) fn open(database: &Path, on: Committing) -> Result<Self, StoreError> {
        let connection = open_connection(database)?;
        let own = Mutex::new(Own { connection, uses: JournaledUses::default(), claim_columns: None });
        Ok(Self { own, on })
    }
}

/// What both committers (Get's uses, [`super::stores`]) commit with: the store's writer, whose
/// turn a session holds so that no other write runs between two groups and which a failed sync
/// stops; the audit signer; the WAL they sync.
pub(super) struct Committing {
    pub(super) writer: Writer,
    pub(super) signer: Option<Arc<dyn AuditSigner>>,
    pub(super) wal: Arc<Wal>,
}

impl Committing {
    /// A committer's [`Recorder::open`]: the store's turn to write.
    pub(super) async fn turn(&self) -> Result<OwnedMutexGuard<()>, StoreError> {
        self.writer.turn().await
    }

    /// Before a group: a sync failed since this session began, so nothing more is written.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        self.writer.check()
    }

    pub(super) fn signer(&self) -> Option<&dyn AuditSigner> {
        self.signer.as_deref()
    }

    /// A committer's [`Recorder::sync`].
    pub(super) fn sync(&self) -> std::io::Result<()> {
        sync_wal(&self.writer, &self.wal)
    }
}

/// Opens a committer's own connection to the database file at `database` (which exists: the
/// writer pool created it). It commits with synchronous=NORMAL: the committer's sync thread
/// syncs the WAL ([`sync_wal`]) before any caller of a group hears back.
pub(super) fn open_connection(database: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(database, flags).map_err(store_error)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(store_error)?;
    // No automatic checkpoints inside a commit (see `checkpoint`), and a WAL that grew is cut
    // back when it starts over, as on the sqlx writer.
    connection
        .execute_batch(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0; \
             PRAGMA journal_size_limit = {};",
            checkpoint::RESTART_BYTES
        ))
        .map_err(store_error)?;
    Ok(connection)
}

/// A committer's [`Recorder::sync`]: makes every group committed on its connection durable. A
/// failed sync is not retried: it stops the store's writes for good (see [`Writer`]), and
/// every later sync fails at once.
pub(super) fn sync_wal(writer: &Writer, wal: &Wal) -> std::io::Result<()> {
    writer.check().map_err(std::io::Error::other)?;
    wal.sync().inspect_err(|e| writer.stop(format!("the WAL could not be synced: {e}")))
}

#[async_trait]
impl Recorder for Committer {
    const NAME: &'static str = "sqlite_uses";
    type Item = Use;
    type Outcome = Option<CredentialMetadata>;
    /// The store's turn to write, held so that no other write runs between two groups.
    type Session = OwnedMutexGuard<()>;

    async fn open(&self) -> Result<Self::Session, StoreError> {
        self.on.turn().await
    }

    /// Blocks: runs on the committer's own thread ([`crate::store::group_commit::Group::start_on_thread`]).
    async fn record(
        &self,
        _writer: &mut Self::Session,
        batch: &[Use],
    ) -> Result<Vec<Option<CredentialMetadata>>, StoreError> {
        self.on.check()?;
        let mut own = self.own.lock().expect("the committer's connection is never held across a panic");
        let Own { connection, uses, claim_columns } = &mut *own;
        let outcomes = record(connection, uses, claim_columns, self.on.signer(), batch)?;
        if uses.due() {
            // The group above is committed whatever happens here: a failed move leaves the
            // rows in the journal, for the next move.
            match journal::move_on(connection) {
                Ok(()) => uses.moved(),
                Err(e) => tracing::warn!(error = %e, "could not move the use journal into the audit log"),
            }
        }
        Ok(outcomes)
    }

    fn defers_sync(&self) -> bool {
        true
    }

    fn sync(&self) -> std::io::Result<()> {
        self.on.sync()
    }
}

/// A rusqlite error as the store reports it: busy past the busy timeout, or the file gone,
/// full or read-only, is "unavailable" (a retry may work), anything else a database error. SQLite's messages
/// carry no bound values.
pub(super) fn store_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{
        CannotOpen, DatabaseBusy, DatabaseLocked, DiskFull, ReadOnly, SystemIoFailure,
    };
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | CannotOpen | DiskFull | SystemIoFailure | ReadOnly) => {
            StoreError::unavailable(e)
        }
        _ => StoreError::Other(Box::new(e)),
    }
}

/// Where each column of a prepared statement's rows is, by name. rusqlite finds a column by
/// name by comparing it with each column's name in turn: reading a credential's two dozen
/// columns that way was a tenth of the instructions of a Get.
pub(super) struct ColumnIndex(HashMap<String, usize>);

impl ColumnIndex {
    /// The columns of `statement`, kept in `known` after the first call (its SQL is fixed).
    pub(super) fn of<'k>(known: &'k mut Option<Self>, statement: &rusqlite::Statement<'_>) -> &'k Self {
        known.get_or_insert_with(|| {
            Self(
                statement
                    .column_names()
                    .into_iter()
                    .enumerate()
                    .map(|(i, name)| (name.to_owned(), i))
                    .collect(),
            )
        })
    }

    /// `row`, read through this index.
    pub(super) fn row<'a, 'r>(&'a self, row: &'a rusqlite::Row<'r>) -> IndexedRow<'a, 'r> {
        IndexedRow { index: self, row }
    }
}

/// A row of the statement a [`ColumnIndex`] was made from.
pub(super) struct IndexedRow<'a, 'r> {
    index: &'a ColumnIndex,
    row: &'a rusqlite::Row<'r>,
}

impl IndexedRow<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, column: &str) -> Result<T, StoreError> {
        let at =
            self.index.0.get(column).ok_or_else(|| {
                StoreError::Other(format!("the statement returns no column {column}").into())
            })?;
        self.row.get(*at).map_err(store_error)
    }
}

impl Columns for IndexedRow<'_, '_> {
    fn raw_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.get(column)
    }

    fn raw_integer(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.get(column)
    }

    fn raw_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(column)
    }
}

/// The database's write-ahead log, as the committer syncs it. A commit with synchronous=NORMAL
/// has written its frames, commit frame last, into the WAL without syncing it; one
/// `fdatasync` of the file, begun after that commit returned, makes it as durable as
/// synchronous=FULL would have (which syncs the same file at the end of the commit). SQLite
/// recovers a WAL up to its last valid commit frame, so a crash before the sync loses at most
/// groups nobody was answered for.
///
/// The file is opened once and that handle synced every time: an error a sync reports belongs
/// to the handle it was made on, and one opened afresh could miss it. The WAL cannot be
/// replaced while the committer's connection holds it open (SQLite deletes it only when its
/// last connection closes), so a different file at the path is an error, not a new WAL.
pub(super) struct Wal {
    path: PathBuf,
    /// Opened at the first sync, with its inode; the directory entry is synced then, once.
    file: Mutex<Option<(std::fs::File, u64)>>,
    /// Makes the next sync fail, as a disk that returned EIO would (tests only).
    #[cfg(test)]
    pub(super) fail_next: std::sync::atomic::AtomicBool,
}

impl Wal {
    /// The WAL of the database file at `database`.
    pub(super) fn of(database: &Path) -> Self {
        let mut name = database.file_name().unwrap_or_default().to_owned();
        name.push("-wal");
        Self {
            path: database.with_file_name(name),
            file: Mutex::new(None),
            #[cfg(test)]
            fail_next: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(super) fn sync(&self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt as _;
        #[cfg(test)]
        if self.fail_next.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other("injected: the disk failed the sync"));
        }
        let mut file = self.file.lock().expect("never held across a panic");
        if file.is_none() {
            let wal = std::fs::File::open(&self.path)?;
            let inode = wal.metadata()?.ino();
            let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::File::open(dir)?.sync_all()?;
            *file = Some((wal, inode));
        }
        let (wal, inode) = file.as_ref().expect("opened above");
        wal.sync_data()?;
        if std::fs::metadata(&self.path)?.ino() != *inode {
            return Err(std::io::Error::other("the WAL file was replaced behind SQLite's back"));
        }
        Ok(())
    }
}

/// The credential's metadata if the claim holds (the row is active, has that owner and, when
/// given, that etag; the version is enabled and holds that exact ciphertext; the customer is in
/// good standing). Read
/// inside the group's write transaction, so it still holds when the use's row commits.
const CLAIM: &str = concat!(
    select_credentials!(
        "FROM cloud_credentials WHERE id = ?1 AND customer_id = ?2 AND (?3 IS NULL OR revision = ?3) \
         AND is_active = 1 AND EXISTS (SELECT 1 FROM credential_versions v WHERE v.credential_id = ?1 \
         AND v.version = ?4 AND v.state = 'enabled' AND v.encrypted_credentials = ?5) \
         AND (SELECT status FROM customers WHERE customers.id = cloud_credentials.customer_id) IN "
    ),
    good_standing_sql!()
);

/// Commits one group in one transaction: for each claim in turn, if it holds, the use's audit
/// row is appended to the journal. Returns the metadata of each claim's credential if it held,
/// its usage counting this use, in batch order. An error means nothing was committed.
///
/// Two prepared point statements per claim, rather than one statement for the whole group over
/// a table of its claims: cheaper in SQLite's time, and no padding to a few prepared sizes
/// (docs/design/sqlite-write-path.md has the measurement).
fn record(
    conn: &mut Connection,
    journaled_uses: &mut JournaledUses,
    claim_columns: &mut Option<ColumnIndex>,
    signer: Option<&dyn AuditSigner>,
    batch: &[Use],
) -> Result<Vec<Option<CredentialMetadata>>, StoreError> {
    // Dropped without a commit (any error below), the transaction rolls back.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
    let mut newest = journaled_uses.refresh(&tx).map_err(store_error)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    {
        let mut claim = tx.prepare_cached(CLAIM).map_err(store_error)?;
        let columns = ColumnIndex::of(claim_columns, &claim);
        let mut journal = tx.prepare_cached(journal::APPEND).map_err(store_error)?;
        for u in batch {
            let (id, customer) = (u.claim.id.to_string(), u.claim.customer_id.to_string());
            let mut counted = claim
                .query_row(
                    (&id, &customer, u.claim.etag.map(Etag::revision), u.claim.version, &*u.claim.sealed),
                    |row| Ok(rows::metadata(&columns.row(row))),
                )
                .optional()
                .map_err(store_error)?
                .transpose()?;
            if let Some(credential) = &mut counted {
                let audit = &u.audit;
                let audit_id = crate::domain::new_audit_row_id();
                let mac = signer.map(|signer| audit.to_event(audit_id, u.now).mac(signer));
                let audit_row = audit_id.to_string();
                journal
                    .execute((
                        &audit_row,
                        &id,
                        &customer,
                        audit.action.as_str(),
                        &audit.details,
                        audit.ip_address.map(|ip| ip.to_string()),
                        audit.actor.as_ref().map(TokenName::as_str),
                        micros(u.now),
                        mac.as_deref(),
                    ))
                    .map_err(store_error)?;
                let uses = journaled_uses.add(&id, micros(u.now));
                credential.usage_count += uses.count;
                credential.last_used_at = credential.last_used_at.max(Some(from_micros(uses.last_at)?));
                newest = Some(audit_row);
            }
            outcomes.push(counted);
        }
    }
    tx.commit().map_err(store_error)?;
    journaled_uses.committed(newest);
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[test]
    fn a_column_index_reads_each_column_by_name_and_names_one_the_statement_lacks() {
        let conn = Connection::open_in_memory().unwrap();
        let mut known = None;
        for (a, b) in [(1, "one"), (2, "two")] {
            let statement = conn.prepare("SELECT ?1 AS a, ?2 AS b, NULL AS c").unwrap();
            let index = ColumnIndex::of(&mut known, &statement);
            let mut statement = statement;
            let read = statement
                .query_row((a, b), |row| {
                    let row = index.row(row);
                    Ok((row.raw_integer("a"), row.raw_text("b"), row.raw_bytes("c"), row.raw_text("d")))
                })
                .unwrap();
            assert_eq!(read.0.unwrap(), Some(a));
            assert_eq!(read.1.unwrap().as_deref(), Some(b));
            assert_eq!(read.2.unwrap(), None);
            let missing = read.3.unwrap_err();
            let why = std::error::Error::source(&missing).map(ToString::to_string).unwrap_or_default();
            assert!(why.contains("no column d"), "{missing:?}");
        }
    }

    #[tokio::test]
    async fn the_committers_connection_defers_its_syncs_and_the_writer_stays_at_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()), None).await.unwrap();
        let committer = Committer::open(
            &path,
            Committing { writer: store.writer.clone(), signer: None, wal: Arc::new(Wal::of(&path)) },
        )
        .unwrap();
        let synchronous: i64 = committer
            .own
            .lock()
            .unwrap()
            .connection
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
