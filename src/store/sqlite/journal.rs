//! The use journal: where a Get's audit row commits on SQLite, and how it moves into the audit
//! log. This module owns the journal's SQL, its counts and its one ordering rule.
//!
//! `credential_use_journal` (migration 0005) has no index but its rowid: a group of Gets appends
//! to one or two pages instead of dirtying a random page of each of the audit log's indexes per
//! Get. A journal row is also the use's count (migration 0006): a Get does not update its
//! credential's row; moving the journal adds its uses to each credential's stored
//! `usage_count` and `last_used_at` in the same transaction. Until then the committer keeps
//! count of them in memory ([`JournaledUses`]) and queries that read usage count them in SQL
//! (`select_credentials_counting_journal!`).
//!
//! **The ordering rule.** The sealer chains audit rows in rowid order, which must be the order
//! they committed in. Journal rows committed before an audit row must therefore be in the log
//! before it: every audit row is written in an [`AuditedTx`] (or, on a committer's own
//! connection, an [`AuditedTxn`]), which moves the journal first and is the only way to reach
//! [`insert_audit`], so the rule holds by construction, not by convention. The committer moves
//! the journal itself once it holds [`MOVE_AT`] rows ([`move_on`]).

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use rusqlite::{OptionalExtension as _, Transaction};
use sqlx::Sqlite;
use sqlx::sqlite::SqliteConnection;
use time::OffsetDateTime;

use super::micros;
use crate::domain::{AuditEntry, AuditSigner, TokenName};
use crate::store::StoreError;

/// Journal rows after which the committer moves the journal into the audit log: each move
/// holds the writer for its whole transaction (a few tens of milliseconds for this many rows),
/// delaying one group; fewer, larger moves touch each page of the log's index fewer times per
/// row.
pub(super) const MOVE_AT: i64 = 4096;

/// Like `select_credentials!`, with the uses still in the journal counted in: a credential's
/// stored usage_count and last_used_at count only the uses moved out of it. The journal has no
/// index but its rowid, so this scans it, filtered by `$journal` (on its `credential_id` or
/// `customer_id`): a cost that grows with the Gets since the last move, none on an idle
/// journal. The tail selects `FROM credentials`.
macro_rules! select_credentials_counting_journal {
    ($journal:literal, $($tail:literal)*) => {
        concat!(
            "WITH journaled AS (SELECT credential_id, count(*) AS uses, max(created_at) AS last_at \
             FROM credential_use_journal WHERE ", $journal, " GROUP BY credential_id), ",
            "credentials AS (SELECT cloud_credentials.*, ",
            "usage_count + coalesce(uses, 0) AS used, ",
            "max(coalesce(last_used_at, last_at), coalesce(last_at, last_used_at)) AS last_used ",
            "FROM cloud_credentials LEFT JOIN journaled ON journaled.credential_id = cloud_credentials.id) ",
            "SELECT id, customer_id, provider, credential_name, credential_type, permissions, ",
            "is_active, is_verified, is_default, last_verified_at, last_used AS last_used_at, ",
            "used AS usage_count, created_at, updated_at, current_version, latest_version, rotated_at, revision, purge_at, purged_at, ",
            "verified_identity, verification_findings, verification_failures, first_failed_at, failing_since ",
            $($tail,)*
        )
    };
}

/// Appends a use's audit row to the journal: the use counts from its commit.
pub(super) const APPEND: &str = "INSERT INTO credential_use_journal \
     (id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// Moves every journal row into the audit log, in journal order, and adds the uses they count
/// to their credentials' stored usage_count and last_used_at; run inside a transaction.
const MOVE: &str = concat!(
    "UPDATE cloud_credentials SET usage_count = usage_count + journaled.uses, \
     last_used_at = max(coalesce(last_used_at, journaled.last_at), journaled.last_at) \
     FROM (SELECT credential_id, count(*) AS uses, max(created_at) AS last_at \
     FROM credential_use_journal GROUP BY credential_id) AS journaled \
     WHERE cloud_credentials.id = journaled.credential_id; ",
    "INSERT INTO credential_audit_log (",
    audit_columns!(),
    ") SELECT ",
    audit_columns!(),
    " FROM credential_use_journal ORDER BY seq; DELETE FROM credential_use_journal"
);

/// A transaction on the writer connection that has moved the journal into the log: the only
/// place an audit row can be written ([`insert_audit`]), and where a credential's usage read or
/// returned counts every committed use. Derefs to the connection for its other statements.
pub(super) struct AuditedTx<'c>(sqlx::Transaction<'c, Sqlite>);

impl<'c> AuditedTx<'c> {
    /// Begins the transaction on `writer` (the writer's connection, during its turn) and moves
    /// the journal in it.
    pub(super) async fn begin(writer: &'c mut SqliteConnection) -> Result<Self, StoreError> {
        let mut tx = super::writer::begin_write(writer).await?;
        let began = std::time::Instant::now();
        sqlx::query(MOVE).execute(&mut *tx).await?;
        crate::store::metrics::journal_moved(began.elapsed());
        Ok(Self(tx))
    }

