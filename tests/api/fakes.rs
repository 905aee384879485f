//! Local fake providers that check requests the way the real ones do: the fake STS recomputes
//! the SigV4 signature with the known secret, the fake Google token endpoint verifies the JWT
//! assertion with the public half of a key pair generated here, the fake Azure checks client id
//! and secret (and the token it issued), the fake Vultr checks the Bearer token.
//!
//! Each fake can also misbehave on demand ([`Mode`]) and counts the requests it served.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use credvault::verify::VerifySettings;
use serde_json::{Value, json};

/// How a fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Like the real provider.
    Normal,
    /// Always this status (e.g. 500, 503).
    Status(u16),
    /// Never answers.
    Hang,
    /// 200 with a body that is not the provider's format.
    Malformed,
    /// 429 with `Retry-After: secs`, for the next `times` requests; then normal again.
    RateLimited { secs: u64, times: usize },
}

#[derive(Clone)]
pub struct Fakes {
    state: Arc<FakeState>,
    pub base: String,
    /// The service-account key JSON whose public half the fake Google knows.
    pub gcp_key_json: String,
}

struct FakeState {
    mode: Mutex<Mode>,
    requests: AtomicUsize,
    base: Mutex<String>,
    gcp_public_key: Vec<u8>,
}

pub const VULTR_KEY: &str = "VULTR-GOOD-KEY-0123456789";
pub const AWS_KEY_ID: &str = "AKIAFAKEUSER00000001";
pub const AWS_ROOT_KEY_ID: &str = "AKIAFAKEROOT00000001";
pub const AWS_TEMP_KEY_ID: &str = "ASIAFAKETEMP00000001";
pub const AWS_SECRET: &str = "fake/secret/access/key/0123456789abcdefghij";
pub const AWS_SESSION_TOKEN: &str = "FwoGZXIvYXdzEFAKESESSIONTOKEN";
pub const GCP_EMAIL: &str = "collector@fake-project.iam.gserviceaccount.com";
pub const AZURE_TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const AZURE_CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
pub const AZURE_SECRET: &str = "azure~client~secret~0123";
pub const AZURE_SUBSCRIPTION: &str = "99999999-8888-7777-6666-555555555555";
const AZURE_TOKEN: &str = "fake-arm-access-token";

impl Fakes {
    pub async fn start() -> Fakes {
        let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = key.as_der().unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD
                .encode(pkcs8.as_ref())
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        );
        let state = Arc::new(FakeState {
            mode: Mutex::new(Mode::Normal),
            requests: AtomicUsize::new(0),
            base: Mutex::new(String::new()),
            gcp_public_key: key.public_key().as_ref().to_vec(),
        });
        let app = Router::new()
            .route("/vultr/v2/account", get(vultr_account))
            .route("/sts/", post(sts))
            .route("/google/token", post(google_token))
            .route("/azure-login/{tenant}/oauth2/v2.0/token", post(azure_token))
            .route("/azure-arm/subscriptions/{id}", get(azure_subscription))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        *state.base.lock().unwrap() = base.clone();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let gcp_key_json = json!({
            "type": "service_account",
            "project_id": "fake-project",
            "private_key_id": "key-1",
            "private_key": pem,
            "client_email": GCP_EMAIL,
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string();
        Fakes { state, base, gcp_key_json }
    }

    /// Verifier settings pointing at these fakes, with a short time limit.
    pub fn settings(&self, timeout: Duration, retries: u32) -> VerifySettings {
        VerifySettings {
            vultr_api_url: format!("{}/vultr", self.base),
            aws_sts_url: format!("{}/sts", self.base),
            aws_region: "us-east-1".into(),
            gcp_token_url: format!("{}/google/token", self.base),
            azure_login_url: format!("{}/azure-login", self.base),
            azure_management_url: format!("{}/azure-arm", self.base),
            timeout,
            retries,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

/// Applies the fake's failure mode; `None` means answer normally.
async fn misbehave(state: &FakeState) -> Option<Response> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let mode = *state.mode.lock().unwrap();
    match mode {
        Mode::Normal => None,
        Mode::Status(code) => Some((StatusCode::from_u16(code).unwrap(), "provider trouble").into_response()),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            None
        }
        Mode::Malformed => Some((StatusCode::OK, "<html>not what you expected").into_response()),
        Mode::RateLimited { secs, times } => {
            let left = times.saturating_sub(1);
            *state.mode.lock().unwrap() =
                if left == 0 { Mode::Normal } else { Mode::RateLimited { secs, times: left } };
            Some(
                (StatusCode::TOO_MANY_REQUESTS, [("retry-after", secs.to_string())], "slow down")
                    .into_response(),
            )
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")
}

async fn vultr_account(State(state): State<Arc<FakeState>>, headers: HeaderMap) -> Response {
    if let Some(r) = misbehave(&state).await {
        return r;
    }
    if bearer(&headers) != Some(VULTR_KEY) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "Invalid API token.", "status": 401})))
            .into_response();
    }
    axum::Json(json!({"account": {"name": "Acme Ops", "email": "ops@acme.test", "balance": 0, "acls": ["manage_users", "billing"]}}))
        .into_response()
}

