use credvault::proto as pb;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::{v1, v1alpha};

use crate::helpers::*;

#[tokio::test]
async fn health_reports_serving_overall_and_for_the_credential_service() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let mut health = HealthClient::new(app.channel().await);
    for service in ["", "credvault.v1.CredentialService"] {
        let status = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(status.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health.check(HealthCheckRequest { service: "nope.Service".into() }).await;
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn reflection_lists_the_services_in_both_protocol_versions() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(app.channel().await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["credvault.v1.CredentialService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }

    // v1alpha (grpcurl < 1.9): describe a credvault symbol.
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel().await);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
            "credvault.v1.CredentialService".into(),
        )),
    };
    let mut stream = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = stream.message().await.unwrap().unwrap();
    assert!(
        matches!(
            response.message_response,
            Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()
        ),
        "{response:?}"
    );
}

#[tokio::test]
async fn shutdown_finishes_and_closes_the_port() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let addr = app.addr;
    app.store_vultr("before shutdown", "k").await;
    let _stopped = app.stop().await;
    let refused =
        pb::credential_service_client::CredentialServiceClient::connect(format!("http://{addr}")).await;
    assert!(refused.is_err(), "the port must be closed after shutdown");
}
