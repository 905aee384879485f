//! The audit log's tamper evidence: sealing new rows onto the chain (a background task of the
//! server), and `credvault audit verify`, which walks the whole log and names the first bad row.

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::constant_time::verify_slices_are_equal;

use super::{Vault, VaultError};
use crate::domain::{AuditSigner, MacProblem, chain_hash, check_checkpoint_mac, check_head_mac};
use uuid::Uuid;

use crate::store::{AuditChain, ChainHead, ChainLink, ChainReport, Checkpoint, SignedRow, Store, StoreError};

/// Rows sealed per transaction: small enough that SQLite's single writer is held briefly.
const CHAIN_BATCH: u32 = 1_000;

/// How often the server seals new audit rows: the window in which a freshly written row is
/// protected by its own MAC only (a deleted unsealed row would go unnoticed).
pub const CHAIN_INTERVAL: Duration = Duration::from_secs(1);

impl Vault {
    /// Seals every audit row written so far onto the chain.
    pub async fn chain_audit(&self) -> Result<ChainReport, VaultError> {
        self.ensure_ready()?;
        let mut total = ChainReport::default();
        loop {
            let pass = self.store.chain_audit(CHAIN_BATCH).await?;
            for id in &pass.refused {
                tracing::error!(audit_row = %id, "audit row fails its MAC: altered or forged; left unsealed");
            }
            let refused = u32::try_from(pass.refused.len()).unwrap_or(u32::MAX);
            let taken = pass.sealed.saturating_add(refused).saturating_add(pass.passed_over);
            total.sealed += pass.sealed;
            total.refused.extend(pass.refused);
            total.passed_over += pass.passed_over;
            if taken < CHAIN_BATCH {
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
    let AuditChain { head, links, rows, checkpoint } = store.audit_chain().await?;
    Ok(check_chain(signer, &head, &links, &rows, checkpoint.as_ref()))
}

/// The chain as [`verify_audit_log`] reads it: the log's head, links, rows and its latest
/// checkpoint. Rows at or before the checkpoint whose MAC was made with a retired version (whose
/// key is gone) are vouched for by the checkpoint: their links are taken as stored, and the
/// checkpoint's link must match it.
pub(super) fn check_chain(
    signer: &dyn AuditSigner,
    head: &ChainHead,
    links: &[ChainLink],
    rows: &[SignedRow],
    checkpoint: Option<&Checkpoint>,
) -> Result<AuditVerified, Tampered> {
    let tampered = |row: String, problem: String| Err(Tampered { row, problem });
    let anchored = match checkpoint {
        None => None,
        Some(cp) => {
            let hash: Option<[u8; 32]> = cp.hash.as_slice().try_into().ok();
            match hash.map(|h| check_checkpoint_mac(signer, cp.seq, &h, cp.retired_version, &cp.mac)) {
                Some(Ok(_)) => Some(cp),
                _ => {
                    return tampered(
                        "(checkpoint)".into(),
                        format!("the checkpoint at row {} does not match its MAC: it was altered", cp.seq),
                    );
                }
            }
        }
    };
    let mut by_id: HashMap<Uuid, &SignedRow> = rows.iter().map(|row| (row.event.id, row)).collect();
    let mut prev = [0u8; 32];
    let mut expected_seq = 1;
    for link in links {
        let id = link.audit_id.to_string();
        if link.seq != expected_seq {
            let problem = format!(
                "is sealed at position {} where {expected_seq} was expected: the links before it were deleted",
                link.seq
            );
            return tampered(id, problem);
        }
        // Taken out of the map, so a row sealed twice is caught at its second link.
        let Some(row) = by_id.remove(&link.audit_id) else {
            let problem = format!(
                "is sealed at position {} but missing from the log: it was deleted (or sealed twice)",
                link.seq
            );
            return tampered(id, problem);
        };
        let covered = anchored.filter(|cp| link.seq <= cp.seq);
        let retired =
            |mac: &[u8]| matches!(row.event.check_mac(signer, mac), Err(MacProblem::UnknownVersion(_)));
        if covered.is_some() && row.row_mac.as_deref().is_some_and(retired) {
            // Made with a retired key: vouched for by the checkpoint, not checkable here.
            prev = link.hash.as_slice().try_into().unwrap_or([0; 32]);
        } else {
            let mac = row_mac(signer, row)?;
            let expected =
                chain_hash(signer, &prev, link.seq, mac).expect("row_mac checked the MAC's version");
            if verify_slices_are_equal(&link.hash, &expected).is_err() {
                return tampered(
                    id,
                    "its seal does not follow the previous row: rows were reordered, removed or inserted"
                        .into(),
                );
            }
            prev = expected;
        }
        if let Some(cp) = covered.filter(|cp| cp.seq == link.seq)
            && cp.hash != prev
        {
            return tampered(
                id,
                "its seal does not match the checkpoint taken when a key was retired".into(),
            );
        }
        expected_seq += 1;
    }
    let sealed = expected_seq - 1;
    if let Some(cp) = anchored.filter(|cp| cp.seq > sealed) {
        return tampered(
            "(checkpoint)".into(),
            format!("vouches for row {} but the chain has {sealed}", cp.seq),
        );
    }
    if head.seq != sealed {
        let problem =
            format!("records {} sealed rows but {sealed} remain: the newest links were deleted", head.seq);
        return tampered("(head)".into(), problem);
    }
    if sealed > 0 {
        let mac_ok = head.mac.as_deref().is_some_and(|m| check_head_mac(signer, sealed, &prev, m).is_ok());
        if head.hash != prev || !mac_ok {
            return tampered(
                "(head)".into(),
                "does not match the chain: the head or the newest links were altered".into(),
            );
        }
    }
    // What is left is not on the chain yet: each row must still carry a valid MAC.
    let mut unsealed = 0;
    for row in rows.iter().filter(|row| by_id.contains_key(&row.event.id)) {
        row_mac(signer, row)?;
        unsealed += 1;
    }
    Ok(AuditVerified { sealed: u64::try_from(sealed).unwrap_or(0), unsealed })
}

/// The row's stored MAC, if it is right.
fn row_mac<'a>(signer: &dyn AuditSigner, row: &'a SignedRow) -> Result<&'a [u8], Tampered> {
    let tampered = |problem: String| Tampered { row: row.event.id.to_string(), problem };
    let stored = row
        .row_mac
        .as_deref()
        .ok_or_else(|| tampered("has no MAC: it was inserted behind credvault's back".into()))?;
    match row.event.check_mac(signer, stored) {
        Ok(_) => Ok(stored),
        Err(MacProblem::UnknownVersion(version)) => Err(tampered(format!(
            "its MAC was made with key version {version}, which the key configuration lacks: add it to verify"
        ))),
        Err(MacProblem::Malformed | MacProblem::Mismatch) => {
            Err(tampered("its content does not match its MAC: it was changed (or forged)".into()))
        }
    }
}
