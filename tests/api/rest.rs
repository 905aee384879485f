//! The REST gateway, over real HTTP: the seed's examples as written, every error status, CORS,
//! health, metrics and the OpenAPI document.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use credvault::vault::RequestContext;

use crate::fakes::{Fakes, VULTR_KEY};
use crate::helpers::*;

/// The seed's "Create Vultr Credential" example, as written.
fn seed_vultr() -> Value {
    json!({
        "provider": "vultr",
        "credential_name": "Production Vultr",
        "credentials": {"api_key": "YOUR-VULTR-API-KEY"},
        "credential_type": "api_key",
        "permissions": "read_only"
    })
}

/// The seed's "Create AWS Credential" example, as written.
fn seed_aws() -> Value {
    json!({
        "provider": "aws",
        "credential_name": "Production AWS",
        "credentials": {"access_key_id": "AKIA...", "secret_access_key": "..."},
        "credential_type": "access_key",
        "permissions": "read_only"
    })
}

async fn json_of(response: Response) -> Value {
    response.json().await.expect("a JSON body")
}

/// Asserts the status and the error body `{"error": {"code", "message"}}`; returns the error.
async fn assert_error(response: Response, status: StatusCode, code: &str, fragment: &str) -> Value {
    assert_eq!(response.status(), status, "{response:?}");
    let body = json_of(response).await;
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    let message = error["message"].as_str().expect("a message");
    assert!(message.contains(fragment), "message {message:?} lacks {fragment:?}");
    error.clone()
}

async fn create(app: &TestApp, body: &Value) -> Response {
    app.rest(Method::POST, "/api/v1/credentials").json(body).send().await.unwrap()
}

