//! `credvault.v1.AuditService` (audit:read scope).

use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::convert::timestamp;
use super::{context, invalid, status_from};
use crate::domain::{
    AuditAction, AuditEvent, AuditFilter, CredentialId, Cursor, CustomerId, FieldViolation, ListFilter,
};
use crate::proto::{self as pb, audit_service_server::AuditService};
use crate::vault::{AUDIT_CURSOR, Vault};

pub struct AuditApi {
    vault: Vault,
}

impl AuditApi {
    pub fn new(vault: Vault) -> Self {
        Self { vault }
    }

    pub fn into_server(self) -> pb::audit_service_server::AuditServiceServer<Self> {
        pb::audit_service_server::AuditServiceServer::new(self)
    }
}

fn time_from_proto(
    t: Option<prost_types::Timestamp>,
    field: &str,
) -> Result<Option<OffsetDateTime>, FieldViolation> {
    t.map(|t| {
        let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map_err(|_| FieldViolation::new(field, "is out of range"))
    })
    .transpose()
}

fn optional<T>(
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, FieldViolation>,
) -> Result<Option<T>, FieldViolation> {
    if value.is_empty() { Ok(None) } else { parse(value).map(Some) }
}

fn event_to_proto(e: AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id.to_string(),
        credential_id: e.credential_id.map(|id| id.to_string()).unwrap_or_default(),
        customer_id: e.customer_id.map(|id| id.to_string()).unwrap_or_default(),
        action: e.action,
        action_details: e.details,
        ip_address: e.ip_address.unwrap_or_default(),
        actor: e.actor.unwrap_or_default(),
        created_at: Some(timestamp(e.created_at)),
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let filter = (|| {
            Ok(AuditFilter {
                customer_id: optional(&r.customer_id, |v| CustomerId::parse(v, "customer_id"))?,
                credential_id: optional(&r.credential_id, |v| CredentialId::parse(v, "credential_id"))?,
                action: optional(&r.action, |v| {
                    AuditAction::parse(v).ok_or_else(|| {
                        FieldViolation::new(
                            "action",
                            "must be created, updated, deleted, verified, used, failed or denied",
                        )
                    })
                })?,
                since: time_from_proto(r.since, "since")?,
                until: time_from_proto(r.until, "until")?,
                page_size: ListFilter::page_size_from_request(r.page_size, "page_size")?,
                after: Cursor::from_request(&r.page_token, AUDIT_CURSOR, "page_token")?,
            })
        })()
        .map_err(invalid)?;
        let page = self.vault.directory().audit_events(&ctx, filter).await.map_err(status_from)?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: page.items.into_iter().map(event_to_proto).collect(),
            next_page_token: page.next.map(|c| c.encode(AUDIT_CURSOR)).unwrap_or_default(),
        }))
    }
}
