//! The seed's credential endpoints. Each handler parses JSON and headers into domain values,
//! calls one vault use case, and shapes the answer; nothing is decided here.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::dto::{
    CreateCredential, Created, Credential, Deleted, ListQuery, ListedOrOne, SummaryBody, SummaryQuery,
    Verdict, Verified, VerifyBody,
};
use super::{
    ApiError, Caller, JsonBody, NEXT_PAGE_TOKEN, PathParam, QueryParams, directory, lifecycle, one_header,
    provider,
};
use crate::domain::{
    CredentialId, CredentialName, CredentialType, FieldViolation, IdempotencyKey, ListFilter, PageCursor,
    Permission, Provider, Summary, quoted,
};
use crate::vault::{NewCredentialRequest, Vault, VerifyTarget};

/// Every `/api/v1/credentials` route: this file's handlers, [`lifecycle`]'s and a credential's
/// audit events ([`directory`]).
pub(super) fn routes() -> Router<Vault> {
    Router::new()
        .route("/api/v1/credentials", post(create).get(list))
        .route("/api/v1/credentials/verify", post(verify))
        .route("/api/v1/credentials/status/summary", get(summary))
        // One path segment names a provider for GET and a credential id for DELETE, as in the
        // seed: one path template (OpenAPI allows no two that differ only in a parameter's
        // name), its parameter described by each operation.
        .route(
            "/api/v1/credentials/{provider_or_id}",
            get(list_by_provider).delete(delete).put(lifecycle::rotate).patch(lifecycle::update),
        )
        .route("/api/v1/credentials/{provider_or_id}/versions", get(lifecycle::list_versions))
        .route("/api/v1/credentials/{provider_or_id}/restore", post(lifecycle::restore))
        .route("/api/v1/credentials/{provider_or_id}/audit", get(directory::credential_audit))
        .route(
            "/api/v1/credentials/{provider_or_id}/versions/{version}/{action}",
            post(lifecycle::change_version),
        )
}

/// Stores a credential; its secret is sealed before it reaches the database.
#[utoipa::path(
    post,
    path = "/api/v1/credentials",
    tag = "credentials",
    request_body = CreateCredential,
    params(
        ("X-Customer-ID" = String, Header, format = "uuid", description = "The customer who owns the credential"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first result (200) instead of a duplicate"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "No valid bearer token", body = super::dto::ErrorBody),
        (status = 403, description = "The token lacks the scope, or is bound to another customer", body = super::dto::ErrorBody),
        (status = 201, description = "Stored", body = Created),
        (status = 200, description = "A retry with the same Idempotency-Key: the first result", body = Created),
        (status = 400, description = "Malformed JSON or header", body = super::dto::ErrorBody),
        (status = 404, description = "Unknown customer", body = super::dto::ErrorBody),
        (status = 409, description = "An active credential with this name exists", body = super::dto::ErrorBody),
        (status = 413, description = "Body too large", body = super::dto::ErrorBody),
        (status = 415, description = "Not JSON", body = super::dto::ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = super::dto::ErrorBody),
        (status = 503, description = "The database is not reachable", body = super::dto::ErrorBody),
    )
)]
async fn create(
    State(vault): State<Vault>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateCredential>,
) -> Result<Response, ApiError> {
    let idempotency_key = one_header(&headers, "Idempotency-Key")?.unwrap_or_default();
    let request = (|| {
        let provider = provider(&body.provider, "provider")?;
        Ok(NewCredentialRequest {
            customer_id: caller.customer,
            name: CredentialName::parse(&body.credential_name, "credential_name")?,
            credential_type: CredentialType::parse_or_default(
                body.credential_type.as_deref().unwrap_or_default(),
                provider,
                "credential_type",
            )?,
            permissions: match body.permissions.as_deref() {
                None | Some("") => Permission::default(),
                Some(name) => Permission::parse(name).ok_or_else(|| {
                    FieldViolation::new("permissions", "must be read_only, read_write or admin")
                })?,
            },
            idempotency_key: IdempotencyKey::parse_optional(idempotency_key, "Idempotency-Key")?,
            make_default: body.make_default,
            verify: body.verify,
            secret: body.credentials.into_secret(provider)?,
        })
    })()
    .map_err(ApiError::unprocessable)?;
    let stored = vault.store_credential(caller.context, request).await?;
    let credential = stored.credential;
    let status = if stored.replayed { StatusCode::OK } else { StatusCode::CREATED };
    let location = HeaderValue::try_from(format!("/api/v1/credentials/{}", credential.id))
        .expect("a UUID path is a valid header value");
    let body = Created {
        credential_id: credential.id.to_string(),
        message: format!("Credential '{}' created successfully", credential.name.as_str()),
        provider: credential.provider.as_str().to_owned(),
        credential: Credential::from(credential),
        verification: stored.verification.map(Verdict::from),
    };
    Ok((status, [(header::LOCATION, location)], axum::Json(body)).into_response())
}

