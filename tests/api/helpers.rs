//! `TestApp`: a real credvault server on an ephemeral port, with its own SQLite file and key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use credvault::config::{Config, DatabaseUrl, KeySource, LogFormat};
use credvault::crypto::MasterKey;
use credvault::domain::CustomerId;
use credvault::proto::credential_service_client::CredentialServiceClient;
use credvault::proto::{self as pb, credential_secret::Secret};
use credvault::server::{App, StartError};
use credvault::store::NewCustomer;
use credvault::vault::Vault;
use secrecy::{ExposeSecret, SecretString};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: CredentialServiceClient<Channel>,
    pub vault: Vault,
    /// A customer created for this test.
    pub customer_id: String,
    pub dir: TempDir,
    pub key: String,
    /// Dropping the sender (test end or panic) also shuts the server down.
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), StartError>>>,
}

pub fn config(dir: &Path, key: &str) -> Config {
    Config {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        database_url: DatabaseUrl::parse(&format!("sqlite://{}", db_path(dir).display())).unwrap(),
        key: KeySource::Inline(SecretString::from(key.to_owned())),
        dev: false,
        log_format: LogFormat::Text,
    }
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("credvault.db")
}

pub fn new_key() -> String {
    MasterKey::generate().to_base64().expose_secret().to_owned()
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_in(tempfile::tempdir().unwrap(), new_key())
            .await
            .expect("the test server starts")
    }

    /// Starts a server on `dir`'s database with `key`; returns the start-up error if refused.
    pub async fn spawn_in(dir: TempDir, key: String) -> Result<TestApp, StartError> {
        let app = App::build(&config(dir.path(), &key)).await?;
        let addr = app.grpc_addr();
        let vault = app.vault().clone();
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        let client = CredentialServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let mut test_app = TestApp {
            addr,
            client,
            vault,
            customer_id: String::new(),
            dir,
            key,
            shutdown: Some(tx),
            server: Some(server),
        };
        test_app.customer_id = test_app.create_customer().await;
        Ok(test_app)
    }

    /// Stops the server (graceful shutdown) and hands back its directory and key.
    pub async fn stop(mut self) -> (TempDir, String) {
        self.shutdown.take().unwrap().send(()).unwrap();
        let server = self.server.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("graceful shutdown finishes")
            .unwrap()
            .unwrap();
        (self.dir, self.key)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn create_customer(&self) -> String {
        let id = CustomerId::new_random();
        self.vault
            .store()
            .ensure_customer(&NewCustomer {
                id,
                email: format!("{id}@example.com"),
                company_name: "Test Co".into(),
            })
            .await
            .unwrap();
        id.to_string()
    }

    /// A direct connection to the database file, for checks and tampering behind the server's back.
    pub async fn db(&self) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(db_path(self.dir.path()))
            .busy_timeout(Duration::from_secs(10));
        SqlitePool::connect_with(options).await.unwrap()
    }

    pub async fn audit_actions(&self, credential_id: &str) -> Vec<String> {
        sqlx::query_scalar("SELECT action FROM credential_audit_log WHERE credential_id = ? ORDER BY created_at, rowid")
            .bind(credential_id)
            .fetch_all(&self.db().await)
            .await
            .unwrap()
    }

    pub async fn store(&self, request: pb::StoreRequest) -> Result<pb::Credential, Status> {
        let response = self.client.clone().store(request).await?.into_inner();
        Ok(response.credential.expect("Store returns the credential"))
    }

    pub async fn store_vultr(&self, name: &str, api_key: &str) -> pb::Credential {
        self.store(store_request(&self.customer_id, name, vultr(api_key)))
            .await
            .unwrap()
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
            selector: Some(pb::get_request::Selector::ByProvider(
                pb::ProviderSelector {
                    customer_id: customer_id.to_owned(),
                    provider: provider as i32,
                },
            )),
        };
        Ok(self.client.clone().get(request).await?.into_inner())
    }

    pub async fn list(&self, request: pb::ListRequest) -> Result<pb::ListResponse, Status> {
        Ok(self.client.clone().list(request).await?.into_inner())
    }

    pub async fn delete(&self, id: &str) -> Result<pb::Credential, Status> {
        let response = self
            .client
            .clone()
            .delete(pb::DeleteRequest {
                credential_id: id.to_owned(),
            })
            .await?;
        Ok(response.into_inner().credential.unwrap())
    }
}

pub fn get_by_id(id: &str) -> pb::GetRequest {
    pb::GetRequest {
        selector: Some(pb::get_request::Selector::CredentialId(id.to_owned())),
    }
}

pub fn store_request(customer_id: &str, name: &str, secret: Secret) -> pb::StoreRequest {
    pb::StoreRequest {
        customer_id: customer_id.to_owned(),
        credential_name: name.to_owned(),
        secret: Some(pb::CredentialSecret {
            secret: Some(secret),
        }),
        ..Default::default()
    }
}

pub fn vultr(api_key: &str) -> Secret {
    Secret::Vultr(pb::VultrSecret {
        api_key: api_key.to_owned(),
    })
}

pub fn aws(access_key_id: &str, secret_access_key: &str) -> Secret {
    Secret::Aws(pb::AwsSecret {
        access_key_id: access_key_id.to_owned(),
        secret_access_key: secret_access_key.to_owned(),
        session_token: None,
    })
}

pub fn gcp(json: &str) -> Secret {
    Secret::Gcp(pb::GcpSecret {
        service_account_json: json.to_owned(),
    })
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
pub fn assert_status(
    result: Result<impl std::fmt::Debug, Status>,
    code: Code,
    fragment: &str,
) -> Status {
    let status = result.expect_err("the call must fail");
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    assert!(
        status.message().contains(fragment),
        "message {:?} lacks {fragment:?}",
        status.message()
    );
    status
}

#[track_caller]
pub fn assert_invalid_field(
    result: Result<impl std::fmt::Debug, Status>,
    field: &str,
    fragment: &str,
) {
    let status = assert_status(result, Code::InvalidArgument, fragment);
    let bad_request = status
        .get_details_bad_request()
        .expect("INVALID_ARGUMENT carries BadRequest details");
    assert_eq!(bad_request.field_violations.len(), 1);
    assert_eq!(
        bad_request.field_violations[0].field, field,
        "status: {status:?}"
    );
}
