//! `credvault import pgcrypto` against a real source: a PostgreSQL database in the seed's
//! schema, filled by SQL that calls pgcrypto's `pgp_sym_encrypt` as the seed does (and with
//! compression, AES-256 and another S2K count), imported into SQLite and into PostgreSQL, then
//! read back through the API.

use std::process::{Command, Output};

use tonic::Code;

use crate::helpers::*;

const OLD_KEY: &str = "the-old-systems-credential-encryption-key";
const CUSTOMER: &str = "6a0b7c3e-1111-4aaa-8bbb-000000000001";
const VULTR: &str = "6a0b7c3e-2222-4aaa-8bbb-000000000001";
const AWS: &str = "6a0b7c3e-2222-4aaa-8bbb-000000000002";
const GCP: &str = "6a0b7c3e-2222-4aaa-8bbb-000000000003";
const AZURE_DELETED: &str = "6a0b7c3e-2222-4aaa-8bbb-000000000004";
const PLACEHOLDER: &str = "6a0b7c3e-3333-4aaa-8bbb-000000000001";
const OTHER_KEY: &str = "6a0b7c3e-3333-4aaa-8bbb-000000000002";
const CORRUPTED: &str = "6a0b7c3e-3333-4aaa-8bbb-000000000003";
const UNKNOWN_PROVIDER: &str = "6a0b7c3e-3333-4aaa-8bbb-000000000004";

fn gcp_key() -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": "analytics",
        "client_email": "collector@analytics.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string()
}

/// A new database in the seed's schema, filled as the seed's Python service filled it.
async fn seed_source() -> String {
    let url = crate::pg::fresh_database(&crate::pg::shared().admin_url()).await;
    let db = TestDb::connect(&url).await;
    let secret = |json: String| json.replace('\'', "''");
    let gcp = secret(serde_json::json!({ "service_account_json": gcp_key() }).to_string());
    db.execute(&format!(
        "CREATE EXTENSION IF NOT EXISTS pgcrypto;
         CREATE TABLE customers (id uuid PRIMARY KEY, email varchar(255) UNIQUE, company_name varchar(255),
             status varchar(50), subscription_tier varchar(50), created_at timestamp);
         CREATE TABLE cloud_credentials (id uuid PRIMARY KEY, customer_id uuid REFERENCES customers (id),
             provider varchar(50), credential_name varchar(255), encrypted_credentials bytea,
             credential_type varchar(50), permissions varchar(50), is_active boolean, is_verified boolean,
             last_verified_at timestamp, last_used_at timestamp, usage_count integer,
             created_at timestamp, updated_at timestamp);
         CREATE TABLE credential_audit_log (id uuid PRIMARY KEY, credential_id uuid, customer_id uuid,
             action varchar(50), action_details text, ip_address inet, created_at timestamp);
         INSERT INTO customers VALUES ('{CUSTOMER}', 'ops@seed.example', 'Seed Co', 'active', 'starter', '2025-03-01 09:00:00');
         INSERT INTO cloud_credentials VALUES
           ('{VULTR}', '{CUSTOMER}', 'vultr', 'Production Vultr', pgp_sym_encrypt('{{\"api_key\": \"SEED-VULTR-KEY\"}}', '{OLD_KEY}'),
            'api_key', 'read_only', true, true, '2025-04-01 10:00:00', '2025-05-01 11:00:00', 7, '2025-03-02 09:00:00', '2025-04-01 10:00:00'),
           ('{AWS}', '{CUSTOMER}', 'aws', 'Production AWS',
            pgp_sym_encrypt('{{\"access_key_id\": \"AKIASEED000000000001\", \"secret_access_key\": \"seed/aws/secret\"}}', '{OLD_KEY}',
                            'compress-algo=1, cipher-algo=aes256, s2k-count=65536'),
            'access_key', 'read_write', true, false, NULL, NULL, 0, '2025-03-03 09:00:00', '2025-03-03 09:00:00'),
           ('{GCP}', '{CUSTOMER}', 'gcp', 'Analytics GCP', pgp_sym_encrypt('{gcp}', '{OLD_KEY}', 'compress-algo=2'),
            'service_account', 'read_only', true, false, NULL, NULL, 2, '2025-03-04 09:00:00', '2025-03-04 09:00:00'),
           ('{AZURE_DELETED}', '{CUSTOMER}', 'azure', 'Old Azure',
            pgp_sym_encrypt('{{\"tenant_id\": \"t\", \"client_id\": \"c\", \"client_secret\": \"seed-azure-secret\", \"subscription_id\": \"s\"}}', '{OLD_KEY}'),
            'client_secret', 'read_only', false, false, NULL, NULL, 0, '2025-03-05 09:00:00', '2025-03-06 09:00:00'),
           ('{PLACEHOLDER}', '{CUSTOMER}', 'gcp', 'Placeholder GCP',
            pgp_sym_encrypt('{{\"service_account_json\": \"{{...json content...}}\"}}', '{OLD_KEY}'),
            'service_account', 'read_only', true, false, NULL, NULL, 0, '2025-03-07 09:00:00', '2025-03-07 09:00:00'),
           ('{OTHER_KEY}', '{CUSTOMER}', 'vultr', 'Other key', pgp_sym_encrypt('{{\"api_key\": \"X\"}}', 'not-the-key'),
            'api_key', 'read_only', true, false, NULL, NULL, 0, '2025-03-08 09:00:00', '2025-03-08 09:00:00'),
           ('{CORRUPTED}', '{CUSTOMER}', 'vultr', 'Corrupted', decode('c30d04070302deadbeef', 'hex'),
            'api_key', 'read_only', true, false, NULL, NULL, 0, '2025-03-09 09:00:00', '2025-03-09 09:00:00'),
           ('{UNKNOWN_PROVIDER}', '{CUSTOMER}', 'digitalocean', 'Droplets', pgp_sym_encrypt('{{\"token\": \"x\"}}', '{OLD_KEY}'),
            'api_key', 'read_only', true, false, NULL, NULL, 0, '2025-03-10 09:00:00', '2025-03-10 09:00:00');
         INSERT INTO credential_audit_log VALUES
           ('6a0b7c3e-4444-4aaa-8bbb-000000000001', '{VULTR}', '{CUSTOMER}', 'created', 'Credential created', '10.1.2.3', '2025-03-02 09:00:00'),
           ('6a0b7c3e-4444-4aaa-8bbb-000000000002', '{VULTR}', '{CUSTOMER}', 'verified', '{{\"valid\": true}}', NULL, '2025-04-01 10:00:00'),
           ('6a0b7c3e-4444-4aaa-8bbb-000000000003', '{VULTR}', '{CUSTOMER}', 'used', NULL, '10.1.2.4', '2025-05-01 11:00:00');"
    ))
    .await;
    url
}

