//! The REST gateway for the dashboard: the seed's paths and JSON shapes over the same vault use
//! cases the gRPC service calls. JSON <-> domain only; [`ApiError`]'s `IntoResponse` is the one
//! place errors become HTTP statuses.

mod credentials;
mod dashboard;
mod directory;
mod dto;
mod lifecycle;
mod openapi;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::call_log::CallIdentity;
use crate::domain::{CustomerId, FieldViolation, Provider, quoted, shortened};
use crate::vault::{RequestContext, Vault, VaultError};
use dto::{ErrorBody, ErrorDetail};

/// Where the next page starts, when there is one (list bodies stay the seed's bare array).
const NEXT_PAGE_TOKEN: HeaderName = HeaderName::from_static("x-next-page-token");

/// A provider named in a path or query.
fn provider(name: &str, field: &str) -> Result<Provider, FieldViolation> {
    Provider::parse(name).ok_or_else(|| {
        FieldViolation::new(
            field,
            format!("unknown provider {}; expected vultr, aws, gcp or azure", quoted(name)),
        )
    })
}

/// Largest accepted request body: a 64 KiB secret, JSON-escaped, plus the rest of the request.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Builds the gateway. `dashboard_origin`, if set, is the one origin CORS allows.
pub fn router(vault: Vault, dashboard_origin: Option<HeaderValue>) -> Router {
    let api = credentials::routes()
        .merge(directory::routes())
        .merge(dashboard::routes())
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
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::IF_MATCH,
                    "x-customer-id".parse().expect("a header name"),
                    "idempotency-key".parse().expect("a header name"),
                ])
                .expose_headers(["x-next-page-token".parse().expect("a header name"), header::ETAG]),
        ),
        None => api,
    }
}

async fn readyz(State(vault): State<Vault>) -> Response {
    let why = if vault.is_serving() {
        return (StatusCode::OK, "ready").into_response();
    } else if vault.is_ready() {
        "not ready: the database is unreachable or cannot be written"
    } else {
        "not ready: the database is not reachable yet"
    };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why).into_response()
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
            // Only a conditional request (If-Match, or an etag in the body) can be aborted.
            VaultError::Aborted(_) => (StatusCode::PRECONDITION_FAILED, "aborted"),
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
            JsonRejection::JsonDataError(e) => json_data_error(&e),
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

/// The innermost cause's message, without axum's wrappers and without the values it quotes
/// (see [`without_values`]): serde_json's syntax errors say where (line and column).
fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        innermost = cause.to_string();
        source = cause.source();
    }
    without_values(&innermost)
}

/// Well-formed JSON of the wrong shape: 422 naming the field (`credentials`,
/// `credentials.api_key`) and the type expected. serde's message quotes the value it met
/// (`invalid type: string "{\"api_key\":...}"`), which may be a secret sent in the wrong shape
/// (a double-encoded `credentials`): only the value's kind is kept.
fn json_data_error(e: &(dyn std::error::Error + 'static)) -> ApiError {
    let mut cause = Some(e);
    while let Some(error) = cause {
        if let Some(e) = error.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>() {
            let field = field_path(e.path());
            let description = without_values(&e.inner().to_string());
            let message = if field == "." {
                format!("invalid request body: {description}")
            } else {
                format!("{field}: {description}")
            };
            return ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_argument",
                message,
                field: (field != ".").then_some(field),
            };
        }
        cause = error.source();
    }
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        "the request body does not have the fields and types this endpoint takes; see /api/v1/openapi.json",
    )
}

/// `credentials.api_key` (`.` for the body itself), each name cut to a short prefix: a name
/// is the client's input too.
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let names: Vec<String> = path
        .iter()
        .map(|segment| match segment {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } | Segment::Enum { variant: key } => shortened(key),
            Segment::Unknown => "?".to_owned(),
        })
        .collect();
    if names.is_empty() { ".".to_owned() } else { names.join(".") }
}

