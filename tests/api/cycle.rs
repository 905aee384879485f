use credvault::proto::{self as pb, credential_secret::Secret};
use tonic::Code;

use crate::helpers::*;

async fn a_credential_goes_through_store_list_get_summary_and_delete(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;

    // Store
    let mut request = store_request(&app.customer_id, "Production AWS", aws("AKIAEXAMPLE", "wJalr/secret"));
    request.permissions = pb::Permission::ReadWrite as i32;
    let stored = app.store(request).await.unwrap();
    assert_eq!(stored.provider, pb::Provider::Aws as i32);
    assert_eq!(stored.credential_name, "Production AWS");
    assert_eq!(stored.credential_type, "access_key");
    assert_eq!(stored.permissions, pb::Permission::ReadWrite as i32);
    assert!(stored.is_active && !stored.is_verified && !stored.is_default);
    assert_eq!(stored.usage_count, 0);
    assert!(stored.last_used_at.is_none());
    assert_eq!(stored.created_at, stored.updated_at);

    // List: metadata only
    let listed = app
        .list(pb::ListRequest { customer_id: app.customer_id.clone(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(listed.credentials, vec![stored.clone()]);
    assert!(listed.next_page_token.is_empty());

    // Get twice: the secret comes back, and each use is counted and audited
    let first = app.get_by_id(&stored.id).await.unwrap();
    let Some(Secret::Aws(secret)) = first.secret.unwrap().secret else { panic!("expected an AWS secret") };
    assert_eq!(secret.access_key_id, "AKIAEXAMPLE");
    assert_eq!(secret.secret_access_key, "wJalr/secret");
    assert_eq!(secret.session_token, None);
    assert_eq!(first.credential.as_ref().unwrap().usage_count, 1);
    let second = app.get_by_provider(&app.customer_id, pb::Provider::Aws).await.unwrap();
    let second = second.credential.unwrap();
    assert_eq!(second.usage_count, 2);
    assert!(second.last_used_at.is_some());

    // Summary
    app.store_vultr("Production Vultr", "vultr-key").await;
    let summary = app.summary().await;
    assert_eq!(summary.customer_id, app.customer_id);
    assert_eq!(summary.total_credentials, 2);
    let providers: Vec<(i32, i64, i64, i64, usize)> = summary
        .providers
        .iter()
        .map(|p| (p.provider, p.total, p.active, p.verified, p.credentials.len()))
        .collect();
    assert_eq!(
        providers,
        vec![(pb::Provider::Vultr as i32, 1, 1, 0, 1), (pb::Provider::Aws as i32, 1, 1, 0, 1)]
    );

    // Delete: soft, the row stays inactive
    let deleted = app.delete(&stored.id).await.unwrap();
    assert!(!deleted.is_active);
    assert_eq!(deleted.usage_count, 2);
    assert_status(app.get_by_id(&stored.id).await, Code::NotFound, "no active credential");
    assert_status(app.delete(&stored.id).await, Code::NotFound, "already deleted");
    let active = app
        .list(pb::ListRequest { customer_id: app.customer_id.clone(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(active.credentials.len(), 1);
    let all = app
        .list(pb::ListRequest {
            customer_id: app.customer_id.clone(),
            include_inactive: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.credentials.len(), 2);
    let summary = app.summary().await;
    let aws = summary.providers.iter().find(|p| p.provider == pb::Provider::Aws as i32).unwrap();
    assert_eq!((aws.total, aws.active), (1, 0));
    assert_eq!(aws.next_page_token, "", "all listed");

    // One credential per provider listed: the token continues List by provider from there.
    let newer = app.store_vultr("Second Vultr", "vultr-key-2").await;
    let summary = app
        .client
        .clone()
        .summary(pb::SummaryRequest { customer_id: app.customer_id.clone(), credentials_per_provider: 1 })
        .await
        .unwrap()
        .into_inner();
    let vultr = summary.providers.iter().find(|p| p.provider == pb::Provider::Vultr as i32).unwrap();
    assert_eq!((vultr.total, vultr.credentials.len()), (2, 1));
    assert_eq!(vultr.credentials[0].id, newer.id, "newest first");
    let rest = app
        .list(pb::ListRequest {
            customer_id: app.customer_id.clone(),
            provider: pb::Provider::Vultr as i32,
            include_inactive: true,
            page_token: vultr.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.credentials.len(), 1);
    assert_ne!(rest.credentials[0].id, newer.id);
    let negative = app
        .client
        .clone()
        .summary(pb::SummaryRequest { customer_id: app.customer_id.clone(), credentials_per_provider: -1 })
        .await;
    assert_status(negative, Code::InvalidArgument, "credentials_per_provider");
    let row_count = app.db().await.credential_rows(&stored.id).await;
    assert_eq!(row_count, 1, "soft delete keeps the row");

    // Every change has exactly its audit row
    assert_eq!(app.audit_actions(&stored.id).await, vec!["created", "used", "used", "deleted"]);
}

async fn a_deleted_name_can_be_reused_but_an_active_one_cannot(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let first = app.store_vultr("Primary", "k1").await;
    let dup = app.store(store_request(&app.customer_id, "Primary", vultr("k2"))).await;
    assert_status(dup, Code::AlreadyExists, "already has an active vultr credential named \"Primary\"");
    // Same name for another provider, or another customer, is fine.
    app.store(store_request(&app.customer_id, "Primary", aws("AKIA", "s"))).await.unwrap();
    let other = app.create_customer().await;
    app.store(store_request(&other, "Primary", vultr("k3"))).await.unwrap();

    app.delete(&first.id).await.unwrap();
    let again = app.store(store_request(&app.customer_id, "Primary", vultr("k4"))).await.unwrap();
    assert_ne!(again.id, first.id);
    let got = app.get_by_provider(&app.customer_id, pb::Provider::Vultr).await.unwrap();
    let Some(Secret::Vultr(v)) = got.secret.unwrap().secret else { panic!() };
    assert_eq!(v.api_key, "k4");
}

async fn every_provider_round_trips_its_typed_secret(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let session = Secret::Aws(pb::AwsSecret {
        access_key_id: "ASIATEMP".into(),
        secret_access_key: "s3cr3t".into(),
        session_token: Some("FwoGZXIvYXdzE...".into()),
    });
    let full_azure = Secret::Azure(pb::AzureSecret {
        tenant_id: "t".into(),
        client_id: "c".into(),
        client_secret: "cs".into(),
        subscription_id: Some("sub-1".into()),
    });
    for (name, secret) in [
        ("v", vultr("vk")),
        ("a", session),
        ("g", gcp(SERVICE_ACCOUNT_JSON)),
        ("z", full_azure),
        ("z2", azure("only-secret")),
    ] {
        let stored = app.store(store_request(&app.customer_id, name, secret.clone())).await.unwrap();
        let got = app.get_by_id(&stored.id).await.unwrap();
        assert_eq!(got.secret.unwrap().secret, Some(secret), "{name}");
    }
}

backend_tests!(
    a_credential_goes_through_store_list_get_summary_and_delete,
    a_deleted_name_can_be_reused_but_an_active_one_cannot,
    every_provider_round_trips_its_typed_secret,
);

/// Concurrent Gets share commits on SQLite (group commit); each still counts once, has its own
/// `used` row, and a Delete racing them leaves the count equal to the secrets handed out.
#[tokio::test]
async fn grouped_uses_on_sqlite_count_exactly_and_survive_a_racing_delete() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let stored = app.store_vultr("Busy", "busy-key").await;
    let mut gets = Vec::new();
    for _ in 0..120 {
        let mut client = app.client.clone();
        let request = get_by_id(&stored.id);
        gets.push(tokio::spawn(async move { client.get(request).await }));
    }
    let mut client = app.client.clone();
    let delete = pb::DeleteRequest { credential_id: stored.id.clone() };
    let deleted = tokio::spawn(async move { client.delete(delete).await });
    let mut served = 0i64;
    for task in gets {
        match task.await.unwrap() {
            Ok(got) => {
                assert_eq!(got.into_inner().secret.unwrap().secret, Some(vultr("busy-key")));
                served += 1;
            }
            Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
        }
    }
    deleted.await.unwrap().expect("the delete succeeds");
    let all = app
        .list(pb::ListRequest {
            customer_id: app.customer_id.clone(),
            include_inactive: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.credentials[0].usage_count, served);
    let actions = app.audit_actions(&stored.id).await;
    assert_eq!(i64::try_from(actions.iter().filter(|a| *a == "used").count()).unwrap(), served);
    assert_eq!(actions.iter().filter(|a| *a == "deleted").count(), 1);
}

/// On SQLite, Gets' uses commit on the group committer's own connection and every other write
/// on the store's writer: both take turns, so Stores (which read before they write) and Gets
/// racing each other all succeed, and each Get counts once.
#[tokio::test]
async fn gets_and_stores_racing_on_sqlite_all_succeed_and_count_exactly() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let stored = app.store_vultr("Shared", "shared-key").await;
    let mut gets = Vec::new();
    let mut stores = Vec::new();
    for i in 0..80 {
        let mut client = app.client.clone();
        let request = get_by_id(&stored.id);
        gets.push(tokio::spawn(async move { client.get(request).await }));
        if i % 2 == 0 {
            let mut client = app.client.clone();
            let request = store_request(&app.customer_id, &format!("Racer {i}"), vultr("racer-key"));
            stores.push(tokio::spawn(async move { client.store(request).await }));
        }
    }
    for task in gets {
        let got = task.await.unwrap().expect("every Get succeeds");
        assert_eq!(got.into_inner().secret.unwrap().secret, Some(vultr("shared-key")));
    }
    for task in stores {
        task.await.unwrap().expect("every Store succeeds");
    }
    let all = app
        .list(pb::ListRequest { customer_id: app.customer_id.clone(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(all.credentials.len(), 41);
    let shared = all.credentials.iter().find(|c| c.id == stored.id).unwrap();
    assert_eq!(shared.usage_count, 80);
    let actions = app.audit_actions(&stored.id).await;
    assert_eq!(actions.iter().filter(|a| *a == "used").count(), 80);
}

/// On SQLite, a Get's use is counted by its row in the use journal; moving the journal adds its
/// uses to the credential's stored count. Every answer counts every use exactly once, before and
/// after a move, whoever moved the journal: an audited write of this server, or another process.
#[tokio::test]
async fn on_sqlite_uses_in_the_journal_count_in_every_answer_and_move_into_the_stored_count_once() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let stored = app.store_vultr("Counted", "counted-key").await;
    let db = app.db().await;
    let stored_count = || async {
        let db = app.db().await;
        (
            db.count("SELECT usage_count FROM cloud_credentials WHERE credential_name = 'Counted'").await,
            db.count("SELECT count(*) FROM credential_use_journal").await,
        )
    };
    let usage = |credentials: &[pb::Credential]| {
        let counted = credentials.iter().find(|c| c.id == stored.id).expect("listed");
        (counted.usage_count, counted.last_used_at)
    };
    let list_all = || async {
        app.list(pb::ListRequest {
            customer_id: app.customer_id.clone(),
            include_inactive: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .credentials
    };

    assert_eq!(app.get_by_id(&stored.id).await.unwrap().credential.unwrap().usage_count, 1);
    let second = app.get_by_id(&stored.id).await.unwrap().credential.unwrap();
    assert_eq!(second.usage_count, 2);
    assert_eq!(stored_count().await, (0, 2), "the uses are still in the journal");
    assert_eq!(usage(&list_all().await), (2, second.last_used_at), "List counts the journal in");
    let summary = app.summary().await;
    let in_summary: Vec<_> = summary.providers.iter().flat_map(|p| p.credentials.clone()).collect();
    assert_eq!(usage(&in_summary), (2, second.last_used_at), "Summary counts the journal in");

    // An audited write on the store's writer connection moves the journal.
    app.store_vultr("Another", "another-key").await;
    assert_eq!(stored_count().await, (2, 0), "moved and counted once");
    assert_eq!(usage(&list_all().await), (2, second.last_used_at));
    let third = app.get_by_id(&stored.id).await.unwrap().credential.unwrap();
    assert_eq!(third.usage_count, 3, "the committer saw the journal move");
    let instant = |t: &Option<prost_types::Timestamp>| t.map(|t| (t.seconds, t.nanos));
    assert!(instant(&third.last_used_at) > instant(&second.last_used_at));

    // Another process moves the journal: `credvault audit verify` reads the whole log.
    app.get_by_id(&stored.id).await.unwrap();
    let verified = credvault(&app.database_url, &app.key, &["audit", "verify"]).await;
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    assert_eq!(stored_count().await, (4, 0), "the other process moved the journal");
    assert_eq!(app.get_by_id(&stored.id).await.unwrap().credential.unwrap().usage_count, 5);

    // A delete answers with every use counted, and so does List after it.
    let deleted = app.delete(&stored.id).await.unwrap();
    assert_eq!(deleted.usage_count, 5);
    assert_eq!(stored_count().await, (5, 0));
    assert_eq!(list_all().await.iter().find(|c| c.id == stored.id).unwrap().usage_count, 5);
    let used = db.count("SELECT count(*) FROM credential_audit_log WHERE action = 'used'").await;
    assert_eq!(used, 5, "each use audited once");
}

/// On PostgreSQL, a Get's use is counted in `credential_uses` (migration 0014): the credential's
/// row is locked while the claim is checked, never rewritten (a new version of it would clear
/// its page's all-visible bit, which Summary's index-only count depends on), and every answer
/// counts the row's stored count (one written before 0014, or by an import) and the uses beside
/// it together, whether the use committed alone or in a group.
#[tokio::test]
async fn on_postgres_a_use_locks_the_credentials_row_and_is_counted_beside_it() {
    let app = TestApp::spawn_on(Backend::Postgres).await;
    let stored = app.store_vultr("Counted", "counted-key").await;
    let db = app.db().await;
    db.execute(
        "UPDATE cloud_credentials SET usage_count = 7, last_used_at = '2020-01-01T00:00:00Z' \
         WHERE credential_name = 'Counted'",
    )
    .await;
    let row_version = || async {
        app.db()
            .await
            .texts("SELECT xmin::text || ' ' || ctid::text FROM cloud_credentials WHERE credential_name = 'Counted'".into())
            .await
    };
    let before = row_version().await;
    let usage = |credentials: &[pb::Credential]| {
        let counted = credentials.iter().find(|c| c.id == stored.id).expect("listed");
        (counted.usage_count, counted.last_used_at.map(|t| t.seconds))
    };

    let first = app.get_by_id(&stored.id).await.unwrap().credential.unwrap();
    assert_eq!(first.usage_count, 8, "the stored 7 and this use");
    let first_used = first.last_used_at.expect("used").seconds;
    assert!(first_used > 1_577_836_800, "the later of the stored time and this use's");
    let at_once = tokio::join!(
        app.get_by_id(&stored.id),
        app.get_by_id(&stored.id),
        app.get_by_id(&stored.id),
        app.get_by_id(&stored.id),
    );
    let mut counts: Vec<_> = [at_once.0, at_once.1, at_once.2, at_once.3]
        .into_iter()
        .map(|got| got.unwrap().credential.unwrap().usage_count)
        .collect();
    counts.sort_unstable();
    assert_eq!(counts[3], 12, "each use counted once");
    assert!(counts[0] >= 9, "every answer counts the uses committed before it: {counts:?}");

    assert_eq!(row_version().await, before, "no Get wrote a new version of the credential's row");
    assert_eq!(
        db.count("SELECT usage_count FROM cloud_credentials WHERE credential_name = 'Counted'").await,
        7
    );
    assert_eq!(db.count("SELECT uses FROM credential_uses").await, 5);

    let listed = app
        .list(pb::ListRequest { customer_id: app.customer_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .credentials;
    assert_eq!(usage(&listed).0, 12, "List counts the uses in");
    assert!(usage(&listed).1 >= Some(first_used));
    let summary = app.summary().await;
    let in_summary: Vec<_> = summary.providers.iter().flat_map(|p| p.credentials.clone()).collect();
    assert_eq!(usage(&in_summary), usage(&listed), "Summary counts them in too");
    let deleted = app.delete(&stored.id).await.unwrap();
    assert_eq!((deleted.usage_count, deleted.last_used_at.map(|t| t.seconds)), usage(&listed));
    let used = db.count("SELECT count(*) FROM credential_audit_log WHERE action = 'used'").await;
    assert_eq!(used, 5, "each use audited once");
}
