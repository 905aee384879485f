use credvault::proto as pb;
use credvault::server::StartError;
use tonic::Code;

use crate::helpers::*;

const MARKER: &str = "PLAINTEXT-MARKER-7f3c9a1e";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The database file and its WAL, as bytes.
fn database_bytes(app: &TestApp) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db_path(app.dir.path()).display());
        if let Ok(b) = std::fs::read(path) {
            bytes.extend(b);
        }
    }
    bytes
}

#[tokio::test]
async fn no_plaintext_secret_reaches_the_database_file() {
    let app = TestApp::spawn().await;
    let name = "Searchable Name 0123";
    let mut json: serde_json::Value = serde_json::from_str(SERVICE_ACCOUNT_JSON).unwrap();
    json["private_key"] =
        format!("-----BEGIN PRIVATE KEY-----\n{MARKER}-gcp\n-----END PRIVATE KEY-----\n").into();
    let secrets = [
        vultr(&format!("{MARKER}-vultr")),
        aws("AKIAMARKER", &format!("{MARKER}-aws")),
        gcp(&json.to_string()),
        azure(&format!("{MARKER}-azure")),
    ];
    for (i, secret) in secrets.into_iter().enumerate() {
        let stored = app
            .store(store_request(
                &app.customer_id,
                &format!("{name} {i}"),
                secret,
            ))
            .await
            .unwrap();
        app.get_by_id(&stored.id).await.unwrap();
    }

    let bytes = database_bytes(&app);
    // The search works: metadata is stored in the clear and is found.
    assert!(
        contains(&bytes, name.as_bytes()),
        "the credential name should be in the file"
    );
    assert!(
        !contains(&bytes, MARKER.as_bytes()),
        "a plaintext secret was found in the database file"
    );
    // Neither is the key.
    assert!(!contains(&bytes, app.key.as_bytes()));

    let (dir, key) = app.stop().await;
    let bytes = std::fs::read(db_path(dir.path())).unwrap();
    assert!(
        contains(&bytes, name.as_bytes()),
        "after checkpoint the name is in the main file"
    );
    assert!(!contains(&bytes, MARKER.as_bytes()));
    assert!(!contains(&bytes, key.as_bytes()));
}

#[tokio::test]
async fn a_ciphertext_copied_onto_another_row_fails_to_open() {
    let app = TestApp::spawn().await;
    let victim = app.store_vultr("Victim", "victim-secret").await;
    let attacker = app.store_vultr("Attacker", "attacker-secret").await;
    let other_customer = app.create_customer().await;
    let foreign = app
        .store(store_request(&other_customer, "Foreign", vultr("foreign")))
        .await
        .unwrap();

    // Copy the victim's blob onto the attacker's row and onto another customer's row.
    let db = app.db().await;
    for target in [&attacker.id, &foreign.id] {
        sqlx::query(
            "UPDATE cloud_credentials SET encrypted_credentials = \
             (SELECT encrypted_credentials FROM cloud_credentials WHERE id = ?) WHERE id = ?",
        )
        .bind(&victim.id)
        .bind(target)
        .execute(&db)
        .await
        .unwrap();
    }

    for target in [&attacker.id, &foreign.id] {
        let status = assert_status(
            app.get_by_id(target).await,
            Code::DataLoss,
            "cannot be decrypted",
        );
        assert!(!status.message().contains("victim-secret"));
        assert_eq!(
            app.audit_actions(target).await,
            vec!["created", "failed"],
            "a failed open is audited, not counted"
        );
    }
    let listed = app
        .list(pb::ListRequest {
            customer_id: app.customer_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let attacker_row = listed
        .credentials
        .iter()
        .find(|c| c.id == attacker.id)
        .unwrap();
    assert_eq!(attacker_row.usage_count, 0);
    // The victim's own row still opens.
    assert!(app.get_by_id(&victim.id).await.is_ok());
}

#[tokio::test]
async fn a_tampered_ciphertext_fails_to_open() {
    let app = TestApp::spawn().await;
    let stored = app.store_vultr("Tampered", "s").await;
    let db = app.db().await;
    let blob: Vec<u8> =
        sqlx::query_scalar("SELECT encrypted_credentials FROM cloud_credentials WHERE id = ?")
            .bind(&stored.id)
            .fetch_one(&db)
            .await
            .unwrap();
    let mut flipped = blob.clone();
    *flipped.last_mut().unwrap() ^= 0x01;
    sqlx::query("UPDATE cloud_credentials SET encrypted_credentials = ? WHERE id = ?")
        .bind(flipped)
        .bind(&stored.id)
        .execute(&db)
        .await
        .unwrap();
    assert_status(
        app.get_by_id(&stored.id).await,
        Code::DataLoss,
        "cannot be decrypted",
    );
}

#[tokio::test]
async fn start_up_is_refused_with_a_key_the_database_was_not_written_with() {
    let app = TestApp::spawn().await;
    app.store_vultr("Keep", "kept-secret").await;
    let (dir, right_key) = app.stop().await;

    let err = match TestApp::spawn_in(dir, new_key()).await {
        Err(e) => e,
        Ok(_) => panic!("a server with the wrong key must not start"),
    };
    assert!(matches!(err, StartError::Key(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("is not the key this database was written with"),
        "{message}"
    );
    assert!(message.contains("CREDENTIAL_ENCRYPTION_KEY"), "{message}");
    assert!(!message.contains(&right_key));
}

#[tokio::test]
async fn the_right_key_reopens_the_same_database() {
    let app = TestApp::spawn().await;
    let stored = app.store_vultr("Keep", "kept-secret").await;
    let (dir, key) = app.stop().await;
    let app = TestApp::spawn_in(dir, key).await.unwrap();
    let got = app.get_by_id(&stored.id).await.unwrap();
    assert_eq!(got.secret.unwrap().secret, Some(vultr("kept-secret")));
}