    pub(super) async fn commit(self) -> Result<(), StoreError> {
        Ok(self.0.commit().await?)
    }
}

impl Deref for AuditedTx<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.0
    }
}

impl DerefMut for AuditedTx<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.0
    }
}

/// [`AuditedTx`] on a committer's own connection (rusqlite): the same rule, the same statements.
pub(super) struct AuditedTxn<'c>(rusqlite::Transaction<'c>);

impl<'c> AuditedTxn<'c> {
    /// Begins a write transaction on `conn` (during the writer's turn) and moves the journal in
    /// it, if it holds any row.
    pub(super) fn begin(conn: &'c mut rusqlite::Connection) -> rusqlite::Result<Self> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if tx.prepare_cached(NEWEST)?.exists([])? {
            let began = std::time::Instant::now();
            tx.execute_batch(MOVE)?;
            crate::store::metrics::journal_moved(began.elapsed());
        }
        Ok(Self(tx))
    }

    /// Appends an audit row, as [`insert_audit`] does.
    pub(super) fn insert_audit(
        &self,
        signer: Option<&dyn AuditSigner>,
        audit: &AuditEntry,
        now: OffsetDateTime,
    ) -> rusqlite::Result<()> {
        let id = crate::domain::new_audit_row_id();
        let mac = signer.map(|signer| audit.to_event(id, now).mac(signer));
        self.0.prepare_cached(INSERT_AUDIT)?.execute((
            id.to_string(),
            audit.credential_id.map(|id| id.to_string()),
            audit.customer_id.map(|id| id.to_string()),
            audit.action.as_str(),
            &audit.details,
            audit.ip_address.map(|ip| ip.to_string()),
            audit.actor.as_ref().map(TokenName::as_str),
            micros(now),
            mac.as_deref(),
        ))?;
        Ok(())
    }

    pub(super) fn commit(self) -> rusqlite::Result<()> {
        self.0.commit()
    }
}

impl<'c> Deref for AuditedTxn<'c> {
    type Target = rusqlite::Transaction<'c>;

    fn deref(&self) -> &rusqlite::Transaction<'c> {
        &self.0
    }
}

/// Writes one audit row, unless a row with its id exists.
const INSERT_AUDIT: &str = "INSERT INTO credential_audit_log \
     (id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (id) DO NOTHING";

/// Appends an audit row (MACed with `signer`, when there is one) after the journal's rows.
pub(super) async fn insert_audit(
    tx: &mut AuditedTx<'_>,
    signer: Option<&dyn AuditSigner>,
    audit: &AuditEntry,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    insert_audit_as(tx, signer, crate::domain::new_audit_row_id(), audit, now).await.map(drop)
}

/// [`insert_audit`] under a given id (an imported row keeps its own), unless a row with that id
/// exists; whether it was written.
pub(super) async fn insert_audit_as(
    tx: &mut AuditedTx<'_>,
    signer: Option<&dyn AuditSigner>,
    id: uuid::Uuid,
    audit: &AuditEntry,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let mac = signer.map(|signer| audit.to_event(id, now).mac(signer));
    let written = sqlx::query(INSERT_AUDIT)
        .bind(id.to_string())
        .bind(audit.credential_id.map(|id| id.to_string()))
        .bind(audit.customer_id.map(|id| id.to_string()))
        .bind(audit.action.as_str())
        .bind(&audit.details)
        .bind(audit.ip_address.map(|ip| ip.to_string()))
        .bind(audit.actor.as_ref().map(TokenName::as_str))
        .bind(micros(now))
        .bind(mac.as_deref())
        .execute(&mut **tx)
        .await?;
    Ok(written.rows_affected() == 1)
}

/// Moves the journal on the committer's own connection, in a transaction of its own.
pub(super) fn move_on(conn: &mut rusqlite::Connection) -> rusqlite::Result<()> {
    let began = std::time::Instant::now();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(MOVE)?;
    tx.commit()?;
    crate::store::metrics::journal_moved(began.elapsed());
    Ok(())
}

const NEWEST: &str = "SELECT id FROM credential_use_journal ORDER BY seq DESC LIMIT 1";

const PER_CREDENTIAL: &str = "SELECT credential_id, count(*), max(created_at) \
     FROM credential_use_journal GROUP BY credential_id";

/// One credential's uses in the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Uses {
    pub(super) count: i64,
    /// The latest one's time, in microseconds since the epoch (as stored).
    pub(super) last_at: i64,
}

/// The journal's newest row (its audit id; `None` for an empty journal) when the counts last
/// matched it.
#[derive(Debug, Default, PartialEq, Eq)]
enum Seen {
    /// Not known to match: count again before use.
    #[default]
    Unknown,
    Newest(Option<String>),
}

