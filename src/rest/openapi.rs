//! The OpenAPI 3 document, generated from the handlers' annotations and the DTOs' types.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "credvault REST gateway",
        description = "The dashboard's credential API. Secrets go in (POST /api/v1/credentials) and never come \
                       back out: services fetch them over gRPC (credvault.v1.CredentialService/Get).",
    ),
    paths(
        super::credentials::create,
        super::credentials::list,
        super::credentials::list_by_provider,
        super::credentials::verify,
        super::credentials::delete,
        super::credentials::summary,
        super::lifecycle::update,
        super::lifecycle::rotate,
        super::lifecycle::list_versions,
        super::lifecycle::restore,
        super::lifecycle::change_version,
        super::directory::credential_audit,
        super::directory::session,
        super::directory::customers,
    ),
    // Path parameters' own types are not collected from the paths.
    components(schemas(super::lifecycle::VersionAction)),
    // Relative: the gateway that serves this document, wherever it is deployed.
    servers((url = "/", description = "This credvault gateway")),
    tags(
        (name = "credentials", description = "Cloud-provider credentials of one customer (X-Customer-ID)"),
        (name = "session", description = "The calling token, and the customers a token for every customer may pick"),
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Declares the `authorization: Bearer <token>` scheme every endpoint uses.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("A credvault token (cvt_...) from `credvault token create`"))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// `GET /api/v1/openapi.json`.
pub(super) async fn document() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| ApiDoc::openapi().to_json().expect("the OpenAPI document serializes"));
    ([(header::CONTENT_TYPE, "application/json")], json.as_str())
}
