//! `TestApp`: a real credvault server on an ephemeral port, with its own SQLite file and key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::db::TestDb;

use credvault::client::{Bearer, Client};
use credvault::config::{Config, DatabaseUrl, KeySource, LogFormat};
use credvault::crypto::MasterKey;
use credvault::domain::{CustomerBinding, CustomerId, Scopes, TokenName, TokenRecord};
use credvault::proto::{self as pb, credential_secret::Secret};
use credvault::server::{App, StartError};
use credvault::store::PoolSettings;
use credvault::vault::{NewCustomerRequest, RequestContext, Vault};
use credvault::verify::VerifySettings;
use secrecy::{ExposeSecret, SecretString};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// A CustomerService client with a bearer token.
pub type Customers = pb::customer_service_client::CustomerServiceClient<
    tonic::service::interceptor::InterceptedService<Channel, Bearer>,
>;

/// The storage backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(Backend)` once per backend, as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name($crate::helpers::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name($crate::helpers::Backend::Postgres).await
            })*
        }
    };
}

/// The dashboard origin the test servers allow (CORS).
pub const DASHBOARD_ORIGIN: &str = "http://dashboard.test:3000";

pub struct TestApp {
    /// A token with every scope for every customer; `client` and `rest` send it.
    pub token: String,
    pub addr: SocketAddr,
    /// The REST gateway's base URL, e.g. `http://127.0.0.1:40123`.
    pub http: String,
    pub client: Client,
    pub vault: Vault,
    /// A customer created for this test.
    pub customer_id: String,
    pub backend: Backend,
    pub database_url: String,
    pub key: String,
    /// Scratch space (the SQLite file lives here).
    pub dir: TempDir,
    /// The token's record, until it is stored (a server started before its database waits).
    pending_token: std::sync::Mutex<Option<TokenRecord>>,
    /// Dropping the sender (test end or panic) also shuts the server down.
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), StartError>>>,
}

/// A stopped server's database, key and scratch space, to start again.
pub struct Stopped {
    pub backend: Backend,
    pub database_url: String,
    pub key: String,
    pub dir: TempDir,
}

impl Stopped {
    pub async fn restart(self) -> Result<TestApp, StartError> {
        TestApp::start(self.backend, self.database_url, self.dir, self.key).await
    }

    pub async fn restart_with_key(self, key: String) -> Result<TestApp, StartError> {
        TestApp::start(self.backend, self.database_url, self.dir, key).await
    }
}

pub fn config(database_url: &str, key: &str) -> Config {
    Config {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        dashboard_origin: Some(http::HeaderValue::from_static(DASHBOARD_ORIGIN)),
        database_url: DatabaseUrl::parse(database_url).unwrap(),
        key: KeySource::Inline(SecretString::from(key.to_owned())),
        dev: false,
        log_format: LogFormat::Text,
        tls: None,
        trusted_proxies: Default::default(),
        token_cache_ttl: Duration::from_secs(5),
        // Tests seal when they choose (Vault::chain_audit); shutdown seals the rest.
        audit_chain_interval: Duration::from_secs(3600),
        // Tests that wait for the purger set a recovery window of seconds.
        purge_interval: Duration::from_millis(200),
        rewrap_rate: None,
        pool: PoolSettings { connect_timeout: Duration::from_secs(2), ..PoolSettings::default() },
        verify: nowhere(),
        verification: credvault::vault::VerificationPolicy::default(),
        // Tests that verify on schedule turn it on (tests/api/reverify.rs); no test's call
        // leaves the machine.
        reverify: credvault::jobs::ReverifySettings { enabled: false, ..Default::default() },
    }
}

/// Verifier settings for a server whose tests do not verify: every provider at a closed local
/// port, so that a verification (the REST gateway's on every write) fails at once as
/// unreachable and no call leaves the machine.
pub fn nowhere() -> VerifySettings {
    let closed = "http://127.0.0.1:9";
    VerifySettings {
        vultr_api_url: format!("{closed}/vultr"),
        aws_sts_url: format!("{closed}/sts"),
        aws_region: "us-east-1".into(),
        gcp_token_url: format!("{closed}/google/token"),
        azure_login_url: format!("{closed}/azure-login"),
        azure_management_url: format!("{closed}/azure-arm"),
        timeout: Duration::from_secs(2),
        retries: 0,
    }
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("credvault.db")
}

pub fn new_key() -> String {
    MasterKey::generate().to_base64().expose_secret().to_owned()
}

