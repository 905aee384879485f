use std::collections::HashSet;

use credvault::proto as pb;

use crate::helpers::*;

async fn list_pages_newest_first_without_gaps_or_repeats(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let mut stored = Vec::new();
    for i in 0..7 {
        stored.push(app.store_vultr(&format!("v{i}"), "k").await.id);
    }
    stored.reverse(); // newest first

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = app
            .list(pb::ListRequest {
                customer_id: app.customer_id.clone(),
                page_size: 3,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.credentials.len() <= 3);
        seen.extend(page.credentials.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, stored);
}

async fn list_filters_by_provider_and_hides_deleted_unless_asked(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let c = app.customer_id.clone();
    let v = app.store_vultr("v", "k").await;
    let a = app.store(store_request(&c, "a", aws("AKIA", "s"))).await.unwrap();
    let g = app.store(store_request(&c, "g", gcp(SERVICE_ACCOUNT_JSON))).await.unwrap();
    app.delete(&g.id).await.unwrap();
    // Another customer's credentials never show.
    let other = app.create_customer().await;
    app.store(store_request(&other, "theirs", vultr("k"))).await.unwrap();

    let ids = |r: pb::ListResponse| r.credentials.into_iter().map(|c| c.id).collect::<HashSet<_>>();
    let all_active =
        app.list(pb::ListRequest { customer_id: c.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(ids(all_active), HashSet::from([v.id.clone(), a.id.clone()]));
    let only_aws = app
        .list(pb::ListRequest {
            customer_id: c.clone(),
            provider: pb::Provider::Aws as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(only_aws), HashSet::from([a.id.clone()]));
    let gcp_with_deleted = app
        .list(pb::ListRequest {
            customer_id: c.clone(),
            provider: pb::Provider::Gcp as i32,
            include_inactive: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(gcp_with_deleted.credentials.len(), 1);
    assert!(!gcp_with_deleted.credentials[0].is_active);
    // A known customer with nothing stored gets an empty list, not an error.
    let empty = app.create_customer().await;
    let none = app.list(pb::ListRequest { customer_id: empty, ..Default::default() }).await.unwrap();
    assert!(none.credentials.is_empty() && none.next_page_token.is_empty());
}

backend_tests!(
    list_pages_newest_first_without_gaps_or_repeats,
    list_filters_by_provider_and_hides_deleted_unless_asked,
);
