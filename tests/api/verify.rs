//! Verify against local fake providers that check requests the way the real ones do.

use std::time::{Duration, Instant};

use credvault::proto::{self as pb, credential_secret::Secret};
use tonic::Code;

use crate::fakes::*;
use crate::helpers::*;

fn aws_secret(key_id: &str, secret: &str, token: Option<&str>) -> Secret {
    Secret::Aws(pb::AwsSecret {
        access_key_id: key_id.into(),
        secret_access_key: secret.into(),
        session_token: token.map(str::to_owned),
    })
}

fn azure_secret(client_secret: &str, subscription: Option<&str>) -> Secret {
    Secret::Azure(pb::AzureSecret {
        tenant_id: AZURE_TENANT.into(),
        client_id: AZURE_CLIENT.into(),
        client_secret: client_secret.into(),
        subscription_id: subscription.map(str::to_owned),
    })
}

/// A good and a wrong secret for each provider, with the identity field a valid answer carries.
fn cases(fakes: &Fakes) -> Vec<(&'static str, Secret, Secret, &'static str, &'static str)> {
    let other_key = {
        // A well-formed key the fake Google does not know: its signature cannot verify.
        let mut json: serde_json::Value = serde_json::from_str(SERVICE_ACCOUNT_JSON).unwrap();
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        use base64::Engine as _;
        json["private_key"] = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        )
        .into();
        json["client_email"] = GCP_EMAIL.into();
        json.to_string()
    };
    vec![
        ("vultr", vultr(VULTR_KEY), vultr("VULTR-WRONG-KEY"), "account_email", "HTTP 401"),
        (
            "aws",
            aws_secret(AWS_KEY_ID, AWS_SECRET, None),
            aws_secret(AWS_KEY_ID, "wrong/secret", None),
            "arn",
            "SignatureDoesNotMatch",
        ),
        ("gcp", gcp(&fakes.gcp_key_json), gcp(&other_key), "client_email", "Invalid JWT Signature"),
        (
            "azure",
            azure_secret(AZURE_SECRET, None),
            azure_secret("wrong-secret", None),
            "client_id",
            "AADSTS7000215",
        ),
    ]
}

async fn verify_id(app: &TestApp, id: &str) -> Result<pb::VerifyResponse, tonic::Status> {
    let request = pb::VerifyRequest { target: Some(pb::verify_request::Target::CredentialId(id.to_owned())) };
    Ok(app.client.clone().verify(request).await?.into_inner())
}

async fn verify_inline(app: &TestApp, secret: Secret) -> Result<pb::VerifyResponse, tonic::Status> {
    let request = pb::VerifyRequest {
        target: Some(pb::verify_request::Target::Secret(pb::CredentialSecret { secret: Some(secret) })),
    };
    Ok(app.client.clone().verify(request).await?.into_inner())
}

async fn spawn(backend: Backend, fakes: &Fakes, timeout: Duration, retries: u32) -> TestApp {
    let mut app = TestApp::spawn_verifying(backend, fakes.settings(timeout, retries)).await;
    app.customer_id = app.create_customer().await;
    app
}

async fn stored_credentials_are_verified_and_their_state_follows_the_answer(backend: Backend) {
    let fakes = Fakes::start().await;
    let app = spawn(backend, &fakes, Duration::from_secs(5), 0).await;
    for (provider, good, wrong, identity_field, wrong_reason) in cases(&fakes) {
        let stored =
            app.store(store_request(&app.customer_id, &format!("{provider} good"), good)).await.unwrap();
        let answer = verify_id(&app, &stored.id).await.unwrap();
        assert_eq!(answer.outcome, pb::VerifyOutcome::Valid as i32, "{provider}: {}", answer.reason);
        assert!(
            answer.identity.get(identity_field).is_some_and(|v| !v.is_empty()),
            "{provider}: {:?}",
            answer.identity
        );
        let credential = answer.credential.unwrap();
        assert!(credential.is_verified && credential.last_verified_at.is_some(), "{provider}");
        assert_eq!(app.audit_actions(&stored.id).await, vec!["created", "verified"], "{provider}");

        let bad =
            app.store(store_request(&app.customer_id, &format!("{provider} bad"), wrong)).await.unwrap();
        let answer = verify_id(&app, &bad.id).await.unwrap();
        assert_eq!(answer.outcome, pb::VerifyOutcome::Invalid as i32, "{provider}: {}", answer.reason);
        assert!(answer.reason.contains(wrong_reason), "{provider}: {}", answer.reason);
        let credential = answer.credential.unwrap();
        assert!(!credential.is_verified && credential.last_verified_at.is_some(), "{provider}");
        assert_eq!(app.audit_actions(&bad.id).await, vec!["created", "failed"], "{provider}");
    }
    // The failed rows carry the reason, never a secret.
    let db = app.db().await;
    for secret in [VULTR_KEY, AWS_SECRET, AZURE_SECRET, "wrong-secret", "wrong/secret", "VULTR-WRONG-KEY"] {
        assert!(!db.any_column_contains(secret).await, "{secret} reached the database");
    }
}

