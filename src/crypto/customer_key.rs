//! Customer keys: one random AES-256-GCM key per customer wraps the data keys of that
//! customer's secrets (blob format 4, [`super::envelope`]); the customer key is itself wrapped
//! by a master-key version and stored so. Rotating the master key rewraps customer keys only;
//! destroying one makes every copy of its customer's ciphertext unreadable.
//!
//! A wrapped customer key (65 bytes):
//!
//! ```text
//! offset  len  field
//! 0       1    format (1)
//! 1       4    key version, big-endian: which master-key version wraps it
//! 5       60   nonce (12) | AES-256-GCM ciphertext of the 32-byte key | tag (16)
//! ```
//!
//! The associated data binds a label, the header and the customer's id: a wrapped key copied
//! onto another customer fails to open.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use zeroize::Zeroizing;

use super::{CryptoError, KeyVersion, Keyring};
use crate::domain::CustomerId;

const FORMAT: u8 = 1;
const HEADER_LEN: usize = 1 + 4;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// The length of a wrapped customer key.
const WRAPPED_LEN: usize = HEADER_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;

/// A customer's key, unwrapped: held only in memory (the AEAD state, which aws-lc clears when
/// dropped); its raw bytes are zeroed as soon as the key is set up.
pub struct CustomerKey {
    aead: RandomizedNonceKey,
}

/// A customer key as stored: wrapped by master-key version `key_version`.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedCustomerKey {
    pub bytes: Vec<u8>,
    pub key_version: KeyVersion,
}

impl CustomerKey {
    fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        Ok(Self {
            aead: RandomizedNonceKey::new(&AES_256_GCM, bytes).map_err(|_| CryptoError::Authentication)?,
        })
    }

    pub(super) fn aead(&self) -> &RandomizedNonceKey {
        &self.aead
    }
}

fn associated_data(header: &[u8], customer: CustomerId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(22 + HEADER_LEN + 16);
    aad.extend_from_slice(b"credvault/customer-key");
    aad.extend_from_slice(header);
    aad.extend_from_slice(customer.as_bytes());
    aad
}

/// The master-key version a wrapped customer key names.
pub fn wrapping_version(wrapped: &[u8]) -> Result<KeyVersion, CryptoError> {
    match wrapped.first() {
        None => Err(CryptoError::Truncated(0)),
        Some(&FORMAT) if wrapped.len() == WRAPPED_LEN => {
            Ok(KeyVersion::from_be_bytes(wrapped[1..HEADER_LEN].try_into().expect("4 bytes")))
        }
        Some(&FORMAT) => Err(CryptoError::Truncated(wrapped.len())),
        Some(&other) => Err(CryptoError::UnsupportedFormat(other)),
    }
}

impl Keyring {
    /// A new random key for `customer`, and it wrapped by the current master-key version.
    pub fn new_customer_key(
        &self,
        customer: CustomerId,
    ) -> Result<(CustomerKey, WrappedCustomerKey), CryptoError> {
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(raw.as_mut()).map_err(|_| CryptoError::Seal)?;
        let wrapped = self.wrap_customer_key(customer, raw.as_ref())?;
        Ok((CustomerKey::from_bytes(raw.as_ref()).map_err(|_| CryptoError::Seal)?, wrapped))
    }

    /// Unwraps `customer`'s stored key.
    pub fn open_customer_key(
        &self,
        customer: CustomerId,
        wrapped: &[u8],
    ) -> Result<CustomerKey, CryptoError> {
        CustomerKey::from_bytes(&self.unwrap_customer_key(customer, wrapped)?)
    }

    /// `customer`'s stored key wrapped by the current master-key version instead; `None` when
    /// it is so already.
    pub fn rewrap_customer_key(
        &self,
        customer: CustomerId,
        wrapped: &[u8],
    ) -> Result<Option<WrappedCustomerKey>, CryptoError> {
        if wrapping_version(wrapped)? == self.current_version() {
            return Ok(None);
        }
        let raw = self.unwrap_customer_key(customer, wrapped)?;
        self.wrap_customer_key(customer, &raw).map(Some)
    }

    fn wrap_customer_key(&self, customer: CustomerId, raw: &[u8]) -> Result<WrappedCustomerKey, CryptoError> {
        let (key_version, keys) = self.current_keys();
        let mut header = [0u8; HEADER_LEN];
        header[0] = FORMAT;
        header[1..].copy_from_slice(&key_version.to_be_bytes());
        let mut sealed = Zeroizing::new(raw.to_vec());
        let nonce = keys
            .customer_kek
            .seal_in_place_append_tag(Aad::from(associated_data(&header, customer)), &mut *sealed)
            .map_err(|_| CryptoError::Seal)?;
        let mut bytes = Vec::with_capacity(WRAPPED_LEN);
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(nonce.as_ref());
        bytes.extend_from_slice(&sealed);
        Ok(WrappedCustomerKey { bytes, key_version })
    }

    fn unwrap_customer_key(
        &self,
        customer: CustomerId,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let version = wrapping_version(wrapped)?;
        let keys = self.keys(version).ok_or(CryptoError::UnknownKeyVersion(version))?;
        let (header, rest) = wrapped.split_at(HEADER_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Truncated(wrapped.len()))?;
        let mut raw = Zeroizing::new(sealed.to_vec());
        let len = keys
            .customer_kek
            .open_in_place(nonce, Aad::from(associated_data(header, customer)), &mut raw)
            .map_err(|_| CryptoError::Authentication)?
            .len();
        raw.truncate(len);
        Ok(raw)
    }
}

impl fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomerKey(..)")
    }
}

