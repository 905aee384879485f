use std::path::Path;

use credvault::proto as pb;
use credvault::server::StartError;
use tonic::Code;

use crate::helpers::*;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// Every file under `dir` (the SQLite file and its WAL, or a PostgreSQL data directory), as bytes.
fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().flatten().map(|e| e.path()));
        } else if let Ok(bytes) = std::fs::read(&path)
            && contains(&bytes, needle)
        {
            return true;
        }
    }
    false
}

/// Where the backend keeps this test's data on disk, if the test can read it.
fn data_dir(app: &TestApp) -> Option<std::path::PathBuf> {
    match app.backend {
        Backend::Sqlite => Some(app.dir.path().to_path_buf()),
        Backend::Postgres => crate::pg::shared().data_dir().map(Path::to_path_buf),
    }
}

async fn no_plaintext_secret_reaches_the_database_files(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    // Unique per test: the PostgreSQL cluster is shared with other tests.
    let marker = format!("PLAINTEXT-MARKER-{}", uuid::Uuid::new_v4().simple());
    let name = format!("Searchable Name {}", uuid::Uuid::new_v4().simple());
    let mut json: serde_json::Value = serde_json::from_str(SERVICE_ACCOUNT_JSON).unwrap();
    json["private_key"] =
        format!("-----BEGIN PRIVATE KEY-----\n{marker}-gcp\n-----END PRIVATE KEY-----\n").into();
    let secrets = [
        vultr(&format!("{marker}-vultr")),
        aws("AKIAMARKER", &format!("{marker}-aws")),
        gcp(&json.to_string()),
        azure(&format!("{marker}-azure")),
    ];
    for (i, secret) in secrets.into_iter().enumerate() {
        let stored =
            app.store(store_request(&app.customer_id, &format!("{name} {i}"), secret)).await.unwrap();
        app.get_by_id(&stored.id).await.unwrap();
    }

    let db = app.db().await;
    assert!(!db.any_column_contains(&marker).await, "a plaintext secret is stored in a column");
    db.checkpoint().await;
    if let Some(dir) = data_dir(&app) {
        // The search works: metadata is stored in the clear and is found.
        assert!(files_contain(&dir, name.as_bytes()), "the credential name should be in the files");
        assert!(
            !files_contain(&dir, marker.as_bytes()),
            "a plaintext secret was found in the database files"
        );
        assert!(!files_contain(&dir, app.key.as_bytes()), "the key was found in the database files");
    }
}

async fn a_ciphertext_copied_onto_another_row_fails_to_open(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let victim = app.store_vultr("Victim", "victim-secret").await;
    let attacker = app.store_vultr("Attacker", "attacker-secret").await;
    let other_customer = app.create_customer().await;
    let foreign = app.store(store_request(&other_customer, "Foreign", vultr("foreign"))).await.unwrap();

    // Copy the victim's blob onto the attacker's row and onto another customer's row.
    let db = app.db().await;
    let blob = db.ciphertext(&victim.id).await;
    for target in [&attacker.id, &foreign.id] {
        db.set_ciphertext(target, &blob).await;
    }

    for target in [&attacker.id, &foreign.id] {
        let status = assert_status(app.get_by_id(target).await, Code::DataLoss, "cannot be decrypted");
        assert!(!status.message().contains("victim-secret"));
        assert_eq!(
            app.audit_actions(target).await,
            vec!["created", "failed"],
            "a failed open is audited, not counted"
        );
    }
    let listed = app
        .list(pb::ListRequest { customer_id: app.customer_id.clone(), ..Default::default() })
        .await
        .unwrap();
    let attacker_row = listed.credentials.iter().find(|c| c.id == attacker.id).unwrap();
    assert_eq!(attacker_row.usage_count, 0);
    // The victim's own row still opens.
    assert!(app.get_by_id(&victim.id).await.is_ok());
}

async fn a_tampered_ciphertext_fails_to_open(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let stored = app.store_vultr("Tampered", "s").await;
    let db = app.db().await;
    let mut blob = db.ciphertext(&stored.id).await;
    *blob.last_mut().unwrap() ^= 0x01;
    db.set_ciphertext(&stored.id, &blob).await;
    assert_status(app.get_by_id(&stored.id).await, Code::DataLoss, "cannot be decrypted");
}