async fn seed_examples_get_the_documented_answers(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;

    let response = create(&app, &seed_vultr()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created = json_of(response).await;
    assert_eq!(created["message"], "Credential 'Production Vultr' created successfully");
    assert_eq!(created["provider"], "vultr");
    let vultr_id = created["credential_id"].as_str().unwrap().to_owned();
    uuid::Uuid::parse_str(&vultr_id).expect("credential_id is a UUID");
    assert_eq!(location, format!("/api/v1/credentials/{vultr_id}"));

    let response = create(&app, &seed_aws()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(json_of(response).await["message"], "Credential 'Production AWS' created successfully");

    // The seed's GCP example carries a placeholder, not a service-account key: refused, saying why.
    let seed_gcp = json!({
        "provider": "gcp",
        "credential_name": "Production GCP",
        "credentials": {"service_account_json": "{...json content...}"},
        "credential_type": "service_account",
        "permissions": "read_only"
    });
    let error = assert_error(
        create(&app, &seed_gcp).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "JSON",
    )
    .await;
    assert_eq!(error["field"], "credentials.service_account_json");
    // ... and a real key in the same shape is stored.
    let real_gcp = json!({
        "provider": "gcp",
        "credential_name": "Production GCP",
        "credentials": {"service_account_json": SERVICE_ACCOUNT_JSON},
        "credential_type": "service_account",
        "permissions": "read_only"
    });
    assert_eq!(create(&app, &real_gcp).await.status(), StatusCode::CREATED);

    // "New way" example: no credential_name.
    let unnamed = json!({"provider": "vultr", "credentials": {"api_key": "..."}});
    let error = assert_error(
        create(&app, &unnamed).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "credential_name",
    )
    .await;
    assert!(error["message"].as_str().unwrap().contains("line 1"), "says where: {error}");

    // "List All Credentials": a bare array of metadata with the seed's fields, and no secret.
    let response = app.rest(Method::GET, "/api/v1/credentials").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("x-next-page-token").is_none());
    let text = response.text().await.unwrap();
    for secret in ["YOUR-VULTR-API-KEY", "PRIVATE KEY", "secret_access_key\":\"..."] {
        assert!(!text.contains(secret), "a secret leaked into the list: {secret}");
    }
    let list: Value = serde_json::from_str(&text).unwrap();
    let list = list.as_array().expect("the seed's list is a bare array");
    assert_eq!(list.len(), 3);
    let vultr = &list[2];
    for field in [
        "id",
        "provider",
        "credential_name",
        "credential_type",
        "permissions",
        "is_active",
        "is_verified",
        "last_used_at",
        "usage_count",
        "created_at",
        "updated_at",
    ] {
        assert!(vultr.get(field).is_some(), "the seed's field {field} is missing: {vultr}");
    }
    assert_eq!(vultr["id"], vultr_id.as_str());
    assert_eq!(vultr["credential_type"], "api_key");
    assert_eq!(vultr["permissions"], "read_only");
    assert_eq!(vultr["is_active"], true);
    assert_eq!(vultr["usage_count"], 0);
    time::OffsetDateTime::parse(
        vultr["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("timestamps are RFC 3339");

    // "Get Credentials Summary": the seed's shape.
    let response = app.rest(Method::GET, "/api/v1/credentials/status/summary").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let summary = json_of(response).await;
    assert_eq!(summary["customer_id"], app.customer_id.as_str());
    assert_eq!(summary["total_credentials"], 3);
    for provider in ["vultr", "aws", "gcp"] {
        let counts = &summary["providers"][provider];
        assert_eq!(
            (&counts["total"], &counts["active"], &counts["verified"]),
            (&json!(1), &json!(1), &json!(0))
        );
        assert_eq!(counts["credentials"].as_array().unwrap().len(), 1);
    }

    // The collector's side still gets the secret over gRPC: the gateway stored the real thing.
    let got = app.get_by_id(&vultr_id).await.unwrap();
    assert_eq!(got.secret.unwrap().secret, Some(crate::helpers::vultr("YOUR-VULTR-API-KEY")));
}

async fn list_by_provider_pages_and_delete(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let body = json!({"provider": "vultr", "credential_name": format!("Vultr {i}"), "credentials": {"api_key": format!("key-{i}")}});
        let created = json_of(create(&app, &body).await).await;
        ids.push(created["credential_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(create(&app, &seed_aws()).await.status(), StatusCode::CREATED);

    // By provider, two at a time, following X-Next-Page-Token.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            None => "/api/v1/credentials/vultr?page_size=2".to_owned(),
            Some(token) => format!("/api/v1/credentials/vultr?page_size=2&page_token={token}"),
        };
        let response = app.rest(Method::GET, &path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        token = response.headers().get("x-next-page-token").map(|v| v.to_str().unwrap().to_owned());
        let page = json_of(response).await;
        let page = page.as_array().unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|c| {
            assert_eq!(c["provider"], "vultr");
            c["id"].as_str().unwrap().to_owned()
        }));
        if token.is_none() {
            break;
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "every vultr credential once, newest first");

    // Delete: the seed's shape, then gone from the default list, kept with include_inactive.
    let path = format!("/api/v1/credentials/{}", ids[0]);
    let response = app.rest(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let deleted = json_of(response).await;
    assert_eq!(deleted["credential_id"], ids[0].as_str());
    assert_eq!(deleted["credential"]["is_active"], false);
    assert_error(
        app.rest(Method::DELETE, &path).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
        &ids[0],
    )
    .await;
    let active = json_of(app.rest(Method::GET, "/api/v1/credentials/vultr").send().await.unwrap()).await;
    assert_eq!(active.as_array().unwrap().len(), 4);
    let all = app.rest(Method::GET, "/api/v1/credentials/vultr?include_inactive=true").send().await.unwrap();
    assert_eq!(json_of(all).await.as_array().unwrap().len(), 5);
    assert_eq!(app.audit_actions(&ids[0]).await, ["created", "deleted"]);

    // One credential by id, deleted or not; an unknown id is 404, neither provider nor id 400.
    let one = json_of(app.rest(Method::GET, &path).send().await.unwrap()).await;
    assert_eq!((&one["id"], &one["is_active"]), (&json!(ids[0]), &json!(false)));
    let unknown = format!("/api/v1/credentials/{}", uuid::Uuid::new_v4());
    assert_error(
        app.rest(Method::GET, &unknown).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
        "",
    )
    .await;
    let neither = app.rest(Method::GET, "/api/v1/credentials/vultrr").send().await.unwrap();
    assert_error(neither, StatusCode::BAD_REQUEST, "invalid_argument", "not a credential id").await;

    // The summary counts every credential and lists the newest few of each provider (deleted
    // ones included); the token continues the provider's list where it stopped.
    let summary = "/api/v1/credentials/status/summary?credentials_per_provider=2";
    let summary = json_of(app.rest(Method::GET, summary).send().await.unwrap()).await;
    let vultr = &summary["providers"]["vultr"];
    assert_eq!(
        (&summary["total_credentials"], &vultr["total"], &vultr["active"]),
        (&json!(6), &json!(5), &json!(4))
    );
    let listed: Vec<&str> =
        vultr["credentials"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(listed, ids[..2]);
    let token = vultr["next_page_token"].as_str().expect("more vultr credentials than listed");
    let rest = format!("/api/v1/credentials/vultr?include_inactive=true&page_token={token}");
    let rest = json_of(app.rest(Method::GET, &rest).send().await.unwrap()).await;
    let rest: Vec<&str> = rest.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(rest, ids[2..]);
    assert_eq!(summary["providers"]["aws"]["next_page_token"], json!(null), "all listed");
    let negative = "/api/v1/credentials/status/summary?credentials_per_provider=-1";
    let negative = app.rest(Method::GET, negative).send().await.unwrap();
    assert_error(negative, StatusCode::BAD_REQUEST, "invalid_argument", "credentials_per_provider").await;
}

backend_tests!(
    seed_examples_get_the_documented_answers,
    list_by_provider_pages_and_delete,
    the_dashboard_rotates_and_manages_versions,
);

#[tokio::test]
async fn another_customers_credential_is_not_found_and_untouched() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let mine = json_of(create(&app, &seed_vultr()).await).await["credential_id"].as_str().unwrap().to_owned();
    let other = app.create_customer().await;
    let as_other = |method: Method, path: &str| {
        reqwest::Client::new()
            .request(method, format!("{}{path}", app.http))
            .header("X-Customer-ID", &other)
            .bearer_auth(&app.token)
    };

    let response = as_other(Method::DELETE, &format!("/api/v1/credentials/{mine}")).send().await.unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found", &mine).await;
    let response = as_other(Method::POST, "/api/v1/credentials/verify")
        .json(&json!({"credential_id": mine}))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found", &mine).await;
    let listed = json_of(as_other(Method::GET, "/api/v1/credentials").send().await.unwrap()).await;
    assert_eq!(listed, json!([]));

    let response = as_other(Method::GET, &format!("/api/v1/credentials/{mine}")).send().await.unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found", &mine).await;

    // Nothing happened to it, and every attempt is on its record.
    assert_eq!(app.audit_actions(&mine).await, ["created", "denied", "denied", "denied"]);
    assert!(app.get_by_id(&mine).await.is_ok(), "still active");
}

#[tokio::test]
async fn each_bad_request_gets_its_status_and_loses_nothing() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let url = format!("{}/api/v1/credentials", app.http);
    let client = reqwest::Client::new();

    // 400: the customer header missing or malformed.
    let response = client.get(&url).bearer_auth(&app.token).send().await.unwrap();
    let error = assert_error(response, StatusCode::BAD_REQUEST, "invalid_argument", "X-Customer-ID").await;
    assert_eq!(error["field"], "X-Customer-ID");
    let response =
        client.get(&url).bearer_auth(&app.token).header("X-Customer-ID", "not-a-uuid").send().await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_argument", "X-Customer-ID").await;

    // 400: malformed JSON, saying where.
    let response = app
        .rest(Method::POST, "/api/v1/credentials")
        .header("content-type", "application/json")
        .body("{\"provider\": \"vultr\",\n \"credentials\": {\"api_key\": \"SECRET-IN-BROKEN-JSON\"")
        .send()
        .await
        .unwrap();
    let error = assert_error(response, StatusCode::BAD_REQUEST, "malformed_json", "line 2").await;
    assert!(!error.to_string().contains("SECRET-IN-BROKEN-JSON"), "the secret is not echoed: {error}");

    // 415: not JSON.
    let response =
        app.rest(Method::POST, "/api/v1/credentials").body(seed_vultr().to_string()).send().await.unwrap();
    assert_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "application/json")
        .await;

    // 413: over the body limit.
    let huge = json!({"provider": "vultr", "credential_name": "Huge", "credentials": {"api_key": "k".repeat(300 * 1024)}});
    let response = create(&app, &huge).await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "bytes").await;

    // 422: well-formed JSON with a wrong value, naming the field.
    for (body, field) in [
        (
            json!({"provider": "digitalocean", "credential_name": "X", "credentials": {"api_key": "k"}}),
            "provider",
        ),
        (
            json!({"provider": "vultr", "credential_name": "", "credentials": {"api_key": "k"}}),
            "credential_name",
        ),
        (
            json!({"provider": "vultr", "credential_name": "X".repeat(256), "credentials": {"api_key": "k"}}),
            "credential_name",
        ),
        (
            json!({"provider": "vultr", "credential_name": "X", "credentials": {"token": "k"}}),
            "credentials.token",
        ),
        (
            json!({"provider": "aws", "credential_name": "X", "credentials": {"access_key_id": "A"}}),
            "credentials.secret_access_key",
        ),
        (
            json!({"provider": "vultr", "credential_name": "X", "credentials": {"api_key": "k"}, "permissions": "root"}),
            "permissions",
        ),
    ] {
        let error =
            assert_error(create(&app, &body).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_argument", "")
                .await;
        let named = error["field"].as_str().unwrap_or_default();
        assert!(named.starts_with(field), "{body}: field {named:?}, expected {field}");
    }
    let response = app.rest(Method::GET, "/api/v1/credentials/digitalocean").send().await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_argument", "unknown provider").await;
    let response = app.rest(Method::DELETE, "/api/v1/credentials/not-a-uuid").send().await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_argument", "credential_id").await;
    let response = app.rest(Method::GET, "/api/v1/credentials?page_size=-1").send().await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_argument", "page_size").await;
    let response = app.rest(Method::GET, "/api/v1/credentials?page_token=garbage!").send().await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_argument", "page_token").await;

    // 404: an unknown customer; an unknown credential; an unknown path.
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&app.token)
        .header("X-Customer-ID", uuid::Uuid::new_v4().to_string())
        .json(&seed_vultr())
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found", "customer").await;
    let response = app
        .rest(Method::DELETE, &format!("/api/v1/credentials/{}", uuid::Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found", "no active credential").await;
    let response = app.rest(Method::GET, "/api/v2/nothing").send().await.unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found", "openapi.json").await;
    let response = app.rest(Method::PUT, "/api/v1/credentials").send().await.unwrap();
    assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "").await;

    // 409: a second active credential with the same name.
    assert_eq!(create(&app, &seed_vultr()).await.status(), StatusCode::CREATED);
    let response = create(&app, &seed_vultr()).await;
    assert_error(response, StatusCode::CONFLICT, "already_exists", "Production Vultr").await;

    // Nothing above stored anything but the one credential.
    let listed = json_of(app.rest(Method::GET, "/api/v1/credentials").send().await.unwrap()).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_retried_create_with_the_same_idempotency_key_returns_the_first_result() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let send = |body: Value| {
        app.rest(Method::POST, "/api/v1/credentials")
            .header("Idempotency-Key", "create-vultr-1")
            .json(&body)
            .send()
    };
    let first = send(seed_vultr()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first = json_of(first).await;
    let again = send(seed_vultr()).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK, "a replay is not a second creation");
    assert_eq!(json_of(again).await["credential_id"], first["credential_id"]);
    let mut changed = seed_vultr();
    changed["credentials"]["api_key"] = json!("ANOTHER-KEY");
    let response = send(changed).await.unwrap();
    let error =
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_argument", "already used").await;
    assert_eq!(error["field"], "idempotency_key");
}

#[tokio::test]
async fn verify_by_id_and_inline_reach_the_provider() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_verifying(Backend::Sqlite, fakes.settings(Duration::from_secs(5), 0)).await;
    // Stored without verifying (the gateway would verify on write), to verify it by id.
    let good = json!({"provider": "vultr", "credential_name": "Good", "credentials": {"api_key": VULTR_KEY}, "verify": false});
    let id = json_of(create(&app, &good).await).await["credential_id"].as_str().unwrap().to_owned();
    assert_eq!(app.audit_actions(&id).await, ["created"]);

    let response = app
        .rest(Method::POST, "/api/v1/credentials/verify")
        .json(&json!({"credential_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(!text.contains(VULTR_KEY), "the secret is not returned");
    let verified: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(verified["outcome"], "valid", "{verified}");
    assert_eq!(verified["is_valid"], true);
    assert_eq!(verified["credential"]["is_verified"], true);
    assert_eq!(app.audit_actions(&id).await, ["created", "verified"]);

    let inline = json!({"provider": "vultr", "credentials": {"api_key": "WRONG-KEY"}});
    let response = app.rest(Method::POST, "/api/v1/credentials/verify").json(&inline).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let verified = json_of(response).await;
    assert_eq!(verified["outcome"], "invalid", "{verified}");
    assert_eq!(verified["credential"], Value::Null);
    let metrics = reqwest::get(format!("{}/metrics", app.http)).await.unwrap().text().await.unwrap();
    for outcome in ["valid", "invalid"] {
        let line = format!(r#"credvault_verifications_total{{provider="vultr",outcome="{outcome}"}}"#);
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }

    for ambiguous in
        [json!({}), json!({"credential_id": id, "provider": "vultr", "credentials": {"api_key": "k"}})]
    {
        let response =
            app.rest(Method::POST, "/api/v1/credentials/verify").json(&ambiguous).send().await.unwrap();
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_argument", "either").await;
    }
}

#[tokio::test]
async fn cors_allows_the_dashboard_origin_only() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let preflight = |origin: &str| {
        reqwest::Client::new()
            .request(Method::OPTIONS, format!("{}/api/v1/credentials", app.http))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "content-type,x-customer-id,authorization,idempotency-key",
            )
            .send()
    };
    let allowed = preflight(DASHBOARD_ORIGIN).await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(allowed.headers()["access-control-allow-origin"], DASHBOARD_ORIGIN);
    let headers = allowed.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(
        headers.contains("x-customer-id")
            && headers.contains("authorization")
            && headers.contains("idempotency-key"),
        "{headers}"
    );

    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());

    let listed =
        app.rest(Method::GET, "/api/v1/credentials").header("Origin", DASHBOARD_ORIGIN).send().await.unwrap();
    assert_eq!(listed.headers()["access-control-allow-origin"], DASHBOARD_ORIGIN);
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi_are_served() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let get = |path: &str| reqwest::get(format!("{}{path}", app.http));
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);

    // Traffic on both transports, then the counters and histograms name route / method and outcome.
    let created = json_of(create(&app, &seed_vultr()).await).await;
    assert_eq!(create(&app, &seed_vultr()).await.status(), StatusCode::CONFLICT);
    app.get_by_id(created["credential_id"].as_str().unwrap()).await.unwrap();
    app.list(credvault::proto::ListRequest { customer_id: app.customer_id.clone(), ..Default::default() })
        .await
        .unwrap();
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for expected in [
        r#"credvault_http_requests_total{route="/api/v1/credentials",method="POST",status="201"}"#,
        r#"credvault_http_requests_total{route="/api/v1/credentials",method="POST",status="409"}"#,
        r#"credvault_http_request_duration_seconds_bucket{route="/api/v1/credentials",method="POST",status="201","#,
        r#"credvault_grpc_requests_total{method="/credvault.v1.CredentialService/List",code="Ok"}"#,
        r#"credvault_grpc_request_duration_seconds_count{method="/credvault.v1.CredentialService/List",code="Ok"}"#,
        // The storage write path.
        r#"credvault_store_group_size_bucket{group="sqlite_uses",le="1"}"#,
        r#"credvault_store_sync_seconds_count{group="sqlite_uses"}"#,
        "credvault_store_write_turn_wait_seconds_count",
        "credvault_store_journal_move_seconds_count",
        "credvault_audit_chain_lag_seconds",
    ] {
        assert!(metrics.contains(expected), "/metrics lacks {expected}:\n{metrics}");
    }

    let response = get("/api/v1/openapi.json").await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let document = json_of(response).await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/credentials",
        "/api/v1/credentials/{provider_or_id}",
        "/api/v1/credentials/verify",
        "/api/v1/credentials/status/summary",
    ] {
        assert!(document["paths"].get(path).is_some(), "the document lacks {path}");
    }
}

