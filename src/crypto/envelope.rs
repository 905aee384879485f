//! The sealed-blob format, version 2 (version 1 has the same layout):
//!
//! ```text
//! offset  len  field
//! 0       1    format version (2; 1 in blobs written before credentials had versions)
//! 1       4    key version, big-endian: which key-encryption key wrapped the data key
//! 5       60   wrapped data key: nonce (12) | AES-256-GCM ciphertext of the 32-byte key | tag (16)
//! 65      12   payload nonce
//! 77      n+16 payload: AES-256-GCM ciphertext | tag
//! ```
//!
//! Both seals carry the same associated data: a label, the header (format and key version) and
//! the [`Binding`] (credential id, customer id, provider and, from format 2, the credential's
//! version number), with a purpose byte telling the data key from the payload. A blob copied
//! onto another row, customer or version therefore fails to open. A format-1 blob binds no
//! version: it opens only as version 1, which is what every credential stored before versions
//! became on upgrade, so upgrading rewrites no secret.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use zeroize::{Zeroize, Zeroizing};

use super::{KeyVersion, Keyring};
use crate::domain::{CredentialId, CustomerId, Provider};

/// Blobs written before versions: the associated data binds no version number.
const FORMAT_V1: u8 = 1;
const FORMAT_V2: u8 = 2;
const HEADER_LEN: usize = 1 + 4;
const TAG_LEN: usize = 16;
const DATA_KEY_LEN: usize = 32;
const WRAPPED_KEY_LEN: usize = NONCE_LEN + DATA_KEY_LEN + TAG_LEN;
const PAYLOAD_OFFSET: usize = HEADER_LEN + WRAPPED_KEY_LEN;
const MIN_BLOB_LEN: usize = PAYLOAD_OFFSET + NONCE_LEN + TAG_LEN;

/// The credential version a ciphertext belongs to; bound into the associated data.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub credential_id: CredentialId,
    pub customer_id: CustomerId,
    pub provider: Provider,
    pub version: u32,
}

/// Why a blob could not be sealed or opened. Never carries key or plaintext material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("sealed blob is too short ({0} bytes) to be a credvault ciphertext")]
    Truncated(usize),
    #[error("sealed blob has format version {0}, which this build cannot read")]
    UnsupportedFormat(u8),
    #[error("sealed blob was written with key version {0}, which is not in the keyring")]
    UnknownKeyVersion(KeyVersion),
    #[error("sealed blob failed authentication: it was altered, or belongs to another credential")]
    Authentication,
    #[error("sealing failed")]
    Seal,
}

#[derive(Clone, Copy)]
enum Purpose {
    DataKey = 1,
    Payload = 2,
}

fn associated_data(header: &[u8], binding: &Binding, purpose: Purpose) -> Vec<u8> {
    let provider = binding.provider.as_str().as_bytes();
    let mut aad = Vec::with_capacity(16 + header.len() + 1 + 32 + provider.len() + 4);
    aad.extend_from_slice(b"credvault/secret");
    aad.extend_from_slice(header);
    aad.push(purpose as u8);
    aad.extend_from_slice(binding.credential_id.as_bytes());
    aad.extend_from_slice(binding.customer_id.as_bytes());
    aad.extend_from_slice(provider);
    if header[0] != FORMAT_V1 {
        aad.extend_from_slice(&binding.version.to_be_bytes());
    }
    aad
}

impl Keyring {
    /// Seals `plaintext` for the row `binding` under a fresh random data key.
    pub fn seal(&self, binding: &Binding, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.seal_as(FORMAT_V2, binding, plaintext)
    }

