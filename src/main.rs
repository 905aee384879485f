//! The `credvault` command line.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use credvault::bench::{self, BenchArgs};
use credvault::config::{Config, DEFAULT_DATABASE_URL, LogFormat, ServeArgs};
use credvault::crypto::MasterKey;
use credvault::domain::{CustomerId, DEMO_CUSTOMER_ID};
use credvault::server::{self, App};
use credvault::store::{self, NewCustomer, PoolSettings, Store};
use credvault::{telemetry, vault::error_chain};

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
        #[arg(long, env = "CREDVAULT_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
        database_url: String,
    },
    /// Print a new random encryption key (base64 of 32 bytes) for CREDENTIAL_ENCRYPTION_KEY.
    Keygen,
    /// Manage customers.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Drive a running server with concurrent clients and print throughput and latency.
    Bench(BenchArgs),
}

#[derive(Subcommand)]
enum CustomerCommand {
    /// Create a customer and print its id.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        company_name: String,
        #[arg(long, env = "CREDVAULT_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
        database_url: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
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
        Command::Migrate { database_url } => {
            telemetry::init(LogFormat::Text);
            open_migrated(&database_url).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Keygen => {
            println!("{}", MasterKey::generate().to_base64().expose_secret());
            Ok(())
        }
        Command::Customer(CustomerCommand::Create { email, company_name, database_url }) => {
            telemetry::init(LogFormat::Text);
            let store = open_migrated(&database_url).await?;
            let id = CustomerId::new_random();
            store
                .ensure_customer(&NewCustomer { id, email, company_name })
                .await
                .map_err(|e| error_chain(&e))?;
            println!("{id}");
            Ok(())
        }
        Command::Bench(args) => {
            let report = bench::run(&args).await?;
            println!("{report}");
            Ok(())
        }
    }
}

async fn open_migrated(database_url: &str) -> Result<Arc<dyn Store>, String> {
    let store = store::open(database_url, &PoolSettings::default()).await.map_err(|e| error_chain(&e))?;
    store.migrate().await.map_err(|e| error_chain(&e))?;
    Ok(store)
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
    println!(
        r#"
credvault is running in development mode on {addr} (key: .credvault/dev.key, data: .credvault/).
Demo customer: {c}. Try (grpcurl uses server reflection, nothing else to set up):

  grpcurl -plaintext -d '{{"customer_id":"{c}","credential_name":"Production Vultr","secret":{{"vultr":{{"api_key":"YOUR-VULTR-API-KEY"}}}}}}' {addr} credvault.v1.CredentialService/Store
  grpcurl -plaintext -d '{{"customer_id":"{c}"}}' {addr} credvault.v1.CredentialService/List
  grpcurl -plaintext -d '{{"by_provider":{{"customer_id":"{c}","provider":"PROVIDER_VULTR"}}}}' {addr} credvault.v1.CredentialService/Get
  grpcurl -plaintext -d '{{"customer_id":"{c}"}}' {addr} credvault.v1.CredentialService/Summary
  grpcurl -plaintext {addr} grpc.health.v1.Health/Check

The dashboard's REST gateway is on http://{http}:

  curl -H 'X-Customer-ID: {c}' http://{http}/api/v1/credentials
  curl -H 'X-Customer-ID: {c}' http://{http}/api/v1/credentials/status/summary
  curl http://{http}/api/v1/openapi.json
"#
    );
}
