//! What Get needs to know about a credential before touching the database: its owner,
//! provider, name and sealed secret. None of it changes after Store (a credential is never
//! edited, only soft-deleted), so a cached copy lets Get authorize, open the secret and write
//! the audit row in ONE statement, which checks that the row is still active, still holds
//! exactly this ciphertext and that its customer is in good standing. Only ciphertext is
//! kept here; a secret is opened per request and dropped with the response.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::crypto::Binding;
use crate::domain::{CredentialId, CredentialName, CustomerId, Provider};
use crate::store::SealedCredential;

/// Entries kept; at the bound, an arbitrary entry makes room (a miss costs one read).
const CAPACITY: usize = 16_384;

/// The immutable facts of one credential.
pub(super) struct Served {
    pub(super) id: CredentialId,
    pub(super) customer_id: CustomerId,
    pub(super) provider: Provider,
    pub(super) name: CredentialName,
    pub(super) sealed: Arc<[u8]>,
}

impl Served {
    pub(super) fn from_stored(found: &SealedCredential) -> Self {
        Self {
            id: found.metadata.id,
            customer_id: found.metadata.customer_id,
            provider: found.metadata.provider,
            name: found.metadata.name.clone(),
            sealed: found.sealed.as_slice().into(),
        }
    }

    /// What the ciphertext is bound to.
    pub(super) fn binding(&self) -> Binding {
        Binding { credential_id: self.id, customer_id: self.customer_id, provider: self.provider }
    }
}

impl fmt::Debug for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Served")
            .field("id", &self.id)
            .field("customer_id", &self.customer_id)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
pub(super) struct ServedCache {
    entries: Mutex<HashMap<CredentialId, Arc<Served>>>,
}

impl ServedCache {
    pub(super) fn get(&self, id: CredentialId) -> Option<Arc<Served>> {
        self.lock().get(&id).cloned()
    }

    pub(super) fn insert(&self, sealed: Arc<Served>) {
        let mut entries = self.lock();
        if entries.len() >= CAPACITY && !entries.contains_key(&sealed.id) {
            let evicted = entries.keys().next().copied();
            if let Some(evicted) = evicted {
                entries.remove(&evicted);
            }
        }
        entries.insert(sealed.id, sealed);
    }

    pub(super) fn remove(&self, id: CredentialId) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CredentialId, Arc<Served>>> {
        // The map holds no invariant a panicking holder could break.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Provider;

    fn sealed(id: CredentialId) -> Arc<Served> {
        Arc::new(Served {
            id,
            customer_id: CustomerId::new_random(),
            provider: Provider::Vultr,
            name: CredentialName::parse("n", "name").unwrap(),
            sealed: Arc::from(&b"ciphertext"[..]),
        })
    }

    #[test]
    fn the_cache_stays_within_its_bound() {
        let cache = ServedCache::default();
        let ids: Vec<_> = (0..CAPACITY + 10).map(|_| CredentialId::new_random()).collect();
        for id in &ids {
            cache.insert(sealed(*id));
        }
        assert_eq!(cache.lock().len(), CAPACITY);
        assert!(cache.get(*ids.last().unwrap()).is_some(), "the newest entry is kept");
        cache.remove(*ids.last().unwrap());
        assert!(cache.get(*ids.last().unwrap()).is_none());
    }

    #[test]
    fn debug_shows_no_ciphertext() {
        let shown = format!("{:?}", sealed(CredentialId::new_random()));
        assert!(!shown.contains("ciphertext") && !shown.contains("99, 105"), "{shown}");
    }
}
