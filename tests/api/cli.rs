//! The real binary, run as users run it.

use std::process::{Command, Output};

use base64::Engine as _;

const BIN: &str = env!("CARGO_BIN_EXE_credvault");

fn serve_with_key(key: Option<&str>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("CREDENTIAL_ENCRYPTION_KEY")
        .env_remove("CREDVAULT_KEY_FILE")
        .env("CREDVAULT_DATABASE_URL", format!("sqlite://{}/db.sqlite", dir.path().display()));
    if let Some(key) = key {
        command.env("CREDENTIAL_ENCRYPTION_KEY", key);
    }
    command.output().unwrap()
}

#[track_caller]
fn assert_refused(output: &Output, fragments: &[&str]) {
    assert!(!output.status.success(), "start-up must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for fragment in fragments {
        assert!(stderr.contains(fragment), "stderr lacks {fragment:?}:\n{stderr}");
    }
}

#[test]
fn keygen_prints_a_usable_32_byte_key() {
    let output = Command::new(BIN).arg("keygen").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).unwrap();
    assert_eq!(bytes.len(), 32);
    let again = Command::new(BIN).arg("keygen").output().unwrap();
    assert_ne!(text.as_bytes(), again.stdout.as_slice());
}

#[test]
fn serve_without_a_key_says_how_to_get_one() {
    assert_refused(&serve_with_key(None), &["no encryption key", "credvault keygen", "--dev"]);
}

#[test]
fn serve_with_a_short_key_is_refused() {
    let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
    assert_refused(&serve_with_key(Some(&short)), &["CREDENTIAL_ENCRYPTION_KEY", "16 bytes", "exactly 32"]);
}

#[test]
fn serve_with_a_malformed_key_is_refused_without_echoing_it() {
    let output = serve_with_key(Some("this is not base64 %%%"));
    assert_refused(&output, &["not valid base64", "credvault keygen"]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("%%%"));
}

#[test]
fn serve_with_a_missing_key_file_names_the_file() {
    let output = Command::new(BIN)
        .args(["serve", "--key-file", "/nonexistent/credvault.key"])
        .env_remove("CREDENTIAL_ENCRYPTION_KEY")
        .output()
        .unwrap();
    assert_refused(&output, &["/nonexistent/credvault.key"]);
}

#[test]
fn serve_dev_creates_and_prints_a_development_token() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("CREDENTIAL_ENCRYPTION_KEY")
        .env_remove("CREDVAULT_KEY_FILE")
        .env_remove("CREDVAULT_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let printed = stdout
        .lines()
        .map(Result::unwrap)
        .find_map(|line| line.trim().strip_prefix("export CREDVAULT_TOKEN=").map(str::to_owned));
    child.kill().unwrap();
    child.wait().unwrap();
    let printed = printed.expect("the banner prints the token");
    assert!(printed.starts_with("cvt_"), "{printed}");
    let path = dir.path().join(".credvault/dev.token");
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), printed);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