fn sts_error(code: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(json!({"Error": {"Code": code, "Message": "fake", "Type": "Sender"}, "RequestId": "r"})),
    )
        .into_response()
}

/// Parses `YYYYMMDDTHHMMSSZ`.
fn amz_date(value: &str) -> Option<SystemTime> {
    let n = |range: std::ops::Range<usize>| value.get(range)?.parse::<u32>().ok();
    let date = time::Date::from_calendar_date(
        i32::try_from(n(0..4)?).ok()?,
        time::Month::try_from(u8::try_from(n(4..6)?).ok()?).ok()?,
        u8::try_from(n(6..8)?).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(n(9..11)?).ok()?,
        u8::try_from(n(11..13)?).ok()?,
        u8::try_from(n(13..15)?).ok()?,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_utc().into())
}

/// Recomputes the request's SigV4 signature with the secret the fake knows for its key id.
async fn sts(State(state): State<Arc<FakeState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = misbehave(&state).await {
        return r;
    }
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return sts_error("MissingAuthenticationToken");
    };
    let Some(credential) = auth.split("Credential=").nth(1).and_then(|c| c.split('/').next()) else {
        return sts_error("IncompleteSignature");
    };
    let (session_token, arn) = match credential {
        AWS_KEY_ID => (None, "arn:aws:iam::123456789012:user/collector"),
        AWS_ROOT_KEY_ID => (None, "arn:aws:iam::123456789012:root"),
        AWS_TEMP_KEY_ID => {
            (Some(AWS_SESSION_TOKEN), "arn:aws:sts::123456789012:assumed-role/collector/session")
        }
        _ => return sts_error("InvalidClientTokenId"),
    };
    if session_token.is_some()
        && headers.get("x-amz-security-token").and_then(|v| v.to_str().ok()) != session_token
    {
        return sts_error("InvalidClientTokenId");
    }
    let Some(time) = headers.get("x-amz-date").and_then(|v| v.to_str().ok()).and_then(amz_date) else {
        return sts_error("IncompleteSignature");
    };
    let signed: Vec<&str> = auth
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .map(|s| s.split(';').collect())
        .unwrap_or_default();
    // Re-sign the same request (same signed headers, body and time) with the known secret.
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let uri = format!("http://{host}/sts/");
    let resigned_headers: Vec<(String, String)> = signed
        .iter()
        .filter(|h| !matches!(**h, "host" | "x-amz-date" | "x-amz-security-token" | "x-amz-content-sha256"))
        .filter_map(|h| Some((h.to_string(), headers.get(*h)?.to_str().ok()?.to_owned())))
        .collect();
    let credentials = aws_credential_types::Credentials::new(
        credential,
        AWS_SECRET,
        session_token.map(str::to_owned),
        None,
        "fake-sts",
    );
    let identity = credentials.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("sts")
        .time(time)
        .settings(aws_sigv4::http_request::SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = aws_sigv4::http_request::SignableRequest::new(
        "POST",
        uri,
        resigned_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        aws_sigv4::http_request::SignableBody::Bytes(&body),
    )
    .unwrap();
    let (_, expected) = aws_sigv4::http_request::sign(signable, &params).unwrap().into_parts();
    let received = auth.split("Signature=").nth(1).unwrap_or_default();
    if received != expected {
        return sts_error("SignatureDoesNotMatch");
    }
    if body.as_ref() != b"Action=GetCallerIdentity&Version=2011-06-15" {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"Error": {"Code": "InvalidAction"}})))
            .into_response();
    }
    axum::Json(json!({"GetCallerIdentityResponse": {"GetCallerIdentityResult": {
        "Account": "123456789012", "Arn": arn, "UserId": "AIDAFAKEUSERID"
    }, "ResponseMetadata": {"RequestId": "r"}}}))
    .into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, axum::Json(json!({"error": error, "error_description": description}))).into_response()
}

