//! The keyring: the key-encryption keys derived from the master key, by version, and what
//! else derives from it (audit MACs, request fingerprints, the check value start-up compares).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_lc_rs::aead::{AES_256_GCM, RandomizedNonceKey};
use aws_lc_rs::{hkdf, hmac};
use zeroize::Zeroizing;

use super::{MasterKey, MasterKeys};
use crate::domain::AuditSigner;

/// A key version, stored in every sealed blob so that keys can rotate without downtime.
pub type KeyVersion = u32;

/// The key-encryption keys the server may use, by version. New secrets are sealed with the
/// current version; blobs of any version in the ring can be opened. Which version is current
/// is the database's word (`credvault key rotate` records it): it changes while serving, but
/// only ever to a version in the ring.
pub struct Keyring {
    current: AtomicU32,
    /// The version request fingerprints are keyed with: the database's first current version
    /// until it is retired, so that they stay comparable while the current version changes.
    anchor: AtomicU32,
    /// The database's first current version: a bare (32-byte) audit MAC is its. It may have
    /// been retired, and be missing from the ring.
    first: AtomicU32,
    keys: BTreeMap<KeyVersion, DerivedKeys>,
}

/// Independent keys derived from one master key with HKDF-SHA256, one per purpose, so that no
/// key is ever used for two things.
pub(super) struct DerivedKeys {
    /// Wraps data keys (AES-256-GCM, random 96-bit nonces).
    pub(super) kek: RandomizedNonceKey,
    /// Wraps customer keys (AES-256-GCM, random 96-bit nonces).
    pub(super) customer_kek: RandomizedNonceKey,
    /// Proves at start-up that this is the key the database was written with.
    check_value: [u8; 32],
    /// Keys request fingerprints (idempotency), so they reveal nothing about secrets.
    fingerprint: hmac::Key,
    /// Keys the audit log's row MACs and seal chain.
    audit: hmac::Key,
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl DerivedKeys {
    fn derive(master: &MasterKey) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"credvault key derivation v1").extract(master.expose());
        let expand = |label: &[u8]| {
            let mut out = Zeroizing::new([0u8; 32]);
            prk.expand(&[label], Len(32))
                .and_then(|okm| okm.fill(out.as_mut()))
                .expect("HKDF-SHA256 can expand 32 bytes");
            out
        };
        let kek = RandomizedNonceKey::new(&AES_256_GCM, expand(b"kek").as_ref())
            .expect("a 32-byte key fits AES-256-GCM");
        let customer_kek = RandomizedNonceKey::new(&AES_256_GCM, expand(b"customer key wrapping").as_ref())
            .expect("a 32-byte key fits AES-256-GCM");
        let check_value = *expand(b"key check value");
        let fingerprint = hmac::Key::new(hmac::HMAC_SHA256, expand(b"request fingerprint").as_ref());
        let audit = hmac::Key::new(hmac::HMAC_SHA256, expand(b"audit log").as_ref());
        Self { kek, customer_kek, check_value, fingerprint, audit }
    }
}

impl Keyring {
    /// A ring holding one master key as version 1.
    pub fn single(master: &MasterKey) -> Self {
        Self::from_versions([(1, master)], 1)
    }

    /// A ring of a configuration's key versions, the oldest current until the database's
    /// record says which is ([`Keyring::set_current`]).
    pub fn new(keys: &MasterKeys) -> Self {
        let oldest = keys.iter().next().expect("a key configuration holds at least one key").0;
        Self::from_versions(keys.iter(), oldest)
    }

    /// A ring of several key versions; `current` seals new secrets and must be among them.
    pub fn from_versions<'a>(
        versions: impl IntoIterator<Item = (KeyVersion, &'a MasterKey)>,
        current: KeyVersion,
    ) -> Self {
        let keys: BTreeMap<_, _> = versions.into_iter().map(|(v, k)| (v, DerivedKeys::derive(k))).collect();
        assert!(keys.contains_key(&current), "the current key version must be in the keyring");
        let oldest = *keys.keys().next().expect("the current key version is in the keyring");
        Self {
            current: AtomicU32::new(current),
            anchor: AtomicU32::new(oldest),
            first: AtomicU32::new(oldest),
            keys,
        }
    }

    pub fn current_version(&self) -> KeyVersion {
        self.current.load(Ordering::Acquire)
    }

    /// Makes `version` the one new secrets are sealed with; refused (false) for a version the
    /// ring lacks, so nothing is ever sealed under a key this process cannot open.
    pub fn set_current(&self, version: KeyVersion) -> bool {
        let known = self.keys.contains_key(&version);
        if known {
            self.current.store(version, Ordering::Release);
        }
        known
    }

    /// Records the database's first current version (see the field).
    pub fn set_first_version(&self, version: KeyVersion) {
        self.first.store(version, Ordering::Release);
    }

    /// Makes `version` the one request fingerprints are keyed with (see the field); refused
    /// (false) for a version the ring lacks.
    pub fn set_anchor(&self, version: KeyVersion) -> bool {
        let known = self.keys.contains_key(&version);
        if known {
            self.anchor.store(version, Ordering::Release);
        }
        known
    }