impl fmt::Debug for WrappedCustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedCustomerKey").field("key_version", &self.key_version).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Binding, MasterKey, Wrapping, wrapping};
    use crate::domain::{CredentialId, Provider};

    fn row(customer: CustomerId) -> Binding {
        Binding {
            credential_id: CredentialId::new_random(),
            customer_id: customer,
            provider: Provider::Vultr,
            version: 1,
        }
    }

    #[test]
    fn a_customer_key_seals_and_opens_its_customers_rows_only() {
        let ring = Keyring::single(&MasterKey::generate());
        let customer = CustomerId::new_random();
        let (key, wrapped) = ring.new_customer_key(customer).unwrap();
        assert_eq!((wrapped.key_version, wrapped.bytes.len()), (1, WRAPPED_LEN));
        let row = row(customer);
        let blob = key.seal(&row, b"per-customer secret").unwrap();
        assert_eq!(wrapping(&blob).unwrap(), Wrapping::Customer);
        assert_eq!(key.open(&row, &blob).unwrap().as_slice(), b"per-customer secret");
        // The stored key opens it after a restart; the master key alone does not.
        let reopened = ring.open_customer_key(customer, &wrapped.bytes).unwrap();
        assert_eq!(reopened.open(&row, &blob).unwrap().as_slice(), b"per-customer secret");
        assert!(matches!(ring.open(&row, &blob), Err(CryptoError::OtherWrapping(_))));
        // Another customer's key, or this key on another row, fails.
        let (other, _) = ring.new_customer_key(customer).unwrap();
        assert_eq!(other.open(&row, &blob).unwrap_err(), CryptoError::Authentication);
        let elsewhere = Binding { credential_id: CredentialId::new_random(), ..row };
        assert_eq!(key.open(&elsewhere, &blob).unwrap_err(), CryptoError::Authentication);
        assert!(format!("{key:?} {wrapped:?}").len() < 80);
    }

    #[test]
    fn a_wrapped_customer_key_is_bound_to_its_customer_and_detects_tampering() {
        let ring = Keyring::single(&MasterKey::generate());
        let customer = CustomerId::new_random();
        let (_, wrapped) = ring.new_customer_key(customer).unwrap();
        assert_eq!(
            ring.open_customer_key(CustomerId::new_random(), &wrapped.bytes).unwrap_err(),
            CryptoError::Authentication
        );
        for i in [0, 1, 4, 5, 20, WRAPPED_LEN - 1] {
            let mut bad = wrapped.bytes.clone();
            bad[i] ^= 1;
            assert!(ring.open_customer_key(customer, &bad).is_err(), "flipping byte {i} went unnoticed");
        }
        assert_eq!(
            ring.open_customer_key(customer, &wrapped.bytes[..30]).unwrap_err(),
            CryptoError::Truncated(30)
        );
        let other = Keyring::single(&MasterKey::generate());
        assert_eq!(
            other.open_customer_key(customer, &wrapped.bytes).unwrap_err(),
            CryptoError::Authentication
        );
    }

    #[test]
    fn master_rotation_rewraps_the_customer_key_not_the_data() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let ring = Keyring::from_versions([(1, &old), (2, &new)], 1);
        let customer = CustomerId::new_random();
        let (key, wrapped) = ring.new_customer_key(customer).unwrap();
        let row = row(customer);
        let blob = key.seal(&row, b"s").unwrap();
        assert_eq!(ring.rewrap_customer_key(customer, &wrapped.bytes).unwrap(), None);
        assert_eq!(ring.rewrap(&row, &blob).unwrap(), None, "a master rotation leaves format 4 alone");
        ring.set_current(2);
        let moved = ring.rewrap_customer_key(customer, &wrapped.bytes).unwrap().unwrap();
        assert_eq!(moved.key_version, 2);
        let only_new = Keyring::from_versions([(2, &new)], 2);
        let reopened = only_new.open_customer_key(customer, &moved.bytes).unwrap();
        assert_eq!(reopened.open(&row, &blob).unwrap().as_slice(), b"s");
        assert_eq!(
            only_new.open_customer_key(customer, &wrapped.bytes).unwrap_err(),
            CryptoError::UnknownKeyVersion(1)
        );
    }

    #[test]
    fn a_master_wrapped_blob_moves_under_the_customer_key_without_its_payload_changing() {
        let ring = Keyring::single(&MasterKey::generate());
        let customer = CustomerId::new_random();
        let (key, _) = ring.new_customer_key(customer).unwrap();
        let row = Binding { version: 2, ..row(customer) };
        let (blob, _) = ring.seal(&row, b"sealed before customer keys").unwrap();
        assert_eq!(wrapping(&blob).unwrap(), Wrapping::Master(1));
        let moved = ring.rewrap_for_customer(&row, &blob, &key).unwrap().unwrap();
        assert_eq!(wrapping(&moved).unwrap(), Wrapping::Customer);
        assert_eq!(moved.len(), blob.len());
        assert_eq!(&moved[5..10], &blob[5..10], "the payload header stays");
        assert_eq!(&moved[70..], &blob[70..], "the payload stays");
        assert_eq!(key.open(&row, &moved).unwrap().as_slice(), b"sealed before customer keys");
        assert_eq!(ring.rewrap_for_customer(&row, &moved, &key).unwrap(), None);
        let elsewhere = Binding { credential_id: CredentialId::new_random(), ..row };
        assert_eq!(
            ring.rewrap_for_customer(&elsewhere, &blob, &key).unwrap_err(),
            CryptoError::Authentication
        );
        // A shredded (lost) customer key leaves nothing that opens the moved blob.
        let (stranger, _) = ring.new_customer_key(customer).unwrap();
        assert_eq!(stranger.open(&row, &moved).unwrap_err(), CryptoError::Authentication);
    }
}
