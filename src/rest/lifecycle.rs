//! A credential's changes for the dashboard: its metadata (`PATCH`), rotation (`PUT`), the
//! list of versions, and disabling, enabling and destroying one. Changes are conditional on `If-Match` when it is
//! sent (412 when the credential changed since), and answer with the new `ETag`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::dto::{
    Credential, CredentialVersion, RotateCredential, UpdateCredential, Verdict, Version, VersionsQuery,
};
use super::{ApiError, Caller, JsonBody, NEXT_PAGE_TOKEN, PathParam, QueryParams, one_header, provider};
use crate::domain::{
    CredentialId, CredentialMetadata, CredentialName, Etag, FieldViolation, IdempotencyKey, ListFilter,
    Permission, VersionChange, VersionCursor, VersionMetadata, VersionNumber, quoted,
};
use crate::vault::{CredentialChanges, NewVersionRequest, Vault};

/// The `If-Match` header as an etag: absent or `*` is none (unconditional).
fn if_match(headers: &HeaderMap) -> Result<Option<Etag>, ApiError> {
    match one_header(headers, "If-Match")? {
        None | Some("*") => Ok(None),
        Some(value) => {
            let bad = || {
                ApiError::bad_request(FieldViolation::new(
                    "If-Match",
                    "is not an ETag credvault returned (send it back as it came, quotes included)",
                ))
            };
            let tag = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).ok_or_else(bad)?;
            Etag::parse_optional(tag, "If-Match").map_err(|_| bad())?.ok_or_else(bad).map(Some)
        }
    }
}

fn etag_header(credential: &CredentialMetadata) -> (header::HeaderName, HeaderValue) {
    let value = HeaderValue::try_from(format!("\"{}\"", credential.etag)).expect("an etag is ASCII");
    (header::ETAG, value)
}

fn answer(
    credential: CredentialMetadata,
    version: VersionMetadata,
    replayed: bool,
    verification: Option<Verdict>,
) -> Response {
    let etag = etag_header(&credential);
    let body = CredentialVersion {
        credential: credential.into(),
        version: Version::from(version),
        replayed,
        verification,
    };
    ([etag], axum::Json(body)).into_response()
}

fn credential_id(id: &str) -> Result<CredentialId, ApiError> {
    CredentialId::parse(id, "credential_id").map_err(ApiError::bad_request)
}

/// Changes a credential's name, type, permissions or default flag (the fields sent).
#[utoipa::path(
    patch,
    path = "/api/v1/credentials/{provider_or_id}",
    tag = "credentials",
    request_body = UpdateCredential,
    params(
        ("provider_or_id" = String, Path, format = "uuid", description = "The id of the credential to change"),
        ("X-Customer-ID" = String, Header, format = "uuid", description = "The customer who owns the credential"),
        ("If-Match" = Option<String>, Header, description = "The credential's ETag as read: 412 if it changed since"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "No valid bearer token", body = super::dto::ErrorBody),
        (status = 403, description = "The token lacks the scope, or is bound to another customer", body = super::dto::ErrorBody),
        (status = 200, description = "The credential after the change", body = Credential,
            headers(("ETag" = String, description = "The credential's new etag"))),
        (status = 400, description = "Malformed JSON, id or header", body = super::dto::ErrorBody),
        (status = 404, description = "No such active credential for this customer", body = super::dto::ErrorBody),
        (status = 409, description = "An active credential of the provider has this name", body = super::dto::ErrorBody),
        (status = 412, description = "If-Match no longer matches: read the credential again", body = super::dto::ErrorBody),
        (status = 413, description = "Body too large", body = super::dto::ErrorBody),
        (status = 415, description = "Not JSON", body = super::dto::ErrorBody),
        (status = 422, description = "No field to change, or an invalid one", body = super::dto::ErrorBody),
        (status = 503, description = "The database is not reachable", body = super::dto::ErrorBody),
    )
)]
pub(super) async fn update(
    State(vault): State<Vault>,
    caller: Caller,
    headers: HeaderMap,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody<UpdateCredential>,
) -> Result<Response, ApiError> {
    let id = credential_id(&id)?;
    let expected = if_match(&headers)?;
    let changes = (|| {
        Ok::<_, FieldViolation>(CredentialChanges {
            name: body
                .credential_name
                .as_deref()
                .map(|n| CredentialName::parse(n, "credential_name"))
                .transpose()?,
            credential_type: body.credential_type,
            permissions: body
                .permissions
                .as_deref()
                .map(|p| {
                    Permission::parse(p).ok_or_else(|| {
                        FieldViolation::new("permissions", "must be read_only, read_write or admin")
                    })
                })
                .transpose()?,
            is_default: body.is_default,
        })
    })()
    .map_err(ApiError::unprocessable)?;
    let updated = vault.update_credential(caller.context, id, changes, expected).await?;
    let etag = etag_header(&updated);
    Ok(([etag], axum::Json(Credential::from(updated))).into_response())
}

