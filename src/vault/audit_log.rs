//! The audit log's tamper evidence: sealing new rows onto the chain (a background task of the
//! server), and `credvault audit verify`, which walks the whole log and names the first bad row.

use std::ops::ControlFlow;
use std::time::Duration;

use aws_lc_rs::constant_time::verify_slices_are_equal;

use super::{Vault, VaultError};
use crate::domain::{AuditSigner, MacProblem, chain_hash, check_checkpoint_mac, check_head_mac};
use crate::store::{ChainHead, ChainLink, ChainPart, ChainReport, Checkpoint, SignedRow, Store, StoreError};

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

    /// Brings the store's indexes of the log kept outside its transactions up to date (see
    /// [`crate::store::AuditStore::index_audit`]); answers the log rows taken.
    pub async fn index_audit(&self) -> Result<u64, VaultError> {
        self.ensure_ready()?;
        Ok(self.store.index_audit().await?)
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

/// Walks the whole log: every row's MAC, the chain's order and links, and its head. The store
/// hands the log over a part at a time, so memory stays flat whatever the log's size.
pub async fn verify_audit_log(
    store: &dyn Store,
    signer: &dyn AuditSigner,
) -> Result<Result<AuditVerified, Tampered>, StoreError> {
    Ok(verify_chain(store, signer).await?.map(|(verified, _)| verified))
}

/// [`verify_audit_log`], also answering the head it verified.
pub(super) async fn verify_chain(
    store: &dyn Store,
    signer: &dyn AuditSigner,
) -> Result<Result<(AuditVerified, ChainHead), Tampered>, StoreError> {
    let mut check = ChainCheck::new(signer);
    store.walk_audit_chain(&mut |part| check.take(part)).await?;
    check.finish()
}

/// The check of the log as the store walks it ([`ChainPart`]), stopping at the first problem.
/// Rows at or before the latest checkpoint whose MAC was made with a retired version (whose key
/// is gone) are vouched for by the checkpoint: their links are taken as stored, and the
/// checkpoint's link must match it.
struct ChainCheck<'a> {
    signer: &'a dyn AuditSigner,
    head: Option<ChainHead>,
    /// The latest checkpoint, its MAC checked.
    anchored: Option<Checkpoint>,
    /// The last link's hash.
    prev: [u8; 32],
    /// Links checked so far.
    sealed: i64,
    /// Rows on no link, their MAC checked.
    unsealed: u64,
    /// Whether the head has been checked against the links (once the last link is past).
    head_checked: bool,
    found: Option<Tampered>,
    ended: bool,
}

impl<'a> ChainCheck<'a> {
    fn new(signer: &'a dyn AuditSigner) -> Self {
        ChainCheck {
            signer,
            head: None,
            anchored: None,
            prev: [0; 32],
            sealed: 0,
            unsealed: 0,
            head_checked: false,
            found: None,
            ended: false,
        }
    }

    /// Takes the next part; `Break` once something is wrong (the walk need not go on).
    fn take(&mut self, part: ChainPart) -> ControlFlow<()> {
        let checked = match part {
            ChainPart::Head { head, checkpoint } => self.head(head, checkpoint),
            ChainPart::Sealed(link, row) => self.link(&link, row.as_ref()),
            ChainPart::Unsealed(row) => self.check_head().and_then(|()| {
                row_mac(self.signer, &row)?;
                self.unsealed += 1;
                Ok(())
            }),
            ChainPart::End { rows } => self.check_head().and_then(|()| self.end(rows)),
        };
        match checked {
            Ok(()) => ControlFlow::Continue(()),
            Err(tampered) => {
                self.found = Some(tampered);
                ControlFlow::Break(())
            }
        }
    }

    fn head(&mut self, head: ChainHead, checkpoint: Option<Checkpoint>) -> Result<(), Tampered> {
        self.head = Some(head);
        let Some(cp) = checkpoint else { return Ok(()) };
        let hash: Option<[u8; 32]> = cp.hash.as_slice().try_into().ok();
        match hash.map(|h| check_checkpoint_mac(self.signer, cp.seq, &h, cp.retired_version, &cp.mac)) {
            Some(Ok(_)) => {
                self.anchored = Some(cp);
                Ok(())
            }
            _ => Err(Tampered {
                row: "(checkpoint)".into(),
                problem: format!("the checkpoint at row {} does not match its MAC: it was altered", cp.seq),
            }),
        }
    }

