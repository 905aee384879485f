//! Error answers never repeat a secret, whatever shape the body that carried it, and quote at
//! most a short prefix of anything else the client sent.

use credvault::proto as pb;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::*;

const SECRET: &str = "MY-REAL-KEY-7f3a9c";

/// POSTs `body` (sent as is) to `path`; the status and the whole answer's text.
async fn post(app: &TestApp, path: &str, body: String) -> (StatusCode, String) {
    let response = app
        .rest(reqwest::Method::POST, path)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_secret_in_the_wrong_shape_is_never_repeated_in_the_error() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let double_encoded = json!({"api_key": SECRET}).to_string();
    // (path, body, the field the error names, a fragment of what it says)
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "/api/v1/credentials",
            json!({"provider": "vultr", "credential_name": "x", "credentials": double_encoded}),
            "credentials",
            "invalid type: string, expected a map",
        ),
        (
            "/api/v1/credentials/verify",
            json!({"provider": "vultr", "credentials": double_encoded}),
            "credentials",
            "invalid type: string, expected a map",
        ),
        (
            "/api/v1/credentials",
            json!({"provider": "vultr", "credential_name": "x", "credentials": [SECRET]}),
            "credentials",
            "invalid type: sequence, expected a map",
        ),
        (
            "/api/v1/credentials",
            json!({"provider": "aws", "credential_name": "x", "credentials": {"access_key_id": 73_012_345_678_u64, "secret_access_key": true}}),
            "credentials.access_key_id",
            "invalid type: integer, expected a string",
        ),
        (
            "/api/v1/credentials/verify",
            json!({"provider": "vultr", "credentials": {"api_key": {"nested": SECRET}}}),
            "credentials.api_key",
            "invalid type: map, expected a string",
        ),
    ];
    for (path, body, field, fragment) in cases {
        let (status, text) = post(&app, path, body.to_string()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {text}");
        for leaked in [SECRET, "73012345678"] {
            assert!(!text.contains(leaked), "{body} answered {text}");
        }
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["error"]["field"], field, "{text}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(fragment), "{text}");
    }
    // The whole body double-encoded: a JSON string holding the request.
    let request = json!({"provider": "vultr", "credential_name": "x", "credentials": {"api_key": SECRET}});
    let (status, text) = post(&app, "/api/v1/credentials", json!(request.to_string()).to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert!(!text.contains(SECRET) && text.contains("invalid type: string"), "{text}");
    assert_eq!(app.db().await.count("SELECT count(*) FROM cloud_credentials").await, 0, "nothing stored");
}

#[tokio::test]
async fn echoed_values_are_cut_to_a_short_prefix_on_rest() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let long = "v".repeat(200_000);
    let short_enough = |text: &str| {
        assert!(text.len() < 1024, "{} bytes: {}...", text.len(), &text[..200.min(text.len())]);
        assert!(text.contains(&"v".repeat(64)) && !text.contains(&"v".repeat(65)), "{text}");
    };
    let response =
        app.rest(reqwest::Method::GET, &format!("/api/v1/credentials/{}", "v".repeat(5000))).send().await;
    let response = response.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    short_enough(&response.text().await.unwrap());

    let response =
        app.rest(reqwest::Method::GET, &format!("/api/v1/credentials?include_inactive={}", "v".repeat(5000)));
    let response = response.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = response.text().await.unwrap();
    assert!(text.len() < 1024 && !text.contains(&"v".repeat(65)), "{text}");

    let body = json!({"provider": long, "credential_name": "x", "credentials": {"api_key": "k"}});
    let (status, text) = post(&app, "/api/v1/credentials", body.to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    short_enough(&text);

    let body = json!({"provider": "vultr", "credential_name": "x", "credentials": {long.clone(): "k"}});
    let (status, text) = post(&app, "/api/v1/credentials", body.to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    short_enough(&text);

    let body = json!({"provider": "vultr", "credential_name": "x", "credentials": {"api_key": "k"}, long.clone(): 1});
    let (status, text) = post(&app, "/api/v1/credentials", body.to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    short_enough(&text);
}

#[tokio::test]
async fn errors_stay_short_on_grpc_whatever_the_input() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let long = "v".repeat(200_000);
    let short = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().len() < 512, "{} bytes", status.message().len());
        assert!(!status.message().contains(&"v".repeat(65)));
    };
    short(app.store(store_request(&app.customer_id, &long, vultr("k"))).await.unwrap_err());
    short(app.store(store_request(&long, "x", vultr("k"))).await.unwrap_err());
    short(app.get_by_id(&long).await.unwrap_err());
    let mut customers =
        pb::customer_service_client::CustomerServiceClient::with_interceptor(app.channel().await, {
            credvault::client::Bearer::new(&app.token).unwrap()
        });
    let request =
        pb::CreateCustomerRequest { email: long.clone(), company_name: long.clone(), ..Default::default() };
    short(customers.create_customer(request).await.unwrap_err());
}

#[tokio::test]
async fn a_header_given_twice_with_different_values_is_refused_by_name() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let other = app.create_customer().await;
    let url = format!("{}/api/v1/credentials", app.http);
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&app.token)
        .header("X-Customer-ID", &app.customer_id)
        .header("X-Customer-ID", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "X-Customer-ID", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("more than once"), "{body}");
    // The same value twice is not ambiguous.
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&app.token)
        .header("X-Customer-ID", &app.customer_id)
        .header("X-Customer-ID", &app.customer_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Two bearer tokens on one call: which caller is it?
    let (_, token) = app.token("credentials:read", &other, None).await;
    let response = reqwest::Client::new()
        .get(&url)
        .header("Authorization", format!("Bearer {}", app.token))
        .header("Authorization", format!("Bearer {token}"))
        .header("X-Customer-ID", &app.customer_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "Authorization", "{body}");
    // And over gRPC.
    let mut request =
        tonic::Request::new(pb::ListRequest { customer_id: app.customer_id.clone(), ..Default::default() });
    request.metadata_mut().append("authorization", format!("Bearer {}", app.token).parse().unwrap());
    request.metadata_mut().append("authorization", format!("Bearer {token}").parse().unwrap());
    let mut client = pb::credential_service_client::CredentialServiceClient::new(app.channel().await);
    let status = client.list(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("authorization"), "{status:?}");
}
