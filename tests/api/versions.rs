//! Credential versions over gRPC, on both backends: rotation, the version Get hands out,
//! disable / enable / destroy, etags, bad input, other customers, and vaults written before
//! versions existed.

use credvault::proto::{self as pb, credential_secret::Secret};
use tonic::Code;

use crate::helpers::*;

fn add(id: &str, api_key: &str) -> pb::AddVersionRequest {
    pb::AddVersionRequest {
        credential_id: id.to_owned(),
        secret: Some(pb::CredentialSecret { secret: Some(vultr(api_key)) }),
        ..Default::default()
    }
}

/// The requests of the three version changes share their fields.
trait VersionRequest {
    fn of(credential_id: String, version: u32, etag: String) -> Self;
}

macro_rules! version_request {
    ($($t:ty),*) => {$(
        impl VersionRequest for $t {
            fn of(credential_id: String, version: u32, etag: String) -> Self {
                Self { credential_id, version, etag }
            }
        }
    )*};
}
version_request!(pb::DisableVersionRequest, pb::EnableVersionRequest, pb::DestroyVersionRequest);

fn get_version(id: &str, n: u32) -> pb::GetRequest {
    pb::GetRequest { version: n, ..get_by_id(id) }
}

pub fn vultr_key(response: &pb::GetResponse) -> String {
    match response.secret.as_ref().and_then(|s| s.secret.as_ref()) {
        Some(Secret::Vultr(v)) => v.api_key.clone(),
        other => panic!("expected a Vultr secret, got {other:?}"),
    }
}

fn states(listed: &pb::ListVersionsResponse) -> Vec<(u32, i32)> {
    listed.versions.iter().map(|v| (v.version, v.state)).collect()
}

const ENABLED: i32 = pb::VersionState::Enabled as i32;
const DISABLED: i32 = pb::VersionState::Disabled as i32;
const DESTROYED: i32 = pb::VersionState::Destroyed as i32;

