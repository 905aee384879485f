//! Scheduled re-verification against the local fake providers: identity and findings recorded
//! where every reader sees them, the failure streak and its reset, the audit and metrics it
//! leaves, a provider's 429 honoured, and several instances on one PostgreSQL database verifying
//! each credential once per interval.

use std::time::{Duration, Instant};

use credvault::config::Config;
use credvault::jobs::ReverifySettings;
use credvault::proto as pb;
use credvault::vault::VerificationPolicy;

use crate::fakes::*;
use crate::helpers::*;

/// Every credential verified again each `interval`; failing after three invalid answers.
fn scheduled(fakes: &Fakes, interval: Duration) -> impl FnOnce(Config) -> Config {
    let verify = fakes.settings(Duration::from_secs(2), 0);
    move |config| Config {
        verify,
        verification: VerificationPolicy { interval, failing_after: 3, ..VerificationPolicy::default() },
        reverify: ReverifySettings { enabled: true, tick: Duration::from_millis(100), ..Default::default() },
        ..config
    }
}

async fn credential(app: &TestApp, id: &str) -> pb::Credential {
    let request = pb::ListRequest {
        customer_id: app.customer_id.clone(),
        include_inactive: true,
        ..Default::default()
    };
    let listed = app.list(request).await.unwrap().credentials;
    listed.into_iter().find(|c| c.id == id).expect("listed")
}

