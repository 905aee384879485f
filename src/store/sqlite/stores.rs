//! Group commit (see [`crate::store::group_commit`]) for Store on SQLite. Each Store committed
//! alone was its own transaction and its own sync of the WAL on the one writer: under load the
//! Stores queued behind each other's syncs with the CPU mostly idle. A group inserts every Store
//! that arrived while the last one committed, in one transaction with one sync; each is still
//! durable, with its audit row, before its caller hears back.
//!
//! Like Get's committer ([`super::committer`]), it runs on a thread of its own with a connection
//! of its own (rusqlite): a group is direct calls into SQLite, not a statement at a time handed
//! to sqlx's worker thread with the committer waiting to be woken by each result; it commits
//! with synchronous=NORMAL, and the WAL is synced on its sync thread before anyone hears back,
//! while the committer already inserts the next group. (A Store committed that way is visible
//! to a List for the time of that sync before it is durable; any write that depends on it
//! commits after it, so the sync before that write's answer covers both.)
//!
//! A Store the group cannot insert as is (its customer is missing or not in good standing, or
//! its name or idempotency key is taken, also by an earlier Store of the same group) is left
//! out: the caller then does it on its own, which gives the precise answer. Stores that make a
//! credential the default change other rows and are always done on their own.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension as _};
use tokio::sync::OwnedMutexGuard;

use super::committer::{ColumnIndex, Committing, open_connection, store_error};
use super::journal::AuditedTxn;
use super::micros;
use crate::domain::{AuditSigner, CredentialMetadata, TokenName};
use crate::store::group_commit::{NewStore, Recorder};
use crate::store::{StoreError, rows};

/// Commits groups of Stores on a connection of its own.
pub(super) struct StoreCommitter {
    /// Only the committer's thread locks it; with the columns of the rows a Store returns.
    connection: Mutex<(Connection, Option<ColumnIndex>)>,
    on: Committing,
}

impl StoreCommitter {
    pub(super) fn open(database: &Path, on: Committing) -> Result<Self, StoreError> {
        Ok(Self { connection: Mutex::new((open_connection(database)?, None)), on })
    }
}

#[async_trait]
impl Recorder for StoreCommitter {
    const NAME: &'static str = "sqlite_stores";
    type Item = Arc<NewStore>;
    /// `None` for a Store the group left out (see the module's documentation).
    type Outcome = Option<CredentialMetadata>;
    /// The store's turn to write, held so that no other write runs between two groups.
    type Session = OwnedMutexGuard<()>;

    async fn open(&self) -> Result<Self::Session, StoreError> {
        self.on.turn().await
    }

    /// Blocks: runs on the committer's own thread.
    async fn record(
        &self,
        _writer: &mut Self::Session,
        batch: &[Arc<NewStore>],
    ) -> Result<Vec<Option<CredentialMetadata>>, StoreError> {
        self.on.check()?;
        let mut own =
            self.connection.lock().expect("the committer's connection is never held across a panic");
        let (connection, columns) = &mut *own;
        // Dropped without a commit (any error below), the transaction rolls back.
        let tx = AuditedTxn::begin(connection).map_err(store_error)?;
        let outcomes = batch
            .iter()
            .map(|store| insert_unless_refused(&tx, columns, self.on.signer(), store))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().map_err(store_error)?;
        Ok(outcomes)
    }

    fn defers_sync(&self) -> bool {
        true
    }

    fn sync(&self) -> std::io::Result<()> {
        self.on.sync()
    }
}

/// Inserts one Store's credential if its customer is in good standing and no unique index
/// refuses it (the WHERE also tells SQLite that ON CONFLICT belongs to the INSERT, not to a join).
const INSERT_UNLESS_REFUSED: &str = returning_credential!(concat!(
    "INSERT INTO cloud_credentials (id, customer_id, provider, credential_name, credential_type, \
     permissions, is_default, idempotency_key, request_fingerprint, created_at, updated_at, \
     current_version, latest_version, rotated_at) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?9, 1, 1, ?9 \
     WHERE EXISTS (SELECT 1 FROM customers WHERE id = ?2 AND status IN ",
    good_standing_sql!(),
    ") ON CONFLICT DO NOTHING"
));

/// A new credential's version 1, created by the audit row's actor.
pub(super) const INSERT_FIRST_VERSION: &str = "INSERT INTO credential_versions (credential_id, version, state, \
     encrypted_credentials, key_version, created_by, created_at) VALUES (?1, 1, 'enabled', ?2, ?3, ?4, ?5)";

/// Inserts one Store's credential, first version and audit row, unless its customer is not in
/// good standing or a unique index refuses it (then nothing of it is written).
fn insert_unless_refused(
    tx: &AuditedTxn<'_>,
    columns: &mut Option<ColumnIndex>,
    signer: Option<&dyn AuditSigner>,
    store: &NewStore,
) -> Result<Option<CredentialMetadata>, StoreError> {
    let (new, audit) = (&store.new, &store.audit);
    let (idempotency_key, fingerprint) = match &new.idempotency {
        Some((key, fingerprint)) => (Some(key.as_str()), Some(fingerprint.as_slice())),
        None => (None, None),
    };
    let id = new.id.to_string();
    let mut insert = tx.prepare_cached(INSERT_UNLESS_REFUSED).map_err(store_error)?;
    let columns = ColumnIndex::of(columns, &insert);
    let created = insert
        .query_row(
            (
                &id,
                new.customer_id.to_string(),
                new.provider.as_str(),
                new.name.as_str(),
                new.credential_type.as_str(),
                new.permissions.as_str(),
                idempotency_key,
                fingerprint,
                micros(new.now),
            ),
            |row| Ok(rows::metadata(&columns.row(row))),
        )
        .optional()
        .map_err(store_error)?
        .transpose()?;
    let Some(created) = created else {
        return Ok(None);
    };
    tx.prepare_cached(INSERT_FIRST_VERSION)
        .map_err(store_error)?
        .execute((
            &id,
            new.sealed.as_slice(),
            new.key_version.map(i64::from),
            audit.actor.as_ref().map(TokenName::as_str),
            micros(new.now),
        ))
        .map_err(store_error)?;
    tx.insert_audit(signer, audit, new.now).map_err(store_error)?;
    Ok(Some(created))
}
