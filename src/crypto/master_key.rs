//! The operator's master key: 32 random bytes, read from base64, kept in a zeroizing box; and
//! [`MasterKeys`], the versions of it a configuration holds while keys rotate.

use std::collections::BTreeMap;
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
    #[error(
        "key entry {0} is not VERSION:KEY with VERSION a whole number from 1 \
         (one entry per line or comma-separated, e.g. `1:<key>` then `2:<key>`)"
    )]
    BadEntry(usize),
    #[error("key version {0}: {1}")]
    InVersion(u32, Box<KeyError>),
    #[error("key version {0} is given twice; give each version once")]
    Duplicate(u32),
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

/// The master keys of one configuration, by version: while keys rotate, the new version and
/// the older ones that still open stored secrets.
///
/// Written as one base64 key (version 1, what `credvault keygen` prints), or as
/// `VERSION:KEY` entries, one per line or comma-separated; lines starting with `#` are
/// comments.
pub struct MasterKeys(BTreeMap<u32, MasterKey>);

impl MasterKeys {
    pub fn parse(encoded: &SecretString) -> Result<Self, KeyError> {
        let text = encoded.expose_secret();
        if !text.contains(':') {
            return Ok(Self(BTreeMap::from([(1, MasterKey::from_base64(encoded)?)])));
        }
        let mut keys = BTreeMap::new();
        let entries = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .flat_map(|line| line.split(|c: char| c == ',' || c.is_whitespace()))
            .filter(|entry| !entry.is_empty());
        for (n, entry) in entries.enumerate() {
            let (version, key) = entry.split_once(':').ok_or(KeyError::BadEntry(n + 1))?;
            let version: u32 = version.parse().ok().filter(|v| *v > 0).ok_or(KeyError::BadEntry(n + 1))?;
            let key = MasterKey::from_base64(&SecretString::from(key.to_owned()))
                .map_err(|e| KeyError::InVersion(version, Box::new(e)))?;
            if keys.insert(version, key).is_some() {
                return Err(KeyError::Duplicate(version));
            }
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self(keys))
    }

    /// One key, as version 1.
    pub fn single(key: MasterKey) -> Self {
        Self(BTreeMap::from([(1, key)]))
    }

    /// The versions and their keys, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &MasterKey)> {
        self.0.iter().map(|(v, k)| (*v, k))
    }
}

impl fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MasterKeys").field(&self.0.keys().collect::<Vec<_>>()).finish()
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

    fn keys(s: &str) -> Result<MasterKeys, KeyError> {
        MasterKeys::parse(&SecretString::from(s.to_owned()))
    }

    #[test]
    fn a_configuration_holds_one_key_or_several_versions() {
        let (a, b) = (STANDARD.encode([1u8; 32]), STANDARD.encode([2u8; 32]));
        let one = keys(&format!("{a}\n")).unwrap();
        assert_eq!(format!("{one:?}"), "MasterKeys([1])");
        let two = keys(&format!("# rotated 2026-12\n2:{b}\n1:{a}\n")).unwrap();
        assert_eq!(format!("{two:?}"), "MasterKeys([1, 2])");
        assert_eq!(two.iter().map(|(_, k)| *k.expose()).collect::<Vec<_>>(), [[1u8; 32], [2u8; 32]]);
        assert_eq!(format!("{:?}", keys(&format!("1:{a}, 3:{b}")).unwrap()), "MasterKeys([1, 3])");
    }

    #[test]
    fn bad_versions_are_named_and_keys_never_echoed() {
        let (a, b) = (STANDARD.encode([1u8; 32]), STANDARD.encode([2u8; 32]));
        assert_eq!(keys(&format!("1:{a}\n1:{b}")).unwrap_err(), KeyError::Duplicate(1));
        assert_eq!(keys(&format!("1:{a}\n0:{b}")).unwrap_err(), KeyError::BadEntry(2));
        assert_eq!(keys(&format!("1:{a}\nx:{b}")).unwrap_err(), KeyError::BadEntry(2));
        assert_eq!(keys(&format!("1:{a}\n{b}")).unwrap_err(), KeyError::BadEntry(2));
        let short = STANDARD.encode([3u8; 16]);
        let err = keys(&format!("1:{a}\n2:{short}")).unwrap_err();
        assert_eq!(err, KeyError::InVersion(2, Box::new(KeyError::WrongLength(16))));
        assert!(!err.to_string().contains(&short) && err.to_string().starts_with("key version 2: "));
        assert_eq!(keys("# only a comment: \n").unwrap_err(), KeyError::Empty);
    }
}
