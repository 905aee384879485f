//! Who may do what: every RPC against {no token, malformed, wrong scope, other customer,
//! revoked, expired, allowed}, each denial audited; the REST gateway's 401 and 403; revocation
//! beating the token cache within its bound.

use std::time::Duration;

use credvault::proto as pb;
use reqwest::StatusCode;
use tonic::{Code, Status};

use crate::fakes::{Fakes, VULTR_KEY};
use crate::helpers::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    Store,
    GetById,
    GetByProvider,
    List,
    Summary,
    VerifyStored,
    VerifyInline,
    Delete,
    CreateCustomer,
    GetCustomer,
    ListCustomers,
    SetCustomerStatus,
    ListAuditEvents,
    AddVersion,
    ListVersions,
    DisableVersion,
    EnableVersion,
    DestroyVersion,
    UpdateCredential,
    RestoreCredential,
    PurgeCredential,
    SetRecoveryWindow,
}

impl Rpc {
    const ALL: [Rpc; 22] = [
        Rpc::Store,
        Rpc::GetById,
        Rpc::GetByProvider,
        Rpc::List,
        Rpc::Summary,
        Rpc::VerifyStored,
        Rpc::VerifyInline,
        Rpc::Delete,
        Rpc::CreateCustomer,
        Rpc::GetCustomer,
        Rpc::ListCustomers,
        Rpc::SetCustomerStatus,
        Rpc::ListAuditEvents,
        Rpc::AddVersion,
        Rpc::ListVersions,
        Rpc::DisableVersion,
        Rpc::EnableVersion,
        Rpc::DestroyVersion,
        Rpc::UpdateCredential,
        Rpc::RestoreCredential,
        Rpc::PurgeCredential,
        Rpc::SetRecoveryWindow,
    ];

    fn scope(self) -> &'static str {
        match self {
            Rpc::Store
            | Rpc::Delete
            | Rpc::AddVersion
            | Rpc::DisableVersion
            | Rpc::EnableVersion
            | Rpc::DestroyVersion
            | Rpc::UpdateCredential
            | Rpc::RestoreCredential => "credentials:write",
            Rpc::GetById | Rpc::GetByProvider => "secrets:read",
            Rpc::List | Rpc::Summary | Rpc::ListVersions => "credentials:read",
            Rpc::VerifyStored | Rpc::VerifyInline => "credentials:verify",
            Rpc::CreateCustomer
            | Rpc::GetCustomer
            | Rpc::ListCustomers
            | Rpc::SetCustomerStatus
            | Rpc::SetRecoveryWindow => "admin",
            Rpc::ListAuditEvents => "audit:read",
            Rpc::PurgeCredential => "credentials:purge",
        }
    }

    /// The narrowest customer binding that may make the call: creating and listing customers
    /// concern every customer.
    fn allowed_binding(self, customer: &str) -> String {
        match self {
            Rpc::CreateCustomer | Rpc::ListCustomers => "*".into(),
            _ => customer.into(),
        }
    }

    /// Every scope but the one this RPC needs.
    fn all_scopes_but_mine(self) -> String {
        [
            "credentials:write",
            "credentials:read",
            "secrets:read",
            "credentials:verify",
            "audit:read",
            "admin",
            "credentials:purge",
        ]
        .into_iter()
        .filter(|s| *s != self.scope())
        .collect::<Vec<_>>()
        .join(",")
    }

    /// Whether the RPC concerns one customer's data (inline verification concerns none).
    fn has_customer(self) -> bool {
        self != Rpc::VerifyInline
    }

    /// Whether the RPC names a stored credential by id: another customer's answers as missing.
    fn names_a_credential(self) -> bool {
        matches!(
            self,
            Rpc::GetById
                | Rpc::VerifyStored
                | Rpc::Delete
                | Rpc::AddVersion
                | Rpc::ListVersions
                | Rpc::DisableVersion
                | Rpc::EnableVersion
                | Rpc::DestroyVersion
                | Rpc::UpdateCredential
                | Rpc::RestoreCredential
                | Rpc::PurgeCredential
        )
    }

    /// What a credential of another customer answers: exactly what a missing one does.
    fn missing_message(self) -> &'static str {
        match self {
            // These reach deleted credentials too.
            Rpc::RestoreCredential | Rpc::PurgeCredential => "no credential",
            _ => "no active credential",
        }
    }
}

