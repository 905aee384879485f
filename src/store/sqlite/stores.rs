//! Group commit (see [`crate::store::group_commit`]) for Store on SQLite. Each Store committed
//! alone was its own transaction and its own sync of the WAL on the one writer: under load the
//! Stores queued behind each other's syncs with the CPU mostly idle. A group inserts every Store
//! that arrived while the last one committed, in one transaction with one sync; each is still
//! durable, with its audit row, before its caller hears back.
//!
//! A Store the group cannot insert as is (its customer is missing or not in good standing, or
//! its name or idempotency key is taken, also by an earlier Store of the same group) is left
//! out: the caller then does it on its own, which gives the precise answer. Stores that make a
//! credential the default change other rows and are always done on their own.

use std::sync::Arc;

use async_trait::async_trait;

use super::journal::{AuditedTx, insert_audit};
use super::micros;
use super::writer::{Turn, Writer};
use crate::domain::{AuditEntry, AuditSigner, CredentialMetadata, TokenName};
use crate::store::group_commit::{NewStore, Recorder};
use crate::store::{NewCredential, StoreError, rows};

/// Commits groups of Stores on the writer connection.
pub(super) struct StoreCommitter {
    pub(super) writer: Writer,
    pub(super) signer: Option<Arc<dyn AuditSigner>>,
}

#[async_trait]
impl Recorder for StoreCommitter {
    const NAME: &'static str = "sqlite_stores";
    type Item = Arc<NewStore>;
    /// `None` for a Store the group left out (see the module's documentation).
    type Outcome = Option<CredentialMetadata>;
    /// The writer connection, and the turn to write, while groups follow each other.
    type Session = Turn;

    async fn open(&self) -> Result<Turn, StoreError> {
        self.writer.acquire().await
    }

    async fn record(
        &self,
        writer: &mut Turn,
        batch: &[Arc<NewStore>],
    ) -> Result<Vec<Option<CredentialMetadata>>, StoreError> {
        let mut tx = AuditedTx::begin(writer).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for store in batch {
            outcomes.push(insert_unless_refused(&mut tx, self.signer.as_deref(), store).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

/// Inserts one Store's credential, first version and audit row, unless its customer is not in
/// good standing or a unique index refuses it (then nothing of it is written).
async fn insert_unless_refused(
    tx: &mut AuditedTx<'_>,
    signer: Option<&dyn AuditSigner>,
    store: &NewStore,
) -> Result<Option<CredentialMetadata>, StoreError> {
    let (new, audit) = (&store.new, &store.audit);
    let (idempotency_key, fingerprint) = match &new.idempotency {
        Some((key, fingerprint)) => (Some(key.as_str()), Some(fingerprint.as_slice())),
        None => (None, None),
    };
    // The WHERE also tells SQLite that ON CONFLICT belongs to the INSERT, not to a join.
    let row = sqlx::query(returning_credential!(concat!(
        "INSERT INTO cloud_credentials (id, customer_id, provider, credential_name, credential_type, \
         permissions, is_default, idempotency_key, request_fingerprint, created_at, updated_at, \
         current_version, latest_version, rotated_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?9, 1, 1, ?9 \
         WHERE EXISTS (SELECT 1 FROM customers WHERE id = ?2 AND status IN ",
        good_standing_sql!(),
        ") ON CONFLICT DO NOTHING"
    )))
    .bind(new.id.to_string())
    .bind(new.customer_id.to_string())
    .bind(new.provider.as_str())
    .bind(new.name.as_str())
    .bind(new.credential_type.as_str())
    .bind(new.permissions.as_str())
    .bind(idempotency_key)
    .bind(fingerprint)
    .bind(micros(new.now))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    insert_first_version(tx, new, audit).await?;
    insert_audit(tx, signer, audit, new.now).await?;
    Ok(Some(rows::metadata(&row)?))
}

/// A new credential's version 1, created by the audit row's actor.
pub(super) async fn insert_first_version(
    tx: &mut AuditedTx<'_>,
    new: &NewCredential,
    audit: &AuditEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO credential_versions (credential_id, version, state, encrypted_credentials, key_version, \
         created_by, created_at) VALUES (?, 1, 'enabled', ?, ?, ?, ?)",
    )
    .bind(new.id.to_string())
    .bind(new.sealed.as_slice())
    .bind(new.key_version.map(i64::from))
    .bind(audit.actor.as_ref().map(TokenName::as_str))
    .bind(micros(new.now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
