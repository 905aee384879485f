//! Another customer's credential is indistinguishable from one that does not exist, on gRPC
//! and REST alike, and every such attempt is audited against the real credential.

use credvault::proto as pb;
use reqwest::{Method, StatusCode};
use tonic::Code;

use crate::helpers::*;

/// The message with `id` written as `<id>`: the shape a client sees.
fn shape(message: &str, id: &str) -> String {
    message.replace(id, "<id>")
}

async fn another_customers_credential_answers_as_missing_over_grpc_and_is_audited(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let victim = app.store_vultr("Victim's", "victim-key").await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let attacker = app.create_customer().await;
    let (name, token) = app.token("*", &attacker, None).await;
    let mut client = app.client_with(Some(&token)).await;

    // Get twice: the second is answered from the vault's cache of served credentials.
    app.get_by_id(&victim.id).await.unwrap();
    let get = |id: &str| get_by_id(id);
    let verify = |id: &str| pb::VerifyRequest {
        target: Some(pb::verify_request::Target::CredentialId(id.to_owned())),
    };
    let delete = |id: &str| pb::DeleteRequest { credential_id: id.to_owned() };
    for round in 0..2 {
        let theirs = client.get(get(&victim.id)).await.map(drop);
        let missing = client.get(get(&unknown)).await.map(drop);
        let (theirs, missing) = (theirs.unwrap_err(), missing.unwrap_err());
        assert_eq!((theirs.code(), missing.code()), (Code::NotFound, Code::NotFound), "Get, round {round}");
        assert_eq!(shape(theirs.message(), &victim.id), shape(missing.message(), &unknown));
    }
    let theirs = client.verify(verify(&victim.id)).await.unwrap_err();
    let missing = client.verify(verify(&unknown)).await.unwrap_err();
    assert_eq!((theirs.code(), missing.code()), (Code::NotFound, Code::NotFound), "Verify");
    assert_eq!(shape(theirs.message(), &victim.id), shape(missing.message(), &unknown));
    let theirs = client.delete(delete(&victim.id)).await.unwrap_err();
    let missing = client.delete(delete(&unknown)).await.unwrap_err();
    assert_eq!((theirs.code(), missing.code()), (Code::NotFound, Code::NotFound), "Delete");
    assert_eq!(shape(theirs.message(), &victim.id), shape(missing.message(), &unknown));

    // Nothing was handed out or deleted; each attempt on the real credential is on record.
    app.get_by_id(&victim.id).await.expect("the victim's credential is untouched");
    let denials = app.db().await.denials(&name).await;
    assert_eq!(denials.len(), 4, "two Gets, a Verify and a Delete: {denials:?}");
    assert!(denials.iter().all(|d| d.contains(&attacker) && d.contains(&app.customer_id)), "{denials:?}");
    let actions = app.audit_actions(&victim.id).await;
    assert_eq!(actions.iter().filter(|a| *a == "denied").count(), 4, "{actions:?}");
}

async fn another_customers_credential_answers_as_missing_over_rest_and_is_audited(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let victim = app.store_vultr("Victim's", "victim-key").await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let attacker = app.create_customer().await;
    // A token bound to the attacker, and a token for every customer acting for the attacker
    // (a dashboard serving many customers): neither reaches the victim's credential.
    let (bound, bound_token) = app.token("*", &attacker, None).await;
    let (platform, platform_token) = app.token("*", "*", None).await;
    for token in [&bound_token, &platform_token] {
        let call = |method: Method, path: String, body: Option<serde_json::Value>| {
            let request = reqwest::Client::new()
                .request(method, format!("{}{path}", app.http))
                .header("X-Customer-ID", &attacker)
                .bearer_auth(token);
            async move {
                let response = match body {
                    Some(body) => request.json(&body).send().await,
                    None => request.send().await,
                }
                .unwrap();
                let status = response.status();
                (status, response.json::<serde_json::Value>().await.unwrap())
            }
        };
        for (theirs, missing) in [
            (
                call(Method::DELETE, format!("/api/v1/credentials/{}", victim.id), None).await,
                call(Method::DELETE, format!("/api/v1/credentials/{unknown}"), None).await,
            ),
            (
                call(
                    Method::POST,
                    "/api/v1/credentials/verify".into(),
                    Some(serde_json::json!({"credential_id": victim.id})),
                )
                .await,
                call(
                    Method::POST,
                    "/api/v1/credentials/verify".into(),
                    Some(serde_json::json!({"credential_id": unknown})),
                )
                .await,
            ),
        ] {
            assert_eq!((theirs.0, missing.0), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
            let message =
                |body: &serde_json::Value, id: &str| shape(body["error"]["message"].as_str().unwrap(), id);
            assert_eq!(message(&theirs.1, &victim.id), message(&missing.1, &unknown));
            assert_eq!(theirs.1["error"]["code"], missing.1["error"]["code"]);
        }
    }
    app.get_by_id(&victim.id).await.expect("the victim's credential is untouched");
    let db = app.db().await;
    assert_eq!(db.denials(&bound).await.len(), 2, "the bound token's Delete and Verify");
    assert_eq!(db.denials(&platform).await.len(), 2, "the platform token's Delete and Verify");
    let actions = app.audit_actions(&victim.id).await;
    assert_eq!(actions.iter().filter(|a| *a == "denied").count(), 4, "{actions:?}");
}

backend_tests!(
    another_customers_credential_answers_as_missing_over_grpc_and_is_audited,
    another_customers_credential_answers_as_missing_over_rest_and_is_audited,
);