/// Customer A's data the calls act on.
struct Fixture {
    customer: String,
    /// A's Vultr credential (valid at the fake Vultr).
    credential: String,
}

/// Makes one call of `rpc` as the holder of `token` (none: no authorization header).
async fn call(rpc: Rpc, token: Option<&str>, f: &Fixture, app: &TestApp) -> Result<(), Status> {
    let bearer = || {
        token
            .map_or_else(credvault::client::Bearer::anonymous, |t| credvault::client::Bearer::new(t).unwrap())
    };
    let mut client = app.client_with(token).await;
    let mut customers =
        pb::customer_service_client::CustomerServiceClient::with_interceptor(app.channel().await, bearer());
    let mut audit =
        pb::audit_service_client::AuditServiceClient::with_interceptor(app.channel().await, bearer());
    match rpc {
        Rpc::Store => {
            let name = format!("stored-{}", uuid::Uuid::new_v4());
            client.store(store_request(&f.customer, &name, vultr("k"))).await.map(drop)
        }
        Rpc::GetById => client.get(get_by_id(&f.credential)).await.map(drop),
        Rpc::GetByProvider => {
            let selector = pb::get_request::Selector::ByProvider(pb::ProviderSelector {
                customer_id: f.customer.clone(),
                provider: pb::Provider::Vultr as i32,
            });
            client.get(pb::GetRequest { selector: Some(selector), version: 0 }).await.map(drop)
        }
        Rpc::List => client
            .list(pb::ListRequest { customer_id: f.customer.clone(), ..Default::default() })
            .await
            .map(drop),
        Rpc::Summary => client
            .summary(pb::SummaryRequest { customer_id: f.customer.clone(), ..Default::default() })
            .await
            .map(drop),
        Rpc::VerifyStored => {
            let target = pb::verify_request::Target::CredentialId(f.credential.clone());
            client.verify(pb::VerifyRequest { target: Some(target) }).await.map(drop)
        }
        Rpc::VerifyInline => {
            let secret = pb::CredentialSecret { secret: Some(vultr(VULTR_KEY)) };
            let target = pb::verify_request::Target::Secret(secret);
            client.verify(pb::VerifyRequest { target: Some(target) }).await.map(drop)
        }
        Rpc::Delete => {
            // A fresh credential each time, so an allowed delete leaves the fixture in place.
            let doomed = app.store_vultr(&format!("doomed-{}", uuid::Uuid::new_v4()), "k").await;
            client.delete(pb::DeleteRequest { credential_id: doomed.id }).await.map(drop)
        }
        Rpc::CreateCustomer => {
            let email = format!("{}@example.com", uuid::Uuid::new_v4());
            let request =
                pb::CreateCustomerRequest { email, company_name: "Co".into(), ..Default::default() };
            customers.create_customer(request).await.map(drop)
        }
        Rpc::GetCustomer => {
            customers.get_customer(pb::GetCustomerRequest { customer_id: f.customer.clone() }).await.map(drop)
        }
        Rpc::ListCustomers => customers.list_customers(pb::ListCustomersRequest::default()).await.map(drop),
        Rpc::SetCustomerStatus => {
            let request = pb::SetCustomerStatusRequest {
                customer_id: f.customer.clone(),
                status: pb::CustomerStatus::Active as i32,
            };
            customers.set_customer_status(request).await.map(drop)
        }
        Rpc::ListAuditEvents => {
            let request =
                pb::ListAuditEventsRequest { customer_id: f.customer.clone(), ..Default::default() };
            audit.list_audit_events(request).await.map(drop)
        }
        Rpc::AddVersion => {
            let request = pb::AddVersionRequest {
                credential_id: f.credential.clone(),
                secret: Some(pb::CredentialSecret { secret: Some(vultr(VULTR_KEY)) }),
                ..Default::default()
            };
            client.add_version(request).await.map(drop)
        }
        Rpc::ListVersions => {
            let request =
                pb::ListVersionsRequest { credential_id: f.credential.clone(), ..Default::default() };
            client.list_versions(request).await.map(drop)
        }
        // Fresh credentials for the changes that would take the fixture's secret away.
        Rpc::DisableVersion => {
            let id = app.store_vultr(&format!("disabled-{}", uuid::Uuid::new_v4()), "k").await.id;
            let request = pb::DisableVersionRequest { credential_id: id, version: 1, etag: String::new() };
            client.disable_version(request).await.map(drop)
        }
        Rpc::EnableVersion => {
            let request = pb::EnableVersionRequest {
                credential_id: f.credential.clone(),
                version: 1,
                etag: String::new(),
            };
            client.enable_version(request).await.map(drop)
        }
        Rpc::DestroyVersion => {
            let id = app.store_vultr(&format!("destroyed-{}", uuid::Uuid::new_v4()), "k").await.id;
            let request = pb::DestroyVersionRequest { credential_id: id, version: 1, etag: String::new() };
            client.destroy_version(request).await.map(drop)
        }
        Rpc::UpdateCredential => {
            let request = pb::UpdateCredentialRequest {
                credential_id: f.credential.clone(),
                permissions: pb::Permission::ReadOnly as i32,
                update_mask: Some(prost_types::FieldMask { paths: vec!["permissions".into()] }),
                ..Default::default()
            };
            client.update_credential(request).await.map(drop)
        }
        Rpc::RestoreCredential => {
            let doomed = app.store_vultr(&format!("restored-{}", uuid::Uuid::new_v4()), "k").await;
            app.delete(&doomed.id).await.unwrap();
            client
                .restore_credential(pb::RestoreCredentialRequest { credential_id: doomed.id })
                .await
                .map(drop)
        }
        Rpc::PurgeCredential => {
            let doomed = app.store_vultr(&format!("purged-{}", uuid::Uuid::new_v4()), "k").await;
            client.purge_credential(pb::PurgeCredentialRequest { credential_id: doomed.id }).await.map(drop)
        }
        Rpc::SetRecoveryWindow => {
            let request = pb::SetRecoveryWindowRequest {
                customer_id: f.customer.clone(),
                recovery_window: Some(prost_types::Duration { seconds: 30 * 24 * 3600, nanos: 0 }),
            };
            customers.set_recovery_window(request).await.map(drop)
        }
    }
}

