//! A credential's secret, per provider: its fields, their validation, and its plaintext form
//! (sealed by the crypto layer, never logged).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{FieldViolation, Provider};

/// The largest secret accepted, counted over all its fields.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// A credential's plaintext secret, typed per provider.
///
/// Its memory is wiped when dropped, and `Debug` prints only the provider. The serialized form
/// ([`SecretPayload::to_plaintext`]) is what gets sealed; it is returned in a zeroizing buffer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(tag = "provider", rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretPayload {
    Vultr { api_key: String },
    Aws { access_key_id: String, secret_access_key: String, session_token: Option<String> },
    Gcp { service_account_json: String },
    Azure { tenant_id: String, client_id: String, client_secret: String, subscription_id: Option<String> },
}

impl SecretPayload {
    pub fn provider(&self) -> Provider {
        match self {
            SecretPayload::Vultr { .. } => Provider::Vultr,
            SecretPayload::Aws { .. } => Provider::Aws,
            SecretPayload::Gcp { .. } => Provider::Gcp,
            SecretPayload::Azure { .. } => Provider::Azure,
        }
    }

    /// Checks every field the provider needs. `prefix` is the path of the secret in the request
    /// (e.g. `secret`), so errors name the exact field.
    /// The provider's secret from its named fields (`credentials` in the REST gateway's body,
    /// the JSON the seed's system stored): unknown fields are refused, naming the field
    /// (`credentials.<name>`), never its value; missing required ones are left empty for
    /// [`SecretPayload::validate`] to name.
    pub fn from_fields(
        provider: Provider,
        mut fields: BTreeMap<String, Zeroizing<String>>,
    ) -> Result<Self, FieldViolation> {
        let allowed: &[&str] = match provider {
            Provider::Vultr => &["api_key"],
            Provider::Aws => &["access_key_id", "secret_access_key", "session_token"],
            Provider::Gcp => &["service_account_json"],
            Provider::Azure => &["tenant_id", "client_id", "client_secret", "subscription_id"],
        };
        if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(FieldViolation::new(
                format!("credentials.{}", super::shortened(unknown)),
                format!("is not a {provider} field; expected {}", allowed.join(", ")),
            ));
        }
        let mut take = |name: &str| fields.get_mut(name).map(|v| std::mem::take(&mut **v));
        let mut required = |name: &str| take(name).unwrap_or_default();
        Ok(match provider {
            Provider::Vultr => SecretPayload::Vultr { api_key: required("api_key") },
            Provider::Aws => SecretPayload::Aws {
                access_key_id: required("access_key_id"),
                secret_access_key: required("secret_access_key"),
                session_token: take("session_token"),
            },
            Provider::Gcp => SecretPayload::Gcp { service_account_json: required("service_account_json") },
            Provider::Azure => SecretPayload::Azure {
                tenant_id: required("tenant_id"),
                client_id: required("client_id"),
                client_secret: required("client_secret"),
                subscription_id: take("subscription_id"),
            },
        })
    }

    pub fn validate(&self, prefix: &str) -> Result<(), FieldViolation> {
        let field = |name: &str| format!("{prefix}.{}.{name}", self.provider());
        let required = |name: &str, value: &str| {
            if value.trim().is_empty() {
                Err(FieldViolation::new(
                    field(name),
                    format!("is required for {} credentials", self.provider()),
                ))
            } else {
                Ok(())
            }
        };
        let optional = |name: &str, value: &Option<String>| match value {
            Some(v) if v.trim().is_empty() => Err(FieldViolation::new(
                field(name),
                "is empty; leave it out instead of sending an empty value",
            )),
            _ => Ok(()),
        };

        let size = self.byte_len();
        if size > MAX_SECRET_BYTES {
            return Err(FieldViolation::new(
                prefix,
                format!("is {size} bytes; at most {MAX_SECRET_BYTES} bytes (64 KiB) are accepted"),
            ));
        }

        match self {
            SecretPayload::Vultr { api_key } => required("api_key", api_key),
            SecretPayload::Aws { access_key_id, secret_access_key, session_token } => {
                required("access_key_id", access_key_id)?;
                required("secret_access_key", secret_access_key)?;
                optional("session_token", session_token)
            }
            SecretPayload::Gcp { service_account_json } => {
                required("service_account_json", service_account_json)?;
                check_service_account_json(service_account_json)
                    .map_err(|why| FieldViolation::new(field("service_account_json"), why))
            }
            SecretPayload::Azure { tenant_id, client_id, client_secret, subscription_id } => {
                required("tenant_id", tenant_id)?;
                required("client_id", client_id)?;
                required("client_secret", client_secret)?;
                optional("subscription_id", subscription_id)
            }
        }
    }

    fn byte_len(&self) -> usize {
        let opt = |v: &Option<String>| v.as_ref().map_or(0, String::len);
        match self {
            SecretPayload::Vultr { api_key } => api_key.len(),
            SecretPayload::Aws { access_key_id, secret_access_key, session_token } => {
                access_key_id.len() + secret_access_key.len() + opt(session_token)
            }
            SecretPayload::Gcp { service_account_json } => service_account_json.len(),
            SecretPayload::Azure { tenant_id, client_id, client_secret, subscription_id } => {
                tenant_id.len() + client_id.len() + client_secret.len() + opt(subscription_id)
            }
        }
    }

    /// The serialized secret, ready to seal. The buffer is sized up front so that it never
    /// reallocates (which would leave unwiped copies behind) and is wiped when dropped.
    pub fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        // JSON escaping can at most expand a byte to six (`\u00XX`); 256 covers keys and framing.
        let mut buf = Zeroizing::new(Vec::with_capacity(self.byte_len() * 6 + 256));
        serde_json::to_writer(&mut *buf, self).expect("serializing strings into a Vec cannot fail");
        buf
    }

    /// Parses a plaintext produced by [`SecretPayload::to_plaintext`].
    pub fn from_plaintext(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Accepts a GCP service-account key JSON, or says what is missing. Never echoes the content,
/// and never copies the private key: presence is all it records.
fn check_service_account_json(text: &str) -> Result<(), String> {
    #[derive(Deserialize)]
    struct ServiceAccountKey {
        #[serde(rename = "type")]
        kind: Option<String>,
        client_email: Option<NonEmpty>,
        private_key: Option<NonEmpty>,
        token_uri: Option<NonEmpty>,
    }

    let key: ServiceAccountKey = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            "is not a service-account key: it must be a JSON object whose type, client_email, \
             private_key and token_uri are strings"
                .to_string()
        } else {
            format!(
                "is not valid JSON (line {}, column {}); paste the whole service-account key file",
                e.line(),
                e.column()
            )
        }
    })?;
    let present = |v: &Option<NonEmpty>| v.as_ref().is_some_and(|n| n.0);
    let missing: Vec<&str> = [
        ("type", key.kind.as_deref().is_some_and(|k| !k.is_empty())),
        ("client_email", present(&key.client_email)),
        ("private_key", present(&key.private_key)),
        ("token_uri", present(&key.token_uri)),
    ]
    .into_iter()
    .filter_map(|(name, ok)| (!ok).then_some(name))
    .collect();
    if !missing.is_empty() {
        return Err(format!("is not a service-account key: missing or empty {}", missing.join(", ")));
    }
    if key.kind.as_deref() != Some("service_account") {
        return Err("is not a service-account key: \"type\" must be \"service_account\"".into());
    }
    Ok(())
}