/// Undoes a delete within the customer's recovery window.
#[utoipa::path(
    post,
    path = "/api/v1/credentials/{provider_or_id}/restore",
    tag = "credentials",
    params(
        ("provider_or_id" = String, Path, format = "uuid", description = "The id of the deleted credential"),
        ("X-Customer-ID" = String, Header, format = "uuid", description = "The customer who owns the credential"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "No valid bearer token", body = super::dto::ErrorBody),
        (status = 403, description = "The token lacks the scope, or is bound to another customer", body = super::dto::ErrorBody),
        (status = 200, description = "Restored, active again", body = Credential,
            headers(("ETag" = String, description = "The credential's new etag"))),
        (status = 400, description = "A malformed id or header", body = super::dto::ErrorBody),
        (status = 404, description = "No such credential for this customer", body = super::dto::ErrorBody),
        (status = 409, description = "Not deleted, purged already, or an active credential took its name", body = super::dto::ErrorBody),
        (status = 503, description = "The database is not reachable", body = super::dto::ErrorBody),
    )
)]
pub(super) async fn restore(
    State(vault): State<Vault>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Response, ApiError> {
    let restored = vault.restore_credential(caller.context, credential_id(&id)?).await?;
    let etag = etag_header(&restored);
    Ok(([etag], axum::Json(Credential::from(restored))).into_response())
}

/// Rotates a credential: the new secret becomes its current version; id, name and history stay.
#[utoipa::path(
    put,
    path = "/api/v1/credentials/{provider_or_id}",
    tag = "credentials",
    request_body = RotateCredential,
    params(
        ("provider_or_id" = String, Path, format = "uuid", description = "The id of the credential to rotate"),
        ("X-Customer-ID" = String, Header, format = "uuid", description = "The customer who owns the credential"),
        ("If-Match" = Option<String>, Header, description = "The credential's ETag as read: 412 if it changed since"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first result"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "No valid bearer token", body = super::dto::ErrorBody),
        (status = 403, description = "The token lacks the scope, or is bound to another customer", body = super::dto::ErrorBody),
        (status = 200, description = "The new current version", body = CredentialVersion,
            headers(("ETag" = String, description = "The credential's new etag"))),
        (status = 400, description = "Malformed JSON, id or header", body = super::dto::ErrorBody),
        (status = 404, description = "No such active credential for this customer", body = super::dto::ErrorBody),
        (status = 409, description = "The customer is suspended or cancelled", body = super::dto::ErrorBody),
        (status = 412, description = "If-Match no longer matches: read the credential again", body = super::dto::ErrorBody),
        (status = 413, description = "Body too large", body = super::dto::ErrorBody),
        (status = 415, description = "Not JSON", body = super::dto::ErrorBody),
        (status = 422, description = "A field is missing or invalid, or the provider is not the credential's", body = super::dto::ErrorBody),
        (status = 503, description = "The database is not reachable", body = super::dto::ErrorBody),
    )
)]
pub(super) async fn rotate(
    State(vault): State<Vault>,
    caller: Caller,
    headers: HeaderMap,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody<RotateCredential>,
) -> Result<Response, ApiError> {
    let credential_id = credential_id(&id)?;
    let expected = if_match(&headers)?;
    let idempotency_key = one_header(&headers, "Idempotency-Key")?.unwrap_or_default();
    let idempotency_key =
        IdempotencyKey::parse_optional(idempotency_key, "Idempotency-Key").map_err(ApiError::bad_request)?;
    let secret = (|| {
        let provider = provider(&body.provider, "provider")?;
        body.credentials.into_secret(provider)
    })()
    .map_err(ApiError::unprocessable)?;
    let request = NewVersionRequest {
        credential_id,
        secret,
        disable_previous: body.disable_previous,
        expected,
        idempotency_key,
        verify: body.verify,
    };
    let stored = vault.add_version(caller.context, request).await?;
    let verification = stored.verification.map(Verdict::from);
    Ok(answer(stored.credential, stored.version, stored.replayed, verification))
}

