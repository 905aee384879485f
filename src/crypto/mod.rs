//! Keys and envelope encryption, all in process: the database only ever sees sealed blobs.
//!
//! - [`MasterKey`]: the operator's 32-byte key (from `CREDENTIAL_ENCRYPTION_KEY` or a file).
//! - [`Keyring`]: versioned key-encryption keys derived from master keys, plus the check value
//!   that proves at start-up that the configured key is the one the database was written with.
//! - [`envelope`]: the blob format: a fresh data key per secret, wrapped by its customer's key
//!   (or, for blobs sealed before customers had keys, by the keyring).
//! - [`customer_key`]: one random key per customer, wrapped by the keyring.

mod customer_key;
mod envelope;
mod keyring;
mod master_key;
pub mod pgcrypto;

pub use customer_key::{CustomerKey, WrappedCustomerKey, wrapping_version};
pub use envelope::{Binding, CryptoError, Wrapping, wrapping};
pub use keyring::{KeyVersion, Keyring};
pub use master_key::{KeyError, MasterKey, MasterKeys};
