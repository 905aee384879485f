//! Summary's JSON shapes (`GET /api/v1/credentials/status/summary`, the seed's) and their
//! conversion from the domain's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Credential;
use crate::domain::Summary;

/// `GET /api/v1/credentials/status/summary` (the seed's shape).
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::rest) struct SummaryBody {
    pub(in crate::rest) customer_id: String,
    pub(in crate::rest) total_credentials: i64,
    /// Keyed by provider name.
    pub(in crate::rest) providers: BTreeMap<String, ProviderCounts>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(in crate::rest) struct ProviderCounts {
    pub(in crate::rest) total: i64,
    pub(in crate::rest) active: i64,
    pub(in crate::rest) verified: i64,
    /// Active credentials with no enabled version.
    pub(in crate::rest) disabled: i64,
    /// Deleted credentials not purged yet (restorable).
    pub(in crate::rest) pending_deletion: i64,
    /// Active credentials whose verification failed several times in a row.
    pub(in crate::rest) failing: i64,
    /// Active credentials whose last verification had findings.
    pub(in crate::rest) risky: i64,
    /// The provider's newest credentials, deleted ones included: at most
    /// `credentials_per_provider` of them.
    pub(in crate::rest) credentials: Vec<Credential>,
    /// Present when the provider has more credentials than listed: pass it as `page_token` to
    /// `GET /api/v1/credentials/{provider}?include_inactive=true` for the rest.
    pub(in crate::rest) next_page_token: Option<String>,
}

/// Query of `GET /api/v1/credentials/status/summary`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(in crate::rest) struct SummaryQuery {
    /// How many of each provider's newest credentials to list (0 or absent: 100; at most 500).
    /// The counts always cover every credential.
    #[serde(default)]
    pub(in crate::rest) credentials_per_provider: Option<i32>,
}

impl From<Summary> for SummaryBody {
    fn from(s: Summary) -> Self {
        Self {
            customer_id: s.customer_id.to_string(),
            total_credentials: s.total_credentials,
            providers: s
                .providers
                .into_iter()
                .map(|p| {
                    let c = p.counts;
                    let counts = ProviderCounts {
                        total: c.total,
                        active: c.active,
                        verified: c.verified,
                        disabled: c.disabled,
                        pending_deletion: c.pending_deletion,
                        failing: c.failing,
                        risky: c.risky,
                        credentials: p.credentials.into_iter().map(Credential::from).collect(),
                        next_page_token: p.next.map(|cursor| cursor.encode()),
                    };
                    (c.provider.as_str().to_owned(), counts)
                })
                .collect(),
        }
    }
}