#[track_caller]
fn assert_code(result: Result<(), Status>, code: Code, rpc: Rpc, case: &str) -> Status {
    let status = result.expect_err(&format!("{rpc:?} {case}: must be refused"));
    assert_eq!(status.code(), code, "{rpc:?} {case}: {status:?}");
    status
}

async fn every_rpc_refuses_all_but_the_allowed_caller(backend: Backend) {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_verifying(backend, fakes.settings(Duration::from_secs(5), 0)).await;
    let credential = app.store_vultr("Production Vultr", VULTR_KEY).await;
    let f = Fixture { customer: app.customer_id.clone(), credential: credential.id.clone() };
    // Served once, so Get's checks below run on the vault's cached copy (no read first).
    app.get_by_id(&credential.id).await.unwrap();
    let other_customer = app.create_customer().await;
    let db = app.db().await;

    for rpc in Rpc::ALL {
        // No token, and a token that is not one of ours.
        let status = assert_code(call(rpc, None, &f, &app).await, Code::Unauthenticated, rpc, "no token");
        assert!(status.message().contains("Bearer"), "says what to send: {status:?}");
        let forged = "cvt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert_code(call(rpc, Some(forged), &f, &app).await, Code::Unauthenticated, rpc, "unknown token");
        assert_code(
            call(rpc, Some("hunter2"), &f, &app).await,
            Code::Unauthenticated,
            rpc,
            "malformed token",
        );

        // Every scope but the needed one: denied, and the denial audited with the token's name.
        let (name, token) = app.token(&rpc.all_scopes_but_mine(), "*", None).await;
        let status =
            assert_code(call(rpc, Some(&token), &f, &app).await, Code::PermissionDenied, rpc, "wrong scope");
        assert!(status.message().contains(rpc.scope()), "names the missing scope: {status:?}");
        let denials = db.denials(&name).await;
        assert_eq!(denials.len(), 1, "{rpc:?}: one denied row: {denials:?}");
        assert!(denials[0].contains(rpc.scope()), "{denials:?}");

        // Every scope, but bound to another customer: a credential named by id is not found
        // (its existence and owner stay hidden), a customer named outright is denied.
        if rpc.has_customer() {
            let (name, token) = app.token("*", &other_customer, None).await;
            let result = call(rpc, Some(&token), &f, &app).await;
            if rpc.names_a_credential() {
                let status = assert_code(result, Code::NotFound, rpc, "other customer's credential");
                assert!(status.message().contains(rpc.missing_message()), "{status:?}");
                assert!(!status.message().contains(&f.customer), "{status:?}");
            } else {
                let status = assert_code(result, Code::PermissionDenied, rpc, "other customer");
                assert!(status.message().contains(&other_customer), "{status:?}");
            }
            assert_eq!(db.denials(&name).await.len(), 1, "{rpc:?}: the cross-customer attempt is audited");
        }

        // Revoked before use; expired.
        let (name, token) = app.token(rpc.scope(), &f.customer, None).await;
        credvault::admin::revoke_token(app.vault.directory(), &name).await.unwrap();
        let status =
            assert_code(call(rpc, Some(&token), &f, &app).await, Code::Unauthenticated, rpc, "revoked");
        assert!(status.message().contains("revoked"), "{status:?}");

        // Allowed: exactly the scope, bound to the customer.
        let (name, token) = app.token(rpc.scope(), &rpc.allowed_binding(&f.customer), None).await;
        call(rpc, Some(&token), &f, &app).await.unwrap_or_else(|s| panic!("{rpc:?} allowed: {s:?}"));
        assert!(db.denials(&name).await.is_empty());
    }

    // Expiry is checked on every call, cached or not.
    let (_, token) = app.token("*", "*", Some(Duration::from_secs(1))).await;
    call(Rpc::List, Some(&token), &f, &app).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for rpc in Rpc::ALL {
        let status =
            assert_code(call(rpc, Some(&token), &f, &app).await, Code::Unauthenticated, rpc, "expired");
        assert!(status.message().contains("expired"), "{status:?}");
    }
}