async fn a_credential_is_rotated_and_its_versions_change_state(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let mut client = app.client.clone();
    let stored = app.store_vultr("Rotating", "key-one").await;
    assert_eq!((stored.current_version, stored.version_count), (1, 1));
    assert!(stored.rotated_at.is_some() && !stored.etag.is_empty());
    let first = app.get_by_id(&stored.id).await.unwrap();
    assert_eq!((first.version, vultr_key(&first).as_str()), (1, "key-one"));

    // Rotation: same id, a new current version; the old one is still there, and enabled.
    let rotated = client.add_version(add(&stored.id, "key-two")).await.unwrap().into_inner();
    let credential = rotated.credential.unwrap();
    assert_eq!(
        (credential.id.as_str(), credential.current_version, credential.version_count),
        (stored.id.as_str(), 2, 2)
    );
    assert_ne!(credential.etag, stored.etag, "a rotation changes the etag");
    let added = rotated.version.unwrap();
    assert_eq!((added.version, added.state), (2, ENABLED));
    assert!(added.created_by.starts_with("test-"), "the acting token: {}", added.created_by);
    let current = app.get_by_id(&stored.id).await.unwrap();
    assert_eq!(
        (current.version, vultr_key(&current).as_str()),
        (2, "key-two"),
        "Get hands out the new version"
    );
    let old = client.get(get_version(&stored.id, 1)).await.unwrap().into_inner();
    assert_eq!((old.version, vultr_key(&old).as_str()), (1, "key-one"));
    let by_provider = app.get_by_provider(&app.customer_id, pb::Provider::Vultr).await.unwrap();
    assert_eq!(by_provider.version, 2);

    // Rotation that disables the previous version.
    let mut third = add(&stored.id, "key-three");
    third.disable_previous = true;
    client.add_version(third).await.unwrap();
    assert_status(
        client.get(get_version(&stored.id, 2)).await,
        Code::FailedPrecondition,
        "version 2 of credential",
    );
    let listed = client
        .list_versions(pb::ListVersionsRequest { credential_id: stored.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(states(&listed), vec![(3, ENABLED), (2, DISABLED), (1, ENABLED)], "newest first");
    let page = client
        .list_versions(pb::ListVersionsRequest {
            credential_id: stored.id.clone(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(states(&page), vec![(3, ENABLED), (2, DISABLED)]);
    let rest = client
        .list_versions(pb::ListVersionsRequest {
            credential_id: stored.id.clone(),
            page_size: 2,
            page_token: page.next_page_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((states(&rest), rest.next_page_token.as_str()), (vec![(1, ENABLED)], ""));

    // Disabling the current version makes the newest enabled one before it current.
    let disabled = client
        .disable_version(pb::DisableVersionRequest::of(stored.id.clone(), 3, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (disabled.credential.unwrap().current_version, disabled.version.unwrap().state),
        (1, DISABLED)
    );
    assert_eq!(app.get_by_id(&stored.id).await.unwrap().version, 1);
    let enabled = client
        .enable_version(pb::EnableVersionRequest::of(stored.id.clone(), 2, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(enabled.credential.unwrap().current_version, 2);
    // Repeating a change that is in effect writes nothing.
    let before = app.audit_actions(&stored.id).await.len();
    let again = client
        .enable_version(pb::EnableVersionRequest::of(stored.id.clone(), 2, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.version.unwrap().state, ENABLED);
    assert_eq!(app.audit_actions(&stored.id).await.len(), before, "a no-op is not audited");

    // Destroy: the ciphertext goes in the same transaction, for good.
    let destroyed = client
        .destroy_version(pb::DestroyVersionRequest::of(stored.id.clone(), 3, String::new()))
        .await
        .unwrap()
        .into_inner();
    let destroyed_version = destroyed.version.unwrap();
    assert_eq!(destroyed_version.state, DESTROYED);
    assert!(destroyed_version.destroyed_at.is_some());
    let db = app.db().await;
    let sql = format!(
        "SELECT count(*) FROM credential_versions WHERE encrypted_credentials IS NULL AND version = 3 \
         AND credential_id = '{}'",
        stored.id
    );
    assert_eq!(db.count_owned(sql).await, 1, "no ciphertext is left for version 3");
    assert_status(
        client.enable_version(pb::EnableVersionRequest::of(stored.id.clone(), 3, String::new())).await,
        Code::FailedPrecondition,
        "was destroyed",
    );
    assert_status(
        client.disable_version(pb::DisableVersionRequest::of(stored.id.clone(), 3, String::new())).await,
        Code::FailedPrecondition,
        "was destroyed",
    );
    assert_status(client.get(get_version(&stored.id, 3)).await, Code::FailedPrecondition, "is destroyed");
    assert_status(client.get(get_version(&stored.id, 9)).await, Code::NotFound, "has no version 9");
    assert_status(
        client.enable_version(pb::EnableVersionRequest::of(stored.id.clone(), 9, String::new())).await,
        Code::NotFound,
        "version 9",
    );

    // No enabled version: Get says what to do.
    client.disable_version(pb::DisableVersionRequest::of(stored.id.clone(), 2, String::new())).await.unwrap();
    client.disable_version(pb::DisableVersionRequest::of(stored.id.clone(), 1, String::new())).await.unwrap();
    assert_status(app.get_by_id(&stored.id).await, Code::FailedPrecondition, "has no enabled version");
    let listed = app
        .list(pb::ListRequest { customer_id: app.customer_id.clone(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!((listed.credentials[0].current_version, listed.credentials[0].rotated_at), (0, None));
    let summary = client
        .summary(pb::SummaryRequest { customer_id: app.customer_id.clone(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(summary.into_inner().providers[0].disabled, 1, "Summary counts it as disabled");

    let actions = app.audit_actions(&stored.id).await;
    for action in ["rotated", "version_disabled", "version_enabled", "version_destroyed"] {
        assert!(actions.iter().any(|a| a == action), "{action} missing from {actions:?}");
    }
}

async fn etags_make_changes_conditional_and_one_concurrent_rotation_wins(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let mut client = app.client.clone();
    let stored = app.store_vultr("Etagged", "key-one").await;

    let mut stale = add(&stored.id, "key-two");
    stale.etag = "r999".into();
    assert_status(client.add_version(stale).await, Code::Aborted, "read it again");
    let stale = pb::DisableVersionRequest::of(stored.id.clone(), 1, "r999".into());
    assert_status(client.disable_version(stale).await, Code::Aborted, "changed since it was read");
    assert_eq!(app.get_by_id(&stored.id).await.unwrap().version, 1, "nothing was written");

    // Many AddVersions carrying the etag they read: exactly one wins.
    let attempts = (0..6).map(|i| {
        let mut client = client.clone();
        let mut request = add(&stored.id, &format!("racer-{i}"));
        request.etag = stored.etag.clone();
        tokio::spawn(async move { client.add_version(request).await })
    });
    let mut won = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => won += 1,
            Err(status) => assert_eq!(status.code(), Code::Aborted, "{status:?}"),
        }
    }
    assert_eq!(won, 1);
    // Without an etag, concurrent rotations all land, each with its own number.
    let attempts = (0..4).map(|i| {
        let mut client = client.clone();
        let request = add(&stored.id, &format!("free-{i}"));
        tokio::spawn(async move { client.add_version(request).await.unwrap().into_inner() })
    });
    let mut numbers = Vec::new();
    for attempt in attempts {
        numbers.push(attempt.await.unwrap().version.unwrap().version);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, vec![3, 4, 5, 6]);

    // Idempotent rotation: a retry replays, other content under the key is refused.
    let mut keyed = add(&stored.id, "keyed");
    keyed.idempotency_key = "rotate-once".into();
    let first = client.add_version(keyed.clone()).await.unwrap().into_inner();
    let replay = client.add_version(keyed.clone()).await.unwrap().into_inner();
    assert!(!first.replayed && replay.replayed);
    assert_eq!(replay.version.unwrap().version, first.version.unwrap().version);
    keyed.secret = Some(pb::CredentialSecret { secret: Some(vultr("something else")) });
    assert_invalid_field(client.add_version(keyed).await, "idempotency_key", "already used");
}

async fn bad_version_requests_are_refused_and_write_nothing(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let mut client = app.client.clone();
    let stored = app.store_vultr("Strict", "key-one").await;

    let mut other_provider = add(&stored.id, "x");
    other_provider.secret = Some(pb::CredentialSecret { secret: Some(aws("AKIA", "s")) });
    assert_invalid_field(client.add_version(other_provider).await, "secret", "keeps the provider");
    let mut bad_etag = add(&stored.id, "x");
    bad_etag.etag = "\"W/abc\"".into();
    assert_invalid_field(client.add_version(bad_etag).await, "etag", "is not an etag");
    assert_invalid_field(
        client.disable_version(pb::DisableVersionRequest::of(stored.id.clone(), 0, String::new())).await,
        "version",
        "is required",
    );
    assert_invalid_field(client.add_version(add("not-a-uuid", "x")).await, "credential_id", "");
    let mut no_secret = add(&stored.id, "x");
    no_secret.secret = None;
    assert_invalid_field(client.add_version(no_secret).await, "secret", "");
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_status(client.add_version(add(&unknown, "x")).await, Code::NotFound, "no active credential");
    assert_status(
        client
            .list_versions(pb::ListVersionsRequest {
                credential_id: stored.id.clone(),
                page_token: "garbage".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "page_token",
    );
    let listed = client
        .list_versions(pb::ListVersionsRequest { credential_id: stored.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(states(&listed), vec![(1, ENABLED)], "nothing was written");

    // Another customer's credential is as absent as an unknown one, and the attempt is audited.
    let other = app.create_customer().await;
    let (_, token) = app.token("credentials:write,credentials:read", &other, None).await;
    let mut outsider = app.client_with(Some(&token)).await;
    assert_status(outsider.add_version(add(&stored.id, "x")).await, Code::NotFound, "no active credential");
    assert_status(
        outsider.destroy_version(pb::DestroyVersionRequest::of(stored.id.clone(), 1, String::new())).await,
        Code::NotFound,
        "no active credential",
    );
    assert_status(
        outsider
            .list_versions(pb::ListVersionsRequest { credential_id: stored.id.clone(), ..Default::default() })
            .await,
        Code::NotFound,
        "no active credential",
    );
    let denied = app.audit_actions(&stored.id).await.iter().filter(|a| *a == "denied").count();
    assert_eq!(denied, 3, "every refused attempt is audited");
    // A token without credentials:write cannot rotate.
    let (_, reader) = app.token("credentials:read", &app.customer_id, None).await;
    let mut reader = app.client_with(Some(&reader)).await;
    assert_status(
        reader.add_version(add(&stored.id, "x")).await,
        Code::PermissionDenied,
        "credentials:write",
    );
    assert_status(
        reader.disable_version(pb::DisableVersionRequest::of(stored.id.clone(), 1, String::new())).await,
        Code::PermissionDenied,
        "credentials:write",
    );
    assert_eq!(app.get_by_id(&stored.id).await.unwrap().version, 1);
}

backend_tests!(
    a_credential_is_rotated_and_its_versions_change_state,
    etags_make_changes_conditional_and_one_concurrent_rotation_wins,
    bad_version_requests_are_refused_and_write_nothing,
    a_vault_from_before_versions_opens_unchanged,
    a_credentials_metadata_changes_in_place,
    a_get_racing_rotations_returns_one_whole_version,
);

/// Get's cache never serves a version another instance disabled or superseded.
#[tokio::test]
async fn another_instances_change_reaches_the_get_cache() {
    let app = TestApp::spawn_on(Backend::Postgres).await;
    let other = app.another_instance().await;
    let stored = app.store_vultr("Shared", "key-one").await;
    let mut other_client = other.client.clone();
    other_client.add_version(add(&stored.id, "key-two")).await.unwrap();
    assert_eq!(
        vultr_key(&app.get_by_id(&stored.id).await.unwrap()),
        "key-two",
        "cached on the first instance"
    );
    other_client.add_version(add(&stored.id, "key-three")).await.unwrap();
    assert_eq!(vultr_key(&app.get_by_id(&stored.id).await.unwrap()), "key-three", "superseded");
    other_client
        .disable_version(pb::DisableVersionRequest::of(stored.id.clone(), 3, String::new()))
        .await
        .unwrap();
    assert_eq!(vultr_key(&app.get_by_id(&stored.id).await.unwrap()), "key-two", "disabled");
    other_client
        .destroy_version(pb::DestroyVersionRequest::of(stored.id.clone(), 2, String::new()))
        .await
        .unwrap();
    assert_eq!(vultr_key(&app.get_by_id(&stored.id).await.unwrap()), "key-one", "destroyed");
}

/// The fixtures in tests/fixtures/before-versions, written by the release before versions.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/before-versions");

fn fixture_key() -> String {
    std::fs::read_to_string(format!("{FIXTURES}/master-key.b64")).unwrap().trim().to_owned()
}

/// A vault written before versions: every credential is version 1, opens with the key it was
/// written with (no secret was rewritten), and takes new versions.
async fn a_vault_from_before_versions_opens_unchanged(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (url, customer) = match backend {
        Backend::Sqlite => {
            // The vault's SQL dump (a database file in the repository is a binary nobody can review).
            let dump = std::fs::read_to_string(format!("{FIXTURES}/sqlite.sql")).unwrap();
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(db_path(dir.path()))
                .create_if_missing(true)
                // The dump lists tables by name, not in the order their references need.
                .foreign_keys(false);
            let mut conn =
                <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(dump)).execute(&mut conn).await.unwrap();
            sqlx::Connection::close(conn).await.unwrap();
            (
                format!("sqlite://{}", db_path(dir.path()).display()),
                credvault::domain::DEMO_CUSTOMER_ID.to_owned(),
            )
        }
        Backend::Postgres => {
            let url = crate::pg::fresh_database(&crate::pg::shared().admin_url()).await;
            let dump = std::fs::read_to_string(format!("{FIXTURES}/postgres.sql")).unwrap();
            // What psql would run: its meta-commands (\restrict) are for psql itself.
            let sql: String =
                dump.lines().filter(|l| !l.starts_with('\\')).map(|l| format!("{l}\n")).collect();
            // A connection of its own: the dump empties its search_path.
            crate::db::TestDb::connect(&url).await.execute(&sql).await;
            (url, "c2f85e5d-e78f-463c-b991-e4cd3964cce4".to_owned())
        }
    };
    let mut app = TestApp::start(backend, url, dir, fixture_key()).await.expect("the old vault opens");
    app.customer_id = customer;
    let listed = app
        .list(pb::ListRequest {
            customer_id: app.customer_id.clone(),
            include_inactive: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.credentials.len(), 3);
    for credential in &listed.credentials {
        assert_eq!(
            (credential.current_version, credential.version_count),
            (1, 1),
            "{}",
            credential.credential_name
        );
        assert_eq!(credential.rotated_at, credential.created_at);
    }
    let named = |name: &str| listed.credentials.iter().find(|c| c.credential_name == name).unwrap().clone();

    let vultr = app.get_by_id(&named("Production Vultr").id).await.unwrap();
    assert_eq!((vultr.version, vultr_key(&vultr).as_str()), (1, "VULTR-KEY-WRITTEN-BEFORE-VERSIONS"));
    let aws = app.get_by_provider(&app.customer_id, pb::Provider::Aws).await.unwrap();
    let Some(Secret::Aws(secret)) = aws.secret.unwrap().secret else { panic!("expected the AWS secret") };
    assert_eq!(
        (secret.access_key_id.as_str(), secret.secret_access_key.as_str()),
        ("AKIAFIXTURE", "fixture-secret")
    );
    assert_status(app.get_by_id(&named("Deleted Azure").id).await, Code::NotFound, "no active credential");

    // The old blob is version 1's, and only version 1's; new versions bind their number.
    let id = named("Production Vultr").id;
    let mut client = app.client.clone();
    client.add_version(add(&id, "rotated-after-upgrade")).await.unwrap();
    assert_eq!(vultr_key(&app.get_by_id(&id).await.unwrap()), "rotated-after-upgrade");
    let old = client.get(get_version(&id, 1)).await.unwrap().into_inner();
    assert_eq!(vultr_key(&old), "VULTR-KEY-WRITTEN-BEFORE-VERSIONS");
    let db = app.db().await;
    let sql = format!("SELECT count(*) FROM credential_versions WHERE credential_id = '{id}'");
    assert_eq!(db.count_owned(sql).await, 2);

    // The audit log kept its rows and takes the new actions.
    let actions = app.audit_actions(&id).await;
    assert_eq!(actions.first().map(String::as_str), Some("created"));
    assert!(actions.iter().any(|a| a == "rotated"), "{actions:?}");
}

fn update(id: &str, paths: &[&str]) -> pb::UpdateCredentialRequest {
    pb::UpdateCredentialRequest {
        credential_id: id.to_owned(),
        update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() }),
        ..Default::default()
    }
}

async fn a_credentials_metadata_changes_in_place(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let mut client = app.client.clone();
    let stored = app.store_vultr("Before", "key-one").await;
    let mut first_default = store_request(&app.customer_id, "Default one", vultr("key-d"));
    first_default.make_default = true;
    let first_default = app.store(first_default).await.unwrap();
    app.get_by_id(&stored.id).await.unwrap();

    let mut change = update(&stored.id, &["credential_name", "permissions", "is_default"]);
    change.credential_name = "After".into();
    change.permissions = pb::Permission::Admin as i32;
    change.is_default = true;
    change.etag = stored.etag.clone();
    let updated = client.update_credential(change.clone()).await.unwrap().into_inner().credential.unwrap();
    assert_eq!(
        (updated.id.as_str(), updated.credential_name.as_str(), updated.permissions, updated.is_default),
        (stored.id.as_str(), "After", pb::Permission::Admin as i32, true)
    );
    assert_eq!((updated.credential_type.as_str(), updated.current_version), ("api_key", 1), "the rest stays");
    assert_ne!(updated.etag, stored.etag);
    // The same etag again is stale now.
    assert_status(client.update_credential(change).await, Code::Aborted, "read it again");
    let listed = app
        .list(pb::ListRequest { customer_id: app.customer_id.clone(), ..Default::default() })
        .await
        .unwrap();
    let old_default = listed.credentials.iter().find(|c| c.id == first_default.id).unwrap();
    assert!(!old_default.is_default, "one default per provider");
    assert_ne!(old_default.etag, first_default.etag, "losing the default changes its etag");
    assert_eq!(
        app.get_by_provider(&app.customer_id, pb::Provider::Vultr).await.unwrap().credential.unwrap().id,
        stored.id
    );
    let actions = app.audit_actions(&stored.id).await;
    assert!(actions.iter().any(|a| a == "updated"), "{actions:?}");

    let mut taken = update(&stored.id, &["credential_name"]);
    taken.credential_name = "Default one".into();
    assert_status(
        client.update_credential(taken).await,
        Code::AlreadyExists,
        "already has an active vultr credential",
    );
    assert_invalid_field(
        client.update_credential(update(&stored.id, &[])).await,
        "update_mask",
        "names no field",
    );
    assert_invalid_field(
        client.update_credential(update(&stored.id, &["provider"])).await,
        "update_mask",
        "cannot be changed",
    );
    let mut bad_type = update(&stored.id, &["credential_type"]);
    bad_type.credential_type = "Not A Type".into();
    assert_invalid_field(client.update_credential(bad_type).await, "credential_type", "a-z");
    let mut empty_name = update(&stored.id, &["credential_name"]);
    empty_name.credential_name = " ".into();
    assert_invalid_field(client.update_credential(empty_name).await, "credential_name", "required");
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_status(
        client.update_credential(update(&unknown, &["is_default"])).await,
        Code::NotFound,
        "no active credential",
    );
    let after = app.get_by_id(&stored.id).await.unwrap().credential.unwrap();
    assert_eq!(after.credential_name, "After", "refused updates wrote nothing");
}

/// Gets racing rotations: each answer is one version, whole (its number and its own secret),
/// and its audit row names the version it handed out.
async fn a_get_racing_rotations_returns_one_whole_version(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let stored = app.store_vultr("Racing", "key-1").await;
    let rotations = {
        let mut client = app.client.clone();
        let id = stored.id.clone();
        tokio::spawn(async move {
            for n in 2..=12 {
                client.add_version(add(&id, &format!("key-{n}"))).await.unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut client = app.client.clone();
            let id = stored.id.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..30 {
                    let got = client.get(get_by_id(&id)).await.unwrap().into_inner();
                    assert_eq!(vultr_key(&got), format!("key-{}", got.version), "a version's own secret");
                    seen.push(got.version);
                }
                seen
            })
        })
        .collect();
    rotations.await.unwrap();
    let mut served = std::collections::BTreeSet::new();
    for reader in readers {
        served.extend(reader.await.unwrap());
    }
    assert_eq!(app.get_by_id(&stored.id).await.unwrap().version, 12, "the last rotation is current");
    // Every audit row of a use names the version it handed out.
    let db = app.db().await;
    for version in served {
        let sql = format!(
            "SELECT (SELECT count(*) FROM credential_audit_log WHERE credential_id = '{id}' AND action = 'used' \
             AND action_details LIKE '%version {version} handed out') + {journal}",
            id = stored.id,
            journal = match backend {
                Backend::Sqlite => format!(
                    "(SELECT count(*) FROM credential_use_journal WHERE credential_id = '{}' \
                     AND action_details LIKE '%version {version} handed out')",
                    stored.id
                ),
                Backend::Postgres => "0".to_owned(),
            }
        );
        assert!(db.count_owned(sql).await >= 1, "no audit row names version {version}");
    }
}
