//! The operator's master key: 32 random bytes, read from base64, kept in a zeroizing box.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

/// Length of a master key in bytes.
pub(crate) const MASTER_KEY_LEN: usize = 32;

/// The operator's master key: 32 random bytes, given base64-encoded. Wiped on drop; `Debug`
/// redacts.
pub struct MasterKey(SecretBox<[u8; MASTER_KEY_LEN]>);

/// Why a configured key was refused. Messages say how to fix it and never echo the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the encryption key is empty; generate one with `credvault keygen`")]
    Empty,
    #[error("the encryption key is not valid base64; generate one with `credvault keygen`")]
    NotBase64,
    #[error(
        "the encryption key decodes to {0} bytes but must be exactly 32 random bytes; generate one with `credvault keygen`"
    )]
    WrongLength(usize),
}

impl MasterKey {
    /// Parses a base64 (standard alphabet, padding optional) encoding of 32 bytes. Surrounding
    /// whitespace, such as a key file's trailing newline, is ignored.
    pub fn from_base64(encoded: &SecretString) -> Result<Self, KeyError> {
        let text = encoded.expose_secret().trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let bytes = Zeroizing::new(engine.decode(text).map_err(|_| KeyError::NotBase64)?);
        let array: [u8; MASTER_KEY_LEN] =
            bytes.as_slice().try_into().map_err(|_| KeyError::WrongLength(bytes.len()))?;
        Ok(Self(SecretBox::new(Box::new(array))))
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = Box::new([0u8; MASTER_KEY_LEN]);
        aws_lc_rs::rand::fill(bytes.as_mut()).expect("the system random generator failed");
        Self(SecretBox::new(bytes))
    }

    /// The key in the form `from_base64` reads, for `credvault keygen` and the dev key file.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.0.expose_secret()))
    }

    pub(super) fn expose(&self) -> &[u8; MASTER_KEY_LEN] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<MasterKey, KeyError> {
        MasterKey::from_base64(&SecretString::from(s.to_owned()))
    }

    #[test]
    fn generated_keys_round_trip_through_base64() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(key.expose(), again.expose());
        assert_ne!(key.expose(), MasterKey::generate().expose());
    }

    #[test]
    fn bad_keys_say_what_is_wrong() {
        assert_eq!(parse("  \n").unwrap_err(), KeyError::Empty);
        assert_eq!(parse("not base64 at all!").unwrap_err(), KeyError::NotBase64);
        assert_eq!(parse(&STANDARD.encode([7u8; 16])).unwrap_err(), KeyError::WrongLength(16));
        let padded_with_newline = format!("{}\n", STANDARD.encode([7u8; 32]));
        assert!(parse(&padded_with_newline).is_ok());
    }

    #[test]
    fn debug_redacts() {
        assert_eq!(format!("{:?}", MasterKey::generate()), "MasterKey([redacted])");
    }
}
