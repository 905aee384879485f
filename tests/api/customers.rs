//! Customers (CustomerService, CLI), their standing, and the audit log's reader (AuditService).

use std::time::Duration;

use credvault::proto as pb;
use tonic::Code;
use tonic::transport::Channel;

use crate::helpers::*;

type Audit = pb::audit_service_client::AuditServiceClient<
    tonic::service::interceptor::InterceptedService<Channel, credvault::client::Bearer>,
>;

async fn audit(app: &TestApp, token: &str) -> Audit {
    let bearer = credvault::client::Bearer::new(token).unwrap();
    pb::audit_service_client::AuditServiceClient::with_interceptor(app.channel().await, bearer)
}

fn create(email: &str) -> pb::CreateCustomerRequest {
    pb::CreateCustomerRequest {
        email: email.into(),
        company_name: "Example Ltd".into(),
        ..Default::default()
    }
}

async fn customers_are_managed_by_admins_only(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let mut admin = app.customers(&app.token).await;

    let created =
        admin.create_customer(create("ops@example.com")).await.unwrap().into_inner().customer.unwrap();
    assert_eq!(created.status, pb::CustomerStatus::Active as i32);
    assert_eq!(created.subscription_tier, pb::SubscriptionTier::Free as i32);
    let again = admin.create_customer(create("ops@example.com")).await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    let bad = admin.create_customer(create("not-an-email")).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("email"), "{bad:?}");
    let got = admin
        .get_customer(pb::GetCustomerRequest { customer_id: created.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(got, created);

    // Paging through every customer (the test's own, and three more), oldest first.
    for i in 0..3 {
        admin.create_customer(create(&format!("c{i}@example.com"))).await.unwrap();
    }
    let (mut seen, mut token) = (Vec::new(), String::new());
    loop {
        let request = pb::ListCustomersRequest { page_size: 2, page_token: token };
        let page = admin.list_customers(request).await.unwrap().into_inner();
        seen.extend(page.customers.into_iter().map(|c| c.email));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(&seen[1..], ["ops@example.com", "c0@example.com", "c1@example.com", "c2@example.com"]);

    // Not an admin: denied, and audited.
    let (name, token) = app.token("credentials:write,credentials:read,secrets:read", "*", None).await;
    let denied = app.customers(&token).await.create_customer(create("x@example.com")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(app.db().await.denials(&name).await.len(), 1);
}

async fn a_suspended_customers_secrets_stay_locked_until_reactivated(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let stored = app.store_vultr("Production Vultr", "suspend-me").await;
    // Served once, so the vault holds its owner and ciphertext: suspension must still lock it.
    app.get_by_id(&stored.id).await.unwrap();
    let mut admin = app.customers(&app.token).await;
    let set = |status: pb::CustomerStatus| pb::SetCustomerStatusRequest {
        customer_id: app.customer_id.clone(),
        status: status as i32,
    };

    // (Cancelling also deletes the credentials: tests/api/recovery.rs.)
    for status in [pb::CustomerStatus::Suspended] {
        let changed = admin.set_customer_status(set(status)).await.unwrap().into_inner().customer.unwrap();
        assert_eq!(changed.status, status as i32);
        let refused = app.get_by_id(&stored.id).await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(
            refused.message().contains(
                status.as_str_name().trim_start_matches("CUSTOMER_STATUS_").to_lowercase().as_str()
            )
        );
        let store = app.store(store_request(&app.customer_id, "New one", vultr("k"))).await.unwrap_err();
        assert_eq!(store.code(), Code::FailedPrecondition, "{store:?}");
        let listed =
            app.list(pb::ListRequest { customer_id: app.customer_id.clone(), ..Default::default() }).await;
        assert_eq!(listed.unwrap().credentials.len(), 1, "metadata stays listable");
    }
    let unset = admin.set_customer_status(set(pb::CustomerStatus::Unspecified)).await.unwrap_err();
    assert_eq!(unset.code(), Code::InvalidArgument);

    admin.set_customer_status(set(pb::CustomerStatus::Active)).await.unwrap();
    let got = app.get_by_id(&stored.id).await.unwrap();
    assert_eq!(got.secret.unwrap().secret, Some(vultr("suspend-me")));
    assert_eq!(app.audit_actions(&stored.id).await, ["created", "used", "denied", "used"]);

    // Cancelled: nothing can be stored, and its credentials are deleted, so not handed out.
    admin.set_customer_status(set(pb::CustomerStatus::Cancelled)).await.unwrap();
    assert_eq!(app.get_by_id(&stored.id).await.unwrap_err().code(), Code::NotFound);
    let store = app.store(store_request(&app.customer_id, "New one", vultr("k"))).await.unwrap_err();
    assert!(store.code() == Code::FailedPrecondition && store.message().contains("cancelled"), "{store:?}");
}

async fn the_audit_log_is_readable_with_filters_and_paging(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let first = app.store_vultr("First", "k1").await;
    for _ in 0..3 {
        app.get_by_id(&first.id).await.unwrap();
    }
    let second = app.store_vultr("Second", "k2").await;
    app.delete(&second.id).await.unwrap();

    let mut reader = audit(&app, &app.token).await;
    let list = |credential: &str, action: &str, page_token: String| pb::ListAuditEventsRequest {
        credential_id: credential.into(),
        action: action.into(),
        page_size: 2,
        page_token,
        ..Default::default()
    };
    // First's events, two per page, newest first.
    let (mut actions, mut token) = (Vec::new(), String::new());
    loop {
        let page = reader.list_audit_events(list(&first.id, "", token)).await.unwrap().into_inner();
        for event in &page.events {
            assert_eq!(event.credential_id, first.id);
            assert_eq!(event.customer_id, app.customer_id);
            assert!(event.actor.starts_with("test-"), "the acting token is named: {event:?}");
            assert!(!event.action_details.contains("k1"), "no secret in the audit log");
        }
        actions.extend(page.events.into_iter().map(|e| e.action));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(actions, ["used", "used", "used", "created"]);
    let deleted = reader.list_audit_events(list("", "deleted", String::new())).await.unwrap().into_inner();
    assert_eq!(deleted.events.len(), 1);
    assert_eq!(deleted.events[0].credential_id, second.id);
    let future = pb::ListAuditEventsRequest {
        since: Some(prost_types::Timestamp { seconds: 4_000_000_000, nanos: 0 }),
        ..Default::default()
    };
    assert!(reader.list_audit_events(future).await.unwrap().into_inner().events.is_empty());
    let until = |seconds| pb::ListAuditEventsRequest {
        credential_id: first.id.clone(),
        until: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        ..Default::default()
    };
    let before_any = reader.list_audit_events(until(1_000_000_000)).await.unwrap().into_inner();
    assert!(before_any.events.is_empty(), "{before_any:?}");
    let so_far = reader.list_audit_events(until(4_000_000_000)).await.unwrap().into_inner();
    assert_eq!(so_far.events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), actions);
    let bad = reader.list_audit_events(list("", "stolen", String::new())).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    // A token bound to another customer sees only that customer's events; without audit:read, none.
    let other = app.create_customer().await;
    let (_, bound) = app.token("audit:read", &other, None).await;
    let seen = audit(&app, &bound).await.list_audit_events(pb::ListAuditEventsRequest::default()).await;
    assert!(seen.unwrap().into_inner().events.is_empty());
    let mine = pb::ListAuditEventsRequest { customer_id: app.customer_id.clone(), ..Default::default() };
    let refused = audit(&app, &bound).await.list_audit_events(mine).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let (_, no_scope) = app.token("credentials:read", "*", None).await;
    let refused = audit(&app, &no_scope).await.list_audit_events(pb::ListAuditEventsRequest::default()).await;
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
}

/// Stores and rotations racing the customer's cancellation: afterwards no credential of the
/// cancelled customer is active, every Store answered OK is there (deleted by the cancellation,
/// with its audit rows), every rotation answered OK is among the versions, and every refusal
/// says why.
async fn writes_racing_a_cancellation_leave_no_active_credential(backend: Backend) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let app = TestApp::spawn_on(backend).await;
    let rotated = app.store_vultr("Rotated", "v1").await;
    let stored_so_far = Arc::new(AtomicUsize::new(0));
    let storers: Vec<_> = (0..6)
        .map(|w| {
            let (client, customer, count) =
                (app.client.clone(), app.customer_id.clone(), stored_so_far.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0.. {
                    let request =
                        store_request(&customer, &format!("Racer {w}-{i}"), vultr(&format!("k-{w}-{i}")));
                    match client.clone().store(request).await {
                        Ok(response) => {
                            acknowledged.push(response.into_inner().credential.unwrap().id);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(refused) => {
                            assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
                            assert!(refused.message().contains("is cancelled"), "{refused:?}");
                            return acknowledged;
                        }
                    }
                }
                unreachable!("a writer stops at its first refusal")
            })
        })
        .collect();
    let rotators: Vec<_> = (0..2)
        .map(|w| {
            let (client, id) = (app.client.clone(), rotated.id.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0.. {
                    let request = pb::AddVersionRequest {
                        credential_id: id.clone(),
                        secret: Some(pb::CredentialSecret { secret: Some(vultr(&format!("r-{w}-{i}"))) }),
                        ..Default::default()
                    };
                    match client.clone().add_version(request).await {
                        Ok(response) => acknowledged.push(response.into_inner().version.unwrap().version),
                        // Another rotator took the number: seal again (the vault retries a few times).
                        Err(taken) if taken.code() == Code::Aborted => {}
                        // Cancelled (refused), or deleted by the cancellation (not found).
                        Err(refused) => {
                            assert!(
                                matches!(refused.code(), Code::FailedPrecondition | Code::NotFound),
                                "{refused:?}"
                            );
                            return acknowledged;
                        }
                    }
                }
                unreachable!("a rotator stops at its first refusal")
            })
        })
        .collect();

    while stored_so_far.load(Ordering::Relaxed) < 12 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cancel = pb::SetCustomerStatusRequest {
        customer_id: app.customer_id.clone(),
        status: pb::CustomerStatus::Cancelled as i32,
    };
    app.customers(&app.token).await.set_customer_status(cancel).await.unwrap();

    let mut acknowledged = Vec::new();
    for storer in storers {
        acknowledged.extend(storer.await.unwrap());
    }
    let mut versions = Vec::new();
    for rotator in rotators {
        versions.extend(rotator.await.unwrap());
    }
    let listed = app
        .list(pb::ListRequest {
            customer_id: app.customer_id.clone(),
            include_inactive: true,
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .credentials;
    let active: Vec<_> = listed.iter().filter(|c| c.is_active).map(|c| &c.credential_name).collect();
    assert!(active.is_empty(), "active credentials of a cancelled customer: {active:?}");
    for id in &acknowledged {
        assert!(listed.iter().any(|c| &c.id == id), "Store answered OK for {id}, which is not there");
        let mut actions = app.audit_actions(id).await;
        actions.sort_unstable();
        assert_eq!(actions, ["created", "deleted"], "{id}");
    }
    assert_eq!(listed.len(), acknowledged.len() + 1, "nothing stored that was not acknowledged");
    let mut stored_versions = app.db().await.version_numbers(&rotated.id).await;
    stored_versions.retain(|v| *v != 1);
    versions.sort_unstable();
    assert_eq!(stored_versions, versions, "every acknowledged rotation, and no other, is stored");
}

backend_tests!(
    customers_are_managed_by_admins_only,
    writes_racing_a_cancellation_leave_no_active_credential,
    a_suspended_customers_secrets_stay_locked_until_reactivated,
    the_audit_log_is_readable_with_filters_and_paging
);

/// `credvault customer ...` and `credvault token ...`, as an operator runs them.
#[tokio::test]
async fn the_cli_manages_customers_and_tokens() {
    // A short token cache: a revocation made elsewhere (here, by the CLI) takes effect within it.
    let cache = Duration::from_millis(300);
    let app = TestApp::spawn_configured(Backend::Sqlite, |config| credvault::config::Config {
        token_cache_ttl: cache,
        ..config
    })
    .await;
    let run = async |args: &[&str]| {
        let output = credvault(&app.database_url, &app.key, args).await;
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let id = run(&[
        "customer",
        "create",
        "--email",
        "cli@example.com",
        "--company-name",
        "CLI Co",
        "--tier",
        "starter",
    ])
    .await;
    let id = id.trim();
    assert!(
        run(&["customer", "list"]).await.contains(&format!("{id}\tactive\tstarter\tcli@example.com\tCLI Co"))
    );
    assert!(run(&["customer", "set-status", id, "suspended"]).await.contains("suspended"));

    let token =
        run(&["token", "create", "--name", "collector", "--scopes", "credentials:read", "--customer", id])
            .await;
    let token = token.trim();
    assert!(token.starts_with("cvt_"));
    let listed = run(&["token", "list"]).await;
    assert!(listed.contains("collector\tactive") && !listed.contains(token), "{listed}");
    let mut client = app.client_with(Some(token)).await;
    let list = || pb::ListRequest { customer_id: id.to_owned(), ..Default::default() };
    client.list(list()).await.expect("the new token works at once");
    run(&["token", "revoke", "collector"]).await;
    assert!(run(&["token", "list"]).await.contains("collector\trevoked"));
    tokio::time::sleep(cache + Duration::from_millis(100)).await; // the revocation bound
    assert_eq!(client.list(list()).await.unwrap_err().code(), Code::Unauthenticated);
}
