//! Keys and envelope encryption, all in process: the database only ever sees sealed blobs.
//!
//! - [`MasterKey`]: the operator's 32-byte key (from `CREDENTIAL_ENCRYPTION_KEY` or a file).
//! - [`Keyring`]: versioned key-encryption keys derived from master keys, plus the check value
//!   that proves at start-up that the configured key is the one the database was written with.
//! - [`envelope`]: the blob format: a fresh data key per secret, wrapped by the keyring.

mod envelope;
mod keyring;
mod master_key;
pub mod pgcrypto;

pub use envelope::{Binding, CryptoError};
pub use keyring::{KeyVersion, Keyring};
pub use master_key::{KeyError, MasterKey, MasterKeys};