/// Per credential id (as stored), its uses in the journal, as the group committer keeps count of
/// them: counting them in SQL would scan the journal on every Get.
///
/// The journal changes only by appends at its end, each row with a new audit id, and by moves,
/// which empty it. So while its newest row is still the one the committer last saw (or it is
/// still empty), nothing changed: a move by another write or another process, or a row
/// appended by another process, shows as a different newest row, and the committer counts the
/// journal again (a move leaves it empty, so that is usually cheap).
#[derive(Debug, Default)]
pub(super) struct JournaledUses {
    seen: Seen,
    uses: HashMap<String, Uses>,
    /// Rows in the journal: the sum of the counts.
    rows: i64,
}

impl JournaledUses {
    /// Brings the counts up to date with the journal as `tx` sees it, and returns the id of
    /// the journal's newest row. The counts stay unknown until [`JournaledUses::committed`]: a group
    /// that fails between the two leaves them to be counted again.
    pub(super) fn refresh(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<Option<String>> {
        let newest: Option<String> = tx.prepare_cached(NEWEST)?.query_row([], |row| row.get(0)).optional()?;
        if std::mem::take(&mut self.seen) != Seen::Newest(newest.clone()) {
            self.uses.clear();
            self.rows = 0;
            let mut per_credential = tx.prepare_cached(PER_CREDENTIAL)?;
            let mut rows = per_credential.query([])?;
            while let Some(row) = rows.next()? {
                let uses = Uses { count: row.get(1)?, last_at: row.get(2)? };
                self.rows += uses.count;
                self.uses.insert(row.get(0)?, uses);
            }
        }
        Ok(newest)
    }

    /// Counts one more use of `credential`, at `at`; returns its uses in the journal with it.
    pub(super) fn add(&mut self, credential: &str, at: i64) -> Uses {
        let uses = match self.uses.get_mut(credential) {
            Some(uses) => uses,
            None => self.uses.entry(credential.to_owned()).or_insert(Uses { count: 0, last_at: at }),
        };
        uses.count += 1;
        uses.last_at = uses.last_at.max(at);
        self.rows += 1;
        *uses
    }

    /// Whether the journal holds enough rows to be moved (see [`MOVE_AT`]).
    pub(super) fn due(&self) -> bool {
        self.rows >= MOVE_AT
    }

    /// The uses added since [`JournaledUses::refresh`] are committed; `newest` is the journal's
    /// newest row now.
    pub(super) fn committed(&mut self, newest: Option<String>) {
        self.seen = Seen::Newest(newest);
    }

    /// The journal was just moved (emptied) on the committer's connection.
    pub(super) fn moved(&mut self) {
        self.uses.clear();
        self.rows = 0;
        self.seen = Seen::Newest(None);
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    fn append(conn: &Connection, row: &str, credential: &str, at: i64) {
        conn.execute(
            "INSERT INTO credential_use_journal (id, credential_id, created_at) VALUES (?1, ?2, ?3)",
            (row, credential, at),
        )
        .unwrap();
    }

    #[test]
    fn the_counts_hold_only_while_the_journal_is_as_the_last_committed_group_left_it() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE credential_use_journal \
             (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, credential_id TEXT NOT NULL, created_at INTEGER NOT NULL)",
        )
        .unwrap();
        let mut journaled = JournaledUses::default();

        let tx = conn.transaction().unwrap();
        assert_eq!(journaled.refresh(&tx).unwrap(), None);
        append(&tx, "r1", "a", 10);
        assert_eq!(journaled.add("a", 10), Uses { count: 1, last_at: 10 });
        tx.commit().unwrap();
        journaled.committed(Some("r1".into()));

        // A group that fails: its use is rolled back, and forgotten.
        let tx = conn.transaction().unwrap();
        assert_eq!(journaled.refresh(&tx).unwrap(), Some("r1".into()));
        append(&tx, "r2", "a", 20);
        journaled.add("a", 20);
        drop(tx);
        let tx = conn.transaction().unwrap();
        assert_eq!(journaled.refresh(&tx).unwrap(), Some("r1".into()));
        assert_eq!(journaled.add("a", 15), Uses { count: 2, last_at: 15 });
        append(&tx, "r2", "a", 15);
        tx.commit().unwrap();
        journaled.committed(Some("r2".into()));

        // Another process appends: counted again, its rows included.
        append(&conn, "r3", "b", 30);
        let tx = conn.transaction().unwrap();
        assert_eq!(journaled.refresh(&tx).unwrap(), Some("r3".into()));
        assert_eq!(journaled.add("a", 40), Uses { count: 3, last_at: 40 });
        assert_eq!(journaled.add("b", 35), Uses { count: 2, last_at: 35 });
        drop(tx);

        // Another writer moves (empties) the journal: nothing is pending any more.
        conn.execute("DELETE FROM credential_use_journal", []).unwrap();
        let tx = conn.transaction().unwrap();
        assert_eq!(journaled.refresh(&tx).unwrap(), None);
        assert_eq!(journaled.add("a", 50), Uses { count: 1, last_at: 50 });
        assert!(!journaled.due(), "one row is not a move's worth");
    }
}
