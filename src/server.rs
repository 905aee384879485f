//! Wiring: the store, keyring and vault behind a bound gRPC listener (reflection, health) and
//! the REST gateway's HTTP listener, with metrics on both.
//! [`App::build`] binds first (port 0 works, tests read the port back); [`App::run_until_stopped`]
//! serves until the shutdown future resolves, then finishes in-flight calls.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::Config;
use crate::crypto::Keyring;
use crate::domain::{AuditSigner, CustomerId, CustomerStatus, DEMO_CUSTOMER_ID, SubscriptionTier};
use crate::grpc::{AuditApi, CredentialApi, CustomerApi, KeyApi};
use crate::proto::credential_service_server::CredentialServiceServer;
use crate::store;
use crate::vault::{NewCustomerRequest, StartupError, Vault, error_chain};
use crate::verify::Verifiers;

/// Why the server could not start; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot open the database {url}: {reason}")]
    Database { url: String, reason: String },
    #[error(transparent)]
    Key(#[from] crate::vault::StartupError),
    #[error("cannot listen on {addr}: {source} (is another process using the port? set {variable})")]
    Bind { addr: SocketAddr, variable: &'static str, source: std::io::Error },
    #[error("server failed: {0}")]
    Serve(String),
}

/// A built, bound, not yet serving credvault.
pub struct App {
    listener: TcpListener,
    grpc_addr: SocketAddr,
    http_listener: TcpListener,
    http_addr: SocketAddr,
    dashboard_origin: Option<http::HeaderValue>,
    dev_token: Option<SecretString>,
    tls: Option<ServerTlsConfig>,
    audit_chain_interval: Duration,
    purge_interval: Duration,
    rewrap_rate: Option<std::num::NonZeroU32>,
    reverify: crate::jobs::ReverifySettings,
    /// How long a readiness probe may wait for the database.
    probe_limit: Duration,
    vault: Vault,
    dev: bool,
}

/// How often each instance reads which master-key version is current: after `credvault key
/// rotate`, every instance seals with the new version within this.
const KEY_WATCH_EVERY: Duration = Duration::from_secs(1);

/// How often readiness looks at the database once serving.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// How long to wait between attempts to reach the database at start-up.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl App {
    /// Opens the store, prepares it (migrations, key check) and binds the listener. A database
    /// that is not reachable yet is not an error: the server starts NOT_SERVING and keeps trying
    /// (see [`App::run_until_stopped`]). A wrong key or a broken schema is.
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        let tls = config.tls.as_ref().map(tls_config).transpose()?;
        if config.dev {
            crate::config::prepare_dev_dir(std::path::Path::new(crate::config::DEV_DIR))?;
        }
        let keys = config.master_keys()?;
        let keyring = Arc::new(Keyring::new(&keys));
        drop(keys);
        let signer: Arc<dyn AuditSigner> = keyring.clone();
        let store =
            store::open(config.database_url.expose(), &config.pool, Some(signer)).await.map_err(|e| {
                StartError::Database { url: config.database_url.to_string(), reason: error_chain(&e) }
            })?;
        let verifiers = Arc::new(Verifiers::new(&config.verify).map_err(StartError::Serve)?);
        let vault = Vault::new(store, keyring, verifiers)
            .with_token_cache_ttl(config.token_cache_ttl)
            .with_trusted_proxies(config.trusted_proxies.clone())
            .with_verification_policy(config.verification);
        let mut dev_token = None;
        match vault.prepare().await {
            Ok(()) => {
                if config.dev {
                    seed_demo_customer(&vault).await?;
                    let path = std::path::Path::new(crate::config::DEV_DIR).join("dev.token");
                    let token =
                        crate::admin::ensure_dev_token(&vault, &path).await.map_err(StartError::Serve)?;
                    dev_token = Some(token);
                }
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, database = %config.database_url, "database not reachable yet; starting NOT_SERVING and retrying");
            }
            Err(StartupError::ReadOnly(reason)) => {
                return Err(StartError::Database { url: config.database_url.to_string(), reason });
            }
            Err(e) => return Err(e.into()),
        }
        let (listener, grpc_addr) = bind(config.grpc_addr, "CREDVAULT_GRPC_ADDR").await?;
        let (http_listener, http_addr) = bind(config.http_addr, "CREDVAULT_HTTP_ADDR").await?;
        Ok(Self {
            listener,
            grpc_addr,
            http_listener,
            http_addr,
            dashboard_origin: config.dashboard_origin.clone(),
            dev_token,
            tls,
            audit_chain_interval: config.audit_chain_interval,
            purge_interval: config.purge_interval,
            rewrap_rate: config.rewrap_rate,
            reverify: config.reverify,
            probe_limit: config.pool.connect_timeout + Duration::from_secs(1),
            vault,
            dev: config.dev,
        })
    }

    /// The bound gRPC address (the real port when configured with port 0).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// `--dev`: the development token (every scope, every customer).
    pub fn dev_token(&self) -> Option<&SecretString> {
        self.dev_token.as_ref()
    }

    /// The bound REST gateway address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Serves until `shutdown` resolves, then stops accepting, finishes in-flight calls and
    /// returns. If the database was not reachable at build time, keeps trying with backoff
    /// while health reports NOT_SERVING; a fatal finding then (wrong key) stops the server with
    /// that error.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        let (fatal_tx, fatal_rx) = oneshot::channel::<StartupError>();
        // The server's own tasks (preparing a database not reachable at build time, watching
        // the database) stop when `halt` turns true, and are joined before the listeners stop.
        let (halt, halted) = watch::channel(false);
        set_health(&health, self.vault.is_ready()).await;
        let preparer = (!self.vault.is_ready()).then(|| {
            tokio::spawn(prepare_until_ready(
                self.vault.clone(),
                health.clone(),
                self.dev,
                fatal_tx,
                halted.clone(),
            ))
        });

        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_error = |e: tonic_reflection::server::Error| StartError::Serve(e.to_string());
        // v1alpha too: grpcurl builds before 1.9 only speak the alpha protocol.
        let reflection_v1 = reflection().build_v1().map_err(reflection_error)?;
        let reflection_v1alpha = reflection().build_v1alpha().map_err(reflection_error)?;

        let watcher =
            tokio::spawn(watch_database(self.vault.clone(), health.clone(), self.probe_limit, halted));
        let fatal = Arc::new(Mutex::new(None));
        let fatal_slot = fatal.clone();
        // Both listeners stop together: the first of the caller's signal or a fatal finding
        // flips `stop`, then each finishes its in-flight requests.
        let (stop, stopped) = watch::channel(());
        let stopping = async move {
            tokio::select! {
                () = shutdown => {}
                Ok(error) = fatal_rx => {
                    tracing::error!(error = %error, "cannot serve; stopping");
                    *fatal_slot.lock().expect("not poisoned") = Some(error);
                }
            }
            let _ = halt.send(true);
            let tasks = std::iter::once(("database watcher", watcher))
                .chain(preparer.map(|p| ("database preparer", p)));
            for (task, handle) in tasks {
                if let Err(e) = handle.await {
                    tracing::error!(task, error = %e, "a server task ended abnormally");
                }
            }
            set_health(&health, false).await;
            tracing::info!("shutting down: finishing in-flight calls");
            let _ = stop.send(());
            Ok(())
        };
        let stop_signal = |mut stopped: watch::Receiver<()>| async move {
            let _ = stopped.changed().await;
        };

        crate::metrics::install();
        let jobs = crate::jobs::Jobs::start(
            &self.vault,
            crate::jobs::Intervals {
                audit_chain: self.audit_chain_interval,
                purge: self.purge_interval,
                keys: KEY_WATCH_EVERY,
            },
            self.rewrap_rate,
            self.reverify,
        );
        let final_seal = self.vault.clone();
        tracing::info!(grpc_addr = %self.grpc_addr, http_addr = %self.http_addr, "credvault listening");
        let rest = crate::rest::router(self.vault.clone(), self.dashboard_origin)
            .into_make_service_with_connect_info::<SocketAddr>();
        let http = axum::serve(self.http_listener, rest).with_graceful_shutdown(stop_signal(stopped.clone()));
        let mut builder = Server::builder();
        if let Some(tls) = self.tls {
            builder = builder
                .tls_config(tls)
                .map_err(|e| StartError::Serve(format!("TLS: {}", error_chain(&e))))?;
        }
        let grpc = builder
            .layer(crate::metrics::GrpcMetricsLayer)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(CustomerApi::new(self.vault.clone()).into_server())
            .add_service(AuditApi::new(self.vault.clone()).into_server())
            .add_service(KeyApi::new(self.vault.clone()).into_server())
            .add_service(CredentialApi::new(self.vault).into_server())
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                stop_signal(stopped),
            );
        let served = tokio::try_join!(
            stopping,
            async { grpc.await.map_err(|e| StartError::Serve(format!("gRPC: {}", error_chain(&e)))) },
            async { http.await.map_err(|e| StartError::Serve(format!("HTTP: {}", error_chain(&e)))) },
        );
        jobs.stop().await;
        served?;
        if final_seal.is_ready()
            && let Err(e) = final_seal.chain_audit().await
        {
            tracing::warn!(error = %e, "could not seal the newest audit rows at shutdown");
        }
        final_seal.close().await;
        tracing::info!("stopped");
        match fatal.lock().expect("not poisoned").take() {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }
}