#[tokio::test]
async fn readyz_is_503_while_the_database_is_unreachable() {
    let cluster = crate::pg::Cluster::start();
    let url = crate::pg::fresh_database(&cluster.admin_url()).await;
    cluster.stop_server();
    let app = TestApp::start(Backend::Postgres, url, tempfile::tempdir().unwrap(), new_key()).await.unwrap();
    let response = reqwest::get(format!("{}/readyz", app.http)).await.unwrap();
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable", "database").await;
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/credentials", app.http))
        .header("X-Customer-ID", uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable", "").await;
    assert_eq!(
        reqwest::get(format!("{}/healthz", app.http)).await.unwrap().status(),
        StatusCode::OK,
        "alive"
    );

    cluster.start_server();
    app.wait_serving(Duration::from_secs(30)).await;
    assert_eq!(reqwest::get(format!("{}/readyz", app.http)).await.unwrap().status(), StatusCode::OK);
}

/// The audit log records the peer address, or the forwarded one only from a trusted proxy.
#[tokio::test]
async fn the_audit_log_believes_x_forwarded_for_only_from_trusted_proxies() {
    let trusted = credvault::domain::TrustedProxies::parse("127.0.0.0/8", "proxies").unwrap();
    for (proxies, expected) in [(Default::default(), "127.0.0.1"), (trusted, "203.0.113.9")] {
        let app = TestApp::spawn_configured(Backend::Sqlite, |config| credvault::config::Config {
            trusted_proxies: proxies,
            ..config
        })
        .await;
        let response = app
            .rest(Method::POST, "/api/v1/credentials")
            .header("X-Forwarded-For", "203.0.113.9")
            .json(&seed_vultr())
            .send()
            .await
            .unwrap();
        let id = json_of(response).await["credential_id"].as_str().unwrap().to_owned();
        let filter = credvault::domain::AuditFilter {
            customer_id: None,
            credential_id: Some(credvault::domain::CredentialId::parse(&id, "id").unwrap()),
            action: None,
            since: None,
            until: None,
            page_size: 10,
            after: None,
        };
        let events = app.vault.directory().audit_events(&RequestContext::operator(), filter).await.unwrap();
        assert_eq!(events.items[0].ip_address.as_deref(), Some(expected));
    }
}

/// Rotation and versions for the dashboard: PUT, the versions list, state changes, ETag and
/// If-Match.
async fn the_dashboard_rotates_and_manages_versions(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let created = json_of(create(&app, &seed_vultr()).await).await;
    let id = created["credential_id"].as_str().unwrap().to_owned();
    let etag = format!("\"{}\"", created["credential"]["etag"].as_str().unwrap());
    assert_eq!(created["credential"]["current_version"], 1);
    let path = format!("/api/v1/credentials/{id}");
    let rotate = |body: Value| app.rest(Method::PUT, &path).json(&body);
    let new_key = json!({"provider": "vultr", "credentials": {"api_key": "ROTATED-KEY"}});

    // A stale If-Match is refused, and nothing is written.
    let stale = rotate(new_key.clone()).header("If-Match", "\"r999\"").send().await.unwrap();
    assert_error(stale, StatusCode::PRECONDITION_FAILED, "aborted", "read it again").await;
    let garbage = rotate(new_key.clone()).header("If-Match", "r1").send().await.unwrap();
    let error = assert_error(garbage, StatusCode::BAD_REQUEST, "invalid_argument", "ETag").await;
    assert_eq!(error["field"], "If-Match");
    let other_provider =
        rotate(json!({"provider": "aws", "credentials": {"access_key_id": "A", "secret_access_key": "s"}}));
    assert_error(
        other_provider.send().await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "keeps the provider",
    )
    .await;

    let rotated = rotate(new_key.clone()).header("If-Match", &etag).send().await.unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    let new_etag = rotated.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    let body = json_of(rotated).await;
    assert_eq!(
        (body["credential"]["current_version"].clone(), body["version"]["version"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(format!("\"{}\"", body["credential"]["etag"].as_str().unwrap()), new_etag);
    let fetched = app.get_by_id(&id).await.unwrap();
    assert_eq!(fetched.version, 2);
    // The old etag no longer works for a state change either.
    let disable_v1 = format!("{path}/versions/1/disable");
    let late = app.rest(Method::POST, &disable_v1).header("If-Match", &etag).send().await.unwrap();
    assert_error(late, StatusCode::PRECONDITION_FAILED, "aborted", "changed since").await;

    let disabled = app.rest(Method::POST, &disable_v1).header("If-Match", &new_etag).send().await.unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(json_of(disabled).await["version"]["state"], "disabled");
    let destroyed = app.rest(Method::POST, &format!("{path}/versions/1/destroy")).send().await.unwrap();
    assert_eq!(json_of(destroyed).await["version"]["state"], "destroyed");
    let enable = app.rest(Method::POST, &format!("{path}/versions/1/enable")).send().await.unwrap();
    assert_error(enable, StatusCode::CONFLICT, "failed_precondition", "was destroyed").await;
    let unknown = app.rest(Method::POST, &format!("{path}/versions/7/disable")).send().await.unwrap();
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found", "version 7").await;
    let zero = app.rest(Method::POST, &format!("{path}/versions/0/disable")).send().await.unwrap();
    assert_error(zero, StatusCode::BAD_REQUEST, "invalid_argument", "1 or more").await;
    let unknown_action = app.rest(Method::POST, &format!("{path}/versions/2/erase")).send().await.unwrap();
    let error =
        assert_error(unknown_action, StatusCode::BAD_REQUEST, "invalid_argument", "not an action").await;
    assert_eq!(error["field"], "action");

    // The versions list pages, newest first.
    let page = app.rest(Method::GET, &format!("{path}/versions?page_size=1")).send().await.unwrap();
    let next = page.headers()["x-next-page-token"].to_str().unwrap().to_owned();
    let first: Vec<(u64, String)> = json_of(page)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_u64().unwrap(), v["state"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(first, vec![(2, "enabled".to_owned())]);
    let rest = app
        .rest(Method::GET, &format!("{path}/versions?page_size=1&page_token={next}"))
        .send()
        .await
        .unwrap();
    assert!(rest.headers().get("x-next-page-token").is_none());
    assert_eq!(json_of(rest).await[0]["state"], "destroyed");

    // Metadata changes in place with PATCH.
    let patch = |body: Value| app.rest(Method::PATCH, &path).json(&body);
    let renamed =
        patch(json!({"credential_name": "Renamed", "permissions": "read_write"})).send().await.unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    let renamed_etag = renamed.headers()["etag"].to_str().unwrap().to_owned();
    let renamed = json_of(renamed).await;
    assert_eq!(
        (renamed["credential_name"].clone(), renamed["permissions"].clone()),
        (json!("Renamed"), json!("read_write"))
    );
    assert_eq!(renamed["current_version"], 2, "the versions stay");
    let stale = patch(json!({"is_default": true})).header("If-Match", &new_etag).send().await.unwrap();
    assert_error(stale, StatusCode::PRECONDITION_FAILED, "aborted", "read it again").await;
    let fresh = patch(json!({"is_default": true})).header("If-Match", &renamed_etag).send().await.unwrap();
    assert_eq!(json_of(fresh).await["is_default"], true);
    let nothing = patch(json!({})).send().await.unwrap();
    assert_error(nothing, StatusCode::UNPROCESSABLE_ENTITY, "invalid_argument", "names no field").await;
    let unknown = patch(json!({"provider": "aws"})).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Delete, then restore within the recovery window.
    let deleted = app.rest(Method::DELETE, &path).send().await.unwrap();
    assert!(json_of(deleted).await["credential"]["scheduled_purge_at"].is_string());
    let restored = app.rest(Method::POST, &format!("{path}/restore")).send().await.unwrap();
    assert_eq!(restored.status(), StatusCode::OK);
    let restored = json_of(restored).await;
    assert_eq!(
        (restored["is_active"].clone(), restored["scheduled_purge_at"].clone()),
        (json!(true), Value::Null)
    );
    let again = app.rest(Method::POST, &format!("{path}/restore")).send().await.unwrap();
    assert_error(again, StatusCode::CONFLICT, "failed_precondition", "is not deleted").await;

    // Another customer's credential is not there.
    let other = app.create_customer().await;
    let outsider = app.rest(Method::PUT, &path).header("X-Customer-ID", &other).json(&new_key);
    // `rest` already set X-Customer-ID: the second, different value is refused by name.
    assert_error(
        outsider.send().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "X-Customer-ID",
    )
    .await;
    let outsider = reqwest::Client::new()
        .put(format!("{}{path}", app.http))
        .header("X-Customer-ID", &other)
        .bearer_auth(&app.token)
        .json(&new_key)
        .send()
        .await
        .unwrap();
    assert_error(outsider, StatusCode::NOT_FOUND, "not_found", "no active credential").await;
}

/// The dashboard's read-only routes, scoped and tenant-checked as the gRPC calls they mirror:
/// the session (any valid token), the customers (admin, every customer), a credential's audit
/// events (audit:read; another customer's credential is not found, and the attempt audited).
async fn the_dashboards_read_routes_are_scoped_and_tenant_checked(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let mine = json_of(create(&app, &seed_vultr()).await).await["credential_id"].as_str().unwrap().to_owned();
    app.get_by_id(&mine).await.unwrap();
    let (name, bound) = app.token("credentials:read,secrets:read", &app.customer_id, None).await;
    let with = |token: &str, path: &str| {
        reqwest::Client::new()
            .get(format!("{}{path}", app.http))
            .header("X-Customer-ID", &app.customer_id)
            .bearer_auth(token)
    };

    let session = json_of(with(&bound, "/api/v1/session").send().await.unwrap()).await;
    assert_eq!(session["token_name"], name.as_str());
    assert_eq!(session["customer"], app.customer_id.as_str());
    assert_eq!(session["scopes"], json!(["credentials:read", "secrets:read"]));
    let anonymous = reqwest::get(format!("{}/api/v1/session", app.http)).await.unwrap();
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "unauthenticated", "token").await;

    let customers = json_of(with(&app.token, "/api/v1/customers").send().await.unwrap()).await;
    assert!(customers.as_array().unwrap().iter().any(|c| c["id"] == app.customer_id.as_str()), "{customers}");
    let refused = with(&bound, "/api/v1/customers").send().await.unwrap();
    assert_error(refused, StatusCode::FORBIDDEN, "permission_denied", "admin").await;

    let events =
        json_of(with(&app.token, &format!("/api/v1/credentials/{mine}/audit")).send().await.unwrap()).await;
    let actions: Vec<_> = events.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["used", "created"], "newest first");
    let used = json_of(
        with(&app.token, &format!("/api/v1/credentials/{mine}/audit?action=used")).send().await.unwrap(),
    )
    .await;
    assert_eq!(used.as_array().unwrap().len(), 1);
    assert_eq!(used[0]["ip_address"], "127.0.0.1");
    let paged =
        with(&app.token, &format!("/api/v1/credentials/{mine}/audit?page_size=1")).send().await.unwrap();
    assert!(paged.headers().contains_key("x-next-page-token"));
    let bad =
        with(&app.token, &format!("/api/v1/credentials/{mine}/audit?since=yesterday")).send().await.unwrap();
    assert_error(bad, StatusCode::BAD_REQUEST, "invalid_argument", "RFC 3339").await;
    let no_scope = with(&bound, &format!("/api/v1/credentials/{mine}/audit")).send().await.unwrap();
    assert_error(no_scope, StatusCode::FORBIDDEN, "permission_denied", "audit:read").await;

    let other = app.create_customer().await;
    let as_other = reqwest::Client::new()
        .get(format!("{}/api/v1/credentials/{mine}/audit", app.http))
        .header("X-Customer-ID", &other)
        .bearer_auth(&app.token);
    assert_error(as_other.send().await.unwrap(), StatusCode::NOT_FOUND, "not_found", &mine).await;
    let mut actions = app.audit_actions(&mine).await;
    actions.sort_unstable();
    assert_eq!(actions, ["created", "denied", "denied", "used"], "both refusals are on its record");
}

mod read_routes {
    use super::*;

    backend_tests!(the_dashboards_read_routes_are_scoped_and_tenant_checked);
}