/// A credential's versions, newest first (metadata only, never secrets).
#[utoipa::path(
    get,
    path = "/api/v1/credentials/{provider_or_id}/versions",
    tag = "credentials",
    params(
        ("provider_or_id" = String, Path, format = "uuid", description = "The credential's id"),
        ("X-Customer-ID" = String, Header, format = "uuid", description = "The customer who owns the credential"),
        VersionsQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "No valid bearer token", body = super::dto::ErrorBody),
        (status = 403, description = "The token lacks the scope, or is bound to another customer", body = super::dto::ErrorBody),
        (status = 200, description = "One page; `X-Next-Page-Token` names the next", body = Vec<Version>,
            headers(("X-Next-Page-Token" = String, description = "Pass as page_token for the next page; absent on the last page"))),
        (status = 400, description = "A malformed id, header or query parameter", body = super::dto::ErrorBody),
        (status = 404, description = "No such active credential for this customer", body = super::dto::ErrorBody),
        (status = 503, description = "The database is not reachable", body = super::dto::ErrorBody),
    )
)]
pub(super) async fn list_versions(
    State(vault): State<Vault>,
    caller: Caller,
    PathParam(id): PathParam<String>,
    QueryParams(query): QueryParams<VersionsQuery>,
) -> Result<Response, ApiError> {
    let id = credential_id(&id)?;
    let (page_size, after) = (|| {
        Ok::<_, FieldViolation>((
            ListFilter::page_size_from_request(query.page_size.unwrap_or(0), "page_size")?,
            VersionCursor::decode_optional(query.page_token.as_deref().unwrap_or_default(), "page_token")?,
        ))
    })()
    .map_err(ApiError::bad_request)?;
    let page = vault.list_versions(caller.context, id, after.map(|c| c.0), page_size).await?;
    let body: Vec<Version> = page.versions.into_iter().map(Version::from).collect();
    let mut response = axum::Json(body).into_response();
    if let Some(next) = page.next {
        let token =
            HeaderValue::try_from(VersionCursor(next).encode()).expect("page tokens are URL-safe base64");
        response.headers_mut().insert(NEXT_PAGE_TOKEN, token);
    }
    Ok(response)
}

/// Disables, enables or destroys one version. Disabled: kept, not handed out. Enabled: handed
/// out again. Destroyed: its ciphertext deleted for good, in the same transaction as the audit
/// row. The newest enabled version is the credential's current one.
#[utoipa::path(
    post,
    path = "/api/v1/credentials/{provider_or_id}/versions/{version}/{action}",
    tag = "credentials",
    params(
        ("provider_or_id" = String, Path, format = "uuid", description = "The credential's id"),
        ("version" = u32, Path, minimum = 1, description = "The version's number"),
        ("action" = VersionAction, Path, description = "What to do with the version"),
        ("X-Customer-ID" = String, Header, format = "uuid", description = "The customer who owns the credential"),
        ("If-Match" = Option<String>, Header, description = "The credential's ETag as read: 412 if it changed since"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "No valid bearer token", body = super::dto::ErrorBody),
        (status = 403, description = "The token lacks the scope, or is bound to another customer", body = super::dto::ErrorBody),
        (status = 200, description = "The version after the change", body = CredentialVersion,
            headers(("ETag" = String, description = "The credential's new etag"))),
        (status = 400, description = "A malformed id, version, action or header", body = super::dto::ErrorBody),
        (status = 404, description = "No such active credential or version", body = super::dto::ErrorBody),
        (status = 409, description = "The version was destroyed: it cannot be disabled or enabled", body = super::dto::ErrorBody),
        (status = 412, description = "If-Match no longer matches: read the credential again", body = super::dto::ErrorBody),
        (status = 503, description = "The database is not reachable", body = super::dto::ErrorBody),
    )
)]
pub(super) async fn change_version(
    State(vault): State<Vault>,
    caller: Caller,
    headers: HeaderMap,
    PathParam((id, version, action)): PathParam<(String, String, String)>,
) -> Result<Response, ApiError> {
    let id = credential_id(&id)?;
    let version: VersionNumber = version.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
        ApiError::bad_request(FieldViolation::new("version", "must be a version number, 1 or more"))
    })?;
    let change = match action.as_str() {
        "disable" => VersionChange::Disable,
        "enable" => VersionChange::Enable,
        "destroy" => VersionChange::Destroy,
        other => {
            return Err(ApiError::bad_request(FieldViolation::new(
                "action",
                format!("{} is not an action; use disable, enable or destroy", quoted(other)),
            )));
        }
    };
    let expected = if_match(&headers)?;
    let set = vault.change_version(caller.context, id, version, change, expected).await?;
    Ok(answer(set.credential, set.version, false, None))
}

/// A version change, as the document describes it (the handler parses the path segment).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase", example = "disable")]
#[allow(dead_code, reason = "a schema only: no value of it is ever made")]
pub(super) enum VersionAction {
    Disable,
    Enable,
    Destroy,
}
