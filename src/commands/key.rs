//! `credvault key status`: the master key's versions as this configuration and the database see
//! them.

use std::sync::Arc;

use clap::Subcommand;

use super::common::{DatabaseArg, KeyArg, closing, keyring, open_signing};
use credvault::vault::{KeyState, RequestContext, Vault};
use credvault::verify::{Verifiers, VerifySettings};

#[derive(Subcommand)]
pub(crate) enum KeyCommand {
    /// List the master-key versions configured or known to the database, each current,
    /// decrypt-only (still wrapping data keys), unused, or missing (wrapping data keys but not
    /// configured, so those secrets cannot be opened: exits 1), with the data keys each wraps.
    Status {
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

pub(crate) async fn run(command: KeyCommand) -> Result<(), String> {
    let KeyCommand::Status { key, database: DatabaseArg { database_url } } = command;
    let keyring = keyring(&key, &database_url)?;
    let store = open_signing(&database_url, Some(keyring.clone())).await?;
    let vault = Vault::new(store.clone(), keyring, Arc::new(Verifiers::new(&VerifySettings::default())?));
    let status =
        closing(&store, vault.key_status(&RequestContext::operator())).await.map_err(|e| e.to_string())?;
    println!("version\tstate\tdata keys\tfirst used");
    for v in &status {
        let first = v.recorded_at.map_or_else(|| "-".to_owned(), |t| t.date().to_string());
        println!("{}\t{}\t{}\t{first}", v.version, v.state.as_str(), v.data_keys);
    }
    let missing: Vec<String> =
        status.iter().filter(|v| v.state == KeyState::Missing).map(|v| v.version.to_string()).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "key version(s) {} still wrap data keys but are not configured: add them to the key configuration",
            missing.join(", ")
        ))
    }
}