async fn an_outage_is_unreachable_and_leaves_the_stored_state_alone(backend: Backend) {
    let fakes = Fakes::start().await;
    let app = spawn(backend, &fakes, Duration::from_secs(5), 0).await;
    let stored = app.store(store_request(&app.customer_id, "prod", vultr(VULTR_KEY))).await.unwrap();
    let verified = verify_id(&app, &stored.id).await.unwrap().credential.unwrap();

    fakes.set_mode(Mode::Status(503));
    let answer = verify_id(&app, &stored.id).await.unwrap();
    assert_eq!(answer.outcome, pb::VerifyOutcome::Unreachable as i32, "{}", answer.reason);
    let after = answer.credential.unwrap();
    assert!(after.is_verified, "an outage must not mark a credential invalid");
    assert_eq!(after.last_verified_at, verified.last_verified_at);
    assert_eq!(
        app.audit_actions(&stored.id).await,
        vec!["created", "verified"],
        "no audit row without an answer"
    );
}

#[tokio::test]
async fn inline_secrets_are_checked_without_being_stored() {
    let fakes = Fakes::start().await;
    let app = spawn(Backend::Sqlite, &fakes, Duration::from_secs(5), 0).await;
    for (provider, good, wrong, _, _) in cases(&fakes) {
        let answer = verify_inline(&app, good).await.unwrap();
        assert_eq!(answer.outcome, pb::VerifyOutcome::Valid as i32, "{provider}: {}", answer.reason);
        assert!(answer.credential.is_none());
        let answer = verify_inline(&app, wrong).await.unwrap();
        assert_eq!(answer.outcome, pb::VerifyOutcome::Invalid as i32, "{provider}: {}", answer.reason);
    }
    let db = app.db().await;
    assert_eq!(db.count("SELECT count(*) FROM cloud_credentials").await, 0);
    assert_eq!(db.audit_rows().await, 0);
}

#[tokio::test]
async fn every_provider_reports_outages_hangs_and_garbage_as_unreachable() {
    let fakes = Fakes::start().await;
    let app = spawn(Backend::Sqlite, &fakes, Duration::from_millis(1500), 0).await;
    for mode in [Mode::Status(500), Mode::Status(503), Mode::Hang, Mode::Malformed] {
        fakes.set_mode(mode);
        for (provider, good, _, _, _) in cases(&fakes) {
            let started = Instant::now();
            let answer = verify_inline(&app, good).await.unwrap();
            assert_eq!(
                answer.outcome,
                pb::VerifyOutcome::Unreachable as i32,
                "{provider} {mode:?}: {}",
                answer.reason
            );
            assert!(
                answer.reason.contains("nothing was concluded"),
                "{provider} {mode:?}: {}",
                answer.reason
            );
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{provider} {mode:?} took {:?}",
                started.elapsed()
            );
        }
    }
}

#[tokio::test]
async fn every_provider_treats_401_and_403_as_a_definite_rejection() {
    let fakes = Fakes::start().await;
    let app = spawn(Backend::Sqlite, &fakes, Duration::from_secs(5), 2).await;
    for status in [401, 403] {
        fakes.set_mode(Mode::Status(status));
        for (provider, good, _, _, _) in cases(&fakes) {
            let before = fakes.requests();
            let answer = verify_inline(&app, good).await.unwrap();
            assert_eq!(
                answer.outcome,
                pb::VerifyOutcome::Invalid as i32,
                "{provider} {status}: {}",
                answer.reason
            );
            assert_eq!(fakes.requests() - before, 1, "{provider} {status}: a rejection is not retried");
        }
    }
}

