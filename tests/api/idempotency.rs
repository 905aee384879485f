use credvault::proto as pb;
use tonic::Code;

use crate::helpers::*;

fn keyed(customer: &str, name: &str, api_key: &str, key: &str) -> pb::StoreRequest {
    pb::StoreRequest { idempotency_key: key.to_owned(), ..store_request(customer, name, vultr(api_key)) }
}

async fn a_retried_store_with_the_same_key_returns_the_first_result(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let c = app.customer_id.clone();
    let first = app.client.clone().store(keyed(&c, "Prod", "k1", "req-1")).await.unwrap().into_inner();
    assert!(!first.replayed);
    let retry = app.client.clone().store(keyed(&c, "Prod", "k1", "req-1")).await.unwrap().into_inner();
    assert!(retry.replayed);
    assert_eq!(retry.credential.as_ref().unwrap().id, first.credential.as_ref().unwrap().id);

    let listed = app.list(pb::ListRequest { customer_id: c.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(listed.credentials.len(), 1, "a retry creates no duplicate");
    let id = &first.credential.unwrap().id;
    assert_eq!(app.audit_actions(id).await, vec!["created"], "a replay writes no audit row");
}

async fn the_same_key_with_different_content_is_rejected(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let c = app.customer_id.clone();
    app.store(keyed(&c, "Prod", "k1", "req-1")).await.unwrap();
    // Different secret, same name and key: refused, not silently replayed.
    assert_invalid_field(
        app.store(keyed(&c, "Prod", "k2", "req-1")).await,
        "idempotency_key",
        "different Store request",
    );
    assert_invalid_field(
        app.store(keyed(&c, "Other", "k1", "req-1")).await,
        "idempotency_key",
        "different Store request",
    );
    // Without a key the duplicate name is a conflict as usual.
    assert_status(
        app.store(store_request(&c, "Prod", vultr("k1"))).await,
        Code::AlreadyExists,
        "already has",
    );
    // Keys are per customer.
    let other = app.create_customer().await;
    let theirs = app.client.clone().store(keyed(&other, "Prod", "k1", "req-1")).await.unwrap().into_inner();
    assert!(!theirs.replayed);
    assert_invalid_field(
        app.store(keyed(&c, "X", "k", "has space")).await,
        "idempotency_key",
        "printable ASCII",
    );
}

async fn concurrent_retries_create_exactly_one_credential(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let c = app.customer_id.clone();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut client = app.client.clone();
        let request = keyed(&c, "Racy", "k", "race-1");
        tasks.push(tokio::spawn(async move { client.store(request).await.map(tonic::Response::into_inner) }));
    }
    let mut ids = Vec::new();
    let mut fresh = 0;
    for task in tasks {
        let response = task.await.unwrap().unwrap();
        fresh += usize::from(!response.replayed);
        ids.push(response.credential.unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(fresh, 1);
}

backend_tests!(
    a_retried_store_with_the_same_key_returns_the_first_result,
    the_same_key_with_different_content_is_rejected,
    concurrent_retries_create_exactly_one_credential,
);
