//! AWS: STS `GetCallerIdentity`, signed with Signature Version 4 by `aws-sigv4`. Needs no IAM
//! permission, so any valid key passes; session tokens are supported.

use std::collections::BTreeMap;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde::Deserialize;

use super::Verifier;
use super::http::Http;
use crate::domain::{Finding, SecretPayload, Verification};

const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

pub(super) struct AwsVerifier {
    http: Http,
    endpoint: String,
    region: String,
}

impl AwsVerifier {
    pub(super) fn new(http: Http, endpoint: String, region: String) -> Self {
        Self { http, endpoint, region }
    }

    /// A signed `POST /` for GetCallerIdentity. Signed anew per attempt (the signature covers
    /// the time).
    fn signed_request(&self, credentials: &Credentials) -> Result<reqwest::Request, Verification> {
        let fail = |_| Verification::unreachable("internal: cannot sign the STS request");
        let url = format!("{}/", self.endpoint);
        let mut request = http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
            .header("accept", "application/json")
            .body(BODY.to_owned())
            .map_err(|_| Verification::unreachable("internal: cannot build the STS request"))?;
        let identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sts")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| Verification::unreachable("internal: cannot sign the STS request"))?
            .into();
        let headers = request.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
        let signable =
            SignableRequest::new("POST", url.clone(), headers, SignableBody::Bytes(BODY.as_bytes()))
                .map_err(fail)?;
        let (instructions, _signature) = sign(signable, &params).map_err(fail)?.into_parts();
        instructions.apply_to_request_http1x(&mut request);
        reqwest::Request::try_from(request)
            .map_err(|_| Verification::unreachable("internal: cannot build the STS request"))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IdentityEnvelope {
    get_caller_identity_response: IdentityResponse,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IdentityResponse {
    get_caller_identity_result: CallerIdentity,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CallerIdentity {
    account: String,
    arn: String,
    user_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorEnvelope {
    error: AwsError,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsError {
    code: String,
}

#[async_trait]
impl Verifier for AwsVerifier {
    async fn verify(&self, secret: &SecretPayload) -> Verification {
        let SecretPayload::Aws { access_key_id, secret_access_key, session_token } = secret else {
            return Verification::unreachable("internal: not an AWS credential");
        };
        let credentials = Credentials::new(
            access_key_id.clone(),
            secret_access_key.clone(),
            session_token.clone(),
            None,
            "credvault-verify",
        );
        let answer = match self.http.send("AWS STS", || self.signed_request(&credentials)).await {
            Ok(answer) => answer,
            Err(unreachable) => return unreachable,
        };
        let status = answer.status.as_u16();
        match status {
            200 => match serde_json::from_slice::<IdentityEnvelope>(&answer.body) {
                Ok(envelope) => {
                    let who = envelope.get_caller_identity_response.get_caller_identity_result;
                    let mut findings = Vec::new();
                    if who.arn.ends_with(":root") {
                        findings.push(Finding::new(
                            Finding::AWS_ROOT_USER_KEY,
                            "these are the AWS account root user's access keys: replace them with an IAM user or \
                             role limited to read-only access, and delete the root keys",
                        ));
                    }
                    let identity = BTreeMap::from([
                        ("account_id".to_owned(), who.account),
                        ("arn".to_owned(), who.arn),
                        ("user_id".to_owned(), who.user_id),
                    ]);
                    Verification::valid("AWS STS accepted the access key", identity, findings)
                }
                Err(_) => Verification::unreachable(
                    "AWS STS answered 200 with an unreadable body; nothing was concluded",
                ),
            },
            400 | 401 | 403 => {
                let code = serde_json::from_slice::<ErrorEnvelope>(&answer.body)
                    .map(|e| e.error.code)
                    .unwrap_or_else(|_| format!("HTTP {status}"));
                Verification::invalid(format!("AWS STS rejected the access key ({code})"))
            }
            other => {
                Verification::unreachable(format!("AWS STS answered HTTP {other}; nothing was concluded"))
            }
        }
    }
}
