//! Credential checks against the providers' real APIs: one verifier per provider behind
//! [`Verifier`], each making the provider's cheapest identity call. The only place provider
//! HTTP lives.
//!
//! Outcomes are three-way ([`VerifyOutcome`]): a timeout, a 5xx, a 429, a network or TLS
//! failure, or an unreadable answer is `Unreachable`, never `Invalid`. Transient failures are
//! retried a bounded number of times with backoff (a 429's `Retry-After` is honoured), all within
//! one total time limit. No secret appears in any outcome, error or log line.

mod aws;
mod azure;
mod gcp;
mod http;
mod vultr;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{Provider, SecretPayload, Verification};

/// Checks one provider's credentials.
#[async_trait]
pub trait Verifier: Send + Sync {
    /// Asks the provider about `secret`, which is of this verifier's provider.
    async fn verify(&self, secret: &SecretPayload) -> Verification;
}

/// Where the providers are and how patiently to ask them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySettings {
    /// Vultr API base (`GET {base}/v2/account`).
    pub vultr_api_url: String,
    /// AWS STS endpoint (`POST {url}/`, GetCallerIdentity).
    pub aws_sts_url: String,
    /// The region STS requests are signed for.
    pub aws_region: String,
    /// Google OAuth 2.0 token endpoint. Used instead of the key's own `token_uri`, so a
    /// customer-supplied key cannot make credvault post to an arbitrary URL.
    pub gcp_token_url: String,
    /// Microsoft identity platform base (`POST {base}/{tenant}/oauth2/v2.0/token`).
    pub azure_login_url: String,
    /// Azure Resource Manager base (`GET {base}/subscriptions/{id}`).
    pub azure_management_url: String,
    /// Total time for one verification, retries included.
    pub timeout: Duration,
    /// Extra attempts after a transient failure.
    pub retries: u32,
}

impl Default for VerifySettings {
    fn default() -> Self {
        Self {
            vultr_api_url: "https://api.vultr.com".into(),
            aws_sts_url: "https://sts.amazonaws.com".into(),
            aws_region: "us-east-1".into(),
            gcp_token_url: "https://oauth2.googleapis.com/token".into(),
            azure_login_url: "https://login.microsoftonline.com".into(),
            azure_management_url: "https://management.azure.com".into(),
            timeout: Duration::from_secs(10),
            retries: 2,
        }
    }
}

/// All providers' verifiers, sharing one HTTP client (connection pools, TLS sessions).
pub struct Verifiers {
    vultr: vultr::VultrVerifier,
    aws: aws::AwsVerifier,
    gcp: gcp::GcpVerifier,
    azure: azure::AzureVerifier,
    timeout: Duration,
}

impl Verifiers {
    pub fn new(settings: &VerifySettings) -> Result<Self, String> {
        let http = http::Http::new(settings.retries, settings.timeout)?;
        let trim = |url: &str| url.trim_end_matches('/').to_owned();
        Ok(Self {
            vultr: vultr::VultrVerifier::new(http.clone(), trim(&settings.vultr_api_url)),
            aws: aws::AwsVerifier::new(
                http.clone(),
                trim(&settings.aws_sts_url),
                settings.aws_region.clone(),
            ),
            gcp: gcp::GcpVerifier::new(http.clone(), settings.gcp_token_url.clone()),
            azure: azure::AzureVerifier::new(
                http,
                trim(&settings.azure_login_url),
                trim(&settings.azure_management_url),
            ),
            timeout: settings.timeout,
        })
    }

    fn for_provider(&self, provider: Provider) -> &dyn Verifier {
        match provider {
            Provider::Vultr => &self.vultr,
            Provider::Aws => &self.aws,
            Provider::Gcp => &self.gcp,
            Provider::Azure => &self.azure,
        }
    }

    /// Verifies `secret` with its provider, within the total time limit.
    #[tracing::instrument(skip_all, fields(provider = %secret.provider()))]
    pub async fn verify(&self, secret: &SecretPayload) -> Verification {
        let provider = secret.provider();
        match tokio::time::timeout(self.timeout, self.for_provider(provider).verify(secret)).await {
            Ok(verification) => {
                tracing::info!(outcome = ?verification.outcome, "verification finished");
                verification
            }
            Err(_) => {
                tracing::warn!(timeout_ms = self.timeout.as_millis(), "verification timed out");
                Verification::unreachable(format!(
                    "{provider} did not answer within {:.1} s; nothing was concluded about the credential",
                    self.timeout.as_secs_f64()
                ))
            }
        }
    }
}