/// Verifies the JWT bearer assertion: RS256 signature with the known public key, issuer,
/// audience (this endpoint), scope and expiry.
async fn google_token(
    State(state): State<Arc<FakeState>>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = misbehave(&state).await {
        return r;
    }
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Invalid grant_type");
    }
    let assertion = form.get("assertion").cloned().unwrap_or_default();
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Invalid JWT");
    }
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
    let signing_input = format!("{}.{}", parts[0], parts[1]);
    let key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &state.gcp_public_key);
    if key.verify(signing_input.as_bytes(), &signature).is_err() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid JWT Signature.");
    }
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap_or_default()).unwrap_or_default();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap_or_default()).unwrap_or_default();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let audience = format!("{}/google/token", state.base.lock().unwrap());
    let ok = header["alg"] == "RS256"
        && claims["iss"] == GCP_EMAIL
        && claims["aud"] == audience.as_str()
        && claims["scope"].as_str().is_some_and(|s| s.starts_with("https://www.googleapis.com/auth/"))
        && claims["exp"].as_i64().is_some_and(|exp| exp > now && exp <= now + 3600)
        && claims["iat"].as_i64().is_some_and(|iat| (iat - now).abs() < 300);
    if !ok {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid JWT: claims are wrong.");
    }
    axum::Json(json!({"access_token": "ya29.fake-token", "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

async fn azure_token(
    State(state): State<Arc<FakeState>>,
    Path(tenant): Path<String>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = misbehave(&state).await {
        return r;
    }
    if tenant != AZURE_TENANT {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            "AADSTS90002: Tenant not found.\nTrace ID: x",
        );
    }
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some("client_credentials")
        || field("scope") != Some("https://management.azure.com/.default")
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "AADSTS900144: bad request.");
    }
    if field("client_id") != Some(AZURE_CLIENT) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "AADSTS700016: Application not found.\nTrace ID: x",
        );
    }
    if field("client_secret") != Some(AZURE_SECRET) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.\nTrace ID: x",
        );
    }
    axum::Json(json!({"token_type": "Bearer", "expires_in": 3599, "access_token": AZURE_TOKEN}))
        .into_response()
}

async fn azure_subscription(
    State(state): State<Arc<FakeState>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = misbehave(&state).await {
        return r;
    }
    if bearer(&headers) != Some(AZURE_TOKEN) || !query.contains_key("api-version") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": "InvalidAuthenticationToken"}})),
        )
            .into_response();
    }
    if id != AZURE_SUBSCRIPTION {
        return (StatusCode::FORBIDDEN, axum::Json(json!({"error": {"code": "AuthorizationFailed"}})))
            .into_response();
    }
    axum::Json(json!({"subscriptionId": id, "displayName": "Production", "state": "Enabled"})).into_response()
}
