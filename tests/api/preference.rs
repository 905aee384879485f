//! Get by (customer, provider): the default if any, else the newest verified, else the newest.

use credvault::proto::{self as pb, credential_secret::Secret};

use crate::helpers::*;

async fn fetched_key(app: &TestApp) -> String {
    let got = app.get_by_provider(&app.customer_id, pb::Provider::Vultr).await.unwrap();
    match got.secret.unwrap().secret {
        Some(Secret::Vultr(v)) => v.api_key,
        other => panic!("expected a Vultr secret, got {other:?}"),
    }
}

/// Marks a credential verified behind the server's back, as a definite Verify would.
async fn mark_verified(app: &TestApp, credential: &pb::Credential) {
    let sql = format!("UPDATE cloud_credentials SET is_verified = true WHERE id = '{}'", credential.id);
    assert_eq!(app.db().await.execute(&sql).await, 1);
}

async fn without_default_or_verification_the_newest_wins(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    app.store_vultr("old", "old-key").await;
    app.store_vultr("new", "new-key").await;
    assert_eq!(fetched_key(&app).await, "new-key");
}

async fn the_newest_verified_beats_a_newer_unverified_one(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let older = app.store_vultr("older", "older-verified").await;
    let old = app.store_vultr("old", "old-verified").await;
    app.store_vultr("newest", "newest-unverified").await;
    mark_verified(&app, &older).await;
    mark_verified(&app, &old).await;
    assert_eq!(fetched_key(&app).await, "old-verified");
}

async fn an_explicit_default_beats_everything_and_moves_with_the_latest_choice(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let c = app.customer_id.clone();
    let chosen = pb::StoreRequest { make_default: true, ..store_request(&c, "chosen", vultr("chosen-key")) };
    let chosen = app.store(chosen).await.unwrap();
    assert!(chosen.is_default);
    let verified = app.store_vultr("verified", "verified-key").await;
    mark_verified(&app, &verified).await;
    app.store_vultr("newest", "newest-key").await;
    assert_eq!(fetched_key(&app).await, "chosen-key");

    // A new default replaces the old one.
    let next = pb::StoreRequest { make_default: true, ..store_request(&c, "next", vultr("next-key")) };
    app.store(next).await.unwrap();
    assert_eq!(fetched_key(&app).await, "next-key");
    let listed = app.list(pb::ListRequest { customer_id: c.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(listed.credentials.iter().filter(|c| c.is_default).count(), 1);

    // Deleting the default falls back to the rule: newest verified.
    let default_id = listed.credentials.iter().find(|c| c.is_default).unwrap().id.clone();
    app.delete(&default_id).await.unwrap();
    assert_eq!(fetched_key(&app).await, "verified-key");
}

async fn deleted_credentials_are_never_preferred(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    app.store_vultr("keep", "keep-key").await;
    let newest = app.store_vultr("gone", "gone-key").await;
    app.delete(&newest.id).await.unwrap();
    assert_eq!(fetched_key(&app).await, "keep-key");
}

backend_tests!(
    without_default_or_verification_the_newest_wins,
    the_newest_verified_beats_a_newer_unverified_one,
    an_explicit_default_beats_everything_and_moves_with_the_latest_choice,
    deleted_credentials_are_never_preferred,
);
