//! The README's commands, as a user pastes them: every shell block of its "Use it" and "Tokens"
//! sections, in order, in one shell, next to one `serve --dev` (providers faked locally).

use std::process::Command;

use crate::cli::DevServer;

/// The sections whose shell blocks run in order on one `serve --dev`.
const SECTIONS: [&str; 3] =
    ["## Use it (grpcurl)", "## Use it (REST, for the dashboard)", "## Tokens, customers and the audit log"];

/// The `sh` blocks under `heading`, up to the next `## ` heading.
fn blocks(readme: &str, heading: &str) -> Vec<String> {
    let start = readme.find(heading).unwrap_or_else(|| panic!("the README has no {heading:?}"));
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section.split("```sh\n").skip(1).map(|b| b[..b.find("```").unwrap()].to_owned()).collect()
}

#[tokio::test]
async fn the_readmes_sections_work_in_order_on_one_dev_server() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let fakes = crate::fakes::Fakes::start().await;
    let settings = fakes.settings(std::time::Duration::from_secs(5), 0);
    let server = DevServer::start(&[
        ("CREDVAULT_VULTR_API_URL", &settings.vultr_api_url),
        ("CREDVAULT_AWS_STS_URL", &settings.aws_sts_url),
        ("CREDVAULT_AZURE_LOGIN_URL", &settings.azure_login_url),
        ("CREDVAULT_AZURE_MANAGEMENT_URL", &settings.azure_management_url),
    ]);
    let mut script = String::from(
        "set -euo pipefail\n\
         # As pasted, but any HTTP error fails the run.\n\
         curl() { command curl --fail-with-body \"$@\"; }\n",
    );
    for heading in SECTIONS {
        let found = blocks(&readme, heading);
        assert!(!found.is_empty(), "{heading} has no sh block");
        for block in found {
            script.push_str(&block);
        }
    }
    let script =
        script.replace("http://127.0.0.1:8005", &server.http).replace("127.0.0.1:50051", &server.grpc);
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_credvault")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut bash = Command::new("bash");
    bash.arg("-c")
        .arg(&script)
        .current_dir(server.dir.path())
        .env("PATH", path)
        .env_remove("CREDENTIAL_ENCRYPTION_KEY")
        .env_remove("CREDVAULT_KEY_FILE")
        .env_remove("CREDVAULT_DATABASE_URL")
        .env_remove("CREDVAULT_TOKEN");
    // Off the runtime's thread: the fake providers answer on it meanwhile.
    let output = tokio::task::spawn_blocking(move || bash.output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the README's commands failed:\n{stdout}\n{stderr}\nserver:\n{}",
        server.log()
    );
    for said in [
        "\"credentialName\": \"Production Vultr\"",
        "Credential 'Staging Vultr' created successfully",
        "\"status\": \"SERVING\"",
        "audit log intact",
    ] {
        assert!(stdout.contains(said), "the output lacks {said:?}:\n{stdout}");
    }
}