    /// [`Keyring::seal`] in a given format (tests write format 1, as older builds did).
    fn seal_as(&self, format: u8, binding: &Binding, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut header = [0u8; HEADER_LEN];
        header[0] = format;
        header[1..].copy_from_slice(&self.current_version().to_be_bytes());

        let mut data_key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        aws_lc_rs::rand::fill(data_key.as_mut()).map_err(|_| CryptoError::Seal)?;

        let mut blob = Vec::with_capacity(MIN_BLOB_LEN + plaintext.len());
        blob.extend_from_slice(&header);

        let mut wrapped = data_key.to_vec();
        let nonce = self
            .current_keys()
            .kek
            .seal_in_place_append_tag(
                Aad::from(associated_data(&header, binding, Purpose::DataKey)),
                &mut wrapped,
            )
            .map_err(|_| CryptoError::Seal)?;
        blob.extend_from_slice(nonce.as_ref());
        blob.extend_from_slice(&wrapped);

        let payload_key =
            RandomizedNonceKey::new(&AES_256_GCM, data_key.as_ref()).map_err(|_| CryptoError::Seal)?;
        let mut sealed = plaintext.to_vec();
        let nonce = payload_key
            .seal_in_place_append_tag(
                Aad::from(associated_data(&header, binding, Purpose::Payload)),
                &mut sealed,
            )
            .map_err(|_| {
                sealed.zeroize();
                CryptoError::Seal
            })?;
        blob.extend_from_slice(nonce.as_ref());
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    /// Opens a blob sealed by [`Keyring::seal`] for the same row.
    pub fn open(&self, binding: &Binding, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if blob.len() < MIN_BLOB_LEN {
            return Err(CryptoError::Truncated(blob.len()));
        }
        let header = &blob[..HEADER_LEN];
        match header[0] {
            FORMAT_V2 => {}
            FORMAT_V1 if binding.version == 1 => {}
            // Only a credential's first version was ever sealed without its number.
            FORMAT_V1 => return Err(CryptoError::Authentication),
            other => return Err(CryptoError::UnsupportedFormat(other)),
        }
        let version = KeyVersion::from_be_bytes(header[1..].try_into().expect("4 bytes"));
        let keys = self.keys(version).ok_or(CryptoError::UnknownKeyVersion(version))?;

        let (wrap_nonce, wrapped) = blob[HEADER_LEN..PAYLOAD_OFFSET].split_at(NONCE_LEN);
        let mut data_key = Zeroizing::new(wrapped.to_vec());
        let data_key_len = keys
            .kek
            .open_in_place(
                nonce(wrap_nonce)?,
                Aad::from(associated_data(header, binding, Purpose::DataKey)),
                &mut data_key,
            )
            .map_err(|_| CryptoError::Authentication)?
            .len();
        let payload_key = RandomizedNonceKey::new(&AES_256_GCM, &data_key[..data_key_len])
            .map_err(|_| CryptoError::Authentication)?;

        let (payload_nonce, sealed) = blob[PAYLOAD_OFFSET..].split_at(NONCE_LEN);
        let mut plaintext = Zeroizing::new(sealed.to_vec());
        let len = payload_key
            .open_in_place(
                nonce(payload_nonce)?,
                Aad::from(associated_data(header, binding, Purpose::Payload)),
                &mut plaintext,
            )
            .map_err(|_| CryptoError::Authentication)?
            .len();
        plaintext.truncate(len);
        Ok(plaintext)
    }
}

fn nonce(bytes: &[u8]) -> Result<Nonce, CryptoError> {
    Nonce::try_assume_unique_for_key(bytes).map_err(|_| CryptoError::Truncated(bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    fn binding() -> Binding {
        Binding {
            credential_id: CredentialId::new_random(),
            customer_id: CustomerId::new_random(),
            provider: Provider::Aws,
            version: 1,
        }
    }

    #[test]
    fn seals_and_opens_for_the_same_row() {
        let ring = Keyring::single(&MasterKey::generate());
        let row = binding();
        let blob = ring.seal(&row, b"top secret").unwrap();
        assert!(!blob.windows(10).any(|w| w == b"top secret"));
        assert_eq!(blob.len(), MIN_BLOB_LEN + 10);
        assert_eq!(ring.open(&row, &blob).unwrap().as_slice(), b"top secret");
        // Fresh data key and nonces every time.
        assert_ne!(ring.seal(&row, b"top secret").unwrap(), blob);
    }

    #[test]
    fn a_blob_fails_to_open_on_another_row_customer_provider_or_version() {
        let ring = Keyring::single(&MasterKey::generate());
        let row = binding();
        let blob = ring.seal(&row, b"s").unwrap();
        let others = [
            Binding { credential_id: CredentialId::new_random(), ..row },
            Binding { customer_id: CustomerId::new_random(), ..row },
            Binding { provider: Provider::Gcp, ..row },
            Binding { version: 2, ..row },
        ];
        for other in others {
            assert_eq!(ring.open(&other, &blob).unwrap_err(), CryptoError::Authentication);
        }
    }

    #[test]
    fn tampering_and_wrong_keys_are_detected() {
        let ring = Keyring::single(&MasterKey::generate());
        let row = binding();
        let blob = ring.seal(&row, b"secret").unwrap();
        for i in [0, 1, 6, 70, blob.len() - 1] {
            let mut bad = blob.clone();
            bad[i] ^= 1;
            assert!(ring.open(&row, &bad).is_err(), "flipping byte {i} went unnoticed");
        }
        assert_eq!(ring.open(&row, &blob[..20]).unwrap_err(), CryptoError::Truncated(20));
        let other = Keyring::single(&MasterKey::generate());
        assert_eq!(other.open(&row, &blob).unwrap_err(), CryptoError::Authentication);
    }

    #[test]
    fn old_key_versions_still_open_after_rotation() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let row = binding();
        let blob = Keyring::single(&old).seal(&row, b"before rotation").unwrap();
        let rotated = Keyring::from_versions([(1, &old), (2, &new)], 2);
        assert_eq!(rotated.open(&row, &blob).unwrap().as_slice(), b"before rotation");
        let fresh = rotated.seal(&row, b"after").unwrap();
        assert_eq!(&fresh[1..5], &2u32.to_be_bytes());
        let without_old = Keyring::from_versions([(2, &new)], 2);
        assert_eq!(without_old.open(&row, &blob).unwrap_err(), CryptoError::UnknownKeyVersion(1));
    }

    #[test]
    fn a_blob_from_before_versions_opens_as_version_one_only() {
        let ring = Keyring::single(&MasterKey::generate());
        let row = binding();
        let blob = ring.seal_as(FORMAT_V1, &row, b"stored long ago").unwrap();
        assert_eq!(blob[0], FORMAT_V1);
        assert_eq!(ring.open(&row, &blob).unwrap().as_slice(), b"stored long ago");
        assert_eq!(
            ring.open(&Binding { version: 2, ..row }, &blob).unwrap_err(),
            CryptoError::Authentication
        );
        // New blobs are format 2, and bind the version.
        assert_eq!(ring.seal(&row, b"new").unwrap()[0], FORMAT_V2);
    }
}