async fn import(app: &TestApp, source: &str, key: &str, extra: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_credvault"));
    command
        .args(["import", "pgcrypto"])
        .args(extra)
        .env("CREDVAULT_IMPORT_SOURCE_URL", source)
        .env("SOURCE_CREDENTIAL_ENCRYPTION_KEY", key)
        .env("CREDVAULT_DATABASE_URL", &app.database_url)
        .env("CREDENTIAL_ENCRYPTION_KEY", &app.key)
        .env_remove("CREDVAULT_KEY_FILE");
    output(command).await
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The summary table's row for `table`: (imported, already imported, skipped).
fn counts(output: &Output, table: &str) -> (u32, u32, u32) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line =
        stdout.lines().find(|l| l.starts_with(table)).unwrap_or_else(|| panic!("no {table} row in {stdout}"));
    let n: Vec<u32> = line[table.len()..].split_whitespace().map(|n| n.parse().unwrap()).collect();
    (n[0], n[1], n[2])
}

async fn the_seeds_database_comes_over_whole_and_a_rerun_writes_nothing_twice(backend: Backend) {
    let source = seed_source().await;
    let app = TestApp::spawn_on(backend).await;

    let dry = import(&app, &source, OLD_KEY, &["--dry-run"]).await;
    assert_eq!(dry.status.code(), Some(1), "rows were skipped: {}", text(&dry));
    assert_eq!(counts(&dry, "credentials"), (4, 0, 4), "{}", text(&dry));
    assert_eq!(app.get_by_id(VULTR).await.unwrap_err().code(), Code::NotFound, "a dry run writes nothing");

    let run = import(&app, &source, OLD_KEY, &[]).await;
    let out = text(&run);
    assert_eq!(run.status.code(), Some(1), "{out}");
    assert_eq!(counts(&run, "customers"), (1, 0, 0), "{out}");
    assert_eq!(counts(&run, "credentials"), (4, 0, 4), "{out}");
    assert_eq!(counts(&run, "audit rows"), (3, 0, 0), "{out}");
    assert!(
        out.contains(&format!(
            "skipped credential {PLACEHOLDER}: credentials.gcp.service_account_json: is not valid JSON"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("skipped credential {OTHER_KEY}: the source key does not open it")),
        "{out}"
    );
    assert!(out.contains(&format!("skipped credential {CORRUPTED}: ")), "{out}");
    assert!(
        out.contains(&format!("skipped credential {UNKNOWN_PROVIDER}: unknown provider \"digitalocean\"")),
        "{out}"
    );
    for secret in ["SEED-VULTR-KEY", "seed/aws/secret", "seed-azure-secret", "PRIVATE KEY", OLD_KEY] {
        assert!(!out.contains(secret), "the output shows {secret}");
    }

    // Every secret opens through the API, as the source held it; the metadata came along.
    let got = app.get_by_id(VULTR).await.unwrap();
    assert_eq!(got.secret.unwrap().secret, Some(vultr("SEED-VULTR-KEY")));
    let meta = got.credential.unwrap();
    assert_eq!((meta.customer_id.as_str(), meta.credential_name.as_str()), (CUSTOMER, "Production Vultr"));
    assert_eq!((meta.usage_count, meta.is_verified), (8, true), "7 uses before, this Get the 8th");
    assert_eq!(meta.created_at.unwrap().seconds, 1_740_906_000, "2025-03-02 09:00:00 UTC");
    assert_eq!(meta.last_verified_at.unwrap().seconds, 1_743_501_600, "2025-04-01 10:00:00 UTC");
    let got = app.get_by_id(AWS).await.unwrap();
    assert_eq!(got.secret.unwrap().secret, Some(aws("AKIASEED000000000001", "seed/aws/secret")));
    assert_eq!(got.credential.unwrap().permissions, credvault::proto::Permission::ReadWrite as i32);
    assert_eq!(app.get_by_id(GCP).await.unwrap().secret.unwrap().secret, Some(gcp(&gcp_key())));
    assert_eq!(
        app.get_by_id(AZURE_DELETED).await.unwrap_err().code(),
        Code::NotFound,
        "inactive comes in deleted"
    );
    let all = app
        .list(credvault::proto::ListRequest {
            customer_id: CUSTOMER.into(),
            include_inactive: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .credentials;
    assert_eq!(all.len(), 4);
    assert!(all.iter().any(|c| c.id == AZURE_DELETED && !c.is_active && c.scheduled_purge_at.is_some()));

    // The old history came over, marked as imported, with the import's own rows.
    let mut history = app.audit_actions(VULTR).await;
    history.sort_unstable();
    assert_eq!(history, ["created", "created", "used", "used", "verified"]);
    assert_eq!(
        app.db()
            .await
            .count("SELECT count(*) FROM credential_audit_log WHERE action_details LIKE '[imported %'")
            .await,
        3
    );

    let again = import(&app, &source, OLD_KEY, &[]).await;
    assert_eq!(counts(&again, "credentials"), (0, 4, 4), "{}", text(&again));
    assert_eq!(counts(&again, "audit rows"), (0, 3, 0), "{}", text(&again));
    assert_eq!(counts(&again, "customers"), (0, 1, 0), "{}", text(&again));

    app.vault.chain_audit().await.unwrap();
    assert!(app.vault.verify_audit_log().await.unwrap().is_ok(), "the audit chain verifies");
}

backend_tests!(the_seeds_database_comes_over_whole_and_a_rerun_writes_nothing_twice);

#[tokio::test]
async fn a_wrong_key_or_an_unreachable_source_imports_nothing_and_says_why() {
    let source = seed_source().await;
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let wrong = import(&app, &source, "a-wrong-key", &[]).await;
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(counts(&wrong, "credentials"), (0, 0, 8), "{}", text(&wrong));
    assert!(text(&wrong).contains(&format!("skipped credential {VULTR}: the source key does not open it")));
    assert_eq!(app.get_by_id(VULTR).await.unwrap_err().code(), Code::NotFound);

    let nowhere = import(&app, "postgres://nobody@127.0.0.1:1/seed", OLD_KEY, &[]).await;
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(text(&nowhere).contains("cannot read the source database"), "{}", text(&nowhere));

    let mut command = Command::new(env!("CARGO_BIN_EXE_credvault"));
    command
        .args(["import", "pgcrypto"])
        .env("CREDVAULT_IMPORT_SOURCE_URL", &source)
        .env("CREDVAULT_DATABASE_URL", &app.database_url)
        .env("CREDENTIAL_ENCRYPTION_KEY", &app.key)
        .env_remove("SOURCE_CREDENTIAL_ENCRYPTION_KEY");
    let output = output(command).await;
    assert!(text(&output).contains("set SOURCE_CREDENTIAL_ENCRYPTION_KEY"), "{}", text(&output));
}

/// `credvault import env`: the keys of a docker-compose env file become the customer's default
/// credentials, verified against the (fake) providers; an incomplete provider is reported; a
/// rerun finds what the first run stored.
#[tokio::test]
async fn keys_in_an_env_file_become_the_customers_credentials_once() {
    use crate::fakes::{AWS_KEY_ID, AWS_SECRET, Fakes, VULTR_KEY};
    let fakes = Fakes::start().await;
    let settings = fakes.settings(std::time::Duration::from_secs(5), 0);
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let key_file = app.dir.path().join("service-account.json");
    std::fs::write(&key_file, &fakes.gcp_key_json).unwrap();
    let env_file = app.dir.path().join(".env");
    std::fs::write(
        &env_file,
        format!(
            "# the collector's old settings\nexport VULTR_API_KEY=\"{VULTR_KEY}\"\nAWS_ACCESS_KEY_ID={AWS_KEY_ID}\n\
             AWS_SECRET_ACCESS_KEY='{AWS_SECRET}'\nGOOGLE_APPLICATION_CREDENTIALS={}\nAZURE_TENANT_ID=tenant-only\n",
            key_file.display()
        ),
    )
    .unwrap();
    // Off the test's thread (`output`): the fake providers answer on it.
    let run = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_credvault"));
        command
            .args(["import", "env", "--customer", &app.customer_id, "--verify", "--env-file"])
            .arg(&env_file)
            .env("CREDVAULT_DATABASE_URL", &app.database_url)
            .env("CREDENTIAL_ENCRYPTION_KEY", &app.key)
            .env("CREDVAULT_VULTR_API_URL", &settings.vultr_api_url)
            .env("CREDVAULT_AWS_STS_URL", &settings.aws_sts_url)
            .env("CREDVAULT_GCP_TOKEN_URL", &settings.gcp_token_url)
            .env_remove("CREDVAULT_KEY_FILE");
        output(command)
    };
    let first = run().await;
    let out = text(&first);
    assert_eq!(first.status.code(), Some(1), "azure was incomplete: {out}");
    for provider in ["vultr", "aws", "gcp"] {
        assert!(out.contains(&format!("{provider}: stored as ")), "{out}");
    }
    assert_eq!(out.matches("verification: valid").count(), 3, "{out}");
    assert!(
        out.contains(
            "azure: skipped: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET must all be set"
        ),
        "{out}"
    );
    for secret in [VULTR_KEY, AWS_SECRET, "PRIVATE KEY"] {
        assert!(!out.contains(secret), "the output shows {secret}");
    }
    let got = app.get_by_provider(&app.customer_id, credvault::proto::Provider::Vultr).await.unwrap();
    assert_eq!(got.secret.unwrap().secret, Some(vultr(VULTR_KEY)));
    let meta = got.credential.unwrap();
    assert!(meta.is_default && meta.is_verified, "{meta:?}");

    let again = text(&run().await);
    assert_eq!(again.matches("already imported as ").count(), 3, "{again}");
    let listed = app
        .list(credvault::proto::ListRequest { customer_id: app.customer_id.clone(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(listed.credentials.len(), 3, "nothing stored twice");
}

/// A killed import leaves no credential half-written (each is one transaction with its audit
/// row), and the rerun brings over exactly the rest: every credential once, one `created` row
/// each, and an audit chain that verifies.
#[tokio::test]
async fn an_import_killed_midway_resumes_and_finishes_without_duplicates() {
    use std::io::{BufRead, BufReader};
    const ROWS: usize = 300;
    let url = crate::pg::fresh_database(&crate::pg::shared().admin_url()).await;
    let source = TestDb::connect(&url).await;
    source
        .execute(&format!(
            "CREATE EXTENSION IF NOT EXISTS pgcrypto;
             CREATE TABLE customers (id uuid PRIMARY KEY, email varchar(255), company_name varchar(255),
                 status varchar(50), subscription_tier varchar(50), created_at timestamp);
             CREATE TABLE cloud_credentials (id uuid PRIMARY KEY, customer_id uuid, provider varchar(50),
                 credential_name varchar(255), encrypted_credentials bytea, credential_type varchar(50),
                 permissions varchar(50), is_active boolean, is_verified boolean, last_verified_at timestamp,
                 last_used_at timestamp, usage_count integer, created_at timestamp, updated_at timestamp);
             INSERT INTO customers VALUES ('{CUSTOMER}', 'bulk@seed.example', 'Bulk Co', 'active', 'free', now());
             INSERT INTO cloud_credentials
                 SELECT gen_random_uuid(), '{CUSTOMER}', 'vultr', 'Key ' || i,
                        pgp_sym_encrypt('{{\"api_key\": \"K' || i || '\"}}', '{OLD_KEY}', 's2k-count=1024'),
                        'api_key', 'read_only', true, false, NULL, NULL, 0, now(), now()
                 FROM generate_series(1, {ROWS}) AS i;"
        ))
        .await;
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let command = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_credvault"));
        command
            .args(["import", "pgcrypto"])
            .env("CREDVAULT_IMPORT_SOURCE_URL", &url)
            .env("SOURCE_CREDENTIAL_ENCRYPTION_KEY", OLD_KEY)
            .env("CREDVAULT_DATABASE_URL", &app.database_url)
            .env("CREDENTIAL_ENCRYPTION_KEY", &app.key)
            .env_remove("CREDVAULT_KEY_FILE");
        command
    };

    // Killed (SIGKILL) once the progress lines say a tenth of the credentials were written; off
    // the test's thread, like every child here (`output`).
    let mut child =
        command().stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    tokio::task::spawn_blocking(move || {
        let stderr = BufReader::new(child.stderr.take().unwrap());
        for line in stderr.lines() {
            if line.unwrap().starts_with(&format!("credentials: {}/{ROWS}", ROWS / 10)) {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
    })
    .await
    .unwrap();
    let db = app.db().await;
    let partial = db.count("SELECT count(*) FROM cloud_credentials").await;
    assert!((30..300).contains(&partial), "killed midway: {partial} credentials");
    let half_written = db
        .count("SELECT count(*) FROM cloud_credentials c WHERE NOT EXISTS (SELECT 1 FROM credential_versions v WHERE v.credential_id = c.id) OR NOT EXISTS (SELECT 1 FROM credential_audit_log a WHERE a.credential_id = c.id)")
        .await;
    assert_eq!(half_written, 0, "every credential written has its version and its audit row");

    let rerun = output(command()).await;
    assert!(rerun.status.success(), "{}", text(&rerun));
    let partial = u32::try_from(partial).unwrap();
    assert_eq!(counts(&rerun, "credentials"), (300 - partial, partial, 0), "{}", text(&rerun));
    assert_eq!(db.count("SELECT count(*) FROM cloud_credentials").await, 300);
    let created = db
        .count("SELECT count(*) FROM credential_audit_log WHERE action = 'created' AND credential_id IS NOT NULL")
        .await;
    assert_eq!(created, 300, "one created row per credential");
    app.vault.chain_audit().await.unwrap();
    assert!(app.vault.verify_audit_log().await.unwrap().is_ok());
}
