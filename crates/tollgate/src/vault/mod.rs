//! The provider-key vault: provider API keys sealed with envelope encryption (AES-256-GCM data
//! keys wrapped by master keys kept in a key file), so the database never holds them in clear.

mod crypto;
mod keyring;
mod master_keys;

pub use crypto::{SealedSecret, VaultError};
pub use master_keys::{MasterKeyId, MasterKeys};

pub(crate) use keyring::KeyRing;
