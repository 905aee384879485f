//! Unit tests of the configuration: every refusal names what to set.

use super::*;

fn args() -> ServeArgs {
    ServeArgs {
        grpc_addr: DEFAULT_GRPC_ADDR.into(),
        http_addr: DEFAULT_HTTP_ADDR.into(),
        dashboard_origin: None,
        tls_cert: None,
        tls_key: None,
        tls_client_ca: None,
        trusted_proxies: None,
        database_url: DEFAULT_DATABASE_URL.into(),
        key_file: None,
        dev: false,
        log_format: LogFormat::Text,
        token_cache_secs: 5.0,
        audit_seal_secs: 1.0,
        purge_interval_secs: 60.0,
        rewrap_rate: 0,
        pool: PoolArgs::default(),
        verify: VerifyArgs::default(),
        verification: VerificationArgs::default(),
    }
}

#[test]
fn durations_have_a_unit() {
    assert_eq!(parse_duration("90d").unwrap(), Duration::from_secs(90 * 86_400));
    assert_eq!(parse_duration("45s").unwrap(), Duration::from_secs(45));
    for bad in ["", "d", "10", "10w", "-1h", "0s", "1.5h"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn dashboard_origin_must_be_an_origin() {
    let dev = |origin: &str| {
        Config::from_args(ServeArgs { dev: true, dashboard_origin: Some(origin.into()), ..args() }, None)
    };
    assert_eq!(dev("http://localhost:3000").unwrap().dashboard_origin.unwrap(), "http://localhost:3000");
    assert_eq!(
        dev("https://dash.example.com/").unwrap().dashboard_origin.unwrap(),
        "https://dash.example.com"
    );
    for bad in ["localhost:3000", "ftp://x", "https://x/path", "https://u:p@x", "*", ""] {
        let err = dev(bad).unwrap_err();
        assert!(err.0.contains("CREDVAULT_DASHBOARD_ORIGIN"), "{bad}: {err}");
    }
}

#[test]
fn a_key_is_required_outside_dev_mode() {
    let err = Config::from_args(args(), None).unwrap_err();
    assert!(err.0.contains("CREDENTIAL_ENCRYPTION_KEY"), "{err}");
    assert!(err.0.contains("credvault keygen"), "{err}");
    let dev = Config::from_args(ServeArgs { dev: true, ..args() }, None).unwrap();
    assert!(matches!(dev.key, KeySource::DevFile(_)));
}

#[test]
fn bad_values_are_named() {
    let err = Config::from_args(ServeArgs { grpc_addr: "localhost".into(), ..args() }, None).unwrap_err();
    assert!(err.0.contains("--grpc-addr"), "{err}");
    let key = Some(SecretString::from("k"));
    let err = Config::from_args(ServeArgs { key_file: Some("f".into()), ..args() }, key).unwrap_err();
    assert!(err.0.contains("set only one"), "{err}");
    let err = Config::from_args(ServeArgs { database_url: "mysql://x".into(), ..args() }, None);
    assert!(err.is_err());
}

#[test]
fn postgres_urls_and_pool_settings_are_validated() {
    let key = || Some(SecretString::from("k"));
    let err = Config::from_args(ServeArgs { database_url: "mysql://x".into(), ..args() }, key()).unwrap_err();
    assert!(err.0.contains("postgres://"), "{err}");
    let pg = Config::from_args(ServeArgs { database_url: "postgres://u:p@h/db".into(), ..args() }, key());
    assert_eq!(pg.unwrap().pool, PoolSettings::default());
    let pool = PoolArgs { db_max_connections: 0, ..PoolArgs::default() };
    let err = Config::from_args(ServeArgs { pool, ..args() }, key()).unwrap_err();
    assert!(err.0.contains("--db-max-connections"), "{err}");
    let pool = PoolArgs { db_statement_timeout_secs: f64::NAN, ..PoolArgs::default() };
    let err = Config::from_args(ServeArgs { pool, ..args() }, key()).unwrap_err();
    assert!(err.0.contains("--db-statement-timeout-secs"), "{err}");
}

#[test]
fn short_and_malformed_keys_are_refused_with_the_fix() {
    let config = Config::from_args(args(), Some(SecretString::from("c2hvcnQ="))).unwrap();
    let err = config.master_keys().unwrap_err();
    assert!(err.0.contains("CREDENTIAL_ENCRYPTION_KEY") && err.0.contains("32"), "{err}");
    let config = Config::from_args(args(), Some(SecretString::from("***"))).unwrap();
    assert!(config.master_keys().unwrap_err().0.contains("base64"));
}

#[test]
fn dev_key_file_is_created_once_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("dev.key");
    let config = Config {
        key: KeySource::DevFile(path.clone()),
        ..Config::from_args(args(), Some(SecretString::from("x"))).unwrap()
    };
    let only = |keys: crate::crypto::MasterKeys| {
        let mut all = keys.iter().map(|(v, k)| (v, k.to_base64())).collect::<Vec<_>>();
        assert_eq!(all.len(), 1);
        all.remove(0).1
    };
    let first = only(config.master_keys().unwrap());
    let again = only(config.master_keys().unwrap());
    use secrecy::ExposeSecret as _;
    assert_eq!(first.expose_secret(), again.expose_secret());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_refused_with_the_chmod_fix() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    use secrecy::ExposeSecret as _;
    std::fs::write(&path, MasterKey::generate().to_base64().expose_secret()).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = read_key_file(&path).unwrap_err();
        assert!(err.0.contains(&format!("chmod 600 {}", path.display())), "{mode:o}: {err}");
        assert!(err.0.contains(&format!("{mode:04o}")), "{mode:o}: {err}");
    }
    for mode in [0o600, 0o400] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        read_key_file(&path).unwrap();
    }
}

#[test]
fn database_url_display_hides_passwords() {
    let url = DatabaseUrl("postgres://u:pw@host/db".into());
    assert_eq!(url.to_string(), "postgres://u:***@host/db");
    assert_eq!(format!("{url:?}"), "postgres://u:***@host/db");
    assert_eq!(DatabaseUrl("postgres://host/db".into()).to_string(), "postgres://host/db");
}
