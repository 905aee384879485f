//! TLS and mutual TLS on the gRPC listener, with certificates the test makes.

use std::path::{Path, PathBuf};

use credvault::config::{Config, TlsFiles};
use credvault::proto as pb;
use credvault::server::App;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::helpers::*;

struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
    /// A client certificate from a CA the server does not trust.
    stranger_cert: String,
    stranger_key: String,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    (params.signed_by(&key, issuer).unwrap().pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let ca = ca("credvault test CA");
    let (server_cert, server_key) = leaf(&ca, &["localhost", "127.0.0.1"]);
    let (client_cert, client_key) = leaf(&ca, &["collector"]);
    let (stranger_cert, stranger_key) = leaf(&self::ca("someone else's CA"), &["collector"]);
    Pki { ca: ca.pem(), server_cert, server_key, client_cert, client_key, stranger_cert, stranger_key }
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

/// A server with TLS (and mutual TLS when `mutual`); its address and the test's token.
async fn serve(pki: &Pki, mutual: bool) -> (std::net::SocketAddr, String, tempfile::TempDir) {
    let (url, dir) = fresh_database(Backend::Sqlite).await;
    let tls = TlsFiles {
        cert: write(dir.path(), "server.pem", &pki.server_cert),
        key: write(dir.path(), "server.key", &pki.server_key),
        client_ca: mutual.then(|| write(dir.path(), "ca.pem", &pki.ca)),
    };
    let config = Config { tls: Some(tls), ..config(&url, &new_key()) };
    let app = App::build(&config).await.expect("starts with TLS");
    let addr = app.grpc_addr();
    let issued =
        credvault::admin::create_token(app.vault().directory(), "tls-test", "*", "*", None).await.unwrap();
    let token = secrecy::ExposeSecret::expose_secret(&issued.token).to_owned();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    (addr, token, dir)
}

async fn connect(
    addr: std::net::SocketAddr,
    tls: Option<ClientTlsConfig>,
) -> Result<Channel, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://{addr}")).unwrap();
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).unwrap();
    }
    endpoint.connect().await
}

async fn list(channel: Channel, token: &str) -> Result<(), tonic::Status> {
    let mut client = credvault::client::client(channel, credvault::client::Bearer::new(token).unwrap());
    client
        .list(pb::ListRequest { customer_id: uuid::Uuid::new_v4().to_string(), ..Default::default() })
        .await
        .map(drop)
        .or_else(|s| if s.code() == tonic::Code::NotFound { Ok(()) } else { Err(s) })
}

fn trusting(pki: &Pki) -> ClientTlsConfig {
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca)).domain_name("localhost")
}

#[tokio::test]
async fn tls_serves_only_clients_that_speak_it() {
    let pki = pki();
    let (addr, token, _dir) = serve(&pki, false).await;
    let channel = connect(addr, Some(trusting(&pki))).await.expect("a TLS client connects");
    list(channel, &token).await.expect("calls work over TLS");
    let plaintext = match connect(addr, None).await {
        Ok(channel) => list(channel, &token).await.is_err(),
        Err(_) => true,
    };
    assert!(plaintext, "a plaintext client must not get through");
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_configured_ca() {
    let pki = pki();
    let (addr, token, _dir) = serve(&pki, true).await;
    let with = |cert: &str, key: &str| trusting(&pki).identity(Identity::from_pem(cert, key));

    let channel = connect(addr, Some(with(&pki.client_cert, &pki.client_key))).await.unwrap();
    list(channel, &token).await.expect("a client with a certificate from the CA gets through");

    for (case, tls) in [
        ("no client certificate", trusting(&pki)),
        ("a certificate from another CA", with(&pki.stranger_cert, &pki.stranger_key)),
    ] {
        let refused = match connect(addr, Some(tls)).await {
            Ok(channel) => list(channel, &token).await.is_err(),
            Err(_) => true,
        };
        assert!(refused, "{case}: must be refused");
    }
}

#[tokio::test]
async fn tls_files_that_are_missing_or_not_pem_stop_start_up() {
    let (url, dir) = fresh_database(Backend::Sqlite).await;
    let not_pem = write(dir.path(), "junk.pem", "not a certificate");
    for (cert, fragment) in [(dir.path().join("missing.pem"), "missing.pem"), (not_pem, "not PEM")] {
        let tls = TlsFiles { cert: cert.clone(), key: cert, client_ca: None };
        let config = Config { tls: Some(tls), ..config(&url, &new_key()) };
        let err = App::build(&config).await.err().expect("refused").to_string();
        assert!(err.contains(fragment), "{err}");
    }
}
