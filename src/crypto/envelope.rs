//! The sealed-blob formats 3 and 4:
//!
//! ```text
//! offset  len  field
//! 0       1    format version: 4, the data key is wrapped by its customer's key; 3, by a
//!              master-key version
//! 1       4    big-endian: format 4, the customer key's generation (1); format 3, the key
//!              version of the master key wrapping the data key
//! 5       5    payload header: the format and key version the payload was sealed under
//! 10      60   wrapped data key: nonce (12) | AES-256-GCM ciphertext of the 32-byte key | tag (16)
//! 70      12   payload nonce
//! 82      n+16 payload: AES-256-GCM ciphertext | tag
//! ```
//!
//! Formats 1 and 2 (still read) have no payload header: a 5-byte header (format, key version)
//! then the wrapped key and the payload, at offsets 5 and 65. Customer keys and their own
//! wrapping by the master key are [`super::customer_key`]'s.
//!
//! Both seals carry associated data: a label, a header and the [`Binding`] (credential id,
//! customer id, provider and, from format 2, the credential's version number), with a purpose
//! byte telling the data key from the payload. The data key's binds the whole header, the
//! payload's only the payload header, which never changes: rewrapping a blob under another key
//! version ([`Keyring::rewrap`]) rewrites the header and the wrapped key and leaves the payload
//! as it is, so it never handles the secret. A blob copied onto another row, customer or version
//! fails to open. A format-1 payload binds no version: it opens only as version 1, which is what
//! every credential stored before versions became on upgrade, so upgrading rewrites no secret.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use zeroize::{Zeroize, Zeroizing};

use super::{CustomerKey, KeyVersion, Keyring};
use crate::domain::{CredentialId, CustomerId, Provider};

/// Blobs written before versions: the associated data binds no version number.
const FORMAT_V1: u8 = 1;
const FORMAT_V2: u8 = 2;
const FORMAT_V3: u8 = 3;
const FORMAT_V4: u8 = 4;
/// The only generation of customer keys so far (format 4's second field): room for rotating a
/// customer's own key later.
const CUSTOMER_KEY_GENERATION: u32 = 1;
/// A format and a key version.
const SHORT_HEADER_LEN: usize = 1 + 4;
/// Format 3's: the wrapping key's header, then the payload's.
const HEADER_LEN: usize = 2 * SHORT_HEADER_LEN;
const TAG_LEN: usize = 16;
const DATA_KEY_LEN: usize = 32;
const WRAPPED_KEY_LEN: usize = NONCE_LEN + DATA_KEY_LEN + TAG_LEN;
const MIN_BLOB_LEN: usize = HEADER_LEN + WRAPPED_KEY_LEN + NONCE_LEN + TAG_LEN;
const MIN_OLD_BLOB_LEN: usize = SHORT_HEADER_LEN + WRAPPED_KEY_LEN + NONCE_LEN + TAG_LEN;

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
    #[error("sealed blob's data key is wrapped by {0}, not by the key it was opened with")]
    OtherWrapping(&'static str),
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

/// What wraps a blob's data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapping {
    /// A master-key version: formats 1 to 3, sealed before the customer had a key.
    Master(KeyVersion),
    /// The customer's key: format 4.
    Customer,
}

/// What wraps `blob`'s data key, from its header alone.
pub fn wrapping(blob: &[u8]) -> Result<Wrapping, CryptoError> {
    match *blob.first().ok_or(CryptoError::Truncated(0))? {
        FORMAT_V4 => Ok(Wrapping::Customer),
        FORMAT_V1..=FORMAT_V3 if blob.len() >= SHORT_HEADER_LEN => Ok(Wrapping::Master(
            KeyVersion::from_be_bytes(blob[1..SHORT_HEADER_LEN].try_into().expect("4 bytes")),
        )),
        FORMAT_V1..=FORMAT_V3 => Err(CryptoError::Truncated(blob.len())),
        other => Err(CryptoError::UnsupportedFormat(other)),
    }
}

/// A blob cut into its fields (any format).
struct Parts<'a> {
    /// What the data key's associated data binds.
    wrap_header: &'a [u8],
    key_version: KeyVersion,
    /// What the payload's associated data binds.
    payload_header: &'a [u8],
    wrapped_key: &'a [u8],
    /// Nonce then ciphertext and tag.
    payload: &'a [u8],
}

