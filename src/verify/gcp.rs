//! GCP: an RS256-signed JWT assertion made from the service-account key, exchanged at the
//! OAuth 2.0 token endpoint (JWT bearer grant, RFC 7523).

use std::collections::BTreeMap;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Verifier;
use super::http::Http;
use crate::domain::{Finding, SecretPayload, Verification};

/// The narrowest scope that every service account can be granted a token for.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform.read-only";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

pub(super) struct GcpVerifier {
    http: Http,
    token_url: String,
}

impl GcpVerifier {
    pub(super) fn new(http: Http, token_url: String) -> Self {
        Self { http, token_url }
    }
}

#[derive(Deserialize)]
struct ServiceAccountKey {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
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

#[async_trait]
impl Verifier for GcpVerifier {
    async fn verify(&self, secret: &SecretPayload) -> Verification {
        let SecretPayload::Gcp { service_account_json } = secret else {
            return Verification::unreachable("internal: not a GCP credential");
        };
        let Ok(key) = serde_json::from_str::<ServiceAccountKey>(service_account_json) else {
            return Verification::invalid("the service-account key lacks client_email or private_key");
        };
        let private_key = Zeroizing::new(key.private_key);
        let Ok(signing_key) = EncodingKey::from_rsa_pem(private_key.as_bytes()) else {
            return Verification::invalid(
                "the service-account key's private_key is not a PEM-encoded RSA key",
            );
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims =
            Claims { iss: &key.client_email, scope: SCOPE, aud: &self.token_url, iat: now, exp: now + 3600 };
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&key.private_key_id);
        let Ok(assertion) = jsonwebtoken::encode(&header, &claims, &signing_key).map(Zeroizing::new) else {
            return Verification::invalid("the service-account key's private_key cannot sign (RS256)");
        };

        let answer = self
            .http
            .send("Google OAuth", || {
                self.http
                    .client()
                    .post(&self.token_url)
                    .form(&[("grant_type", GRANT_TYPE), ("assertion", assertion.as_str())])
                    .build()
                    .map_err(|_| Verification::unreachable("internal: cannot build the Google token request"))
            })
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(unreachable) => return unreachable,
        };
        let status = answer.status.as_u16();
        match status {
            200 => match serde_json::from_slice::<TokenResponse>(&answer.body) {
                Ok(token) if !token.access_token.is_empty() => {
                    let mut identity = BTreeMap::from([("client_email".to_owned(), key.client_email)]);
                    if let Some(project) = key.project_id {
                        identity.insert("project_id".to_owned(), project);
                    }
                    // Google-managed keys never leave Google: a JSON key is always user-managed,
                    // the kind CIS GCP 1.4 asks to avoid or rotate.
                    let finding = Finding::new(
                        Finding::GCP_USER_MANAGED_KEY,
                        "this is a user-managed service-account key (CIS GCP 1.4): prefer workload identity \
                         or attached service accounts, or rotate it at least every 90 days",
                    );
                    Verification::valid(
                        "Google issued an access token for the service account",
                        identity,
                        vec![finding],
                    )
                }
                _ => Verification::unreachable(
                    "Google answered 200 without a readable access token; nothing was concluded",
                ),
            },
            400 | 401 | 403 => match serde_json::from_slice::<TokenError>(&answer.body) {
                Ok(e) => Verification::invalid(format!(
                    "Google rejected the service-account key ({}: {})",
                    e.error,
                    e.error_description.chars().take(200).collect::<String>()
                )),
                Err(_) => {
                    Verification::invalid(format!("Google rejected the service-account key (HTTP {status})"))
                }
            },
            other => {
                Verification::unreachable(format!("Google answered HTTP {other}; nothing was concluded"))
            }
        }
    }
}
