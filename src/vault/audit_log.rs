//! The audit log's tamper evidence: sealing new rows onto the chain (a background task of the
//! server), and `credvault audit verify`, which walks the whole log and names the first bad row.

use std::time::Duration;

use aws_lc_rs::constant_time::verify_slices_are_equal;

use super::{Vault, VaultError};
use crate::domain::{AuditSigner, head_mac, seal_hash};
use crate::store::{SealReport, Store, StoreError};

/// Rows sealed per transaction: small enough that SQLite's single writer is held briefly.
const SEAL_BATCH: u32 = 1_000;

/// How often the server seals new audit rows: the window in which a freshly written row is
/// protected by its own MAC only (a deleted unsealed row would go unnoticed).
pub const SEAL_INTERVAL: Duration = Duration::from_secs(1);

impl Vault {
    /// Seals every audit row written so far onto the chain.
    pub async fn seal_audit(&self) -> Result<SealReport, VaultError> {
        self.ensure_ready()?;
        let mut total = SealReport::default();
        loop {
            let pass = self.store.seal_audit(SEAL_BATCH).await?;
            for id in &pass.refused {
                tracing::error!(audit_row = %id, "audit row fails its MAC: altered or forged; left unsealed");
            }
            total.sealed += pass.sealed;
            total.refused.extend(pass.refused);
            if pass.sealed < SEAL_BATCH {
                return Ok(total);
            }
        }
    }
}

/// A sound audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerified {
    pub sealed: u64,
    /// Rows with a valid MAC not yet on the chain (written within the last sealing interval, or
    /// while no server was running).
    pub unsealed: u64,
}

/// The first sign of tampering found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit row {row}: {problem}")]
pub struct Tampered {
    /// The first bad row's id, or "(head)" for the chain's head.
    pub row: String,
    pub problem: String,
}

/// Walks the whole log: every row's MAC, the chain's order and links, and its head.
pub async fn verify_audit_log(
    store: &dyn Store,
    signer: &dyn AuditSigner,
) -> Result<Result<AuditVerified, Tampered>, StoreError> {
    let (head, rows) = store.audit_chain().await?;
    let tampered = |row: String, problem: &str| Ok(Err(Tampered { row, problem: problem.to_owned() }));
    let mut prev = [0u8; 32];
    let mut expected_seq = 1;
    let mut verified = AuditVerified { sealed: 0, unsealed: 0 };
    for row in &rows {
        let id = row.event.id.to_string();
        let mac = row.event.mac(signer);
        match row.row_mac.as_deref() {
            None => return tampered(id, "has no MAC: it was inserted behind credvault's back"),
            Some(stored) if verify_slices_are_equal(stored, &mac).is_err() => {
                return tampered(id, "its content does not match its MAC: it was changed (or forged)");
            }
            Some(_) => {}
        }
        let Some(seq) = row.seal_seq else {
            verified.unsealed += 1;
            continue;
        };
        if seq != expected_seq {
            let problem = format!(
                "is sealed at position {seq} where {expected_seq} was expected: rows before it were deleted, or it was moved"
            );
            return tampered(id, &problem);
        }
        let link = seal_hash(signer, &prev, seq, &mac);
        if row.seal_hash.as_deref().is_none_or(|stored| verify_slices_are_equal(stored, &link).is_err()) {
            return tampered(
                id,
                "its seal does not follow the previous row: rows were reordered, removed or inserted",
            );
        }
        prev = link;
        expected_seq += 1;
        verified.sealed += 1;
    }
    let last = expected_seq - 1;
    if head.seq != last {
        let problem = format!(
            "records {} sealed rows but {last} remain: the newest sealed rows were deleted",
            head.seq
        );
        return tampered("(head)".into(), &problem);
    }
    if last > 0 {
        let mac_ok = head
            .mac
            .as_deref()
            .is_some_and(|m| verify_slices_are_equal(m, &head_mac(signer, last, &prev)).is_ok());
        if head.hash != prev || !mac_ok {
            return tampered(
                "(head)".into(),
                "does not match the chain: the head or the newest rows were altered",
            );
        }
    }
    Ok(Ok(verified))
}