impl<'a> Parts<'a> {
    fn of(blob: &'a [u8], binding: &Binding) -> Result<Self, CryptoError> {
        let format = *blob.first().ok_or(CryptoError::Truncated(0))?;
        let (header_len, payload_header) = match format {
            FORMAT_V3 | FORMAT_V4 if blob.len() >= MIN_BLOB_LEN => {
                (HEADER_LEN, &blob[SHORT_HEADER_LEN..HEADER_LEN])
            }
            FORMAT_V1 | FORMAT_V2 if blob.len() >= MIN_OLD_BLOB_LEN => {
                (SHORT_HEADER_LEN, &blob[..SHORT_HEADER_LEN])
            }
            FORMAT_V1..=FORMAT_V4 => return Err(CryptoError::Truncated(blob.len())),
            other => return Err(CryptoError::UnsupportedFormat(other)),
        };
        // Only a credential's first version was ever sealed without its number.
        if payload_header[0] == FORMAT_V1 && binding.version != 1 {
            return Err(CryptoError::Authentication);
        }
        if !matches!(payload_header[0], FORMAT_V1..=FORMAT_V4) {
            return Err(CryptoError::Authentication);
        }
        let (wrapped_key, payload) = blob[header_len..].split_at(WRAPPED_KEY_LEN);
        Ok(Parts {
            wrap_header: &blob[..header_len],
            key_version: KeyVersion::from_be_bytes(blob[1..SHORT_HEADER_LEN].try_into().expect("4 bytes")),
            payload_header,
            wrapped_key,
            payload,
        })
    }
}

impl Keyring {
    /// Seals `plaintext` for the row `binding` under a fresh random data key, wrapped by the
    /// current key version (format 3, for a customer without a key yet); returns the blob and
    /// that version.
    pub fn seal(&self, binding: &Binding, plaintext: &[u8]) -> Result<(Vec<u8>, KeyVersion), CryptoError> {
        let (version, keys) = self.current_keys();
        Ok((seal_under(&keys.kek, header(FORMAT_V3, version), binding, plaintext)?, version))
    }

    /// Opens a blob sealed by [`Keyring::seal`] (or rewrapped) for the same row: one whose data
    /// key a master-key version wraps.
    pub fn open(&self, binding: &Binding, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let parts = Parts::of(blob, binding)?;
        if blob[0] == FORMAT_V4 {
            return Err(CryptoError::OtherWrapping("its customer's key"));
        }
        open_parts(self.master_kek(parts.key_version)?, &parts, binding)
    }

    /// The blob with its data key wrapped by the current key version instead, and that
    /// version; `None` when it is wrapped by the current version already. The payload is
    /// copied as it is: the secret is never decrypted. Fails as [`Keyring::open`] would for a
    /// blob that is not this row's.
    pub fn rewrap(
        &self,
        binding: &Binding,
        blob: &[u8],
    ) -> Result<Option<(Vec<u8>, KeyVersion)>, CryptoError> {
        let parts = Parts::of(blob, binding)?;
        let (version, keys) = self.current_keys();
        if blob[0] == FORMAT_V4 || (parts.key_version == version && blob[0] == FORMAT_V3) {
            return Ok(None);
        }
        let data_key = unwrap(self.master_kek(parts.key_version)?, &parts, binding)?;
        let moved = rewrapped(&keys.kek, header(FORMAT_V3, version), &parts, binding, &data_key)?;
        Ok(Some((moved, version)))
    }

    /// The blob with its data key wrapped by `customer`'s key instead of a master-key version
    /// (format 4); `None` when it is so already. As [`Keyring::rewrap`], the payload is copied as
    /// it is.
    pub fn rewrap_for_customer(
        &self,
        binding: &Binding,
        blob: &[u8],
        customer: &CustomerKey,
    ) -> Result<Option<Vec<u8>>, CryptoError> {
        let parts = Parts::of(blob, binding)?;
        if blob[0] == FORMAT_V4 {
            return Ok(None);
        }
        let data_key = unwrap(self.master_kek(parts.key_version)?, &parts, binding)?;
        let header = header(FORMAT_V4, CUSTOMER_KEY_GENERATION);
        Ok(Some(rewrapped(customer.aead(), header, &parts, binding, &data_key)?))
    }