/// Lists the customer's credentials (metadata only, never secrets), newest first.
#[utoipa::path(
    get,
    path = "/api/v1/credentials",
    tag = "credentials",
    params(
        ("X-Customer-ID" = String, Header, format = "uuid", description = "The customer whose credentials to list"),
        ListQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "No valid bearer token", body = super::dto::ErrorBody),
        (status = 403, description = "The token lacks the scope, or is bound to another customer", body = super::dto::ErrorBody),
        (status = 200, description = "One page; `X-Next-Page-Token` names the next", body = Vec<Credential>,
            headers(("X-Next-Page-Token" = String, description = "Pass as page_token for the next page; absent on the last page"))),
        (status = 400, description = "A malformed header or query parameter", body = super::dto::ErrorBody),
        (status = 404, description = "Unknown customer", body = super::dto::ErrorBody),
        (status = 503, description = "The database is not reachable", body = super::dto::ErrorBody),
    )
)]
async fn list(
    State(vault): State<Vault>,
    caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    list_page(vault, caller, None, query).await
}

/// Lists the customer's credentials of one provider (metadata only), newest first; or, given a
/// credential's id, that credential's metadata (active, deleted or purged).
#[utoipa::path(
    get,
    path = "/api/v1/credentials/{provider_or_id}",
    tag = "credentials",
    params(
        ("provider_or_id" = String, Path, description = "A provider (vultr, aws, gcp, azure) whose credentials to list, or the id (a UUID) of one credential"),
        ("X-Customer-ID" = String, Header, format = "uuid", description = "The customer whose credentials to list"),
        ListQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "No valid bearer token", body = super::dto::ErrorBody),
        (status = 403, description = "The token lacks the scope, or is bound to another customer", body = super::dto::ErrorBody),
        (status = 200, description = "For a provider, one page (`X-Next-Page-Token` names the next); for an id, the credential", body = ListedOrOne,
            headers(("X-Next-Page-Token" = String, description = "Pass as page_token for the next page; absent on the last page"))),
        (status = 400, description = "Neither a provider nor an id, or a malformed header or query parameter", body = super::dto::ErrorBody),
        (status = 404, description = "Unknown customer, or no such credential for this customer", body = super::dto::ErrorBody),
        (status = 503, description = "The database is not reachable", body = super::dto::ErrorBody),
    )
)]
async fn list_by_provider(
    State(vault): State<Vault>,
    caller: Caller,
    PathParam(name): PathParam<String>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    if let Some(provider) = Provider::parse(&name) {
        return list_page(vault, caller, Some(provider), query).await;
    }
    let id = CredentialId::parse(&name, "provider_or_id").map_err(|_| {
        ApiError::bad_request(FieldViolation::new(
            "provider_or_id",
            format!(
                "unknown provider {} (expected vultr, aws, gcp or azure), and not a credential id (a UUID)",
                quoted(&name)
            ),
        ))
    })?;
    let credential = vault.credential(caller.context, id).await?;
    Ok(axum::Json(ListedOrOne::One(Box::new(credential.into()))).into_response())
}

async fn list_page(
    vault: Vault,
    caller: Caller,
    provider: Option<Provider>,
    query: ListQuery,
) -> Result<Response, ApiError> {
    let filter = (|| {
        Ok(ListFilter {
            customer_id: caller.customer,
            provider,
            include_inactive: query.include_inactive,
            page_size: ListFilter::page_size_from_request(query.page_size.unwrap_or(0), "page_size")?,
            after: match query.page_token.as_deref() {
                None | Some("") => None,
                Some(token) => Some(PageCursor::decode(token, "page_token")?),
            },
        })
    })()
    .map_err(ApiError::bad_request)?;
    let page = vault.list_credentials(caller.context, filter).await?;
    let body: Vec<Credential> = page.credentials.into_iter().map(Credential::from).collect();
    let mut response = axum::Json(body).into_response();
    if let Some(next) = page.next {
        let token = HeaderValue::try_from(next.encode()).expect("page tokens are URL-safe base64");
        response.headers_mut().insert(NEXT_PAGE_TOKEN, token);
    }
    Ok(response)
}