#[tokio::test]
async fn transient_failures_are_retried_a_bounded_number_of_times() {
    let fakes = Fakes::start().await;
    let app = spawn(Backend::Sqlite, &fakes, Duration::from_secs(10), 2).await;
    fakes.set_mode(Mode::Status(502));
    let before = fakes.requests();
    let answer = verify_inline(&app, vultr(VULTR_KEY)).await.unwrap();
    assert_eq!(answer.outcome, pb::VerifyOutcome::Unreachable as i32);
    assert_eq!(fakes.requests() - before, 3, "one attempt and two retries");
    assert!(answer.reason.contains("after 3 attempts"), "{}", answer.reason);

    // Without retries, one attempt is not counted as "attempts".
    let once = spawn(Backend::Sqlite, &fakes, Duration::from_secs(10), 0).await;
    let answer = verify_inline(&once, vultr(VULTR_KEY)).await.unwrap();
    assert_eq!(answer.outcome, pb::VerifyOutcome::Unreachable as i32);
    assert!(!answer.reason.contains("attempt"), "{}", answer.reason);
    assert!(answer.reason.contains("answered HTTP 502"), "{}", answer.reason);

    // A rejection is an answer: never retried.
    fakes.set_mode(Mode::Normal);
    let before = fakes.requests();
    let answer = verify_inline(&app, vultr("VULTR-WRONG")).await.unwrap();
    assert_eq!(answer.outcome, pb::VerifyOutcome::Invalid as i32);
    assert_eq!(fakes.requests() - before, 1);
}

#[tokio::test]
async fn a_429_is_retried_after_the_wait_it_asks_for_and_never_past_the_time_limit() {
    let fakes = Fakes::start().await;
    let app = spawn(Backend::Sqlite, &fakes, Duration::from_secs(5), 2).await;
    fakes.set_mode(Mode::RateLimited { secs: 1, times: 1 });
    let (before, started) = (fakes.requests(), Instant::now());
    let answer = verify_inline(&app, vultr(VULTR_KEY)).await.unwrap();
    assert_eq!(answer.outcome, pb::VerifyOutcome::Valid as i32, "{}", answer.reason);
    assert!(started.elapsed() >= Duration::from_secs(1), "retried before the second it asked for");
    assert_eq!(fakes.requests() - before, 2);

    // Asked to wait longer than a verification may take: answered at once, not retried.
    fakes.set_mode(Mode::RateLimited { secs: 30, times: 5 });
    let (before, started) = (fakes.requests(), Instant::now());
    let answer = verify_inline(&app, vultr(VULTR_KEY)).await.unwrap();
    assert_eq!(answer.outcome, pb::VerifyOutcome::Unreachable as i32, "{}", answer.reason);
    assert!(answer.reason.contains("HTTP 429, retry after 30 s"), "{}", answer.reason);
    assert!(answer.reason.contains("nothing was concluded"), "{}", answer.reason);
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(fakes.requests() - before, 1);
}

