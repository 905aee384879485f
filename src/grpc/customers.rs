//! `credvault.v1.CustomerService` (admin scope).

use tonic::{Request, Response, Status};

use super::convert::timestamp;
use super::{context, invalid, status_from};
use crate::domain::{
    Cursor, Customer, CustomerId, CustomerStatus, FieldViolation, ListFilter, SubscriptionTier,
};
use crate::proto::{self as pb, customer_service_server::CustomerService};
use crate::vault::{CUSTOMER_CURSOR, NewCustomerRequest, Vault};

pub struct CustomerApi {
    vault: Vault,
}

impl CustomerApi {
    pub fn new(vault: Vault) -> Self {
        Self { vault }
    }

    pub fn into_server(self) -> pb::customer_service_server::CustomerServiceServer<Self> {
        pb::customer_service_server::CustomerServiceServer::new(self)
    }
}

fn status_from_proto(
    value: i32,
    field: &str,
    unspecified: Option<CustomerStatus>,
) -> Result<CustomerStatus, FieldViolation> {
    match pb::CustomerStatus::try_from(value) {
        Ok(pb::CustomerStatus::Active) => Ok(CustomerStatus::Active),
        Ok(pb::CustomerStatus::Trial) => Ok(CustomerStatus::Trial),
        Ok(pb::CustomerStatus::Suspended) => Ok(CustomerStatus::Suspended),
        Ok(pb::CustomerStatus::Cancelled) => Ok(CustomerStatus::Cancelled),
        Ok(pb::CustomerStatus::Unspecified) => unspecified
            .ok_or_else(|| FieldViolation::new(field, "is required: active, trial, suspended or cancelled")),
        Err(_) => Err(FieldViolation::new(field, format!("{value} is not a CustomerStatus"))),
    }
}

fn tier_from_proto(value: i32, field: &str) -> Result<SubscriptionTier, FieldViolation> {
    match pb::SubscriptionTier::try_from(value) {
        Ok(pb::SubscriptionTier::Unspecified | pb::SubscriptionTier::Free) => Ok(SubscriptionTier::Free),
        Ok(pb::SubscriptionTier::Starter) => Ok(SubscriptionTier::Starter),
        Ok(pb::SubscriptionTier::Professional) => Ok(SubscriptionTier::Professional),
        Ok(pb::SubscriptionTier::Enterprise) => Ok(SubscriptionTier::Enterprise),
        Err(_) => Err(FieldViolation::new(field, format!("{value} is not a SubscriptionTier"))),
    }
}

fn customer_to_proto(c: Customer) -> pb::Customer {
    let status = match c.status {
        CustomerStatus::Active => pb::CustomerStatus::Active,
        CustomerStatus::Trial => pb::CustomerStatus::Trial,
        CustomerStatus::Suspended => pb::CustomerStatus::Suspended,
        CustomerStatus::Cancelled => pb::CustomerStatus::Cancelled,
    };
    let tier = match c.tier {
        SubscriptionTier::Free => pb::SubscriptionTier::Free,
        SubscriptionTier::Starter => pb::SubscriptionTier::Starter,
        SubscriptionTier::Professional => pb::SubscriptionTier::Professional,
        SubscriptionTier::Enterprise => pb::SubscriptionTier::Enterprise,
    };
    pb::Customer {
        id: c.id.to_string(),
        email: c.email.as_str().to_owned(),
        company_name: c.company_name,
        status: status as i32,
        subscription_tier: tier as i32,
        created_at: Some(timestamp(c.created_at)),
        recovery_window: Some(prost_types::Duration {
            seconds: i64::try_from(c.recovery_window.as_secs()).unwrap_or(i64::MAX),
            nanos: 0,
        }),
    }
}