/// The gRPC listener's TLS (and, with a client CA, mutual TLS) from the configured files.
fn tls_config(files: &crate::config::TlsFiles) -> Result<ServerTlsConfig, StartError> {
    let pem = files.read()?;
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(pem.cert, pem.key.as_slice()));
    if let Some(ca) = pem.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(ca));
    }
    Ok(tls)
}

/// Once the vault is prepared, probes the database every [`PROBE_EVERY`] and reports on the
/// health service whether it can serve: NOT_SERVING within a few seconds of the database
/// becoming unreachable or read-only, SERVING again once it heals. Liveness (`/healthz`)
/// does not follow it: restarting credvault would not mend the database.
async fn watch_database(
    vault: Vault,
    health: HealthReporter,
    limit: Duration,
    mut halted: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(PROBE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = halted.changed() => return,
        }
        if !vault.is_ready() {
            continue;
        }
        let was = vault.is_serving();
        let probed = vault.probe_database(limit).await;
        match (&probed, was) {
            (Err(why), true) => {
                tracing::error!(reason = %why, "database unreachable or not writable: reporting NOT_SERVING");
                set_health(&health, false).await;
            }
            (Ok(()), false) => {
                tracing::info!("database reachable and writable again: reporting SERVING");
                set_health(&health, true).await;
            }
            _ => {}
        }
    }
}

