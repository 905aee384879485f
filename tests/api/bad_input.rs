use credvault::proto::{self as pb, credential_secret::Secret};
use tonic::Code;

use crate::helpers::*;

async fn unknown_or_unspecified_providers_are_invalid_arguments(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let c = app.customer_id.clone();

    let mut no_secret = store_request(&c, "x", vultr("k"));
    no_secret.secret = None;
    assert_invalid_field(app.store(no_secret).await, "secret", "one of vultr, aws, gcp or azure");
    let mut empty_oneof = store_request(&c, "x", vultr("k"));
    empty_oneof.secret = Some(pb::CredentialSecret { secret: None });
    assert_invalid_field(app.store(empty_oneof).await, "secret", "is required");

    assert_invalid_field(
        app.get_by_provider(&c, pb::Provider::Unspecified).await,
        "by_provider.provider",
        "PROVIDER_VULTR",
    );
    let unknown = pb::GetRequest {
        selector: Some(pb::get_request::Selector::ByProvider(pb::ProviderSelector {
            customer_id: c.clone(),
            provider: 99,
        })),
        version: 0,
    };
    assert_invalid_field(
        app.client.clone().get(unknown).await,
        "by_provider.provider",
        "99 is not a known provider",
    );
    let list = pb::ListRequest { customer_id: c.clone(), provider: 42, ..Default::default() };
    assert_invalid_field(app.list(list).await, "provider", "42 is not a known provider");
    let bad_permission = pb::StoreRequest { permissions: 9, ..store_request(&c, "x", vultr("k")) };
    assert_invalid_field(app.store(bad_permission).await, "permissions", "not a known permission");
    assert_invalid_field(
        app.client.clone().get(pb::GetRequest { selector: None, version: 0 }).await,
        "selector",
        "is required",
    );
}

async fn a_missing_field_for_the_provider_is_named(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let c = app.customer_id.clone();
    let cases = [
        (vultr(""), "secret.vultr.api_key"),
        (aws("", "s"), "secret.aws.access_key_id"),
        (aws("AKIA", "  "), "secret.aws.secret_access_key"),
        (gcp(""), "secret.gcp.service_account_json"),
        (azure(""), "secret.azure.client_secret"),
        (
            Secret::Azure(pb::AzureSecret {
                client_secret: "s".into(),
                client_id: "c".into(),
                ..Default::default()
            }),
            "secret.azure.tenant_id",
        ),
        (
            Secret::Aws(pb::AwsSecret {
                access_key_id: "AKIA".into(),
                secret_access_key: "s".into(),
                session_token: Some(String::new()),
            }),
            "secret.aws.session_token",
        ),
    ];
    for (secret, field) in cases {
        assert_invalid_field(app.store(store_request(&c, "x", secret)).await, field, field);
    }
    assert_nothing_written(&app).await;
}

