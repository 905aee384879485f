//! The `credvault` command line.

use std::process::ExitCode;

mod commands;

use commands::common::{DatabaseArg, KeyArg, closing, keyring, open_migrated, open_signing};

use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use credvault::bench::{self, BenchArgs};
use credvault::config::{Config, LogFormat, ServeArgs};
use credvault::crypto::MasterKey;
use credvault::domain::{Customer, CustomerId, CustomerStatus, DEMO_CUSTOMER_ID, SubscriptionTier};
use credvault::server::{self, App};
use credvault::vault::{Directory, NewCustomerRequest, RequestContext, verify_audit_log};
use credvault::{admin, config, telemetry, vault::error_chain};

#[derive(Parser)]
#[command(name = "credvault", version, about = "A credential vault for cloud-provider keys")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: gRPC for services, the REST gateway for the dashboard.
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit (serve also applies them at start-up).
    Migrate {
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Print a new random encryption key (base64 of 32 bytes) for CREDENTIAL_ENCRYPTION_KEY.
    Keygen,
    /// Manage customers.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Manage API tokens (callers authenticate with `authorization: Bearer <token>`).
    #[command(subcommand)]
    Token(TokenCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write a consistent copy of a SQLite vault to a new file, safe while it serves (for
    /// PostgreSQL, use pg_dump). With the key, checks that the key opens the copy.
    Backup {
        /// The file to write; it must not exist yet.
        #[arg(long)]
        to: std::path::PathBuf,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Replace a SQLite vault with a backup, once SQLite finds the backup intact and the key
    /// is the one it was written with. Stop every server using the database first.
    Restore {
        /// The backup file (from `credvault backup`).
        #[arg(long)]
        from: std::path::PathBuf,
        /// Overwrite the database if it exists.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Drive a running server with concurrent clients and print throughput and latency.
    Bench(BenchArgs),
    /// Fill a new database with generated customers, credentials and audit history, every
    /// secret sealed and every audit row MACed and chained (bench/scale.sh's databases).
    BenchSeed {
        #[command(flatten)]
        seed: bench::seed::SeedArgs,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Bring credentials over from another system into this vault.
    #[command(subcommand)]
    Import(commands::import::ImportCommand),
    /// The master key.
    #[command(subcommand)]
    Key(commands::key::KeyCommand),
}

#[derive(Subcommand)]
enum CustomerCommand {
    /// Create a customer and print its id.
    Create {
        /// The customer's contact email (unique among customers).
        #[arg(long)]
        email: String,
        /// The customer's company name, as the dashboard shows it.
        #[arg(long)]
        company_name: String,
        /// active, trial, suspended or cancelled.
        #[arg(long, default_value = "active")]
        status: String,
        /// free, starter, professional or enterprise.
        #[arg(long, default_value = "free")]
        tier: String,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// List customers, oldest first.
    List {
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Change a customer's status. Suspended and cancelled customers' secrets are not handed
    /// out and nothing new is stored for them.
    SetStatus {
        /// The customer's id (a UUID, as `customer create` printed it).
        customer_id: String,
        /// active, trial, suspended or cancelled.
        status: String,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Destroy a cancelled customer's key once its recovery window has passed: every copy of its
    /// secrets' ciphertext (the database, its WAL, backups) becomes unreadable; its metadata and
    /// audit rows stay. Running servers' purgers do it by themselves at the end of the window.
    Purge {
        /// The customer's id.
        customer_id: String,
        /// Purge before the recovery window has passed (audited as forced).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the whole audit log for tampering (changed, deleted, inserted or reordered rows);
    /// names the first bad row and exits 1 if there is one.
    Verify {
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (shown once; only its hash is stored).
    Create {
        /// A unique name; it names the caller in the audit log.
        #[arg(long)]
        name: String,
        /// Comma-separated: credentials:write, credentials:read, secrets:read,
        /// credentials:verify, audit:read, admin; or * for all.
        #[arg(long)]
        scopes: String,
        /// The one customer id the token reaches, or * for every customer.
        #[arg(long)]
        customer: String,
        /// Lifetime, e.g. 90d, 12h, 30m; without it the token lasts until revoked.
        #[arg(long, value_parser = config::parse_duration)]
        expires_in: Option<std::time::Duration>,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// List tokens (names, scopes, customers, state; never the tokens themselves).
    List {
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Revoke a token by name. Servers stop accepting it within CREDVAULT_TOKEN_CACHE_SECS.
    Revoke {
        /// The token's name, as given to `token create`.
        name: String,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The load generator runs on one thread: it shares the machine with the server it measures,
    // and one thread drives 64 connections without handing tasks between cores.
    let runtime = match &cli.command {
        Command::Bench(_) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        _ => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate { database: DatabaseArg { database_url } } => {
            telemetry::init(LogFormat::Text);
            open_migrated(&database_url).await?.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::Keygen => {
            println!("{}", MasterKey::generate().to_base64().expose_secret());
            Ok(())
        }
        Command::Customer(command) => {
            telemetry::init(LogFormat::Text);
            customer(command).await
        }
        Command::Audit(AuditCommand::Verify { key, database: DatabaseArg { database_url } }) => {
            telemetry::init(LogFormat::Text);
            let keyring = keyring(&key, &database_url)?;
            let store = open_signing(&database_url, Some(keyring.clone())).await?;
            let verified = closing(&store, verify_audit_log(store.as_ref(), keyring.as_ref())).await;
            match verified.map_err(|e| error_chain(&e))? {
                Ok(ok) => {
                    println!(
                        "audit log intact: {} sealed rows, {} not yet sealed (each checked by its MAC)",
                        ok.sealed, ok.unsealed
                    );
                    Ok(())
                }
                Err(tampered) => Err(format!("TAMPERED: {tampered}")),
            }
        }
        Command::Token(command) => {
            telemetry::init(LogFormat::Text);
            token(command).await
        }
        Command::Backup { to, key, database: DatabaseArg { database_url } } => {
            telemetry::init(LogFormat::Text);
            let keyring = config::master_key_configured(key.key_file.as_deref(), &database_url)
                .then(|| keyring(&key, &database_url))
                .transpose()?;
            println!("{}", admin::backup(&database_url, &to, keyring.as_deref()).await?);
            Ok(())
        }
        Command::Restore { from, replace, key, database: DatabaseArg { database_url } } => {
            telemetry::init(LogFormat::Text);
            let keyring = keyring(&key, &database_url)?;
            println!("{}", admin::restore(&from, &database_url, &keyring, replace).await?);
            Ok(())
        }
        Command::Import(command) => commands::import::run(command).await,
        Command::Key(command) => commands::key::run(command).await,
        Command::Bench(args) => {
            let report = bench::run(&args).await?;
            println!("{report}");
            Ok(())
        }
        Command::BenchSeed { seed, key, database: DatabaseArg { database_url } } => {
            telemetry::init(LogFormat::Text);
            let keyring = keyring(&key, &database_url)?;
            let store = open_signing(&database_url, Some(keyring.clone())).await?;
            let seeded = closing(&store, bench::seed::seed(store.clone(), keyring, &seed)).await?;
            println!("{seeded}");
            Ok(())
        }
    }
}

async fn customer(command: CustomerCommand) -> Result<(), String> {
    let operator = RequestContext::operator();
    let describe = |c: &Customer| {
        format!("{}\t{}\t{}\t{}\t{}", c.id, c.status, c.tier.as_str(), c.email.as_str(), c.company_name)
    };
    let parse_status = |value: &str| {
        CustomerStatus::parse(value)
            .ok_or_else(|| format!("{value:?} is not a status: active, trial, suspended or cancelled"))
    };
    match command {
        CustomerCommand::Create {
            email,
            company_name,
            status,
            tier,
            database: DatabaseArg { database_url },
        } => {
            let tier = SubscriptionTier::parse(&tier).ok_or_else(|| {
                format!("{tier:?} is not a tier: free, starter, professional or enterprise")
            })?;
            let request = NewCustomerRequest::parse(&email, &company_name, parse_status(&status)?, tier)
                .map_err(|v| v.to_string())?;
            let store = open_migrated(&database_url).await?;
            let directory = Directory::new(store.clone());
            let created = closing(&store, directory.create_customer(&operator, request))
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", created.id);
        }
        CustomerCommand::List { database: DatabaseArg { database_url } } => {
            let store = open_migrated(&database_url).await?;
            let directory = Directory::new(store.clone());
            let listing = async {
                let mut after = None;
                loop {
                    let page = directory.list_customers(&operator, after, 500).await?;
                    for c in &page.items {
                        println!("{}", describe(c));
                    }
                    match page.next {
                        Some(next) => after = Some(next),
                        None => return Ok(()),
                    }
                }
            };
            closing(&store, listing).await.map_err(|e: credvault::vault::VaultError| e.to_string())?;
        }
        CustomerCommand::SetStatus { customer_id, status, key, database: DatabaseArg { database_url } } => {
            let keyring = keyring(&key, &database_url)?;
            let id = CustomerId::parse(&customer_id, "CUSTOMER_ID").map_err(|v| v.to_string())?;
            let status = parse_status(&status)?;
            let store = open_signing(&database_url, Some(keyring)).await?;
            let directory = Directory::new(store.clone());
            let changed = closing(&store, directory.set_customer_status(&operator, id, status))
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", describe(&changed));
        }
        CustomerCommand::Purge { customer_id, force, key, database: DatabaseArg { database_url } } => {
            let id = CustomerId::parse(&customer_id, "CUSTOMER_ID").map_err(|v| v.to_string())?;
            let (store, vault) = commands::key::open_vault(&key, &database_url).await?;
            let purged = closing(&store, async {
                vault.prepare().await.map_err(|e| e.to_string())?;
                vault.purge_customer(&operator, id, force).await.map_err(|e| e.to_string())
            })
            .await?;
            println!(
                "customer {} purged{}: its key is destroyed, and its secrets can never be opened again",
                purged.customer_id,
                if purged.forced { " (before its recovery window ended)" } else { "" }
            );
        }
    }
    Ok(())
}

async fn token(command: TokenCommand) -> Result<(), String> {
    match command {
        TokenCommand::Create {
            name,
            scopes,
            customer,
            expires_in,
            database: DatabaseArg { database_url },
        } => {
            let store = open_migrated(&database_url).await?;
            let directory = Directory::new(store.clone());
            let created = admin::create_token(&directory, &name, &scopes, &customer, expires_in);
            let issued = closing(&store, created).await?;
            eprintln!("{}", admin::describe(&issued.record, time::OffsetDateTime::now_utc()));
            eprintln!("the token follows; it is shown only now:");
            println!("{}", issued.token.expose_secret());
        }
        TokenCommand::List { database: DatabaseArg { database_url } } => {
            let store = open_migrated(&database_url).await?;
            let now = time::OffsetDateTime::now_utc();
            let directory = Directory::new(store.clone());
            for token in closing(&store, admin::list_tokens(&directory)).await? {
                println!("{}", admin::describe(&token, now));
            }
        }
        TokenCommand::Revoke { name, database: DatabaseArg { database_url } } => {
            let store = open_migrated(&database_url).await?;
            let directory = Directory::new(store.clone());
            let token = closing(&store, admin::revoke_token(&directory, &name)).await?;
            println!("{}", admin::describe(&token, time::OffsetDateTime::now_utc()));
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    telemetry::init(args.log_format);
    let env_key = std::env::var("CREDENTIAL_ENCRYPTION_KEY").ok().map(SecretString::from);
    let config = Config::from_args(args, env_key).map_err(|e| e.to_string())?;
    let app = App::build(&config).await.map_err(|e| e.to_string())?;
    if config.dev {
        print_dev_banner(&app);
    }
    app.run_until_stopped(server::shutdown_signal()).await.map_err(|e| e.to_string())
}

fn print_dev_banner(app: &App) {
    let addr = app.grpc_addr();
    let http = app.http_addr();
    let c = DEMO_CUSTOMER_ID;
    let token = app.dev_token().map(|t| t.expose_secret().to_owned()).unwrap_or_default();
    let auth = r#"-H "authorization: Bearer $CREDVAULT_TOKEN""#;
    println!(
        r#"
credvault is running in development mode on {addr} (key: .credvault/dev.key, data: .credvault/).
Demo customer: {c}. A development token with every scope is in .credvault/dev.token:

  export CREDVAULT_TOKEN={token}

Open the dashboard at http://{http}/dashboard/ and sign in with that token.

Try (grpcurl uses server reflection, nothing else to set up):

  grpcurl -plaintext {auth} -d '{{"customer_id":"{c}","credential_name":"Production Vultr","secret":{{"vultr":{{"api_key":"YOUR-VULTR-API-KEY"}}}}}}' {addr} credvault.v1.CredentialService/Store
  grpcurl -plaintext {auth} -d '{{"customer_id":"{c}"}}' {addr} credvault.v1.CredentialService/List
  grpcurl -plaintext {auth} -d '{{"by_provider":{{"customer_id":"{c}","provider":"PROVIDER_VULTR"}}}}' {addr} credvault.v1.CredentialService/Get
  grpcurl -plaintext {auth} -d '{{"customer_id":"{c}"}}' {addr} credvault.v1.CredentialService/Summary
  grpcurl -plaintext {addr} grpc.health.v1.Health/Check

The dashboard's REST gateway is on http://{http}:

  curl {auth} -H 'X-Customer-ID: {c}' http://{http}/api/v1/credentials
  curl {auth} -H 'X-Customer-ID: {c}' http://{http}/api/v1/credentials/status/summary
  curl http://{http}/api/v1/openapi.json
"#
    );
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    /// Every flag and positional argument of every subcommand says what it is in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if !matches!(id, "help" | "version") && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "credvault", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }
}