async fn bind(addr: SocketAddr, variable: &'static str) -> Result<(TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind { addr, variable, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

async fn set_health(health: &HealthReporter, serving: bool) {
    let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
    health.set_service_status("", status).await;
    health.set_service_status(<CredentialServiceServer<CredentialApi> as NamedService>::NAME, status).await;
}

/// Retries [`Vault::prepare`] with exponential backoff until the database answers, or the
/// server halts.
async fn prepare_until_ready(
    vault: Vault,
    health: HealthReporter,
    dev: bool,
    fatal: oneshot::Sender<StartupError>,
    mut halted: watch::Receiver<bool>,
) {
    let mut delay = RETRY_FIRST;
    loop {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = halted.changed() => return,
        }
        match vault.prepare().await {
            Ok(()) => {
                if dev && let Err(e) = seed_demo_customer(&vault).await {
                    tracing::error!(error = %e, "dev setup failed");
                }
                set_health(&health, true).await;
                tracing::info!("database reachable: serving");
                return;
            }
            Err(e) if e.is_retryable() => {
                delay = (delay * 2).min(RETRY_MAX);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis(), "database still not reachable");
            }
            Err(e) => {
                let _ = fatal.send(e);
                return;
            }
        }
    }
}

async fn seed_demo_customer(vault: &Vault) -> Result<(), StartError> {
    let id = CustomerId::parse(DEMO_CUSTOMER_ID, "demo").expect("the demo id is a UUID");
    let demo = NewCustomerRequest::parse(
        "demo@example.com",
        "Demo Customer",
        CustomerStatus::Active,
        SubscriptionTier::Free,
    )
    .expect("the demo customer is valid");
    let created = vault
        .directory()
        .ensure_customer(&crate::vault::RequestContext::operator(), id, demo)
        .await
        .map_err(|e| StartError::Database {
            url: "(configured database)".into(),
            reason: format!("cannot create the demo customer: {e}"),
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