    /// The next link and the row it seals (`None`: no such row in the log).
    fn link(&mut self, link: &ChainLink, row: Option<&SignedRow>) -> Result<(), Tampered> {
        let tampered = |problem: String| Err(Tampered { row: link.audit_id.to_string(), problem });
        let expected_seq = self.sealed + 1;
        if link.seq != expected_seq {
            return tampered(format!(
                "is sealed at position {} where {expected_seq} was expected: the links before it were deleted",
                link.seq
            ));
        }
        let Some(row) = row else {
            return tampered(format!(
                "is sealed at position {} but missing from the log: it was deleted",
                link.seq
            ));
        };
        let covered = self.anchored.as_ref().filter(|cp| link.seq <= cp.seq);
        let retired =
            |mac: &[u8]| matches!(row.event.check_mac(self.signer, mac), Err(MacProblem::UnknownVersion(_)));
        if covered.is_some() && row.row_mac.as_deref().is_some_and(retired) {
            // Made with a retired key: vouched for by the checkpoint, not checkable here.
            self.prev = link.hash.as_slice().try_into().unwrap_or([0; 32]);
        } else {
            let mac = row_mac(self.signer, row)?;
            let expected = chain_hash(self.signer, &self.prev, link.seq, mac)
                .expect("row_mac checked the MAC's version");
            if verify_slices_are_equal(&link.hash, &expected).is_err() {
                return tampered(
                    "its seal does not follow the previous row: rows were reordered, removed or inserted"
                        .into(),
                );
            }
            self.prev = expected;
        }
        if covered.is_some_and(|cp| cp.seq == link.seq && cp.hash != self.prev) {
            return tampered("its seal does not match the checkpoint taken when a key was retired".into());
        }
        self.sealed = link.seq;
        Ok(())
    }

    /// Once every link is checked: the checkpoint and the head must match the chain's end.
    fn check_head(&mut self) -> Result<(), Tampered> {
        if std::mem::replace(&mut self.head_checked, true) {
            return Ok(());
        }
        let sealed = self.sealed;
        if let Some(cp) = self.anchored.as_ref().filter(|cp| cp.seq > sealed) {
            return Err(Tampered {
                row: "(checkpoint)".into(),
                problem: format!("vouches for row {} but the chain has {sealed}", cp.seq),
            });
        }
        let tampered = |problem: String| Err(Tampered { row: "(head)".into(), problem });
        let Some(head) = &self.head else {
            return tampered("is missing: the chain's head row was deleted".into());
        };
        if head.seq != sealed {
            return tampered(format!(
                "records {} sealed rows but {sealed} remain: the newest links were deleted",
                head.seq
            ));
        }
        if sealed > 0 {
            let mac_ok = head
                .mac
                .as_deref()
                .is_some_and(|m| check_head_mac(self.signer, sealed, &self.prev, m).is_ok());
            if head.hash != self.prev || !mac_ok {
                return tampered(
                    "does not match the chain: the head or the newest links were altered".into(),
                );
            }
        }
        Ok(())
    }

    /// The log holds `rows` rows: each on one link or on none.
    fn end(&mut self, rows: u64) -> Result<(), Tampered> {
        self.ended = true;
        let sealed = u64::try_from(self.sealed).unwrap_or(0);
        match (sealed + self.unsealed).checked_sub(rows) {
            Some(0) | None => Ok(()),
            Some(extra) => Err(Tampered {
                row: "(chain)".into(),
                problem: format!(
                    "{extra} links seal a row that another link already seals: rows were sealed twice"
                ),
            }),
        }
    }

