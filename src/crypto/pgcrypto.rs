//! Opening what the seed's system stored: `pgp_sym_encrypt(json, key)` output, an OpenPGP
//! symmetrically encrypted message (SKESK + SEIPD with MDC, optionally compressed), read with
//! rpgp in this process, so the old key never goes back to a database. The S2K derivation
//! dominates the cost (milliseconds per row): callers run it on blocking threads.

use pgp::composed::Message;
use pgp::types::Password;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// Why a stored message did not open; never contains plaintext or the key.
#[derive(Debug, thiserror::Error)]
pub enum PgcryptoError {
    #[error("not an OpenPGP message pgcrypto wrote ({0})")]
    Malformed(String),
    #[error("the source key does not open it (wrong key, or the message was altered)")]
    WrongKey,
}

/// The plaintext of one `pgp_sym_encrypt` message.
pub fn open(message: &[u8], key: &SecretString) -> Result<Zeroizing<Vec<u8>>, PgcryptoError> {
    let parsed = Message::from_bytes(message).map_err(|e| PgcryptoError::Malformed(e.to_string()))?;
    if !parsed.is_encrypted() {
        return Err(PgcryptoError::Malformed("it is not encrypted".into()));
    }
    let password = Password::from(key.expose_secret());
    let mut opened = parsed.decrypt_with_password(&password).map_err(|_| PgcryptoError::WrongKey)?;
    if opened.is_compressed() {
        opened = opened.decompress().map_err(|e| PgcryptoError::Malformed(e.to_string()))?;
    }
    // Reading to the end checks the MDC: an altered message (or a wrong key that happened to
    // pass the quick check) fails here.
    let plaintext = opened.as_data_vec().map_err(|_| PgcryptoError::WrongKey)?;
    Ok(Zeroizing::new(plaintext))
}
