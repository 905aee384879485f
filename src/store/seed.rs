//! The benchmark's bulk seeding (`credvault bench-seed`, which `bench/scale.sh` runs): many rows
//! per transaction, each row as credvault itself writes it (the caller seals the secrets, MACs
//! the audit rows and links them onto the chain). No request takes this path: it skips every
//! check a request's write makes (names, customers' standing, idempotency) and must run on a
//! database no server is serving.

use async_trait::async_trait;

use super::import::{ImportedCredential, ImportedCustomer};
use super::{ChainHead, ChainLink, SignedRow, StoreError};

/// One transaction's rows.
#[derive(Debug, Default)]
pub struct SeedBatch {
    pub customers: Vec<ImportedCustomer>,
    /// Active credentials, each with its version 1.
    pub credentials: Vec<ImportedCredential>,
    /// Audit rows in chain order, each with its link.
    pub audit: Vec<(SignedRow, ChainLink)>,
    /// The chain's head after the batch's last link.
    pub head: ChainHead,
}

impl SeedBatch {
    /// Rows it writes (a version and a link count as rows).
    pub fn rows(&self) -> usize {
        self.customers.len() + 2 * self.credentials.len() + 2 * self.audit.len()
    }
}

/// Bulk writes for the benchmark's databases.
#[async_trait]
pub trait SeedStore: Send + Sync {
    /// Writes `batch` in one transaction and moves the chain's head to its head, so that the
    /// sealer goes on after its last row.
    async fn seed(&self, batch: SeedBatch) -> Result<(), StoreError>;
}
