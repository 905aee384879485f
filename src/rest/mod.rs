//! The REST gateway for the dashboard: the seed's paths and JSON shapes over the same vault use
//! cases the gRPC service calls. JSON <-> domain only; [`ApiError`]'s `IntoResponse` is the one
//! place errors become HTTP statuses.

mod credentials;
mod dto;
mod openapi;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::domain::{CustomerId, FieldViolation};
use crate::vault::{RequestContext, Vault, VaultError};
use dto::{ErrorBody, ErrorDetail};

/// Largest accepted request body: a 64 KiB secret, JSON-escaped, plus the rest of the request.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Builds the gateway. `dashboard_origin`, if set, is the one origin CORS allows.
pub fn router(vault: Vault, dashboard_origin: Option<HeaderValue>) -> Router {
    let api = credentials::routes()
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(|| async { crate::metrics::render() }))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; see /api/v1/openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this path",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(crate::metrics::http_middleware))
        .with_state(vault);
    match dashboard_origin {
        Some(origin) => api.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list([origin]))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    "x-customer-id".parse().expect("a header name"),
                    "idempotency-key".parse().expect("a header name"),
                ])
                .expose_headers(["x-next-page-token".parse().expect("a header name")]),
        ),
        None => api,
    }
}

async fn readyz(State(vault): State<Vault>) -> Response {
    if vault.is_ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "not ready: the database is not reachable yet",
        )
        .into_response()
    }
}

/// An error answer: status plus `{"error": {"code", "message", "field"}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None }
    }

    /// A problem with the request's header, path or query: 400.
    fn bad_request(v: FieldViolation) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_argument",
            message: v.to_string(),
            field: Some(v.field),
        }
    }

    /// Well-formed JSON whose content is invalid: 422.
    fn unprocessable(v: FieldViolation) -> Self {
        VaultError::InvalidArgument(v).into()
    }
}

/// The one mapping from vault errors to HTTP.
impl From<VaultError> for ApiError {
    fn from(err: VaultError) -> Self {
        let (status, code) = match &err {
            VaultError::InvalidArgument(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_argument"),
            VaultError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            VaultError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "permission_denied"),
            VaultError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            VaultError::AlreadyExists(_) => (StatusCode::CONFLICT, "already_exists"),
            VaultError::FailedPrecondition(_) => (StatusCode::CONFLICT, "failed_precondition"),
            VaultError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            VaultError::Unimplemented(_) => (StatusCode::NOT_IMPLEMENTED, "not_implemented"),
            VaultError::DataLoss(_) => (StatusCode::INTERNAL_SERVER_ERROR, "data_loss"),
            VaultError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        match err {
            VaultError::InvalidArgument(mut v) => {
                v.field = json_field(&v.field);
                Self { status, code, message: v.to_string(), field: Some(v.field) }
            }
            VaultError::Internal => Self::new(status, code, "internal error; the server log has the details"),
            other => Self::new(status, code, other.to_string()),
        }
    }
}

/// The vault names secret fields as the gRPC contract does (`secret.gcp.service_account_json`);
/// the dashboard sent them as `credentials.service_account_json`.
fn json_field(field: &str) -> String {
    match field.strip_prefix("secret") {
        Some("") => "credentials".to_owned(),
        Some(rest) => match rest.rsplit_once('.') {
            Some((_, name)) if rest.starts_with('.') && rest.matches('.').count() == 2 => {
                format!("credentials.{name}")
            }
            _ => field.to_owned(),
        },
        None => field.to_owned(),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(e) => Self::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("malformed JSON: {}", source_text(&e)),
            ),
            JsonRejection::JsonDataError(e) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_argument",
                format!("invalid request body: {}", source_text(&e)),
            ),
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is over {MAX_BODY_BYTES} bytes; secrets may be at most 64 KiB"),
            ),
            other => Self::new(StatusCode::BAD_REQUEST, "bad_request", other.body_text()),
        }
    }
}

/// serde_json's message (which says where: line and column), without axum's wrapper, and
/// without echoing values: serde reports types and positions, never the secret text.
fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        innermost = cause.to_string();
        source = cause.source();
    }
    innermost
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail { code: self.code.to_owned(), message: self.message, field: self.field },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Who is calling: the customer named by the `X-Customer-ID` header, and the audit context
/// (peer address, and that the caller acts for that customer only).
pub(crate) struct Caller {
    customer: CustomerId,
    context: RequestContext,
}

impl FromRequestParts<Vault> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, vault: &Vault) -> Result<Self, Self::Rejection> {
        let authorization =
            parts.headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{fffd}"));
        let principal = vault.authenticate(authorization).await?;
        let value =
            parts.headers.get("x-customer-id").map(|v| v.to_str().unwrap_or("\u{fffd}")).unwrap_or_default();
        let customer = CustomerId::parse(value, "X-Customer-ID").map_err(ApiError::bad_request)?;
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        let forwarded = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let peer_ip = vault.client_ip(peer, forwarded);
        let context = RequestContext { principal: Some(principal), peer_ip, acting_for: Some(customer) };
        Ok(Caller { customer, context })
    }
}

/// `axum::Json` with our error body on rejection.
pub(crate) struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(JsonBody(value))
    }
}

/// `axum::extract::Query` with our error body on rejection.
pub(crate) struct QueryParams<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                format!("invalid query: {}", source_text(&e)),
            )
        })?;
        Ok(QueryParams(value))
    }
}

/// `axum::extract::Path` with our error body on rejection.
pub(crate) struct PathParam<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(value) = Path::<T>::from_request_parts(parts, state).await.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                format!("invalid path: {}", source_text(&e)),
            )
        })?;
        Ok(PathParam(value))
    }
}
