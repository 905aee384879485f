//! Group commit for Get's audited use on SQLite. SQLite has one writer and every commit is an
//! fsync (synchronous=FULL), so one commit per Get caps Get at the disk's fsync rate. Instead,
//! the uses that arrive while a commit is in flight wait in a queue and the next commit takes
//! them all: each use still commits (usage count and its audit row, together) before its caller
//! hears back, so no secret leaves before its own audit row is durable.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::{insert_audit, metadata_from_row, micros};
use crate::domain::{AuditEntry, AuditSigner, CredentialId, CredentialMetadata};
use crate::store::StoreError;

/// Most uses one commit takes.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<CredentialMetadata, StoreError>>;

/// One Get's use to record.
pub(super) struct Use {
    pub(super) id: CredentialId,
    pub(super) audit: AuditEntry,
    pub(super) now: OffsetDateTime,
    pub(super) reply: Reply,
}

/// Starts the committer on the writer pool; it ends when every sender is gone.
pub(super) fn start(writer: sqlx::SqlitePool, signer: Option<Arc<dyn AuditSigner>>) -> mpsc::Sender<Use> {
    let (tx, mut rx) = mpsc::channel::<Use>(4 * MAX_BATCH);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            commit(&writer, signer.as_deref(), std::mem::take(&mut batch)).await;
        }
    });
    tx
}

/// Records every use of `batch` in one transaction and answers each caller after the commit.
async fn commit(writer: &sqlx::SqlitePool, signer: Option<&dyn AuditSigner>, batch: Vec<Use>) {
    let mut outcomes = Vec::with_capacity(batch.len());
    let result: Result<(), StoreError> = async {
        let mut tx = writer.begin().await?;
        for item in &batch {
            let row = sqlx::query(returning_credential!(
                "UPDATE cloud_credentials SET usage_count = usage_count + 1, last_used_at = ? \
                 WHERE id = ? AND is_active = 1"
            ))
            .bind(micros(item.now))
            .bind(item.id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            // A credential deleted meanwhile fails alone; the rest of the batch goes on.
            match row {
                Some(row) => {
                    outcomes.push(Ok(metadata_from_row(&row)?));
                    insert_audit(&mut tx, signer, &item.audit, item.now).await?;
                }
                None => outcomes.push(Err(StoreError::NotFound(format!("active credential {}", item.id)))),
            }
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            for (item, outcome) in batch.into_iter().zip(outcomes) {
                let _ = item.reply.send(outcome);
            }
        }
        Err(e) => {
            // Nothing of the batch was committed: every caller gets the failure.
            let unavailable = matches!(e, StoreError::Unavailable(_));
            let message = crate::vault::error_chain(&e);
            for item in batch {
                let error = if unavailable {
                    StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(message.clone())))
                } else {
                    StoreError::Other(message.clone().into())
                };
                let _ = item.reply.send(Err(error));
            }
        }
    }
}