async fn a_ciphertext_tampered_after_it_was_served_fails_to_open(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let stored = app.store_vultr("Served", "served-secret").await;
    // The first Get reads the row; the vault keeps its ciphertext for the next ones.
    app.get_by_id(&stored.id).await.unwrap();
    let db = app.db().await;
    let mut blob = db.ciphertext(&stored.id).await;
    *blob.last_mut().unwrap() ^= 0x01;
    db.set_ciphertext(&stored.id, &blob).await;

    let status = assert_status(app.get_by_id(&stored.id).await, Code::DataLoss, "cannot be decrypted");
    assert!(!status.message().contains("served-secret"));
    assert_eq!(app.audit_actions(&stored.id).await, ["created", "used", "failed"]);
    let listed = app
        .list(pb::ListRequest { customer_id: app.customer_id.clone(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(listed.credentials[0].usage_count, 1, "the refused Get is not counted");
}

async fn start_up_is_refused_with_a_key_the_database_was_not_written_with(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    app.store_vultr("Keep", "kept-secret").await;
    let stopped = app.stop().await;
    let right_key = stopped.key.clone();

    let err = match stopped.restart_with_key(new_key()).await {
        Err(e) => e,
        Ok(_) => panic!("a server with the wrong key must not start"),
    };
    assert!(matches!(err, StartError::Key(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("is not the key this database was written with"), "{message}");
    assert!(message.contains("CREDENTIAL_ENCRYPTION_KEY"), "{message}");
    assert!(!message.contains(&right_key));
}

async fn the_right_key_reopens_the_same_database(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let stored = app.store_vultr("Keep", "kept-secret").await;
    let app = app.stop().await.restart().await.unwrap();
    let got = app.get_by_id(&stored.id).await.unwrap();
    assert_eq!(got.secret.unwrap().secret, Some(vultr("kept-secret")));
}

async fn start_up_is_refused_when_a_key_version_still_in_use_is_not_configured(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    app.store_vultr("Sealed under v2", "k").await;
    let db = app.db().await;
    // As if rotation had sealed it under a version 2 this configuration does not have.
    assert_eq!(db.execute("UPDATE credential_versions SET key_version = 2").await, 1);
    let stopped = app.stop().await;
    let err = match stopped.restart().await {
        Err(e) => e,
        Ok(_) => panic!("a server lacking a key version in use must not start"),
    };
    let message = err.to_string();
    assert!(message.contains("key version 2 (1 data keys)"), "{message}");
    assert!(message.contains("add them to the key configuration"), "{message}");
}

/// `credvault key status`: the one configured version is current and wraps every data key sealed
/// while customer keys were off (a destroyed version's is gone) and the customer's key; a key
/// configuration that lacks a version still in use is named.
async fn the_key_status_counts_the_data_keys_each_version_wraps(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    app.store_vultr("Under the customer's key", "k0").await;
    app.without_customer_keys().await;
    let first = app.store_vultr("First", "k1").await;
    app.store_vultr("Second", "k2").await;
    let add = pb::AddVersionRequest {
        credential_id: first.id.clone(),
        secret: Some(pb::CredentialSecret { secret: Some(vultr("k1-rotated")) }),
        ..Default::default()
    };
    app.client.clone().add_version(add).await.unwrap();
    let destroy =
        pb::DestroyVersionRequest { credential_id: first.id.clone(), version: 1, ..Default::default() };
    app.client.clone().destroy_version(destroy).await.unwrap();
    let status = async |key: &str| credvault(&app.database_url, key, &["key", "status"]).await;
    let output = status(&app.key).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let line = stdout.lines().nth(1).unwrap_or_default();
    assert!(
        line.starts_with("1\tcurrent\t2\t1\t"),
        "two data keys (one destroyed), one customer key: {stdout}"
    );
    assert!(stdout.contains("customer keys: off"), "{stdout}");
    assert!(!stdout.contains(&app.key), "the key is never printed");
    let wrong = status(&new_key()).await;
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("not the key this database was written with"));
}

backend_tests!(
    the_key_status_counts_the_data_keys_each_version_wraps,
    start_up_is_refused_when_a_key_version_still_in_use_is_not_configured,
    no_plaintext_secret_reaches_the_database_files,
    a_ciphertext_copied_onto_another_row_fails_to_open,
    a_tampered_ciphertext_fails_to_open,
    a_ciphertext_tampered_after_it_was_served_fails_to_open,
    start_up_is_refused_with_a_key_the_database_was_not_written_with,
    the_right_key_reopens_the_same_database,
);