backend_tests!(every_rpc_refuses_all_but_the_allowed_caller);

#[tokio::test]
async fn a_used_token_stops_working_within_the_cache_bound_after_revocation() {
    let app = TestApp::spawn_configured(Backend::Sqlite, |config| credvault::config::Config {
        token_cache_ttl: Duration::from_millis(500),
        ..config
    })
    .await;
    let (name, token) = app.token("credentials:read", &app.customer_id, None).await;
    let mut client = app.client_with(Some(&token)).await;
    let list = || pb::ListRequest { customer_id: app.customer_id.clone(), ..Default::default() };
    client.list(list()).await.unwrap();
    credvault::admin::revoke_token(app.vault.directory(), &name).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = client.list(list()).await.expect_err("revoked beyond the cache bound");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn the_rest_gateway_answers_401_and_403() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let url = format!("{}/api/v1/credentials", app.http);
    let client = reqwest::Client::new();

    let response = client.get(&url).header("X-Customer-ID", &app.customer_id).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");

    let (name, token) = app.token("credentials:read", &app.customer_id, None).await;
    let listed = client.get(&url).header("X-Customer-ID", &app.customer_id).bearer_auth(&token).send().await;
    assert_eq!(listed.unwrap().status(), StatusCode::OK);
    let denied = client
        .post(&url)
        .header("X-Customer-ID", &app.customer_id)
        .bearer_auth(&token)
        .json(&serde_json::json!({"provider": "vultr", "credential_name": "X", "credentials": {"api_key": "k"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = denied.json().await.unwrap();
    assert_eq!(body["error"]["code"], "permission_denied");
    assert!(body["error"]["message"].as_str().unwrap().contains("credentials:write"));

    let other = app.create_customer().await;
    let response = client.get(&url).header("X-Customer-ID", &other).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "a token bound to one customer reads no other");
    assert_eq!(app.db().await.denials(&name).await.len(), 2);
}
