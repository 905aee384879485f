//! `credvault key status`: the master key's versions as this configuration and the database see
//! them, and the customer keys; `credvault key rotate`: make a new version current; `retire`;
//! `enable-customer-keys`.

use std::sync::Arc;

use clap::Subcommand;

use super::common::{DatabaseArg, KeyArg, closing, keyring, open_signing};
use credvault::store::Store;
use credvault::vault::{KeyState, RequestContext, Vault};
use credvault::verify::{Verifiers, VerifySettings};

#[derive(Subcommand)]
pub(crate) enum KeyCommand {
    /// List the master-key versions configured or known to the database, each current,
    /// decrypt-only (still wrapping data keys), audit-key (wraps nothing but keys the audit
    /// log's MACs: keep it configured), unused, or missing (wrapping data keys but not
    /// configured, so those secrets cannot be opened: exits 1), with the data keys (sealed
    /// before customer keys) and customer keys each wraps; then since when new secrets are sealed
    /// under customer keys, and how many customers were purged (their keys destroyed).
    Status {
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Make a key version current: new secrets are sealed with it, and running servers move
    /// every stored data key to it in the background. Give every instance the new key first
    /// (as `VERSION:KEY` in its key file, beside the old one), then rotate. Rotating to the
    /// current version changes nothing.
    Rotate {
        /// The version to make current (default: the highest configured).
        #[arg(long)]
        version: Option<u32>,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Seal new secrets under per-customer keys from now on (every running server follows within
    /// a second) and move stored data keys under them in the background. Run it once every
    /// instance runs a build that reads customer keys; a database created by such a build has
    /// them already. Enabling them again changes nothing.
    EnableCustomerKeys {
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Retire a key version that wraps no data key and is not current, so that its key can
    /// leave every configuration: the audit log is sealed and verified with it one last time,
    /// then a checkpoint MACed by the current version vouches for the rows it MACed.
    Retire {
        /// The version to retire.
        version: u32,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

pub(crate) async fn run(command: KeyCommand) -> Result<(), String> {
    match command {
        KeyCommand::Status { key, database: DatabaseArg { database_url } } => {
            status(&key, &database_url).await
        }
        KeyCommand::Rotate { version, key, database: DatabaseArg { database_url } } => {
            let (store, vault) = open_vault(&key, &database_url).await?;
            let rotated = closing(&store, vault.rotate_key(&RequestContext::operator(), version))
                .await
                .map_err(|e| e.to_string())?;
            if rotated.version == rotated.previous {
                println!("key version {} is current already; nothing changed", rotated.version);
            } else {
                println!(
                    "key version {} is current (was {}): new secrets are sealed with it, and running servers \
                     rewrap stored data keys to it (see `credvault key status`)",
                    rotated.version, rotated.previous
                );
            }
            Ok(())
        }
        KeyCommand::EnableCustomerKeys { key, database: DatabaseArg { database_url } } => {
            let (store, vault) = open_vault(&key, &database_url).await?;
            let since = closing(&store, vault.enable_customer_keys(&RequestContext::operator()))
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "customer keys are on since {since}: new secrets are sealed under them, and running servers move \
                 stored data keys under them (see `credvault key status`)"
            );
            Ok(())
        }
        KeyCommand::Retire { version, key, database: DatabaseArg { database_url } } => {
            let (store, vault) = open_vault(&key, &database_url).await?;
            let retired = closing(&store, async {
                vault.prepare().await.map_err(|e| e.to_string())?;
                vault.retire_key(&RequestContext::operator(), version).await.map_err(|e| e.to_string())
            })
            .await?;
            println!(
                "key version {} is retired: remove it from every key configuration; a checkpoint vouches for the \
                 {} audit rows sealed before it",
                retired.version, retired.checkpoint_seq
            );
            Ok(())
        }
    }
}

pub(crate) async fn open_vault(key: &KeyArg, database_url: &str) -> Result<(Arc<dyn Store>, Vault), String> {
    let keyring = keyring(key, database_url)?;
    let store = open_signing(database_url, Some(keyring.clone())).await?;
    let vault = Vault::new(store.clone(), keyring, Arc::new(Verifiers::new(&VerifySettings::default())?));
    Ok((store, vault))
}

async fn status(key: &KeyArg, database_url: &str) -> Result<(), String> {
    let (store, vault) = open_vault(key, database_url).await?;
    let status =
        closing(&store, vault.key_status(&RequestContext::operator())).await.map_err(|e| e.to_string())?;
    println!("version\tstate\tdata keys\tcustomer keys\tfirst used");
    for v in &status.versions {
        let first = v.recorded_at.map_or_else(|| "-".to_owned(), |t| t.date().to_string());
        println!("{}\t{}\t{}\t{}\t{first}", v.version, v.state.as_str(), v.data_keys, v.customer_keys);
    }
    match status.customer_keys_since {
        Some(since) => println!("customer keys: on since {since}"),
        None => println!("customer keys: off (`credvault key enable-customer-keys` turns them on)"),
    }
    println!("purged customers (keys destroyed): {}", status.shredded_customers);
    let missing: Vec<String> = status
        .versions
        .iter()
        .filter(|v| v.state == KeyState::Missing)
        .map(|v| v.version.to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "key version(s) {} still wrap data keys but are not configured: add them to the key configuration",
            missing.join(", ")
        ))
    }
}
