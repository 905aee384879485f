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

/// A burst of Stores (committed in groups): each gets its own answer. Distinct ones are all
/// stored with one audit row each; of those racing for one name exactly one is stored and the
/// rest are told the name is taken; one for an unknown customer is NOT_FOUND; a default one is
/// stored too. Nothing is lost or doubled.
async fn a_burst_of_stores_gets_one_answer_each(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let c = app.customer_id.clone();
    let unknown = uuid::Uuid::new_v4().to_string();
    let mut requests = Vec::new();
    for i in 0..40 {
        requests.push(("distinct", store_request(&c, &format!("Burst {i}"), vultr(&format!("k{i}")))));
    }
    for i in 0..6 {
        requests.push(("same name", store_request(&c, "Contested", vultr(&format!("c{i}")))));
    }
    requests.push(("unknown customer", store_request(&unknown, "Nobody's", vultr("n"))));
    requests.push((
        "default",
        pb::StoreRequest { make_default: true, ..store_request(&c, "Default", vultr("d")) },
    ));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(kind, request)| {
            let mut client = app.client.clone();
            tokio::spawn(async move { (kind, client.store(request).await.map(tonic::Response::into_inner)) })
        })
        .collect();
    let (mut stored, mut contested_won, mut contested_taken) = (Vec::new(), 0, 0);
    for task in tasks {
        match task.await.unwrap() {
            ("distinct" | "default", Ok(answer)) => stored.push(answer.credential.unwrap().id),
            ("same name", Ok(answer)) => {
                contested_won += 1;
                stored.push(answer.credential.unwrap().id);
            }
            ("same name", Err(status)) => {
                assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
                assert!(status.message().contains("Contested"), "{}", status.message());
                contested_taken += 1;
            }
            ("unknown customer", Err(status)) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
            (kind, other) => panic!("{kind}: {other:?}"),
        }
    }
    assert_eq!((contested_won, contested_taken), (1, 5));
    assert_eq!(stored.len(), 42);
    let listed = app
        .list(pb::ListRequest { customer_id: c.clone(), page_size: 100, ..Default::default() })
        .await
        .unwrap()
        .credentials;
    assert_eq!(listed.len(), 42, "every Store answered as stored is stored, once");
    for id in &stored {
        assert_eq!(app.audit_actions(id).await, ["created"], "one audit row each");
    }
}

backend_tests!(
    a_burst_of_stores_gets_one_answer_each,
    a_retried_store_with_the_same_key_returns_the_first_result,
    the_same_key_with_different_content_is_rejected,
    concurrent_retries_create_exactly_one_credential,
);