#[tonic::async_trait]
impl CustomerService for CustomerApi {
    async fn create_customer(
        &self,
        request: Request<pb::CreateCustomerRequest>,
    ) -> Result<Response<pb::CreateCustomerResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let parsed = (|| {
            let status = status_from_proto(r.status, "status", Some(CustomerStatus::Active))?;
            let tier = tier_from_proto(r.subscription_tier, "subscription_tier")?;
            NewCustomerRequest::parse(&r.email, &r.company_name, status, tier)
        })()
        .map_err(invalid)?;
        let customer = self.vault.directory().create_customer(&ctx, parsed).await.map_err(status_from)?;
        Ok(Response::new(pb::CreateCustomerResponse { customer: Some(customer_to_proto(customer)) }))
    }

    async fn get_customer(
        &self,
        request: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::GetCustomerResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let id = CustomerId::parse(&request.get_ref().customer_id, "customer_id").map_err(invalid)?;
        let customer = self.vault.directory().customer(&ctx, id).await.map_err(status_from)?;
        Ok(Response::new(pb::GetCustomerResponse { customer: Some(customer_to_proto(customer)) }))
    }

    async fn list_customers(
        &self,
        request: Request<pb::ListCustomersRequest>,
    ) -> Result<Response<pb::ListCustomersResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let page_size = ListFilter::page_size_from_request(r.page_size, "page_size").map_err(invalid)?;
        let after = Cursor::from_request(&r.page_token, CUSTOMER_CURSOR, "page_token").map_err(invalid)?;
        let page =
            self.vault.directory().list_customers(&ctx, after, page_size).await.map_err(status_from)?;
        Ok(Response::new(pb::ListCustomersResponse {
            customers: page.items.into_iter().map(customer_to_proto).collect(),
            next_page_token: page.next.map(|c| c.encode(CUSTOMER_CURSOR)).unwrap_or_default(),
        }))
    }

    async fn set_customer_status(
        &self,
        request: Request<pb::SetCustomerStatusRequest>,
    ) -> Result<Response<pb::SetCustomerStatusResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let id = CustomerId::parse(&r.customer_id, "customer_id").map_err(invalid)?;
        let status = status_from_proto(r.status, "status", None).map_err(invalid)?;
        let customer =
            self.vault.directory().set_customer_status(&ctx, id, status).await.map_err(status_from)?;
        Ok(Response::new(pb::SetCustomerStatusResponse { customer: Some(customer_to_proto(customer)) }))
    }

    async fn set_recovery_window(
        &self,
        request: Request<pb::SetRecoveryWindowRequest>,
    ) -> Result<Response<pb::SetRecoveryWindowResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let parsed = (|| {
            let id = CustomerId::parse(&r.customer_id, "customer_id")?;
            let window = match r.recovery_window {
                None => Err(FieldViolation::new(
                    "recovery_window",
                    "is required: 0 to 365 days, e.g. \"2592000s\"",
                )),
                Some(d) if d.nanos != 0 => {
                    Err(FieldViolation::new("recovery_window", "must be whole seconds"))
                }
                Some(d) => u64::try_from(d.seconds)
                    .map(std::time::Duration::from_secs)
                    .map_err(|_| FieldViolation::new("recovery_window", "must not be negative")),
            }?;
            Ok::<_, FieldViolation>((id, window))
        })()
        .map_err(invalid)?;
        let customer = self
            .vault
            .directory()
            .set_recovery_window(&ctx, parsed.0, parsed.1)
            .await
            .map_err(status_from)?;
        Ok(Response::new(pb::SetRecoveryWindowResponse { customer: Some(customer_to_proto(customer)) }))
    }

    async fn purge_customer(
        &self,
        request: Request<pb::PurgeCustomerRequest>,
    ) -> Result<Response<pb::PurgeCustomerResponse>, Status> {
        let ctx = context(&self.vault, &request).await?;
        let r = request.into_inner();
        let id = CustomerId::parse(&r.customer_id, "customer_id").map_err(invalid)?;
        let purged = self.vault.purge_customer(&ctx, id, r.force).await.map_err(status_from)?;
        Ok(Response::new(pb::PurgeCustomerResponse {
            customer_id: purged.customer_id.to_string(),
            purged_at: Some(timestamp(purged.purged_at)),
            forced: purged.forced,
        }))
    }
}
