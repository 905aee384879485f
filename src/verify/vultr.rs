//! Vultr: `GET /v2/account` with the API key as a Bearer token.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use super::Verifier;
use super::http::Http;
use crate::domain::{Finding, SecretPayload, Verification};

pub(super) struct VultrVerifier {
    http: Http,
    base: String,
}

impl VultrVerifier {
    pub(super) fn new(http: Http, base: String) -> Self {
        Self { http, base }
    }
}

#[derive(Deserialize)]
struct AccountResponse {
    account: Account,
}

#[derive(Deserialize)]
struct Account {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    acls: Vec<String>,
}

#[async_trait]
impl Verifier for VultrVerifier {
    async fn verify(&self, secret: &SecretPayload) -> Verification {
        let SecretPayload::Vultr { api_key } = secret else {
            return Verification::unreachable("internal: not a Vultr credential");
        };
        let url = format!("{}/v2/account", self.base);
        let answer = self
            .http
            .send("Vultr", || {
                self.http
                    .client()
                    .get(&url)
                    .bearer_auth(api_key)
                    .build()
                    .map_err(|_| Verification::unreachable("internal: cannot build the Vultr request"))
            })
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(unreachable) => return unreachable,
        };
        match answer.status {
            StatusCode::OK => match serde_json::from_slice::<AccountResponse>(&answer.body) {
                Ok(AccountResponse { account }) => {
                    let mut findings = Vec::new();
                    if account.acls.iter().any(|acl| acl == "manage_users") {
                        findings.push(Finding::new(
                            Finding::VULTR_MANAGES_USERS,
                            "this Vultr key can manage users (ACL manage_users); a read-only collector does not need it",
                        ));
                    }
                    let identity = BTreeMap::from([
                        ("account_name".to_owned(), account.name),
                        ("account_email".to_owned(), account.email),
                        ("acls".to_owned(), account.acls.join(",")),
                    ]);
                    Verification::valid("Vultr accepted the API key", identity, findings)
                }
                Err(_) => Verification::unreachable(
                    "Vultr answered 200 with an unreadable account body; nothing was concluded",
                ),
            },
            StatusCode::UNAUTHORIZED => {
                Verification::invalid("Vultr rejected the API key (HTTP 401): it is wrong or revoked")
            }
            StatusCode::FORBIDDEN => Verification::invalid(
                "Vultr refused the API key (HTTP 403): it lacks account access or is restricted to other IP addresses",
            ),
            other => Verification::unreachable(format!(
                "Vultr answered HTTP {}; nothing was concluded",
                other.as_u16()
            )),
        }
    }
}
