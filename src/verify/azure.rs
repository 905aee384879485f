//! Azure: the OAuth 2.0 client-credentials grant at the tenant's token endpoint; with a
//! subscription id, a read of that subscription with the token.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::Verifier;
use super::http::Http;
use crate::domain::{Finding, SecretPayload, Verification};

const SCOPE: &str = "https://management.azure.com/.default";
const API_VERSION: &str = "2022-12-01";

pub(super) struct AzureVerifier {
    http: Http,
    login: String,
    management: String,
}

impl AzureVerifier {
    pub(super) fn new(http: Http, login: String, management: String) -> Self {
        Self { http, login, management }
    }
}

/// Tenant and subscription ids go into URL paths: accept only what they can be (GUIDs or
/// domain names), never a path or query.
fn path_safe(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Zeroizing<String>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subscription {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    state: String,
}

#[async_trait]
impl Verifier for AzureVerifier {
    async fn verify(&self, secret: &SecretPayload) -> Verification {
        let SecretPayload::Azure { tenant_id, client_id, client_secret, subscription_id } = secret else {
            return Verification::unreachable("internal: not an Azure credential");
        };
        if !path_safe(tenant_id) {
            return Verification::invalid("tenant_id is not a tenant id (a GUID) or domain name");
        }
        if subscription_id.as_deref().is_some_and(|s| !path_safe(s)) {
            return Verification::invalid("subscription_id is not a subscription id (a GUID)");
        }
        let token_url = format!("{}/{tenant_id}/oauth2/v2.0/token", self.login);
        let answer = self
            .http
            .send("Microsoft Entra ID", || {
                self.http
                    .client()
                    .post(&token_url)
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", client_id.as_str()),
                        ("client_secret", client_secret.as_str()),
                        ("scope", SCOPE),
                    ])
                    .build()
                    .map_err(|_| Verification::unreachable("internal: cannot build the Azure token request"))
            })
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(unreachable) => return unreachable,
        };
        let status = answer.status.as_u16();
        let token = match status {
            200 => match serde_json::from_slice::<TokenResponse>(&answer.body) {
                Ok(token) if !token.access_token.is_empty() => token.access_token,
                _ => {
                    return Verification::unreachable(
                        "Azure answered 200 without a readable access token; nothing was concluded",
                    );
                }
            },
            400 | 401 | 403 => {
                return match serde_json::from_slice::<TokenError>(&answer.body) {
                    // The description's first part is the AADSTS code and its meaning; the rest
                    // is trace ids.
                    Ok(e) => Verification::invalid(format!(
                        "Azure rejected the service principal ({}: {})",
                        e.error,
                        e.error_description
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .chars()
                            .take(200)
                            .collect::<String>()
                    )),
                    Err(_) => {
                        Verification::invalid(format!("Azure rejected the service principal (HTTP {status})"))
                    }
                };
            }
            other => {
                return Verification::unreachable(format!(
                    "Azure answered HTTP {other}; nothing was concluded"
                ));
            }
        };

        let mut identity = BTreeMap::from([
            ("tenant_id".to_owned(), tenant_id.clone()),
            ("client_id".to_owned(), client_id.clone()),
        ]);
        let Some(subscription_id) = subscription_id else {
            return Verification::valid(
                "Azure issued a token for the service principal",
                identity,
                Vec::new(),
            );
        };
        let url = format!("{}/subscriptions/{subscription_id}?api-version={API_VERSION}", self.management);
        let answer = self
            .http
            .send("Azure Resource Manager", || {
                self.http.client().get(&url).bearer_auth(token.as_str()).build().map_err(|_| {
                    Verification::unreachable("internal: cannot build the Azure subscription request")
                })
            })
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(unreachable) => return unreachable,
        };
        match answer.status.as_u16() {
            200 => match serde_json::from_slice::<Subscription>(&answer.body) {
                Ok(subscription) => {
                    identity.insert("subscription_id".to_owned(), subscription_id.clone());
                    identity.insert("subscription_name".to_owned(), subscription.display_name);
                    let mut findings = Vec::new();
                    if !subscription.state.is_empty() && subscription.state != "Enabled" {
                        findings.push(Finding::new(
                            Finding::AZURE_SUBSCRIPTION_NOT_ENABLED,
                            format!("subscription {subscription_id} is {}", subscription.state),
                        ));
                    }
                    Verification::valid(
                        "Azure accepted the service principal and it can read the subscription",
                        identity,
                        findings,
                    )
                }
                Err(_) => Verification::unreachable(
                    "Azure answered 200 with an unreadable subscription body; nothing was concluded",
                ),
            },
            code @ (401 | 403 | 404) => Verification::invalid(format!(
                "the service principal signs in but cannot read subscription {subscription_id} (HTTP {code}); \
                 grant it the Reader role on the subscription"
            )),
            other => Verification::unreachable(format!(
                "Azure Resource Manager answered HTTP {other}; nothing was concluded"
            )),
        }
    }
}
