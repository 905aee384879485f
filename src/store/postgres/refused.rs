//! Forged rows the PostgreSQL sealer has already reported. A pass that reads fewer rows than
//! its batch resumes at the oldest transaction still running anywhere in the cluster (rows it
//! could not see belong to one at or above it), so while an older transaction runs, every pass
//! reads again the rows it refused. Without this record each pass (one a second) would report
//! them again; with it each is reported once per process, and forgotten once the passes resume
//! past its transaction.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

#[derive(Default)]
pub(super) struct Refused {
    /// Reported rows, with the transaction that wrote them.
    reported: Mutex<HashMap<Uuid, i64>>,
}

impl Refused {
    /// Of the rows this pass refused (id, writing transaction), the ones not reported before;
    /// forgets the rows the next pass, resuming at transaction `resume`, will not read again.
    pub(super) fn newly(&self, refused: Vec<(Uuid, i64)>, resume: i64) -> Vec<Uuid> {
        let mut reported = self.reported.lock().expect("never held across a panic");
        let new = refused.into_iter().filter(|&(id, tx)| reported.insert(id, tx).is_none());
        let new = new.map(|(id, _)| id).collect();
        reported.retain(|_, tx| *tx >= resume);
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_reported_once_until_the_passes_resume_past_its_transaction() {
        let refused = Refused::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(refused.newly(vec![(a, 10), (b, 12)], 5), [a, b]);
        assert!(refused.newly(vec![(a, 10), (b, 12)], 5).is_empty(), "an older transaction still runs");
        // Passes now resume at 11: `a` is never read again and is forgotten; `b` still is.
        assert!(refused.newly(vec![(b, 12)], 11).is_empty());
        assert_eq!(refused.reported.lock().unwrap().len(), 1);
    }
}