#[tokio::test]
async fn a_hang_is_cut_off_at_the_time_limit() {
    let fakes = Fakes::start().await;
    let app = spawn(Backend::Sqlite, &fakes, Duration::from_millis(700), 5).await;
    fakes.set_mode(Mode::Hang);
    let started = Instant::now();
    let answer = verify_inline(&app, aws_secret(AWS_KEY_ID, AWS_SECRET, None)).await.unwrap();
    assert_eq!(answer.outcome, pb::VerifyOutcome::Unreachable as i32);
    assert!(answer.reason.contains("did not answer within 0.7 s"), "{}", answer.reason);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn aws_reports_identity_flags_root_keys_and_signs_session_tokens() {
    let fakes = Fakes::start().await;
    let app = spawn(Backend::Sqlite, &fakes, Duration::from_secs(5), 0).await;
    let user = verify_inline(&app, aws_secret(AWS_KEY_ID, AWS_SECRET, None)).await.unwrap();
    assert_eq!(user.identity["account_id"], "123456789012");
    assert_eq!(user.identity["arn"], "arn:aws:iam::123456789012:user/collector");
    assert!(user.warnings.is_empty(), "{:?}", user.warnings);

    let root = verify_inline(&app, aws_secret(AWS_ROOT_KEY_ID, AWS_SECRET, None)).await.unwrap();
    assert_eq!(root.outcome, pb::VerifyOutcome::Valid as i32);
    assert!(root.warnings.iter().any(|w| w.contains("root user")), "{:?}", root.warnings);

    let temp =
        verify_inline(&app, aws_secret(AWS_TEMP_KEY_ID, AWS_SECRET, Some(AWS_SESSION_TOKEN))).await.unwrap();
    assert_eq!(temp.outcome, pb::VerifyOutcome::Valid as i32, "{}", temp.reason);
    let wrong_token =
        verify_inline(&app, aws_secret(AWS_TEMP_KEY_ID, AWS_SECRET, Some("stale"))).await.unwrap();
    assert_eq!(wrong_token.outcome, pb::VerifyOutcome::Invalid as i32);
    let unknown = verify_inline(&app, aws_secret("AKIAUNKNOWN000000000", AWS_SECRET, None)).await.unwrap();
    assert!(unknown.reason.contains("InvalidClientTokenId"), "{}", unknown.reason);
}

#[tokio::test]
async fn gcp_and_azure_report_identity_and_broken_keys() {
    let fakes = Fakes::start().await;
    let app = spawn(Backend::Sqlite, &fakes, Duration::from_secs(5), 0).await;
    let gcp_ok = verify_inline(&app, gcp(&fakes.gcp_key_json)).await.unwrap();
    assert_eq!(gcp_ok.identity["client_email"], GCP_EMAIL);
    assert_eq!(gcp_ok.identity["project_id"], "fake-project");
    // SERVICE_ACCOUNT_JSON passes Store's checks but its private_key is not a usable RSA key.
    let broken = verify_inline(&app, gcp(SERVICE_ACCOUNT_JSON)).await.unwrap();
    assert_eq!(broken.outcome, pb::VerifyOutcome::Invalid as i32);
    assert!(broken.reason.contains("not a PEM-encoded RSA key"), "{}", broken.reason);

    let with_sub = verify_inline(&app, azure_secret(AZURE_SECRET, Some(AZURE_SUBSCRIPTION))).await.unwrap();
    assert_eq!(with_sub.outcome, pb::VerifyOutcome::Valid as i32, "{}", with_sub.reason);
    assert_eq!(with_sub.identity["subscription_name"], "Production");
    assert_eq!(with_sub.identity["tenant_id"], AZURE_TENANT);
    let other_sub =
        verify_inline(&app, azure_secret(AZURE_SECRET, Some("12121212-0000-0000-0000-000000000000")))
            .await
            .unwrap();
    assert_eq!(other_sub.outcome, pb::VerifyOutcome::Invalid as i32);
    assert!(other_sub.reason.contains("cannot read subscription"), "{}", other_sub.reason);
    let bad_tenant = Secret::Azure(pb::AzureSecret {
        tenant_id: "../../evil?x=".into(),
        client_id: AZURE_CLIENT.into(),
        client_secret: AZURE_SECRET.into(),
        subscription_id: None,
    });
    let answer = verify_inline(&app, bad_tenant).await.unwrap();
    assert_eq!(answer.outcome, pb::VerifyOutcome::Invalid as i32);
    assert!(answer.reason.contains("tenant_id"), "{}", answer.reason);
}

#[tokio::test]
async fn bad_verify_requests_are_refused() {
    let fakes = Fakes::start().await;
    let app = spawn(Backend::Sqlite, &fakes, Duration::from_secs(5), 0).await;
    let none = app.client.clone().verify(pb::VerifyRequest { target: None }).await;
    assert_invalid_field(none, "target", "is required");
    assert_invalid_field(verify_id(&app, "nope").await, "credential_id", "not a valid UUID");
    assert_status(
        verify_id(&app, &uuid::Uuid::new_v4().to_string()).await,
        Code::NotFound,
        "no active credential",
    );
    assert_invalid_field(verify_inline(&app, vultr("")).await, "secret.vultr.api_key", "is required");
    let stored = app.store_vultr("gone", VULTR_KEY).await;
    app.delete(&stored.id).await.unwrap();
    assert_status(verify_id(&app, &stored.id).await, Code::NotFound, "no active credential");
}

/// Store and AddVersion with `verify`: the answer carries the verdict, the credential records
/// it, and a provider that cannot answer never fails or holds the write past the time limit.
async fn writes_verify_when_asked_and_never_fail_for_the_provider(backend: Backend) {
    let fakes = Fakes::start().await;
    let app = spawn(backend, &fakes, Duration::from_secs(1), 0).await;
    let mut client = app.client.clone();
    let store = |name: &str, secret: Secret, verify: bool| pb::StoreRequest {
        verify,
        ..store_request(&app.customer_id, name, secret)
    };

    let answer = client.store(store("On write", vultr(VULTR_KEY), true)).await.unwrap().into_inner();
    let verdict = answer.verification.expect("a verdict when asked");
    assert_eq!(verdict.outcome, pb::VerifyOutcome::Valid as i32, "{}", verdict.reason);
    assert_eq!(verdict.identity["account_email"], "ops@acme.test");
    assert_eq!(verdict.findings[0].code, "vultr_manages_users");
    let stored = answer.credential.unwrap();
    assert!(stored.is_verified);
    assert_eq!(stored.verification_state, pb::VerificationState::Verified as i32);
    assert_eq!(stored.identity["account_email"], "ops@acme.test");
    assert_eq!(app.audit_actions(&stored.id).await, ["created", "verified"]);

    // Not asked: nothing is verified.
    let quiet = client.store(store("Unasked", vultr(VULTR_KEY), false)).await.unwrap().into_inner();
    assert!(quiet.verification.is_none());
    assert_eq!(quiet.credential.unwrap().verification_state, pb::VerificationState::Unverified as i32);

    // Rejected by the provider: stored all the same, recorded as invalid.
    let wrong = client.store(store("Wrong key", vultr("VULTR-WRONG-KEY"), true)).await.unwrap().into_inner();
    assert_eq!(wrong.verification.unwrap().outcome, pb::VerifyOutcome::Invalid as i32);
    let wrong = wrong.credential.unwrap();
    assert_eq!(wrong.verification_state, pb::VerificationState::Invalid as i32);
    assert_eq!(app.audit_actions(&wrong.id).await, ["created", "failed"]);

    // A hanging provider: the Store answers within the time limit, stored and unverified.
    fakes.set_mode(Mode::Hang);
    let started = Instant::now();
    let hung = client.store(store("During a hang", vultr(VULTR_KEY), true)).await.unwrap().into_inner();
    assert!(started.elapsed() < Duration::from_secs(4), "held {:?}", started.elapsed());
    assert_eq!(hung.verification.unwrap().outcome, pb::VerifyOutcome::Unreachable as i32);
    let hung = hung.credential.unwrap();
    assert_eq!(hung.verification_state, pb::VerificationState::Unverified as i32);
    assert!(app.get_by_id(&hung.id).await.is_ok(), "the write happened");

    // AddVersion: the new secret is verified; the old one's verdict does not carry over.
    fakes.set_mode(Mode::Normal);
    let rotated = client
        .add_version(pb::AddVersionRequest {
            credential_id: wrong.id.clone(),
            secret: Some(pb::CredentialSecret { secret: Some(vultr(VULTR_KEY)) }),
            verify: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.verification.unwrap().outcome, pb::VerifyOutcome::Valid as i32);
    let rotated = rotated.credential.unwrap();
    assert_eq!(
        (rotated.current_version, rotated.verification_state),
        (2, pb::VerificationState::Verified as i32)
    );
    assert_eq!(rotated.consecutive_failures, 0);

    // The REST gateway verifies unless told not to.
    let created: serde_json::Value = app
        .rest(reqwest::Method::POST, "/api/v1/credentials")
        .json(&serde_json::json!({"provider": "vultr", "credential_name": "From the dashboard", "credentials": {"api_key": VULTR_KEY}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["verification"]["outcome"], "valid", "{created}");
    assert_eq!(created["credential"]["verification_state"], "verified", "{created}");
    let unverified: serde_json::Value = app
        .rest(reqwest::Method::POST, "/api/v1/credentials")
        .json(&serde_json::json!({"provider": "vultr", "credential_name": "Not checked", "credentials": {"api_key": VULTR_KEY}, "verify": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(unverified.get("verification").is_none(), "{unverified}");
    assert_eq!(unverified["credential"]["verification_state"], "unverified");
    let id = unverified["credential_id"].as_str().unwrap();
    let rotated: serde_json::Value = app
        .rest(reqwest::Method::PUT, &format!("/api/v1/credentials/{id}"))
        .json(&serde_json::json!({"provider": "vultr", "credentials": {"api_key": "VULTR-WRONG-KEY"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rotated["verification"]["outcome"], "invalid", "{rotated}");
    assert_eq!(rotated["credential"]["verification_state"], "invalid", "{rotated}");
}

backend_tests!(
    writes_verify_when_asked_and_never_fail_for_the_provider,
    stored_credentials_are_verified_and_their_state_follows_the_answer,
    an_outage_is_unreachable_and_leaves_the_stored_state_alone,
);
