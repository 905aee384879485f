//! What Get needs to know about a credential before touching the database: its owner,
//! provider, name, current version and that version's sealed secret, as of one etag. Every
//! change of the credential's metadata or versions changes its etag, on any instance, so a
//! cached copy lets Get authorize, open the secret and write the audit row in ONE statement,
//! which checks that the row is still active, still has this etag (a disabled, destroyed or
//! superseded version fails that check and is read again) and this ciphertext (a row altered
//! behind the vault's back fails it too), and that its customer is in good standing. Only ciphertext is kept here; a secret is opened per request and dropped with the
//! response.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::crypto::Binding;
use crate::domain::{CredentialId, CredentialName, CustomerId, Etag, Provider, VersionNumber};
use crate::store::UseClaim;

/// Entries kept; at the bound, an arbitrary entry makes room (a miss costs one read).
const CAPACITY: usize = 16_384;

/// One version of a credential as Get serves it, as of `etag`.
pub(super) struct Served {
    pub(super) id: CredentialId,
    pub(super) customer_id: CustomerId,
    pub(super) provider: Provider,
    pub(super) name: CredentialName,
    pub(super) version: VersionNumber,
    pub(super) etag: Etag,
    pub(super) sealed: Arc<[u8]>,
}

impl Served {
    /// What the ciphertext is bound to.
    pub(super) fn binding(&self) -> Binding {
        Binding {
            credential_id: self.id,
            customer_id: self.customer_id,
            provider: self.provider,
            version: self.version,
        }
    }

    /// The claim that this is still what the credential holds: exactly (`cached`: unchanged
    /// since it was read), or enough for a Get that has just read it (the version still enabled).
    pub(super) fn claim(&self, cached: bool) -> UseClaim {
        UseClaim {
            id: self.id,
            customer_id: self.customer_id,
            etag: cached.then_some(self.etag),
            version: self.version,
            sealed: self.sealed.clone(),
        }
    }
}

impl fmt::Debug for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Served")
            .field("id", &self.id)
            .field("customer_id", &self.customer_id)
            .field("provider", &self.provider)
            .field("version", &self.version)
            .field("etag", &self.etag)
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
            version: 1,
            etag: Etag::from_revision(1),
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
