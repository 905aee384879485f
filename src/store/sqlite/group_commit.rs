//! Group commit (see [`crate::store::group`]) for Get's audited use on SQLite. SQLite has one
//! writer and every durable commit is a sync of the WAL, so one commit per Get would cap Get at
//! the disk's sync rate.
//!
//! The committer's sessions commit with synchronous=NORMAL and sync the WAL themselves, on
//! another thread, before any caller of the group hears back (see [`Wal`]): the writer runs the
//! next group while the disk flushes the last ones. Every other write on the connection commits
//! with synchronous=FULL, as before.
//!
//! A group is ONE round trip to SQLite's worker thread whatever its size (begin, one INSERT for
//! every audit row, one UPDATE for every use, commit, sent as one query): under load, each
//! round trip waits for the thread to be scheduled, and those waits, not SQLite's own work,
//! were most of the cost of a use recorded row by row.
//!
//! The audit rows go to the use journal (migration 0005), which has no index but its rowid: a
//! group appends to one or two pages instead of dirtying a random page of each of the log's
//! indexes per use. Every [`MOVE_AT`] journal rows, the committer moves the journal into the
//! audit log in one transaction, on the same writer, between two groups; every other audit
//! row is written after moving the journal in its own transaction, so the log's rowid order
//! stays the order in which rows committed (the order the sealer chains them in).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{Row, Sqlite};

use super::{metadata_from_row, micros};
use crate::domain::{AuditSigner, CredentialMetadata, TokenName};
use crate::store::StoreError;
use crate::store::group::{Recorder, Use};

/// Journal rows after which the committer moves the journal into the audit log. Larger
/// batches touch each page of the log's indexes fewer times per row; each move holds the writer
/// for its whole transaction (a few milliseconds for this many rows), delaying one group.
const MOVE_AT: usize = 4096;

/// SQLite's committer: one group at a time on the single writer.
pub(super) struct Committer {
    pub(super) writer: sqlx::SqlitePool,
    pub(super) signer: Option<Arc<dyn AuditSigner>>,
    /// Rows this process appended to the journal since it last moved it.
    pub(super) journaled: Arc<AtomicUsize>,
    /// The database's WAL, which the committer syncs itself (`None` for a database in memory).
    pub(super) wal: Option<Wal>,
}

/// The writer connection during a session. With a [`Wal`], the session's commits do not wait
/// for the disk (synchronous=NORMAL); [`Recorder::close`] sets FULL again before the connection
/// goes back to the pool. A session dropped without that (its task cancelled or panicking)
/// closes the connection instead, so that no other write ever commits on it without a sync.
pub(super) struct Session(Option<PoolConnection<Sqlite>>);

impl Session {
    fn connection(&mut self) -> &mut sqlx::SqliteConnection {
        self.0.as_mut().expect("a session holds its connection until it is closed")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.0 {
            conn.close_on_drop();
        }
    }
}

#[async_trait]
impl Recorder for Committer {
    type Item = Use;
    type Outcome = Option<CredentialMetadata>;
    type Session = Session;

    async fn open(&self) -> Result<Session, StoreError> {
        let mut session = Session(Some(self.writer.acquire().await?));
        if self.wal.is_some() {
            sqlx::query("PRAGMA synchronous = NORMAL").execute(session.connection()).await?;
        }
        Ok(session)
    }

    async fn record(
        &self,
        session: &mut Session,
        batch: &[Use],
    ) -> Result<Vec<Option<CredentialMetadata>>, StoreError> {
        let conn = session.connection();
        let outcomes = record(conn, self.signer.as_deref(), batch).await?;
        let journaled = self.journaled.fetch_add(batch.len(), Ordering::Relaxed) + batch.len();
        if journaled >= MOVE_AT {
            // The group above is committed and answered whatever happens here: a failed move
            // leaves the rows in the journal, for the next move.
            match move_journal(conn).await {
                Ok(()) => self.journaled.store(0, Ordering::Relaxed),
                Err(e) => tracing::warn!(error = %e, "could not move the use journal into the audit log"),
            }
        }
        Ok(outcomes)
    }