/// A new, empty database for one test, and its scratch directory.
pub async fn fresh_database(backend: Backend) -> (String, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", db_path(dir.path()).display()),
        Backend::Postgres => crate::pg::fresh_database(&crate::pg::shared().admin_url()).await,
    };
    (url, dir)
}

impl TestApp {
    pub async fn spawn_on(backend: Backend) -> TestApp {
        let (url, dir) = fresh_database(backend).await;
        Self::start(backend, url, dir, new_key()).await.expect("the test server starts")
    }

    /// Starts a server on `database_url` with `key`; returns the start-up error if refused.
    pub async fn start(
        backend: Backend,
        database_url: String,
        dir: TempDir,
        key: String,
    ) -> Result<TestApp, StartError> {
        Self::start_with(config(&database_url, &key), backend, dir).await
    }

    /// Starts a server on `database_url` with `key` and the test configuration as changed by
    /// `change`.
    pub async fn start_configured(
        backend: Backend,
        database_url: String,
        dir: TempDir,
        change: impl FnOnce(Config) -> Config,
    ) -> Result<TestApp, StartError> {
        Self::start_with(change(config(&database_url, &new_key())), backend, dir).await
    }

    /// Starts a server whose verifiers talk to `verify` (the fake providers).
    pub async fn spawn_verifying(backend: Backend, verify: VerifySettings) -> TestApp {
        Self::spawn_configured(backend, |config| Config { verify, ..config }).await
    }

    /// Starts a server with the test configuration as changed by `change`.
    pub async fn spawn_configured(backend: Backend, change: impl FnOnce(Config) -> Config) -> TestApp {
        let (url, dir) = fresh_database(backend).await;
        let config = change(config(&url, &new_key()));
        Self::start_with(config, backend, dir).await.expect("the test server starts")
    }

    async fn start_with(config: Config, backend: Backend, dir: TempDir) -> Result<TestApp, StartError> {
        let database_url = config.database_url.expose().to_owned();
        let KeySource::Inline(key) = &config.key else { unreachable!("tests give keys inline") };
        let key = key.expose_secret().to_owned();
        // CREDVAULT_TEST_LOG=1 shows the servers' logs (stderr) when a test needs explaining.
        if std::env::var_os("CREDVAULT_TEST_LOG").is_some() {
            credvault::telemetry::init(LogFormat::Text);
        }
        let app = App::build(&config).await?;
        let addr = app.grpc_addr();
        let http = format!("http://{}", app.http_addr());
        let vault = app.vault().clone();
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        let name = format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let issued = credvault::auth::issue(
            TokenName::parse(&name, "name").unwrap(),
            Scopes::all(),
            CustomerBinding::All,
            None,
        )
        .unwrap();
        let token = issued.token.expose_secret().to_owned();
        let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        let client = credvault::client::client(channel, Bearer::new(&token).unwrap());
        let mut test_app = TestApp {
            token,
            pending_token: std::sync::Mutex::new(Some(issued.record)),
            addr,
            http,
            client,
            vault,
            customer_id: String::new(),
            backend,
            database_url,
            key,
            dir,
            shutdown: Some(tx),
            server: Some(server),
        };
        if test_app.vault.is_ready() {
            test_app.store_pending_token().await;
            test_app.customer_id = test_app.create_customer().await;
        }
        Ok(test_app)
    }

    /// A second instance (see [`TestApp::another_instance`]) with the test configuration as
    /// changed by `change`.
    pub async fn another_instance_configured(&self, change: impl FnOnce(Config) -> Config) -> TestApp {
        let config = change(config(&self.database_url, &self.key));
        let mut other = TestApp::start_with(config, self.backend, tempfile::tempdir().unwrap())
            .await
            .expect("the second instance starts");
        other.customer_id = self.customer_id.clone();
        other
    }

    /// A second credvault instance on the same database and key (PostgreSQL: many instances
    /// share one database), serving the same customer.
    pub async fn another_instance(&self) -> TestApp {
        let mut other = TestApp::start(
            self.backend,
            self.database_url.clone(),
            tempfile::tempdir().unwrap(),
            self.key.clone(),
        )
        .await
        .expect("the second instance starts");
        other.customer_id = self.customer_id.clone();
        other
    }

    /// Stops the server (graceful shutdown) and hands back what it ran on.
    pub async fn stop(mut self) -> Stopped {
        self.stop_serving().await.expect("the server stops cleanly");
        Stopped { backend: self.backend, database_url: self.database_url, key: self.key, dir: self.dir }
    }