    fn master_kek(&self, version: KeyVersion) -> Result<&RandomizedNonceKey, CryptoError> {
        self.keys(version).map(|keys| &keys.kek).ok_or(CryptoError::UnknownKeyVersion(version))
    }
}

impl CustomerKey {
    /// Seals `plaintext` for the row `binding` (of this key's customer) under a fresh random
    /// data key wrapped by this key (format 4).
    pub fn seal(&self, binding: &Binding, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal_under(self.aead(), header(FORMAT_V4, CUSTOMER_KEY_GENERATION), binding, plaintext)
    }

    /// Opens a format-4 blob of the row `binding`.
    pub fn open(&self, binding: &Binding, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let parts = Parts::of(blob, binding)?;
        if blob[0] != FORMAT_V4 {
            return Err(CryptoError::OtherWrapping("a master-key version"));
        }
        if parts.key_version != CUSTOMER_KEY_GENERATION {
            return Err(CryptoError::Authentication);
        }
        open_parts(self.aead(), &parts, binding)
    }
}

/// A format's header: the wrapping key's half (format, version) and the payload's, the same.
fn header(format: u8, version: u32) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0] = format;
    header[1..SHORT_HEADER_LEN].copy_from_slice(&version.to_be_bytes());
    header.copy_within(..SHORT_HEADER_LEN, SHORT_HEADER_LEN);
    header
}