/// Checks a stored credential (by id) or inline credentials against the provider's API.
#[utoipa::path(
    post,
    path = "/api/v1/credentials/verify",
    tag = "credentials",
    request_body = VerifyBody,
    params(("X-Customer-ID" = String, Header, format = "uuid", description = "The customer who owns the credential")),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "No valid bearer token", body = super::dto::ErrorBody),
        (status = 403, description = "The token lacks the scope, or is bound to another customer", body = super::dto::ErrorBody),
        (status = 200, description = "The provider's verdict (valid, invalid, or unreachable: nothing concluded)", body = Verified),
        (status = 400, description = "Malformed JSON or header", body = super::dto::ErrorBody),
        (status = 404, description = "No such active credential for this customer", body = super::dto::ErrorBody),
        (status = 413, description = "Body too large", body = super::dto::ErrorBody),
        (status = 415, description = "Not JSON", body = super::dto::ErrorBody),
        (status = 422, description = "Neither or both of credential_id and provider + credentials, or an invalid field", body = super::dto::ErrorBody),
        (status = 503, description = "The database is not reachable", body = super::dto::ErrorBody),
    )
)]
async fn verify(
    State(vault): State<Vault>,
    caller: Caller,
    JsonBody(body): JsonBody<VerifyBody>,
) -> Result<axum::Json<Verified>, ApiError> {
    let target = match body {
        VerifyBody { credential_id: Some(id), provider: None, credentials: None } => {
            VerifyTarget::Stored(CredentialId::parse(&id, "credential_id").map_err(ApiError::unprocessable)?)
        }
        VerifyBody { credential_id: None, provider: Some(name), credentials: Some(fields) } => {
            let provider = provider(&name, "provider").map_err(ApiError::unprocessable)?;
            VerifyTarget::Inline(fields.into_secret(provider).map_err(ApiError::unprocessable)?)
        }
        _ => {
            return Err(ApiError::unprocessable(FieldViolation::new(
                "credential_id",
                "give either credential_id (a stored credential) or provider and credentials (inline, not stored)",
            )));
        }
    };
    let verified = vault.verify_credential(caller.context, target).await?;
    Ok(axum::Json(Verified::new(verified.verification, verified.credential)))
}

/// Soft-deletes a credential: it stays on record, inactive, and is never handed out again.
#[utoipa::path(
    delete,
    path = "/api/v1/credentials/{provider_or_id}",
    tag = "credentials",
    params(
        ("provider_or_id" = String, Path, format = "uuid", description = "The id of the credential to delete"),
        ("X-Customer-ID" = String, Header, format = "uuid", description = "The customer who owns the credential"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "No valid bearer token", body = super::dto::ErrorBody),
        (status = 403, description = "The token lacks the scope, or is bound to another customer", body = super::dto::ErrorBody),
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, description = "A malformed id or header", body = super::dto::ErrorBody),
        (status = 404, description = "No such active credential for this customer", body = super::dto::ErrorBody),
        (status = 503, description = "The database is not reachable", body = super::dto::ErrorBody),
    )
)]
async fn delete(
    State(vault): State<Vault>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<axum::Json<Deleted>, ApiError> {
    let id = CredentialId::parse(&id, "credential_id").map_err(ApiError::bad_request)?;
    let deleted = vault.delete_credential(caller.context, id).await?;
    Ok(axum::Json(Deleted {
        credential_id: deleted.id.to_string(),
        message: format!("Credential '{}' deleted", deleted.name.as_str()),
        provider: deleted.provider.as_str().to_owned(),
        credential: Credential::from(deleted),
    }))
}

/// Per-provider totals for the dashboard, with each provider's newest credentials (metadata
/// only).
#[utoipa::path(
    get,
    path = "/api/v1/credentials/status/summary",
    tag = "credentials",
    params(
        ("X-Customer-ID" = String, Header, format = "uuid", description = "The customer to summarize"),
        SummaryQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "No valid bearer token", body = super::dto::ErrorBody),
        (status = 403, description = "The token lacks the scope, or is bound to another customer", body = super::dto::ErrorBody),
        (status = 200, description = "The summary", body = SummaryBody),
        (status = 400, description = "A malformed header or query parameter", body = super::dto::ErrorBody),
        (status = 404, description = "Unknown customer", body = super::dto::ErrorBody),
        (status = 503, description = "The database is not reachable", body = super::dto::ErrorBody),
    )
)]
async fn summary(
    State(vault): State<Vault>,
    caller: Caller,
    QueryParams(query): QueryParams<SummaryQuery>,
) -> Result<axum::Json<SummaryBody>, ApiError> {
    let requested = query.credentials_per_provider.unwrap_or(0);
    let per_provider = Summary::credentials_per_provider(requested, "credentials_per_provider")
        .map_err(ApiError::bad_request)?;
    Ok(axum::Json(vault.summary(caller.context, caller.customer, per_provider).await?.into()))
}