    /// The version request fingerprints are keyed with.
    pub fn anchor_version(&self) -> KeyVersion {
        self.anchor.load(Ordering::Acquire)
    }

    /// Whether `version` is in the ring.
    pub fn has_version(&self, version: KeyVersion) -> bool {
        self.keys.contains_key(&version)
    }

    pub fn versions(&self) -> impl Iterator<Item = KeyVersion> + '_ {
        self.keys.keys().copied()
    }

    /// The check value of a key version: stored in the database on first start, compared on
    /// every later one. Derived one-way from the key; it reveals nothing about it.
    pub fn check_value(&self, version: KeyVersion) -> Option<[u8; 32]> {
        self.keys.get(&version).map(|k| k.check_value)
    }

    /// A keyed fingerprint of a request's content, safe to store: without the key it cannot be
    /// used to test guesses of a secret.
    pub fn fingerprint(&self, parts: &[&[u8]]) -> [u8; 32] {
        keyed_mac(&self.anchor_keys().fingerprint, parts)
    }

    pub(super) fn current_keys(&self) -> (KeyVersion, &DerivedKeys) {
        let version = self.current_version();
        (version, &self.keys[&version])
    }

    /// The keys request fingerprints are keyed with (see [`Keyring::set_anchor`]).
    fn anchor_keys(&self) -> &DerivedKeys {
        &self.keys[&self.anchor_version()]
    }

    pub(super) fn keys(&self, version: KeyVersion) -> Option<&DerivedKeys> {
        self.keys.get(&version)
    }
}

/// New audit MACs use the current version's audit key; a row stays verifiable while the
/// version that made its MAC is configured.
impl AuditSigner for Keyring {
    fn signing_version(&self) -> u32 {
        self.current_version()
    }

    fn first_version(&self) -> u32 {
        self.first.load(Ordering::Acquire)
    }

    fn mac_with(&self, version: u32, parts: &[&[u8]]) -> Option<[u8; 32]> {
        self.keys.get(&version).map(|keys| keyed_mac(&keys.audit, parts))
    }
}

/// HMAC-SHA256 over length-prefixed parts, so that ("ab", "c") and ("a", "bc") differ.
fn keyed_mac(key: &hmac::Key, parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = hmac::Context::with_key(key);
    for part in parts {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    ctx.sign().as_ref().try_into().expect("HMAC-SHA256 tags are 32 bytes")
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current_version())
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values_tell_keys_apart_and_are_stable() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        let ring_a = Keyring::single(&a);
        assert_eq!(ring_a.check_value(1), Keyring::single(&a).check_value(1));
        assert_ne!(ring_a.check_value(1), Keyring::single(&b).check_value(1));
        assert_eq!(ring_a.check_value(2), None);
    }

    #[test]
    fn fingerprints_depend_on_key_and_framing() {
        let ring = Keyring::single(&MasterKey::generate());
        assert_eq!(ring.fingerprint(&[b"ab", b"c"]), ring.fingerprint(&[b"ab", b"c"]));
        assert_ne!(ring.fingerprint(&[b"ab", b"c"]), ring.fingerprint(&[b"a", b"bc"]));
        let other = Keyring::single(&MasterKey::generate());
        assert_ne!(ring.fingerprint(&[b"x"]), other.fingerprint(&[b"x"]));
    }

    #[test]
    fn audit_macs_name_the_version_that_made_them() {
        use crate::domain::{AuditEvent, MacProblem};
        let (one, two) = (MasterKey::generate(), MasterKey::generate());
        let ring = Keyring::from_versions([(1, &one), (2, &two)], 1);
        let event = AuditEvent {
            id: uuid::Uuid::nil(),
            credential_id: None,
            customer_id: None,
            action: "key_rotated".into(),
            details: "d".into(),
            ip_address: None,
            actor: None,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let before = event.mac(&ring);
        assert_eq!(before.len(), 32, "the first version's MACs keep the bare form");
        ring.set_current(2);
        let after = event.mac(&ring);
        assert_eq!((after.len(), &after[..4]), (36, &2u32.to_be_bytes()[..]));
        assert_eq!((event.check_mac(&ring, &before), event.check_mac(&ring, &after)), (Ok(1), Ok(2)));
        let only_one = Keyring::from_versions([(1, &one)], 1);
        assert_eq!(event.check_mac(&only_one, &after), Err(MacProblem::UnknownVersion(2)));
        let changed = AuditEvent { details: "e".into(), ..event.clone() };
        assert_eq!(changed.check_mac(&ring, &after), Err(MacProblem::Mismatch));
        assert_eq!(event.check_mac(&ring, &after[..20]), Err(MacProblem::Malformed));
    }

    #[test]
    fn debug_shows_versions_only() {
        let ring = Keyring::single(&MasterKey::generate());
        assert_eq!(format!("{ring:?}"), "Keyring { current: 1, versions: [1], .. }");
    }
}
