//! The read-only routes the dashboard needs beside the credentials: who the token is
//! (`/api/v1/session`), the customers a token for every customer picks from (`/api/v1/customers`,
//! as CustomerService/ListCustomers), and one credential's audit events (as
//! AuditService/ListAuditEvents, tenant-checked like every act on a credential).

use axum::Router;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::dto::rfc3339;
use super::{ApiError, Authenticated, Caller, NEXT_PAGE_TOKEN, PathParam, QueryParams};
use crate::domain::{
    AuditAction, AuditEvent, AuditFilter, CredentialId, Cursor, Customer, FieldViolation, ListFilter, quoted,
};
use crate::vault::{AUDIT_CURSOR, CUSTOMER_CURSOR, Vault};

pub(super) fn routes() -> Router<Vault> {
    Router::new().route("/api/v1/session", get(session)).route("/api/v1/customers", get(customers))
}

/// The calling token, as the dashboard shows it; never the token itself.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Session {
    #[schema(example = "dashboard")]
    pub(super) token_name: String,
    #[schema(example = json!(["credentials:read", "credentials:write"]))]
    pub(super) scopes: Vec<String>,
    /// The one customer the token may act for, or `*` for every customer.
    #[schema(example = "*")]
    pub(super) customer: String,
}

/// A customer, as the dashboard's customer picker lists it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CustomerBody {
    pub(super) id: String,
    pub(super) email: String,
    pub(super) company_name: String,
    #[schema(example = "active")]
    pub(super) status: String,
    #[schema(example = "free")]
    pub(super) subscription_tier: String,
    #[schema(format = DateTime)]
    pub(super) created_at: String,
}

/// One audit event of a credential.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AuditEventBody {
    pub(super) id: String,
    #[schema(example = "used")]
    pub(super) action: String,
    pub(super) details: String,
    /// The client's address as recorded.
    pub(super) ip_address: Option<String>,
    /// The name of the token that acted.
    pub(super) actor: Option<String>,
    #[schema(format = DateTime)]
    pub(super) created_at: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PageQuery {
    /// At most this many per page; 0 or absent means 50, at most 500.
    #[serde(default)]
    pub(super) page_size: Option<i32>,
    /// The `X-Next-Page-Token` of the previous page.
    #[serde(default)]
    pub(super) page_token: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Only this action (created, used, updated, deleted, verified, failed, denied, rotated, ...).
    #[serde(default)]
    pub(super) action: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[serde(default)]
    pub(super) since: Option<String>,
    /// At most this many per page; 0 or absent means 50, at most 500.
    #[serde(default)]
    pub(super) page_size: Option<i32>,
    /// The `X-Next-Page-Token` of the previous page.
    #[serde(default)]
    pub(super) page_token: Option<String>,
}

/// A JSON list with the next page's token in `X-Next-Page-Token`.
fn page<T: Serialize>(items: Vec<T>, next: Option<Cursor>, kind: &str) -> Response {
    let mut response = axum::Json(items).into_response();
    if let Some(next) = next {
        let token = HeaderValue::try_from(next.encode(kind)).expect("page tokens are URL-safe base64");
        response.headers_mut().insert(NEXT_PAGE_TOKEN, token);
    }
    response
}

/// Who the bearer token is: its name, scopes and customer.
#[utoipa::path(
    get,
    path = "/api/v1/session",
    tag = "session",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The calling token", body = Session),
        (status = 401, description = "No valid bearer token", body = super::dto::ErrorBody),
        (status = 503, description = "The database is not reachable", body = super::dto::ErrorBody),
    )
)]
pub(super) async fn session(Authenticated(context): Authenticated) -> axum::Json<Session> {
    let principal = context.principal.expect("an authenticated caller has a principal");
    axum::Json(Session {
        token_name: principal.name.as_str().to_owned(),
        scopes: principal.scopes.iter().map(|s| s.to_string()).collect(),
        customer: principal.customer.to_string(),
    })
}