/// `plaintext` under a fresh random data key wrapped by `kek`, in a blob with `header`.
fn seal_under(
    kek: &RandomizedNonceKey,
    header: [u8; HEADER_LEN],
    binding: &Binding,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut data_key = Zeroizing::new([0u8; DATA_KEY_LEN]);
    aws_lc_rs::rand::fill(data_key.as_mut()).map_err(|_| CryptoError::Seal)?;

    let mut blob = Vec::with_capacity(MIN_BLOB_LEN + plaintext.len());
    blob.extend_from_slice(&header);
    wrap(kek, &header, binding, data_key.as_ref(), &mut blob)?;

    let payload_key =
        RandomizedNonceKey::new(&AES_256_GCM, data_key.as_ref()).map_err(|_| CryptoError::Seal)?;
    let mut sealed = plaintext.to_vec();
    let nonce = payload_key
        .seal_in_place_append_tag(
            Aad::from(associated_data(&header[SHORT_HEADER_LEN..], binding, Purpose::Payload)),
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

/// The payload of `parts`, its data key unwrapped by `kek`.
fn open_parts(
    kek: &RandomizedNonceKey,
    parts: &Parts<'_>,
    binding: &Binding,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let data_key = unwrap(kek, parts, binding)?;
    let payload_key =
        RandomizedNonceKey::new(&AES_256_GCM, &data_key[..]).map_err(|_| CryptoError::Authentication)?;
    let (payload_nonce, sealed) = parts.payload.split_at(NONCE_LEN);
    let mut plaintext = Zeroizing::new(sealed.to_vec());
    let len = payload_key
        .open_in_place(
            nonce(payload_nonce)?,
            Aad::from(associated_data(parts.payload_header, binding, Purpose::Payload)),
            &mut plaintext,
        )
        .map_err(|_| CryptoError::Authentication)?
        .len();
    plaintext.truncate(len);
    Ok(plaintext)
}

/// A blob of `parts`' payload with `data_key` wrapped by `kek` under a new wrapping header (the
/// payload's header stays).
fn rewrapped(
    kek: &RandomizedNonceKey,
    mut header: [u8; HEADER_LEN],
    parts: &Parts<'_>,
    binding: &Binding,
    data_key: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    header[SHORT_HEADER_LEN..].copy_from_slice(parts.payload_header);
    let mut out = Vec::with_capacity(HEADER_LEN + WRAPPED_KEY_LEN + parts.payload.len());
    out.extend_from_slice(&header);
    wrap(kek, &header, binding, data_key, &mut out)?;
    out.extend_from_slice(parts.payload);
    Ok(out)
}

/// The blob's data key, unwrapped by `kek`.
fn unwrap(
    kek: &RandomizedNonceKey,
    parts: &Parts<'_>,
    binding: &Binding,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (wrap_nonce, wrapped) = parts.wrapped_key.split_at(NONCE_LEN);
    let mut data_key = Zeroizing::new(wrapped.to_vec());
    let len = kek
        .open_in_place(
            nonce(wrap_nonce)?,
            Aad::from(associated_data(parts.wrap_header, binding, Purpose::DataKey)),
            &mut data_key,
        )
        .map_err(|_| CryptoError::Authentication)?
        .len();
    data_key.truncate(len);
    Ok(data_key)
}

/// Appends `data_key` wrapped by `kek` for a blob with `header`: nonce, ciphertext, tag.
fn wrap(
    kek: &RandomizedNonceKey,
    header: &[u8],
    binding: &Binding,
    data_key: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    let mut wrapped = Zeroizing::new(data_key.to_vec());
    let nonce = kek
        .seal_in_place_append_tag(
            Aad::from(associated_data(header, binding, Purpose::DataKey)),
            &mut *wrapped,
        )
        .map_err(|_| CryptoError::Seal)?;
    out.extend_from_slice(nonce.as_ref());
    out.extend_from_slice(&wrapped);
    Ok(())
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

    fn seal(ring: &Keyring, row: &Binding, plaintext: &[u8]) -> Vec<u8> {
        ring.seal(row, plaintext).unwrap().0
    }

    /// A blob in format 1 or 2, as older builds wrote them (5-byte header).
    fn seal_old(ring: &Keyring, format: u8, row: &Binding, plaintext: &[u8]) -> Vec<u8> {
        let (version, keys) = ring.current_keys();
        let mut header = [0u8; SHORT_HEADER_LEN];
        header[0] = format;
        header[1..].copy_from_slice(&version.to_be_bytes());
        let data_key = [9u8; DATA_KEY_LEN];
        let mut blob = header.to_vec();
        wrap(&keys.kek, &header, row, &data_key, &mut blob).unwrap();
        let payload_key = RandomizedNonceKey::new(&AES_256_GCM, &data_key).unwrap();
        let mut sealed = plaintext.to_vec();
        let nonce = payload_key
            .seal_in_place_append_tag(Aad::from(associated_data(&header, row, Purpose::Payload)), &mut sealed)
            .unwrap();
        blob.extend_from_slice(nonce.as_ref());
        blob.extend_from_slice(&sealed);
        blob
    }

    #[test]
    fn seals_and_opens_for_the_same_row() {
        let ring = Keyring::single(&MasterKey::generate());
        let row = binding();
        let (blob, version) = ring.seal(&row, b"top secret").unwrap();
        assert_eq!(version, 1);
        assert!(!blob.windows(10).any(|w| w == b"top secret"));
        assert_eq!(blob.len(), MIN_BLOB_LEN + 10);
        assert_eq!(blob[0], FORMAT_V3);
        assert_eq!(ring.open(&row, &blob).unwrap().as_slice(), b"top secret");
        // Fresh data key and nonces every time.
        assert_ne!(seal(&ring, &row, b"top secret"), blob);
    }

    #[test]
    fn a_blob_fails_to_open_on_another_row_customer_provider_or_version() {
        let ring = Keyring::single(&MasterKey::generate());
        let row = binding();
        let blob = seal(&ring, &row, b"s");
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
        let blob = seal(&ring, &row, b"secret");
        for i in [0, 1, 6, 9, 12, 75, blob.len() - 1] {
            let mut bad = blob.clone();
            bad[i] ^= 1;
            assert!(ring.open(&row, &bad).is_err(), "flipping byte {i} went unnoticed");
        }
        assert_eq!(ring.open(&row, &blob[..20]).unwrap_err(), CryptoError::Truncated(20));
        assert_eq!(ring.open(&row, &[]).unwrap_err(), CryptoError::Truncated(0));
        let other = Keyring::single(&MasterKey::generate());
        assert_eq!(other.open(&row, &blob).unwrap_err(), CryptoError::Authentication);
    }

    #[test]
    fn old_key_versions_still_open_after_rotation() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let row = binding();
        let blob = seal(&Keyring::single(&old), &row, b"before rotation");
        let rotated = Keyring::from_versions([(1, &old), (2, &new)], 2);
        assert_eq!(rotated.open(&row, &blob).unwrap().as_slice(), b"before rotation");
        let (fresh, version) = rotated.seal(&row, b"after").unwrap();
        assert_eq!((version, &fresh[1..5]), (2, &2u32.to_be_bytes()[..]));
        let without_old = Keyring::from_versions([(2, &new)], 2);
        assert_eq!(without_old.open(&row, &blob).unwrap_err(), CryptoError::UnknownKeyVersion(1));
    }

    #[test]
    fn the_current_version_changes_only_to_one_in_the_ring() {
        let ring = Keyring::from_versions([(1, &MasterKey::generate()), (2, &MasterKey::generate())], 1);
        assert!(!ring.set_current(3));
        assert_eq!(ring.current_version(), 1);
        assert!(ring.set_current(2));
        assert_eq!(ring.seal(&binding(), b"x").unwrap().1, 2);
    }

    #[test]
    fn rewrapping_moves_the_data_key_to_the_current_version_and_keeps_the_payload() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let ring = Keyring::from_versions([(1, &old), (2, &new)], 1);
        let row = Binding { version: 3, ..binding() };
        let blob = seal(&ring, &row, b"rewrap me");
        assert_eq!(ring.rewrap(&row, &blob).unwrap(), None, "already under the current version");
        ring.set_current(2);
        let elsewhere = Binding { credential_id: CredentialId::new_random(), ..row };
        assert_eq!(ring.rewrap(&elsewhere, &blob).unwrap_err(), CryptoError::Authentication);
        let (moved, version) = ring.rewrap(&row, &blob).unwrap().unwrap();
        assert_eq!(version, 2);
        assert_eq!(&moved[1..5], &2u32.to_be_bytes());
        assert_eq!(moved.len(), blob.len());
        assert_eq!(
            &moved[HEADER_LEN + WRAPPED_KEY_LEN..],
            &blob[HEADER_LEN + WRAPPED_KEY_LEN..],
            "payload untouched"
        );
        assert_eq!(ring.open(&row, &moved).unwrap().as_slice(), b"rewrap me");
        // The new version alone opens it: the old key is no longer needed.
        let only_new = Keyring::from_versions([(2, &new)], 2);
        assert_eq!(only_new.open(&row, &moved).unwrap().as_slice(), b"rewrap me");
        assert_eq!(only_new.rewrap(&row, &moved).unwrap(), None);
    }

    #[test]
    fn blobs_in_older_formats_open_and_rewrap() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let ring = Keyring::from_versions([(1, &old), (2, &new)], 1);
        let first = binding();
        let second = Binding { version: 2, ..first };
        let v1 = seal_old(&ring, FORMAT_V1, &first, b"stored long ago");
        let v2 = seal_old(&ring, FORMAT_V2, &second, b"stored last year");
        assert_eq!(ring.open(&first, &v1).unwrap().as_slice(), b"stored long ago");
        assert_eq!(ring.open(&second, &v2).unwrap().as_slice(), b"stored last year");
        // A format-1 blob binds no version: it opens as version 1 only.
        assert_eq!(ring.open(&second, &v1).unwrap_err(), CryptoError::Authentication);
        assert_eq!(ring.rewrap(&second, &v1).unwrap_err(), CryptoError::Authentication);

        ring.set_current(2);
        let only_new = Keyring::from_versions([(2, &new)], 2);
        for (row, blob, plaintext) in
            [(first, v1, &b"stored long ago"[..]), (second, v2, b"stored last year")]
        {
            let (moved, _) = ring.rewrap(&row, &blob).unwrap().unwrap();
            assert_eq!(moved[0], FORMAT_V3);
            assert_eq!(only_new.open(&row, &moved).unwrap().as_slice(), plaintext);
            let elsewhere = Binding { credential_id: CredentialId::new_random(), ..row };
            assert_eq!(only_new.open(&elsewhere, &moved).unwrap_err(), CryptoError::Authentication);
        }
    }
}