/// Polls the credential until `done` holds (at most 20 s).
async fn wait_for(
    app: &TestApp,
    id: &str,
    what: &str,
    done: impl Fn(&pb::Credential) -> bool,
) -> pb::Credential {
    let started = Instant::now();
    loop {
        let found = credential(app, id).await;
        if done(&found) {
            return found;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "waited 20 s for {what}: {found:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn state(c: &pb::Credential) -> pb::VerificationState {
    pb::VerificationState::try_from(c.verification_state).unwrap()
}

async fn credentials_are_verified_on_schedule_and_marked_failing_after_a_streak(backend: Backend) {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_configured(backend, scheduled(&fakes, Duration::from_secs(1))).await;
    let good = app.store_vultr("Scheduled", VULTR_KEY).await;
    assert_eq!(state(&good), pb::VerificationState::Unverified);
    let root = app
        .store(store_request(&app.customer_id, "Root keys", aws(AWS_ROOT_KEY_ID, AWS_SECRET)))
        .await
        .unwrap();

    // Verified soon after being stored, with identity and findings for every reader.
    let good = wait_for(&app, &good.id, "the first verification", |c| c.is_verified).await;
    assert_eq!(state(&good), pb::VerificationState::Verified);
    assert_eq!(good.identity["account_email"], "ops@acme.test");
    assert_eq!(good.findings.iter().map(|f| f.code.as_str()).collect::<Vec<_>>(), ["vultr_manages_users"]);
    let root = wait_for(&app, &root.id, "the root key's verification", |c| c.is_verified).await;
    assert!(root.identity["arn"].ends_with(":root"), "{:?}", root.identity);
    assert!(root.findings.iter().any(|f| f.code == "aws_root_user_key"), "{:?}", root.findings);
    let got = app.get_by_id(&root.id).await.unwrap().credential.unwrap();
    assert_eq!(got.identity, root.identity, "Get's metadata carries the identity");
    let listed: serde_json::Value =
        app.rest(reqwest::Method::GET, "/api/v1/credentials/aws").send().await.unwrap().json().await.unwrap();
    let rest = listed.as_array().unwrap().iter().find(|c| c["id"] == root.id.as_str()).expect("listed");
    assert_eq!(rest["verification_state"], "verified", "{rest}");
    assert_eq!(rest["identity"]["arn"], root.identity["arn"].as_str());
    assert!(rest["findings"].as_array().unwrap().iter().any(|f| f["code"] == "aws_root_user_key"), "{rest}");

    // The provider turns the key down: three invalid answers in a row make it failing, since
    // the first; the identity last reported stays.
    fakes.set_mode(Mode::Status(401));
    let failing = wait_for(&app, &good.id, "the streak", |c| c.consecutive_failures >= 3).await;
    assert_eq!(state(&failing), pb::VerificationState::Failing);
    assert!(failing.failing_since.is_some() && !failing.is_verified);
    assert_eq!(failing.identity["account_email"], "ops@acme.test");
    let summary = app.summary().await;
    let vultr = summary.providers.iter().find(|p| p.provider == pb::Provider::Vultr as i32).unwrap();
    assert_eq!((vultr.failing, vultr.risky), (1, 1), "the findings last reported stay: {vultr:?}");
    assert_eq!(failing.findings.len(), 1, "{:?}", failing.findings);
    let rest: serde_json::Value = app
        .rest(reqwest::Method::GET, "/api/v1/credentials/status/summary")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["providers"]["vultr"]["failing"], 1, "{rest}");
    assert_eq!(rest["providers"]["aws"]["risky"], 1, "{rest}");

    // A valid answer ends the streak.
    fakes.set_mode(Mode::Normal);
    let recovered = wait_for(&app, &good.id, "the recovery", |c| c.is_verified).await;
    assert_eq!((recovered.consecutive_failures, recovered.failing_since), (0, None));
    assert_eq!(state(&recovered), pb::VerificationState::Verified);

    let actions = app.audit_actions(&good.id).await;
    assert_eq!(actions.iter().filter(|a| *a == "verification_failed").count(), 1, "{actions:?}");
    assert!(actions.iter().filter(|a| *a == "failed").count() >= 3, "{actions:?}");
    let metrics = reqwest::get(format!("{}/metrics", app.http)).await.unwrap().text().await.unwrap();
    for line in [
        "credvault_verifications_total{provider=\"vultr\",outcome=\"valid\"}",
        "credvault_verifications_total{provider=\"vultr\",outcome=\"invalid\"}",
        "credvault_credentials_by_verification_state{state=\"failing\"}",
        "credvault_credentials_by_verification_state{state=\"verified\"}",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

/// A provider outage is counted and changes nothing; a 429's Retry-After pauses the provider.
async fn an_outage_changes_nothing_and_a_429_pauses_the_provider(backend: Backend) {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_configured(backend, scheduled(&fakes, Duration::from_secs(1))).await;
    let stored = app.store_vultr("Through an outage", VULTR_KEY).await;
    let verified = wait_for(&app, &stored.id, "the first verification", |c| c.is_verified).await;

    fakes.set_mode(Mode::Status(503));
    let before = fakes.requests();
    while fakes.requests() < before + 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = credential(&app, &stored.id).await;
    assert_eq!(state(&during), pb::VerificationState::Verified, "an outage concludes nothing");
    assert_eq!(during.last_verified_at, verified.last_verified_at);

    // Asked to wait 3 s (longer than a verification may take), the scheduler leaves the
    // provider alone that long.
    fakes.set_mode(Mode::RateLimited { secs: 3, times: 1 });
    let limited = fakes.requests();
    while fakes.requests() == limited {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    while fakes.requests() == limited + 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(asked.elapsed() < Duration::from_secs(20), "verification resumed after the pause");
    }
    assert!(asked.elapsed() >= Duration::from_millis(2900), "resumed after {:?}", asked.elapsed());
    wait_for(&app, &stored.id, "a verification after the pause", |c| {
        c.last_verified_at.as_ref().map(|t| t.seconds) > verified.last_verified_at.as_ref().map(|t| t.seconds)
    })
    .await;
}

/// A suspended customer's secrets are not sent to the provider by the schedule (as Get does
/// not hand them out); reactivated, they are verified again.
async fn a_suspended_customers_credentials_are_not_verified(backend: Backend) {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_configured(backend, scheduled(&fakes, Duration::from_secs(1))).await;
    let stored = app.store_vultr("Suspended", VULTR_KEY).await;
    let verified = wait_for(&app, &stored.id, "the first verification", |c| c.is_verified).await;
    let mut admin = app.customers(&app.token).await;
    let status = |status: pb::CustomerStatus| pb::SetCustomerStatusRequest {
        customer_id: app.customer_id.clone(),
        status: status.into(),
    };
    admin.set_customer_status(status(pb::CustomerStatus::Suspended)).await.unwrap();
    // A verification already under way when the status changed may still reach the provider.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let suspended = fakes.requests();
    // Three intervals: the credential would have been verified about three times.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fakes.requests(), suspended, "no provider call for a suspended customer's credential");
    let during = credential(&app, &stored.id).await;
    assert_eq!(during.last_verified_at, verified.last_verified_at);
    assert_eq!(state(&during), pb::VerificationState::Verified, "skipping concludes nothing");

    admin.set_customer_status(status(pb::CustomerStatus::Active)).await.unwrap();
    wait_for(&app, &stored.id, "a verification after reactivation", |c| {
        c.last_verified_at.as_ref().map(|t| t.seconds) > verified.last_verified_at.as_ref().map(|t| t.seconds)
    })
    .await;
    assert!(fakes.requests() > suspended);
}

backend_tests!(
    credentials_are_verified_on_schedule_and_marked_failing_after_a_streak,
    an_outage_changes_nothing_and_a_429_pauses_the_provider,
    a_suspended_customers_credentials_are_not_verified,
);

/// Two instances on one PostgreSQL database: each credential is verified about once per
/// interval, not once per instance.
#[tokio::test]
async fn two_instances_verify_each_credential_once_per_interval() {
    let fakes = Fakes::start().await;
    let interval = Duration::from_secs(2);
    let first = TestApp::spawn_configured(Backend::Postgres, scheduled(&fakes, interval)).await;
    let second = first.another_instance_configured(scheduled(&fakes, interval)).await;
    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push(first.store_vultr(&format!("Shared {n}"), VULTR_KEY).await.id);
    }
    let window = Duration::from_secs(7);
    tokio::time::sleep(window).await;
    let verifications = fakes.requests();
    // Once per interval (0.9 to 1.1 of it) from the store on: at most 1 + 7 / 1.8 = 4 each;
    // each instance verifying every credential would make about twice as many.
    assert!(verifications >= ids.len() * 2, "verified on schedule: {verifications}");
    assert!(verifications <= ids.len() * 5, "each credential once per interval: {verifications}");
    for id in &ids {
        let verified = first.audit_actions(id).await.iter().filter(|a| *a == "verified").count();
        assert!((2..=5).contains(&verified), "credential {id} verified {verified} times in {window:?}");
    }
    drop(second);
}
