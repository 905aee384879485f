//! A customer's standing as the writes that depend on it read it, inside their own transaction:
//! Store, AddVersion and Restore refuse a customer that is missing or not in good standing, and
//! cancelling a customer deletes its credentials in the transaction that cancels it. Checked
//! anywhere else (before the transaction), a write racing a cancellation could leave an active
//! credential behind for a cancelled customer.

use super::StoreError;
use super::rows::customer_status;
use crate::domain::{AuditEntry, CredentialMetadata, CustomerId};

/// Refuses a write for a customer that is missing (`NotFound`) or not in good standing
/// (`FailedPrecondition`, naming the status), given the status its transaction read (on
/// PostgreSQL `FOR SHARE`, so a concurrent status change waits for the write or the write for
/// it; SQLite's one writer serializes them anyway).
pub(super) fn require_good_standing(
    customer_id: CustomerId,
    status: Option<&str>,
    attempt: &str,
) -> Result<(), StoreError> {
    let Some(status) = status else {
        return Err(StoreError::NotFound(format!("customer {customer_id}")));
    };
    let status = customer_status(status)?;
    if status.in_good_standing() {
        Ok(())
    } else {
        Err(StoreError::FailedPrecondition(format!(
            "customer {customer_id} is {status}: cannot {attempt} until it is active again"
        )))
    }
}

/// The audit row of each credential a cancellation deletes, given the credential as it was.
pub type CancelledCredentialAudit<'a> = &'a (dyn Fn(&CredentialMetadata) -> AuditEntry + Send + Sync);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_customer_in_good_standing_passes() {
        let id = CustomerId::new_random();
        assert!(require_good_standing(id, Some("active"), "store a credential").is_ok());
        assert!(require_good_standing(id, Some("trial"), "store a credential").is_ok());
        assert!(matches!(require_good_standing(id, None, "x"), Err(StoreError::NotFound(_))));
        let refused = require_good_standing(id, Some("cancelled"), "store a credential").unwrap_err();
        assert!(
            matches!(&refused, StoreError::FailedPrecondition(m)
                if m == &format!("customer {id} is cancelled: cannot store a credential until it is active again")),
            "{refused:?}"
        );
        assert!(matches!(require_good_standing(id, Some("bogus"), "x"), Err(StoreError::Other(_))));
    }
}
