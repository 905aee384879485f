//! Get's reads by id on SQLite, in groups (see [`crate::store::group_commit`]) on a thread and
//! connection of their own (rusqlite).
//!
//! A Get of a credential the vault has not served before (every Get, over a million
//! credentials picked at random) reads its row first. Through sqlx each such read was a hand-off
//! to a reader's worker thread and back, and since every commit in between empties a WAL
//! reader's page cache, each read fetched every page of its path again from the OS. Here the
//! reads that arrive while one group runs form the next, read in one transaction: one hand-off
//! and one emptied cache per group, not per Get.

use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _};

use super::BUSY_TIMEOUT;
use super::committer::{ColumnIndex, store_error};
use super::credentials::BY_ID;
use crate::domain::CredentialId;
use crate::store::group_commit::Recorder;
use crate::store::{SealedCredential, StoreError, rows};

/// Reads groups of Gets' rows on a connection of its own.
pub(super) struct GetReads {
    /// Only the group's thread locks it; with the columns of [`BY_ID`].
    connection: Mutex<(Connection, Option<ColumnIndex>)>,
}

impl GetReads {
    pub(super) fn open(database: &Path) -> Result<Self, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(database, flags).map_err(store_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(store_error)?;
        // As the sqlx readers': the vault keeps the rows it served.
        connection.execute_batch("PRAGMA cache_size = -1024").map_err(store_error)?;
        Ok(Self { connection: Mutex::new((connection, None)) })
    }
}

#[async_trait]
impl Recorder for GetReads {
    const NAME: &'static str = "sqlite_get_reads";
    /// The credential, and the version asked for (`None`: the current one).
    type Item = (CredentialId, Option<i64>);
    /// Each read's own outcome: one row that does not decode fails only its Get.
    type Outcome = Result<Option<SealedCredential>, StoreError>;
    /// Reads keep no writer out.
    type Session = ();

    async fn open(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Blocks: runs on the group's own thread.
    async fn record(&self, _: &mut (), batch: &[Self::Item]) -> Result<Vec<Self::Outcome>, StoreError> {
        let mut own = self.connection.lock().expect("the reads' connection is never held across a panic");
        let (connection, columns) = &mut *own;
        // One snapshot for the group; read only, so its end (the drop) only lets go of it.
        let tx = connection.transaction().map_err(store_error)?;
        let mut statement = tx.prepare_cached(BY_ID).map_err(store_error)?;
        let columns = ColumnIndex::of(columns, &statement);
        let read = batch
            .iter()
            .map(|(id, version)| {
                statement
                    .query_row((id.to_string(), version), |row| {
                        Ok(rows::sealed_credential(&columns.row(row)))
                    })
                    .optional()
                    .map_err(store_error)
                    .and_then(Option::transpose)
            })
            .collect();
        Ok(read)
    }
}
