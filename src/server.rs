//! Wiring: the store, keyring and vault behind a bound gRPC listener with reflection and health.
//! [`App::build`] binds first (port 0 works, tests read the port back); [`App::run_until_stopped`]
//! serves until the shutdown future resolves, then finishes in-flight calls.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::config::Config;
use crate::crypto::Keyring;
use crate::domain::{CustomerId, DEMO_CUSTOMER_ID};
use crate::grpc::CredentialApi;
use crate::proto::credential_service_server::CredentialServiceServer;
use crate::store::{self, NewCustomer};
use crate::vault::{Vault, error_chain};

/// Why the server could not start; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot open the database {url}: {reason}")]
    Database { url: String, reason: String },
    #[error(transparent)]
    Key(#[from] crate::vault::StartupError),
    #[error(
        "cannot listen on {addr}: {source} (is another process using the port? set CREDVAULT_GRPC_ADDR)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(String),
}

/// A built, bound, not yet serving credvault.
pub struct App {
    listener: TcpListener,
    grpc_addr: SocketAddr,
    vault: Vault,
}

impl App {
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        let master = config.master_key()?;
        let keyring = Arc::new(Keyring::single(&master));
        drop(master);
        let store = store::connect(config.database_url.expose())
            .await
            .map_err(|e| StartError::Database {
                url: config.database_url.to_string(),
                reason: error_chain(&e),
            })?;
        let vault = Vault::open(store, keyring).await?;
        if config.dev {
            seed_demo_customer(&vault).await?;
        }
        let listener = TcpListener::bind(config.grpc_addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.grpc_addr,
                source,
            })?;
        let grpc_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.grpc_addr,
            source,
        })?;
        Ok(Self {
            listener,
            grpc_addr,
            vault,
        })
    }

    /// The bound gRPC address (the real port when configured with port 0).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Serves until `shutdown` resolves, then stops accepting, finishes in-flight calls and
    /// returns.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<CredentialServiceServer<CredentialApi>>()
            .await;

        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_error =
            |e: tonic_reflection::server::Error| StartError::Serve(e.to_string());
        // v1alpha too: grpcurl builds before 1.9 only speak the alpha protocol.
        let reflection_v1 = reflection().build_v1().map_err(reflection_error)?;
        let reflection_v1alpha = reflection().build_v1alpha().map_err(reflection_error)?;

        let shutdown = async move {
            shutdown.await;
            health
                .set_not_serving::<CredentialServiceServer<CredentialApi>>()
                .await;
            tracing::info!("shutting down: finishing in-flight calls");
        };
        tracing::info!(grpc_addr = %self.grpc_addr, "credvault serving");
        let store = self.vault.store().clone();
        Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(CredentialApi::new(self.vault).into_server())
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await
            .map_err(|e| StartError::Serve(error_chain(&e)))?;
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn seed_demo_customer(vault: &Vault) -> Result<(), StartError> {
    let demo = NewCustomer {
        id: CustomerId::parse(DEMO_CUSTOMER_ID, "demo").expect("the demo id is a UUID"),
        email: "demo@example.com".into(),
        company_name: "Demo Customer".into(),
    };
    let created = vault
        .store()
        .ensure_customer(&demo)
        .await
        .map_err(|e| StartError::Database {
            url: "(configured database)".into(),
            reason: format!("cannot create the demo customer: {}", error_chain(&e)),
        })?;
    if created {
        tracing::info!(customer_id = DEMO_CUSTOMER_ID, "created the demo customer");
    }
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