/// serde's data error message without the value it quotes: `invalid type: string "…", expected
/// a map` becomes `invalid type: string, expected a map`; names in `unknown field` and
/// `unknown variant` are cut short.
fn without_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            // `string "…"`, `integer `5``, `boolean `true``, or a bare kind (`map`, `sequence`).
            let kind = rest[..rest.find(['"', '`', ',']).unwrap_or(rest.len())].trim();
            return match rest.rfind(", expected ") {
                Some(at) => format!("{prefix}{kind}{}", &rest[at..]),
                None => format!("{prefix}{kind}"),
            };
        }
    }
    for prefix in ["unknown field `", "unknown variant `"] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(at) = rest.rfind("`, expected ")
        {
            let name = quoted(&rest[..at]);
            return format!("{}{name}{}", &prefix[..prefix.len() - 1], &rest[at + 1..]);
        }
    }
    cut_short(message)
}

/// At most a few hundred characters of a message that may repeat input.
fn cut_short(text: &str) -> String {
    crate::domain::shortened_to(text, 4 * crate::domain::QUOTED_CHARS)
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
        let Authenticated(mut context) = Authenticated::from_request_parts(parts, vault).await?;
        let value = one_header(&parts.headers, "X-Customer-ID")?.unwrap_or_default();
        let customer = CustomerId::parse(value, "X-Customer-ID").map_err(ApiError::bad_request)?;
        context.acting_for = Some(customer);
        Ok(Caller { customer, context })
    }
}

/// An authenticated caller acting for no one customer in particular (the routes that are not
/// about one customer's credentials: the session, the customer list), with the audit context.
pub(crate) struct Authenticated(RequestContext);

impl FromRequestParts<Vault> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, vault: &Vault) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        let forwarded = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let peer_ip = vault.client_ip(peer, forwarded);
        let identity = parts.extensions.get::<CallIdentity>();
        if let Some(identity) = identity {
            identity.record_client(peer_ip);
        }
        let authorization = one_header(&parts.headers, "Authorization")?;
        let principal = vault.authenticate(authorization).await?;
        if let Some(identity) = identity {
            identity.record_token(&principal.name);
        }
        Ok(Authenticated(RequestContext { principal: Some(principal), peer_ip, acting_for: None }))
    }
}

/// The one value of header `name` (a value that is not text reads as U+FFFD, which no parser
/// accepts). Sent twice with different values, a header is ambiguous (which customer? which
/// caller?): 400 naming it, rather than silently taking the first.
pub(crate) fn one_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    let text = |v: &'a HeaderValue| v.to_str().unwrap_or("\u{fffd}");
    let mut values = headers.get_all(name).iter().map(text);
    let first = values.next();
    if values.any(|other| Some(other) != first) {
        return Err(ApiError::bad_request(FieldViolation::new(
            name,
            "is given more than once with different values; send it once",
        )));
    }
    Ok(first)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_errors_keep_the_kind_and_the_expectation_never_the_value() {
        let cases = [
            (
                r#"invalid type: string "{\"api_key\":\"MY-REAL-KEY\"}", expected a map at line 1 column 80"#,
                "invalid type: string, expected a map at line 1 column 80",
            ),
            (
                "invalid type: integer `123456`, expected a string at line 1 column 9",
                "invalid type: integer, expected a string at line 1 column 9",
            ),
            (
                "invalid type: map, expected a string at line 1 column 3",
                "invalid type: map, expected a string at line 1 column 3",
            ),
            (
                r#"invalid value: string "x, expected y", expected a boolean"#,
                "invalid value: string, expected a boolean",
            ),
            ("missing field `provider` at line 1 column 2", "missing field `provider` at line 1 column 2"),
        ];
        for (serde, ours) in cases {
            assert_eq!(without_values(serde), ours);
        }
        let long =
            format!("unknown field `{}`, expected one of `provider`, `credentials`", "k".repeat(200_000));
        let shown = without_values(&long);
        assert!(shown.len() < 200, "{shown}");
        assert!(
            shown.starts_with("unknown field \"kkk")
                && shown.ends_with(", expected one of `provider`, `credentials`"),
            "{shown}"
        );
    }
}