async fn a_gcp_value_that_is_not_a_service_account_key_is_rejected(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let c = app.customer_id.clone();
    let field = "secret.gcp.service_account_json";
    let cases = [
        ("{...json content...}", "not valid JSON"),
        ("[]", "JSON object"),
        (r#"{"type":"service_account","client_email":"a@b"}"#, "missing or empty private_key, token_uri"),
        (
            r#"{"type":"authorized_user","client_email":"a","private_key":"k","token_uri":"u"}"#,
            "\"type\" must be \"service_account\"",
        ),
    ];
    for (json, fragment) in cases {
        assert_invalid_field(app.store(store_request(&c, "g", gcp(json))).await, field, fragment);
    }
    assert_nothing_written(&app).await;
}

async fn names_must_be_1_to_255_characters(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let c = app.customer_id.clone();
    assert_invalid_field(
        app.store(store_request(&c, "", vultr("k"))).await,
        "credential_name",
        "is required",
    );
    assert_invalid_field(
        app.store(store_request(&c, "   ", vultr("k"))).await,
        "credential_name",
        "is required",
    );
    let long = "n".repeat(256);
    assert_invalid_field(
        app.store(store_request(&c, &long, vultr("k"))).await,
        "credential_name",
        "at most 255",
    );
    let bad_type =
        pb::StoreRequest { credential_type: "API KEY!".into(), ..store_request(&c, "x", vultr("k")) };
    assert_invalid_field(app.store(bad_type).await, "credential_type", "a-z, 0-9 and _");
    assert_nothing_written(&app).await;
    // The limit itself is fine.
    let ok = app.store(store_request(&c, &"n".repeat(255), vultr("k"))).await.unwrap();
    assert_eq!(ok.credential_name.len(), 255);
}

async fn payloads_over_64_kib_are_rejected(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let c = app.customer_id.clone();
    let big = "x".repeat(64 * 1024 + 1);
    assert_invalid_field(app.store(store_request(&c, "big", vultr(&big))).await, "secret", "64 KiB");
    assert_invalid_field(
        app.store(store_request(&c, "big", aws(&"a".repeat(40 * 1024), &"b".repeat(30 * 1024)))).await,
        "secret",
        "64 KiB",
    );
    assert_nothing_written(&app).await;
    let exact = "x".repeat(64 * 1024);
    let stored = app.store(store_request(&c, "max", vultr(&exact))).await.unwrap();
    let Some(Secret::Vultr(v)) = app.get_by_id(&stored.id).await.unwrap().secret.unwrap().secret else {
        panic!()
    };
    assert_eq!(v.api_key.len(), 64 * 1024);
}

async fn malformed_uuids_are_named(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    assert_invalid_field(
        app.store(store_request("not-a-uuid", "x", vultr("k"))).await,
        "customer_id",
        "not a valid UUID",
    );
    assert_invalid_field(app.store(store_request("", "x", vultr("k"))).await, "customer_id", "is required");
    assert_invalid_field(app.get_by_id("123").await, "credential_id", "not a valid UUID");
    assert_invalid_field(
        app.get_by_provider("zz", pb::Provider::Aws).await,
        "by_provider.customer_id",
        "not a valid UUID",
    );
    assert_invalid_field(app.delete("nope").await, "credential_id", "not a valid UUID");
    let list = pb::ListRequest { customer_id: "x".into(), ..Default::default() };
    assert_invalid_field(app.list(list).await, "customer_id", "not a valid UUID");
    let summary = app
        .client
        .clone()
        .summary(pb::SummaryRequest { customer_id: "x".into(), ..Default::default() })
        .await;
    assert_invalid_field(summary, "customer_id", "not a valid UUID");
    let list = pb::ListRequest {
        customer_id: app.customer_id.clone(),
        page_token: "garbage".into(),
        ..Default::default()
    };
    assert_invalid_field(app.list(list).await, "page_token", "not a page token");
    let list = pb::ListRequest { customer_id: app.customer_id.clone(), page_size: -1, ..Default::default() };
    assert_invalid_field(app.list(list).await, "page_size", "negative");
}

async fn unknown_customers_and_credentials_are_not_found(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let stranger = "5d4f0e55-1b0a-4d54-9d8e-000000000001";
    assert_status(
        app.store(store_request(stranger, "x", vultr("k"))).await,
        Code::NotFound,
        &format!("customer {stranger}"),
    );
    assert_status(app.get_by_id(stranger).await, Code::NotFound, "no active credential");
    assert_status(app.delete(stranger).await, Code::NotFound, "no active credential");
    assert_status(
        app.get_by_provider(stranger, pb::Provider::Vultr).await,
        Code::NotFound,
        &format!("customer {stranger} not found"),
    );
    let list = pb::ListRequest { customer_id: stranger.into(), ..Default::default() };
    assert_status(app.list(list).await, Code::NotFound, "customer");
    let summary = app
        .client
        .clone()
        .summary(pb::SummaryRequest { customer_id: stranger.into(), ..Default::default() })
        .await;
    assert_status(summary, Code::NotFound, "customer");
    assert_nothing_written(&app).await;
}

async fn get_for_a_provider_with_none_gives_the_dashboard_hint(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    app.store_vultr("Vultr", "k").await;
    assert_status(
        app.get_by_provider(&app.customer_id, pb::Provider::Gcp).await,
        Code::NotFound,
        &format!("no active gcp credential for customer {}; add one in the dashboard", app.customer_id),
    );
}

async fn assert_nothing_written(app: &TestApp) {
    let db = app.db().await;
    let credentials = db.count("SELECT count(*) FROM cloud_credentials").await;
    let audit = db.audit_rows().await;
    assert_eq!((credentials, audit), (0, 0), "a refused request must write nothing");
}

backend_tests!(
    unknown_or_unspecified_providers_are_invalid_arguments,
    a_missing_field_for_the_provider_is_named,
    a_gcp_value_that_is_not_a_service_account_key_is_rejected,
    names_must_be_1_to_255_characters,
    payloads_over_64_kib_are_rejected,
    malformed_uuids_are_named,
    unknown_customers_and_credentials_are_not_found,
    get_for_a_provider_with_none_gives_the_dashboard_hint,
);
