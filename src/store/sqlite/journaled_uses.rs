//! Uses still in the journal, per credential, as the group committer keeps count of them.
//!
//! A credential's stored usage_count and last_used_at count only the uses already moved out of
//! the use journal (migration 0006); a Get answers with its credential's stored count plus its
//! rows still in the journal, this one included. Counting those rows in SQL would scan the
//! journal (it has no index but its rowid, by design) on every Get, so the committer keeps
//! them in memory, valid while the journal holds exactly what it last saw.
//!
//! The journal changes only by appends at its end, each row with a new audit id, and by moves,
//! which empty it. So while its newest row is still the one the committer last saw (or it is
//! still empty), nothing changed: a move by another write or another process, or a row
//! appended by another process, shows as a different newest row, and the committer counts
//! the journal again (a move leaves it empty, so that is usually cheap).

use std::collections::HashMap;

use rusqlite::{OptionalExtension as _, Transaction};

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

/// Per credential id (as stored), its uses in the journal.
#[derive(Debug, Default)]
pub(super) struct JournaledUses {
    seen: Seen,
    uses: HashMap<String, Uses>,
}

impl JournaledUses {
    /// Brings the counts up to date with the journal as `tx` sees it, and returns the id of
    /// the journal's newest row. The counts stay unknown until [`JournaledUses::committed`]: a group
    /// that fails between the two leaves them to be counted again.
    pub(super) fn refresh(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<Option<String>> {
        let newest: Option<String> = tx.prepare_cached(NEWEST)?.query_row([], |row| row.get(0)).optional()?;
        if std::mem::take(&mut self.seen) != Seen::Newest(newest.clone()) {
            self.uses.clear();
            let mut per_credential = tx.prepare_cached(PER_CREDENTIAL)?;
            let mut rows = per_credential.query([])?;
            while let Some(row) = rows.next()? {
                self.uses.insert(row.get(0)?, Uses { count: row.get(1)?, last_at: row.get(2)? });
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
        *uses
    }

    /// The uses added since [`JournaledUses::refresh`] are committed; `newest` is the journal's
    /// newest row now.
    pub(super) fn committed(&mut self, newest: Option<String>) {
        self.seen = Seen::Newest(newest);
    }

    /// The journal was just moved (emptied) on the committer's connection.
    pub(super) fn moved(&mut self) {
        self.uses.clear();
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
    }
}
