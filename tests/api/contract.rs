//! The contracts other teams build on: the OpenAPI document is legal OpenAPI 3 (Redocly's
//! linter, and the checks it names), and the protos generate Go stubs with local plugins.

use std::process::Command;

use serde_json::Value;

use crate::helpers::*;

/// Runs `npx --yes <package> <args>` in `dir`; panics with its output unless it succeeds.
fn npx(dir: &std::path::Path, package: &str, args: &[&str]) -> String {
    let output =
        Command::new("npx").arg("--yes").arg(package).args(args).current_dir(dir).output().unwrap_or_else(
            |e| panic!("cannot run npx ({e}): install Node.js and npm (scripts/test.sh does)"),
        );
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "npx {package} {args:?} failed:\n{text}");
    text
}

#[tokio::test]
async fn the_openapi_document_is_legal_and_describes_the_seeds_urls() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let document: Value =
        reqwest::get(format!("{}/api/v1/openapi.json", app.http)).await.unwrap().json().await.unwrap();

    // No two path templates that differ only in their parameters' names.
    let paths = document["paths"].as_object().unwrap();
    let mut shapes: Vec<String> = paths
        .keys()
        .map(|path| {
            path.split('/')
                .map(|seg| if seg.starts_with('{') { "{}" } else { seg })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    shapes.sort();
    let before = shapes.len();
    shapes.dedup();
    assert_eq!(shapes.len(), before, "identical path templates in {:?}", paths.keys().collect::<Vec<_>>());
    // The seed's URLs: GET by provider and DELETE by id on the same one-segment path.
    let item = &paths["/api/v1/credentials/{provider_or_id}"];
    assert!(item["get"].is_object() && item["delete"].is_object(), "{item}");
    assert!(!document["servers"].as_array().unwrap().is_empty(), "a servers entry");
    // The provider is an enum wherever it appears.
    let providers = &document["components"]["schemas"]["ProviderName"]["enum"];
    assert_eq!(providers, &serde_json::json!(["vultr", "aws", "gcp", "azure"]));
    let create = &document["components"]["schemas"]["CreateCredential"]["properties"]["provider"];
    assert_eq!(create["$ref"], "#/components/schemas/ProviderName", "{create}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openapi.json"), document.to_string()).unwrap();
    std::fs::write(
        dir.path().join("redocly.yaml"),
        "extends:\n  - recommended\nrules:\n  no-identical-paths: error\n  path-parameters-defined: error\n",
    )
    .unwrap();
    npx(dir.path(), "@redocly/cli@2.77.0", &["lint", "openapi.json"]);
}

#[test]
fn buf_generates_go_stubs_with_local_plugins() {
    let out = tempfile::tempdir().unwrap();
    let repo = env!("CARGO_MANIFEST_DIR");
    let out_dir = out.path().to_str().unwrap();
    npx(
        std::path::Path::new(repo),
        "@bufbuild/buf@1.75.0",
        &["generate", "--template", "buf.gen.yaml", "-o", out_dir],
    );
    let go = out.path().join("gen/go/credvault/v1");
    for (file, needle) in [
        ("credentials.pb.go", "package credvaultv1"),
        ("credentials_grpc.pb.go", "func NewCredentialServiceClient"),
        ("customers_grpc.pb.go", "func NewCustomerServiceClient"),
        ("audit_grpc.pb.go", "func NewAuditServiceClient"),
        ("keys_grpc.pb.go", "func NewKeyServiceClient"),
    ] {
        let text = std::fs::read_to_string(go.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(text.contains(needle), "{file} lacks {needle:?}");
    }
}
