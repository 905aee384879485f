//! The audit chain as the store keeps it: its head, its links and the signed rows `audit
//! verify` reads, and [`link`], which both backends use to put new rows on the chain.

use crate::domain::{AuditEvent, AuditSigner, chain_hash, head_mac};

/// The audit chain's head: the last sealed row's place and link.
#[derive(Debug, Clone, Default)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: Vec<u8>,
    /// `None` before the first seal.
    pub mac: Option<Vec<u8>>,
}

/// An audit row with its MAC.
#[derive(Debug, Clone)]
pub struct SignedRow {
    pub event: AuditEvent,
    pub row_mac: Option<Vec<u8>>,
}

/// One link of the chain: the `seq`-th sealed audit row and its chain hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub seq: i64,
    pub audit_id: uuid::Uuid,
    pub hash: Vec<u8>,
}

/// The chain's `seq`-th link as it was when a key version was retired, MACed by the version
/// current then: it vouches for the rows before it that only the retired key could check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub mac: Vec<u8>,
    pub retired_version: u32,
}

/// One part of the audit log as `audit verify` reads it ([`AuditStore::walk_audit_chain`]), in
/// this order: the head; every link in chain order with the row it seals; every row on no link;
/// the number of rows in the log.
///
/// [`AuditStore::walk_audit_chain`]: super::AuditStore::walk_audit_chain
#[derive(Debug, Clone)]
pub enum ChainPart {
    /// The chain's head and the latest checkpoint, if a key version was ever retired.
    Head { head: ChainHead, checkpoint: Option<Checkpoint> },
    /// A link, with the row it seals (`None`: the log has no such row).
    Sealed(ChainLink, Option<SignedRow>),
    /// A row no link seals.
    Unsealed(SignedRow),
    /// The rows in the log.
    End { rows: u64 },
}

/// Everything `audit verify` reads, at once (tests and small logs; `audit verify` walks it).
#[derive(Debug, Clone)]
pub struct AuditChain {
    pub head: ChainHead,
    /// In chain order.
    pub links: Vec<ChainLink>,
    /// Oldest first.
    pub rows: Vec<SignedRow>,
    /// The latest checkpoint, if a key version was ever retired.
    pub checkpoint: Option<Checkpoint>,
}

/// What one sealing pass did.
#[derive(Debug, Clone, Default)]
pub struct ChainReport {
    pub sealed: u32,
    /// Rows whose MAC failed: forged or altered before sealing. They stay unsealed.
    pub refused: Vec<uuid::Uuid>,
    /// Rows read again that an earlier pass of this process refused and reported.
    pub passed_over: u32,
}

/// Links `rows` onto the chain after `head`: the new links, the new head, and the rows refused
/// for a bad MAC. Shared by both backends so the chain is computed one way.
pub(crate) fn link(
    signer: &dyn AuditSigner,
    head: &ChainHead,
    rows: &[SignedRow],
) -> (Vec<ChainLink>, ChainHead, Vec<uuid::Uuid>) {
    let mut prev: [u8; 32] = head.hash.as_slice().try_into().unwrap_or([0; 32]);
    let mut seq = head.seq;
    let (mut links, mut refused) = (Vec::new(), Vec::new());
    for row in rows {
        // A row whose MAC fails, or was made with a key version this instance lacks, is left
        // unsealed (and reported).
        let linked = row
            .row_mac
            .as_deref()
            .filter(|mac| row.event.check_mac(signer, mac).is_ok())
            .and_then(|mac| chain_hash(signer, &prev, seq + 1, mac));
        let Some(hash) = linked else {
            refused.push(row.event.id);
            continue;
        };
        seq += 1;
        prev = hash;
        links.push(ChainLink { seq, audit_id: row.event.id, hash: prev.to_vec() });
    }
    let head = ChainHead { seq, hash: prev.to_vec(), mac: Some(head_mac(signer, seq, &prev)) };
    (links, head, refused)
}