/// Whether a JSON string is non-empty, learned without keeping the string.
struct NonEmpty(bool);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = NonEmpty;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NonEmpty, E> {
                Ok(NonEmpty(!v.is_empty()))
            }
        }
        d.deserialize_str(Visitor)
    }
}

impl fmt::Debug for SecretPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretPayload({}, [redacted])", self.provider())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gcp(json: &str) -> SecretPayload {
        SecretPayload::Gcp { service_account_json: json.into() }
    }

    const GOOD_GCP: &str = r#"{"type":"service_account","project_id":"p","client_email":"a@p.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nX\n-----END PRIVATE KEY-----\n","token_uri":"https://oauth2.googleapis.com/token"}"#;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = SecretPayload::Aws {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI-very-secret".into(),
            session_token: None,
        };
        let shown = format!("{s:?}");
        assert_eq!(shown, "SecretPayload(aws, [redacted])");
        assert!(!shown.contains("wJalr"));
    }

    #[test]
    fn plaintext_round_trips() {
        let s = SecretPayload::Azure {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: "s\"\\\u{1}é".into(),
            subscription_id: Some("sub".into()),
        };
        let bytes = s.to_plaintext();
        assert_eq!(SecretPayload::from_plaintext(&bytes).unwrap(), s);
    }

    #[test]
    fn missing_fields_are_named() {
        let err = SecretPayload::Aws {
            access_key_id: "AKIA".into(),
            secret_access_key: " ".into(),
            session_token: None,
        }
        .validate("secret")
        .unwrap_err();
        assert_eq!(err.field, "secret.aws.secret_access_key");

        let err = SecretPayload::Azure {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            subscription_id: Some(String::new()),
        }
        .validate("secret")
        .unwrap_err();
        assert_eq!(err.field, "secret.azure.subscription_id");
    }

    #[test]
    fn gcp_json_must_be_a_service_account_key() {
        assert!(gcp(GOOD_GCP).validate("secret").is_ok());
        let err = gcp("{not json").validate("secret").unwrap_err();
        assert_eq!(err.field, "secret.gcp.service_account_json");
        assert!(err.description.contains("not valid JSON"), "{}", err.description);
        let err = gcp(r#"{"type":"service_account","client_email":"x"}"#).validate("secret").unwrap_err();
        assert!(err.description.contains("private_key, token_uri"), "{}", err.description);
        let err = gcp(r#"{"type":"authorized_user","client_email":"x","private_key":"k","token_uri":"u"}"#)
            .validate("secret")
            .unwrap_err();
        assert!(err.description.contains("\"service_account\""));
        let err = gcp("[1,2]").validate("secret").unwrap_err();
        assert!(err.description.contains("JSON object"));
        let err = gcp(r#"{"type":"service_account","client_email":"x","private_key":7,"token_uri":"u"}"#)
            .validate("secret")
            .unwrap_err();
        assert!(!err.description.contains('7'), "{}", err.description);
    }

    #[test]
    fn oversized_secrets_are_rejected() {
        let s = SecretPayload::Vultr { api_key: "x".repeat(MAX_SECRET_BYTES + 1) };
        let err = s.validate("secret").unwrap_err();
        assert_eq!(err.field, "secret");
        assert!(err.description.contains("64 KiB"));
        let s = SecretPayload::Vultr { api_key: "x".repeat(MAX_SECRET_BYTES) };
        assert!(s.validate("secret").is_ok());
    }
}