    async fn close(&self, mut session: Session) {
        let mut conn = session.0.take().expect("a session is closed once");
        if self.wal.is_some()
            && let Err(e) = sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await
        {
            tracing::warn!(error = %e, "could not restore synchronous=FULL; closing the writer connection");
            if let Err(e) = conn.close().await {
                tracing::debug!(error = %e, "closing the writer connection failed");
            }
        }
    }

    fn defers_sync(&self) -> bool {
        self.wal.is_some()
    }

    fn sync(&self) -> std::io::Result<()> {
        match &self.wal {
            Some(wal) => wal.sync(),
            None => Ok(()),
        }
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
    /// The WAL of the database file at `database`; `None` for a database in memory.
    pub(super) fn of(database: &Path) -> Option<Self> {
        let name = database.file_name()?.to_str()?;
        if name.is_empty() || name.starts_with(':') {
            return None;
        }
        Some(Self { path: database.with_file_name(format!("{name}-wal")), synced_inode: Mutex::new(None) })
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

/// The fields of one claim, in [`claims_table`]'s order.
const FIELDS: usize = 10;

/// Sizes of the groups the committer has statements for: powers of two up to the largest
/// group. A group is padded with claims of NULLs (which hold for no row) to the next size, so
/// that SQLite and sqlx keep ten prepared statements, not one per group size.
const SIZES: usize = super::super::group::MAX_BATCH.ilog2() as usize + 1;

/// The claims as a table `c` (`n`, then the fields), one row of bound parameters per claim:
/// ?1 is the time of the group, claim `k`'s fields are ?(2 + 10k) to ?(11 + 10k). Bound values
/// reach SQLite as they are; a JSON array (the way this was first written) was encoded,
/// hex-encoded and parsed again for every group, about half of SQLite's time per Get.
fn claims_table(rows: usize) -> String {
    let mut values = String::with_capacity(rows * 64);
    for k in 0..rows {
        let first = 2 + FIELDS * k;
        let fields = (first..first + FIELDS).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
        values.push_str(&format!("{}({k}, {fields})", if k == 0 { "" } else { ", " }));
    }
    format!(
        "c (n, id, customer, sealed, audit_id, action, details, ip, actor, at, mac) AS MATERIALIZED \
         (VALUES {values})"
    )
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

/// Moves the journal into the audit log in one transaction of its own.
pub(super) async fn move_journal(conn: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
    let moved =
        sqlx::query(concat!("BEGIN IMMEDIATE; ", move_journal_sql!(), "; COMMIT")).execute(&mut *conn).await;
    if let Err(e) = moved {
        roll_back(conn).await;
        return Err(e.into());
    }
    Ok(())
}

/// Ends a transaction a failed multi-statement query may have left open, writing nothing.
async fn roll_back(conn: &mut sqlx::SqliteConnection) {
    if let Err(rollback) = sqlx::query("ROLLBACK").execute(&mut *conn).await {
        tracing::debug!(error = %rollback, "no transaction to roll back");
    }
}

/// The group statement for up to `rows` claims (see [`claims_table`]), one round trip to
/// SQLite's thread whatever the group's size: begin, one INSERT for every audit row, one UPDATE
/// for every use, commit. A claim counts, and gets its audit row, only if the row still holds:
/// same owner, same ciphertext, active, customer in good standing. Claims on one credential
/// with the same owner and ciphertext count together.
fn group_sql(rows: usize) -> String {
    let claims = claims_table(rows);
    format!(
        "BEGIN IMMEDIATE; \
         WITH {claims} INSERT INTO credential_use_journal \
         (id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac) \
         SELECT c.audit_id, cred.id, cred.customer_id, c.action, c.details, c.ip, c.actor, c.at, c.mac \
         FROM c CROSS JOIN cloud_credentials AS cred ON {holds_for_use} ORDER BY c.n; \
         WITH {claims} UPDATE cloud_credentials SET usage_count = usage_count + claims.uses, last_used_at = ?1 \
         FROM (SELECT id, customer, sealed, count(*) AS uses FROM c GROUP BY id, customer, sealed) AS claims \
         WHERE {holds_for_count}{returning}, encrypted_credentials; \
         COMMIT",
        holds_for_use = claim_holds!("cred", "c"),
        holds_for_count = claim_holds!("cloud_credentials", "claims"),
        returning = returning_credential!(""),
    )
}

/// [`group_sql`] for groups of up to `rows` claims, built once per size.
fn group_statement(rows: usize) -> (&'static str, usize) {
    static STATEMENTS: [OnceLock<String>; SIZES] = [const { OnceLock::new() }; SIZES];
    let size = rows.next_power_of_two();
    let statement = STATEMENTS[size.ilog2() as usize].get_or_init(|| group_sql(size));
    (statement, size)
}

async fn record(
    conn: &mut sqlx::SqliteConnection,
    signer: Option<&dyn AuditSigner>,
    batch: &[Use],
) -> Result<Vec<Option<CredentialMetadata>>, StoreError> {
    let now = batch.iter().map(|u| u.now).max().expect("a batch holds at least one use");
    let (statement, size) = group_statement(batch.len());
    let mut query = sqlx::query(statement).bind(micros(now));
    for u in batch {
        let audit = &u.audit;
        let audit_id = crate::domain::new_audit_row_id();
        let mac = signer.map(|signer| audit.to_event(audit_id, u.now).mac(signer).to_vec());
        query = query
            .bind(u.claim.id.to_string())
            .bind(u.claim.customer_id.to_string())
            .bind(&*u.claim.sealed)
            .bind(audit_id.to_string())
            .bind(audit.action.as_str())
            .bind(audit.details.as_str())
            .bind(audit.ip_address.map(|ip| ip.to_string()))
            .bind(audit.actor.as_ref().map(TokenName::as_str))
            .bind(micros(u.now))
            .bind(mac);
    }
    for _ in 0..(size - batch.len()) * FIELDS {
        query = query.bind(None::<String>);
    }
    let rows = match query.fetch_all(&mut *conn).await {
        Ok(rows) => rows,
        Err(e) => {
            // The group's transaction may still be open on the writer: end it, writing nothing.
            roll_back(conn).await;
            return Err(e.into());
        }
    };
    let mut counted = HashMap::with_capacity(rows.len());
    for row in &rows {
        let sealed: Vec<u8> = row.try_get("encrypted_credentials")?;
        let metadata = metadata_from_row(row)?;
        counted.insert(metadata.id, (metadata, sealed));
    }
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

    async fn store(dir: &tempfile::TempDir) -> (SqliteStore, Committer) {
        let path = dir.path().join("vault.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()), None).await.unwrap();
        let committer = Committer {
            writer: store.writer.clone(),
            signer: None,
            journaled: Arc::new(AtomicUsize::new(0)),
            wal: Wal::of(&path),
        };
        (store, committer)
    }

    async fn synchronous(conn: &mut sqlx::SqliteConnection) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous").fetch_one(conn).await.unwrap()
    }

    #[tokio::test]
    async fn a_session_commits_without_waiting_and_hands_the_writer_back_at_full() {
        let dir = tempfile::tempdir().unwrap();
        let (store, committer) = store(&dir).await;
        assert!(committer.defers_sync());
        let mut session = committer.open().await.unwrap();
        assert_eq!(synchronous(session.connection()).await, 1, "NORMAL during the session");
        committer.close(session).await;
        let mut writer = store.writer.acquire().await.unwrap();
        assert_eq!(synchronous(&mut writer).await, 2, "FULL for every other write");
    }

    #[tokio::test]
    async fn a_session_dropped_unclosed_never_reaches_another_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (store, committer) = store(&dir).await;
        let session = committer.open().await.unwrap();
        drop(session);
        let mut writer = store.writer.acquire().await.unwrap();
        assert_eq!(synchronous(&mut writer).await, 2, "a fresh connection, at FULL");
    }

    #[tokio::test]
    async fn the_wal_syncs_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, committer) = store(&dir).await;
        committer.sync().expect("the store's WAL syncs");
        let missing = Wal::of(&dir.path().join("absent.db")).unwrap();
        assert!(missing.sync().is_err(), "no WAL to sync is a failure, not a success");
        assert!(Wal::of(Path::new(":memory:")).is_none());
    }
}