    fn finish(self) -> Result<Result<(AuditVerified, ChainHead), Tampered>, StoreError> {
        if let Some(tampered) = self.found {
            return Ok(Err(tampered));
        }
        match (self.ended, self.head) {
            (true, Some(head)) => {
                let sealed = u64::try_from(self.sealed).unwrap_or(0);
                Ok(Ok((AuditVerified { sealed, unsealed: self.unsealed }, head)))
            }
            _ => Err(StoreError::Other("the store's walk of the audit log ended before its end".into())),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Keyring, MasterKey};
    use crate::domain::AuditEvent;

    fn keyring() -> Keyring {
        Keyring::from_versions([(1, &MasterKey::generate())], 1)
    }

    fn row(signer: &dyn AuditSigner, action: &str) -> SignedRow {
        let event = AuditEvent {
            id: uuid::Uuid::now_v7(),
            credential_id: None,
            customer_id: None,
            action: action.into(),
            details: String::new(),
            ip_address: None,
            actor: Some("test".into()),
            created_at: time::OffsetDateTime::now_utc(),
        };
        let row_mac = Some(event.mac(signer));
        SignedRow { event, row_mac }
    }

    /// Walks `sealed` (rows in chain order, as `store::link` seals them), then `unsealed`, then
    /// `rows` as the log's row count, through the check.
    fn walk(
        signer: &dyn AuditSigner,
        sealed: &[&SignedRow],
        unsealed: &[&SignedRow],
        rows: u64,
    ) -> Result<AuditVerified, Tampered> {
        let to_link: Vec<SignedRow> = sealed.iter().map(|r| (*r).clone()).collect();
        let (links, head, refused) = crate::store::link(signer, &ChainHead::default(), &to_link);
        assert!(refused.is_empty());
        let mut check = ChainCheck::new(signer);
        let parts = std::iter::once(ChainPart::Head { head, checkpoint: None })
            .chain(links.into_iter().zip(to_link).map(|(link, row)| ChainPart::Sealed(link, Some(row))))
            .chain(unsealed.iter().map(|r| ChainPart::Unsealed((*r).clone())))
            .chain(std::iter::once(ChainPart::End { rows }));
        for part in parts {
            if check.take(part).is_break() {
                break;
            }
        }
        check.finish().unwrap().map(|(verified, _)| verified)
    }

    #[test]
    fn a_sound_log_counts_its_sealed_and_unsealed_rows() {
        let signer = keyring();
        let (a, b, c) = (row(&signer, "created"), row(&signer, "used"), row(&signer, "used"));
        assert_eq!(walk(&signer, &[&a, &b], &[&c], 3), Ok(AuditVerified { sealed: 2, unsealed: 1 }));
    }

    #[test]
    fn a_row_sealed_twice_is_caught_by_the_count() {
        let signer = keyring();
        let (a, b) = (row(&signer, "created"), row(&signer, "used"));
        // Every link's hash is right (the sealer made them): only the count shows it.
        let found = walk(&signer, &[&a, &b, &a], &[], 2).unwrap_err();
        assert_eq!(found.row, "(chain)");
        assert!(found.problem.contains("sealed twice"), "{}", found.problem);
    }

    #[test]
    fn the_first_bad_row_ends_the_walk() {
        let signer = keyring();
        let (a, mut b) = (row(&signer, "created"), row(&signer, "used"));
        let (links, head, _) = crate::store::link(&signer, &ChainHead::default(), &[a.clone(), b.clone()]);
        b.event.details = "changed after sealing".into();
        let mut check = ChainCheck::new(&signer);
        assert!(check.take(ChainPart::Head { head, checkpoint: None }).is_continue());
        assert!(check.take(ChainPart::Sealed(links[0].clone(), Some(a))).is_continue());
        assert!(check.take(ChainPart::Sealed(links[1].clone(), Some(b.clone()))).is_break());
        let found = check.finish().unwrap().unwrap_err();
        assert_eq!(found.row, b.event.id.to_string());
        assert!(found.problem.contains("does not match its MAC"), "{}", found.problem);
    }

    #[test]
    fn a_walk_that_stops_before_its_end_is_an_error_not_a_verdict() {
        let signer = keyring();
        let mut check = ChainCheck::new(&signer);
        let _ = check.take(ChainPart::Head { head: ChainHead::default(), checkpoint: None });
        assert!(check.finish().is_err());
    }
}