    /// Signals shutdown and returns how the server ended.
    pub async fn stop_serving(&mut self) -> Result<(), StartError> {
        let _ = self.shutdown.take().unwrap().send(());
        self.wait_stopped().await
    }

    /// Waits for the server task to end (by shutdown or by a fatal start-up finding).
    pub async fn wait_stopped(&mut self) -> Result<(), StartError> {
        let server = self.server.take().unwrap();
        tokio::time::timeout(Duration::from_secs(20), server)
            .await
            .expect("the server stops in time")
            .unwrap()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap()
    }

    /// A CustomerService client sending `token`.
    pub async fn customers(&self, token: &str) -> Customers {
        let bearer = Bearer::new(token).unwrap();
        pb::customer_service_client::CustomerServiceClient::with_interceptor(self.channel().await, bearer)
    }

    /// A request to the REST gateway at `path`, as the dashboard sends it (X-Customer-ID set).
    pub fn rest(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.http))
            .header("X-Customer-ID", &self.customer_id)
            .bearer_auth(&self.token)
    }

    pub async fn create_customer(&self) -> String {
        let id = CustomerId::new_random();
        let request = NewCustomerRequest::parse(
            &format!("{id}@example.com"),
            "Test Co",
            Default::default(),
            Default::default(),
        )
        .unwrap();
        assert!(
            self.vault.directory().ensure_customer(&RequestContext::operator(), id, request).await.unwrap()
        );
        id.to_string()
    }

    /// Turns customer keys off, as in a vault from before them (new secrets are sealed under the
    /// master key), and waits until this server has followed.
    pub async fn without_customer_keys(&self) {
        self.db().await.execute("UPDATE key_hierarchy SET customer_keys_since = NULL").await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.vault.customer_keys_enabled() {
            assert!(std::time::Instant::now() < deadline, "the server did not follow the setting");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A direct connection to the database, for checks and tampering behind the server's back.
    pub async fn db(&self) -> TestDb {
        TestDb::connect(&self.database_url).await
    }

    pub async fn audit_actions(&self, credential_id: &str) -> Vec<String> {
        self.db().await.audit_actions(credential_id).await
    }

    pub async fn store(&self, request: pb::StoreRequest) -> Result<pb::Credential, Status> {
        let response = self.client.clone().store(request).await?.into_inner();
        Ok(response.credential.expect("Store returns the credential"))
    }

    pub async fn store_vultr(&self, name: &str, api_key: &str) -> pb::Credential {
        self.store(store_request(&self.customer_id, name, vultr(api_key))).await.unwrap()
    }

    pub async fn get_by_id(&self, id: &str) -> Result<pb::GetResponse, Status> {
        Ok(self.client.clone().get(get_by_id(id)).await?.into_inner())
    }

    pub async fn get_by_provider(
        &self,
        customer_id: &str,
        provider: pb::Provider,
    ) -> Result<pb::GetResponse, Status> {
        let request = pb::GetRequest {
            selector: Some(pb::get_request::Selector::ByProvider(pb::ProviderSelector {
                customer_id: customer_id.to_owned(),
                provider: provider as i32,
            })),
            version: 0,
        };
        Ok(self.client.clone().get(request).await?.into_inner())
    }

    pub async fn list(&self, request: pb::ListRequest) -> Result<pb::ListResponse, Status> {
        Ok(self.client.clone().list(request).await?.into_inner())
    }

    /// Summary of the app's own customer.
    pub async fn summary(&self) -> pb::SummaryResponse {
        let request = pb::SummaryRequest { customer_id: self.customer_id.clone(), ..Default::default() };
        self.client.clone().summary(request).await.unwrap().into_inner()
    }

    pub async fn delete(&self, id: &str) -> Result<pb::Credential, Status> {
        let response = self.client.clone().delete(pb::DeleteRequest { credential_id: id.to_owned() }).await?;
        Ok(response.into_inner().credential.unwrap())
    }
}

pub fn get_by_id(id: &str) -> pb::GetRequest {
    pb::GetRequest { selector: Some(pb::get_request::Selector::CredentialId(id.to_owned())), version: 0 }
}

pub fn store_request(customer_id: &str, name: &str, secret: Secret) -> pb::StoreRequest {
    pb::StoreRequest {
        customer_id: customer_id.to_owned(),
        credential_name: name.to_owned(),
        secret: Some(pb::CredentialSecret { secret: Some(secret) }),
        ..Default::default()
    }
}

pub fn vultr(api_key: &str) -> Secret {
    Secret::Vultr(pb::VultrSecret { api_key: api_key.to_owned() })
}

pub fn aws(access_key_id: &str, secret_access_key: &str) -> Secret {
    Secret::Aws(pb::AwsSecret {
        access_key_id: access_key_id.to_owned(),
        secret_access_key: secret_access_key.to_owned(),
        session_token: None,
    })
}

pub fn gcp(json: &str) -> Secret {
    Secret::Gcp(pb::GcpSecret { service_account_json: json.to_owned() })
}

pub fn azure(client_secret: &str) -> Secret {
    Secret::Azure(pb::AzureSecret {
        tenant_id: "00000000-0000-0000-0000-0000000000aa".into(),
        client_id: "00000000-0000-0000-0000-0000000000bb".into(),
        client_secret: client_secret.to_owned(),
        subscription_id: None,
    })
}

pub const SERVICE_ACCOUNT_JSON: &str = r#"{"type":"service_account","project_id":"demo-project","private_key_id":"k1","private_key":"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n","client_email":"collector@demo-project.iam.gserviceaccount.com","token_uri":"https://oauth2.googleapis.com/token"}"#;

/// Asserts the status code, that the message contains `fragment`, and for INVALID_ARGUMENT that
/// the standard BadRequest detail names `field`.
#[track_caller]
pub fn assert_status(result: Result<impl std::fmt::Debug, Status>, code: Code, fragment: &str) -> Status {
    let status = result.expect_err("the call must fail");
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    assert!(status.message().contains(fragment), "message {:?} lacks {fragment:?}", status.message());
    status
}

#[track_caller]
pub fn assert_invalid_field(result: Result<impl std::fmt::Debug, Status>, field: &str, fragment: &str) {
    let status = assert_status(result, Code::InvalidArgument, fragment);
    let bad_request = status.get_details_bad_request().expect("INVALID_ARGUMENT carries BadRequest details");
    assert_eq!(bad_request.field_violations.len(), 1);
    assert_eq!(bad_request.field_violations[0].field, field, "status: {status:?}");
}

impl TestApp {
    /// The overall health status the server reports.
    pub async fn health(&self) -> i32 {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel().await);
        let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
        health.check(request).await.unwrap().into_inner().status
    }

    async fn store_pending_token(&self) {
        let pending = self.pending_token.lock().unwrap().take();
        if let Some(record) = pending {
            self.vault.directory().record_token(&RequestContext::operator(), &record).await.unwrap();
        }
    }

    /// Polls until the server reports SERVING, or panics after `limit`; then the test token works.
    pub async fn wait_serving(&self, limit: Duration) {
        let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
        let deadline = tokio::time::Instant::now() + limit;
        while self.health().await != serving {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server did not become SERVING within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.store_pending_token().await;
    }

    /// A client that sends `token` (or none) instead of the test's all-powerful one.
    pub async fn client_with(&self, token: Option<&str>) -> Client {
        let bearer = token.map_or_else(Bearer::anonymous, |t| Bearer::new(t).unwrap());
        credvault::client::client(self.channel().await, bearer)
    }

    /// Creates a token as the operator would (`credvault token create`): (name, token text).
    pub async fn token(
        &self,
        scopes: &str,
        customer: &str,
        expires_in: Option<Duration>,
    ) -> (String, String) {
        let name = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let issued =
            credvault::admin::create_token(self.vault.directory(), &name, scopes, customer, expires_in)
                .await
                .unwrap();
        (name, issued.token.expose_secret().to_owned())
    }
}

/// `credvault ...` (the real binary) on `database_url` with `key` in CREDENTIAL_ENCRYPTION_KEY.
pub async fn credvault(database_url: &str, key: &str, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_credvault"));
    command
        .args(args)
        .env("CREDVAULT_DATABASE_URL", database_url)
        .env("CREDENTIAL_ENCRYPTION_KEY", key)
        .env_remove("CREDVAULT_KEY_FILE");
    output(command).await
}

/// Runs `command` to its end off the test's thread. That thread also drives the test's
/// in-process server: blocked in `Command::output`, it would stop a write transaction of the
/// server's own (a job's lease, a purge) between two statements, still holding SQLite's write
/// lock, and a child writing the same database would give up after its busy timeout.
pub async fn output(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

pub fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}
