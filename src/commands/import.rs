//! `credvault import pgcrypto` and `credvault import env`: the arguments, and how each run is
//! reported (the work is `credvault::import`'s).

use std::sync::Arc;

use clap::Subcommand;
use secrecy::SecretString;

use super::common::{DatabaseArg, KeyArg, closing, keyring, open_signing};
use credvault::config;
use credvault::domain::CustomerId;
use credvault::vault::Vault;
use credvault::verify::{Verifiers, VerifySettings};

#[derive(Subcommand)]
pub(crate) enum ImportCommand {
    /// The seed's PostgreSQL database: customers, cloud_credentials (pgp_sym_encrypt'ed JSON)
    /// and credential_audit_log. Decrypts here (the key is never sent to a database), seals with
    /// this vault's key, keeps ids, names, times and counts. Safe to repeat: rows already
    /// imported are skipped. Exits 1 when any row was skipped, after listing each.
    Pgcrypto {
        /// The source database (postgres://...), read only. Prefer the environment variable:
        /// a password in a flag shows in `ps`.
        #[arg(long = "from", env = "CREDVAULT_IMPORT_SOURCE_URL", hide_env_values = true)]
        source_url: String,
        /// The environment variable holding the source's key (the old system's
        /// CREDENTIAL_ENCRYPTION_KEY). Never a flag: it would show in `ps`.
        #[arg(long, default_value = "SOURCE_CREDENTIAL_ENCRYPTION_KEY")]
        source_key_env: String,
        /// A file holding the source's key instead of the environment variable.
        #[arg(long)]
        source_key_file: Option<std::path::PathBuf>,
        /// Decrypt and validate everything, report, and write nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Keys kept in environment variables (the seed's way before its database), for one
    /// customer: VULTR_API_KEY; AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN);
    /// GOOGLE_APPLICATION_CREDENTIALS (a key file) or GCP_SERVICE_ACCOUNT_JSON; AZURE_TENANT_ID,
    /// AZURE_CLIENT_ID, AZURE_CLIENT_SECRET (AZURE_SUBSCRIPTION_ID). Each becomes its
    /// provider's default credential. Safe to repeat; never prints a secret.
    Env {
        /// The customer the keys belong to.
        #[arg(long)]
        customer: String,
        /// Read this .env / docker-compose env file instead of the environment.
        #[arg(long)]
        env_file: Option<std::path::PathBuf>,
        /// Verify each imported credential with its provider.
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        providers: config::VerifyArgs,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

pub(crate) async fn run(command: ImportCommand) -> Result<(), String> {
    match command {
        ImportCommand::Pgcrypto {
            source_url,
            source_key_env,
            source_key_file,
            dry_run,
            key,
            database: DatabaseArg { database_url },
        } => {
            let source_key = match source_key_file {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read the source key file {}: {e}", path.display()))?,
                None => std::env::var(&source_key_env).map_err(|_| {
                    format!(
                        "set {source_key_env} to the old system's encryption key, or pass --source-key-file"
                    )
                })?,
            };
            let source_key = SecretString::from(source_key.trim_end_matches(['\n', '\r']).to_owned());
            let keyring = keyring(&key, &database_url)?;
            let store = open_signing(&database_url, Some(keyring.clone())).await?;
            let verifiers = Verifiers::new(&VerifySettings::default())?;
            let vault = Vault::new(store.clone(), keyring, Arc::new(verifiers));
            let imported = async {
                vault.prepare().await.map_err(|e| e.to_string())?;
                credvault::import::pgcrypto::run(&vault, &source_url, source_key, dry_run).await
            };
            let report = closing(&store, imported).await?;
            print!("{}", report.table());
            if report.problems.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} rows were skipped (listed above); fix them and run again",
                    report.problems.len()
                ))
            }
        }
        ImportCommand::Env {
            customer,
            env_file,
            verify,
            providers,
            key,
            database: DatabaseArg { database_url },
        } => {
            let customer = CustomerId::parse(&customer, "--customer").map_err(|v| v.to_string())?;
            let variables = credvault::import::env::variables(env_file.as_deref())?;
            let settings = providers.validate().map_err(|e| e.to_string())?;
            let keyring = keyring(&key, &database_url)?;
            let store = open_signing(&database_url, Some(keyring.clone())).await?;
            let vault = Vault::new(store.clone(), keyring, Arc::new(Verifiers::new(&settings)?));
            let imported = async {
                vault.prepare().await.map_err(|e| e.to_string())?;
                Ok::<_, String>(credvault::import::env::import(&vault, customer, &variables, verify).await)
            };
            let outcomes = closing(&store, imported).await?;
            if outcomes.is_empty() {
                return Err("no provider's variables were found (see credvault import env --help)".into());
            }
            let mut skipped = 0;
            for outcome in &outcomes {
                match &outcome.result {
                    Ok(message) => println!("{}: {message}", outcome.provider),
                    Err(why) => {
                        skipped += 1;
                        println!("{}: skipped: {why}", outcome.provider);
                    }
                }
            }
            if skipped == 0 {
                Ok(())
            } else {
                Err(format!("{skipped} of {} providers were skipped", outcomes.len()))
            }
        }
    }
}