/// Every customer, oldest first, for a token for every customer with the `admin` scope.
#[utoipa::path(
    get,
    path = "/api/v1/customers",
    tag = "session",
    params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page; `X-Next-Page-Token` names the next", body = Vec<CustomerBody>,
            headers(("X-Next-Page-Token" = String, description = "Pass as page_token for the next page; absent on the last page"))),
        (status = 400, description = "A malformed query parameter", body = super::dto::ErrorBody),
        (status = 401, description = "No valid bearer token", body = super::dto::ErrorBody),
        (status = 403, description = "The token lacks the admin scope, or is bound to one customer", body = super::dto::ErrorBody),
        (status = 503, description = "The database is not reachable", body = super::dto::ErrorBody),
    )
)]
pub(super) async fn customers(
    State(vault): State<Vault>,
    Authenticated(context): Authenticated,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let (page_size, after) = (|| {
        Ok::<_, FieldViolation>((
            ListFilter::page_size_from_request(query.page_size.unwrap_or(0), "page_size")?,
            Cursor::from_request(
                query.page_token.as_deref().unwrap_or_default(),
                CUSTOMER_CURSOR,
                "page_token",
            )?,
        ))
    })()
    .map_err(ApiError::bad_request)?;
    let listed = vault.directory().list_customers(&context, after, page_size).await?;
    let body = listed.items.into_iter().map(|c: Customer| CustomerBody {
        id: c.id.to_string(),
        email: c.email.as_str().to_owned(),
        company_name: c.company_name,
        status: c.status.as_str().to_owned(),
        subscription_tier: c.tier.as_str().to_owned(),
        created_at: rfc3339(c.created_at),
    });
    Ok(page(body.collect(), listed.next, CUSTOMER_CURSOR))
}

/// A credential's audit events, newest first: who fetched it, from where, and every change.
#[utoipa::path(
    get,
    path = "/api/v1/credentials/{provider_or_id}/audit",
    tag = "credentials",
    params(
        ("provider_or_id" = String, Path, format = "uuid", description = "The credential's id (active, deleted or purged)"),
        ("X-Customer-ID" = String, Header, format = "uuid", description = "The customer who owns the credential"),
        AuditQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page; `X-Next-Page-Token` names the next", body = Vec<AuditEventBody>,
            headers(("X-Next-Page-Token" = String, description = "Pass as page_token for the next page; absent on the last page"))),
        (status = 400, description = "A malformed id, header or query parameter", body = super::dto::ErrorBody),
        (status = 401, description = "No valid bearer token", body = super::dto::ErrorBody),
        (status = 403, description = "The token lacks the audit:read scope, or is bound to another customer", body = super::dto::ErrorBody),
        (status = 404, description = "No such credential for this customer", body = super::dto::ErrorBody),
        (status = 503, description = "The database is not reachable", body = super::dto::ErrorBody),
    )
)]
pub(super) async fn credential_audit(
    State(vault): State<Vault>,
    caller: Caller,
    PathParam(id): PathParam<String>,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Response, ApiError> {
    let filter = (|| {
        let action = match query.action.as_deref().filter(|a| !a.is_empty()) {
            None => None,
            Some(name) => Some(AuditAction::parse(name).ok_or_else(|| {
                FieldViolation::new("action", format!("unknown audit action {}", quoted(name)))
            })?),
        };
        let since = match query.since.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => Some(OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                FieldViolation::new("since", "must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z")
            })?),
        };
        Ok::<_, FieldViolation>(AuditFilter {
            customer_id: None,
            credential_id: None,
            action,
            since,
            until: None,
            page_size: ListFilter::page_size_from_request(query.page_size.unwrap_or(0), "page_size")?,
            after: Cursor::from_request(
                query.page_token.as_deref().unwrap_or_default(),
                AUDIT_CURSOR,
                "page_token",
            )?,
        })
    })()
    .map_err(ApiError::bad_request)?;
    let id = CredentialId::parse(&id, "credential_id").map_err(ApiError::bad_request)?;
    let listed = vault.credential_events(caller.context, id, filter).await?;
    let body = listed.items.into_iter().map(|e: AuditEvent| AuditEventBody {
        id: e.id.to_string(),
        action: e.action,
        details: e.details,
        ip_address: e.ip_address,
        actor: e.actor,
        created_at: rfc3339(e.created_at),
    });
    Ok(page(body.collect(), listed.next, AUDIT_CURSOR))
}
