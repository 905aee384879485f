//! The dashboard page in a real browser: `tests/browser/dashboard.mjs` drives Debian's Chromium
//! with playwright-core (npm) against a real server on SQLite whose verifiers talk to the local
//! fake providers. The README's test command installs Chromium and the npm package; without
//! them this test fails, it never skips. Screenshots go to `target/dashboard-screenshots/`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use credvault::vault::RequestContext;

use crate::fakes::{Fakes, VULTR_KEY};
use crate::helpers::*;

#[tokio::test]
async fn the_dashboard_does_everything_a_customer_needs_in_a_real_browser() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_verifying(Backend::Sqlite, fakes.settings(Duration::from_secs(5), 0)).await;
    let customer = app
        .vault
        .directory()
        .customer(
            &RequestContext::operator(),
            credvault::domain::CustomerId::parse(&app.customer_id, "id").unwrap(),
        )
        .await
        .unwrap();
    let label = format!("{} ({})", customer.company_name, customer.email.as_str());

    // A credential the collector fetched three times: the page charts the uses and names it.
    let fetched = app.store_vultr("Fetched by the collector", "collector-key").await;
    let collector =
        credvault::admin::create_token(app.vault.directory(), "collector", "secrets:read", "*", None)
            .await
            .unwrap();
    let mut client = app.client_with(Some(secrecy::ExposeSecret::expose_secret(&collector.token))).await;
    for _ in 0..3 {
        client.get(get_by_id(&fetched.id)).await.unwrap();
    }

    // More Azure credentials than a summary lists (100 per provider): "Azure 000" is the oldest,
    // stored first, and left for the page's "Show more".
    for i in 0..=100 {
        app.store(store_request(&app.customer_id, &format!("Azure {i:03}"), azure("azure-secret")))
            .await
            .unwrap();
    }

    // What a platform team gives one customer's dashboard: bound to that customer.
    let (_, bound) = app
        .token("credentials:read,credentials:write,credentials:verify,audit:read", &app.customer_id, None)
        .await;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/browser/dashboard.mjs");
    let screenshots = root.join("target/dashboard-screenshots");
    let envs = [
        ("CREDVAULT_URL", app.http.clone()),
        ("CREDVAULT_TOKEN", app.token.clone()),
        ("CUSTOMER_LABEL", label),
        ("VULTR_KEY", VULTR_KEY.to_owned()),
        ("GCP_KEY_JSON", fakes.gcp_key_json.clone()),
        ("FETCHED", fetched.credential_name.clone()),
        ("SCREENSHOTS", screenshots.display().to_string()),
        ("BOUND_TOKEN", bound),
    ];
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node").arg(&script).envs(envs).output().unwrap_or_else(|e| {
            panic!("cannot run node ({e}): the README's test command installs Node.js, Chromium and playwright-core")
        })
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the browser test failed (screenshots in {}):\n{}\n{}",
        screenshots.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
