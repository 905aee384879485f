//! `credvault import env`: the seed's older way, keys in environment variables (its "Migration
//! from Environment Variables"), stored for one customer. Reads the process environment or a
//! `.env` / docker-compose `env_file` (KEY=VALUE lines); each provider whose variables are all
//! there becomes one credential, its provider's default, validated as Store validates. A rerun
//! finds what it stored (the idempotency key names the provider) instead of storing it twice.
//! Never prints a secret.

use std::collections::BTreeMap;
use std::path::Path;

use crate::domain::{
    CredentialName, CredentialType, CustomerId, IdempotencyKey, Permission, SecretPayload, VerifyOutcome,
};
use crate::vault::{NewCredentialRequest, RequestContext, Vault, VaultError, VerifyTarget};

/// What was found for one provider, and what became of it.
#[derive(Debug)]
pub struct Outcome {
    pub provider: &'static str,
    /// `Ok(message)` when stored (or found stored by an earlier run), else why it was skipped.
    pub result: Result<String, String>,
}

/// Parses `.env` / docker-compose env-file lines: `KEY=VALUE`, an optional `export `, values
/// optionally in single or double quotes, `#` comments and blank lines ignored.
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = value.trim();
        let unquoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        vars.insert(key.trim().to_owned(), unquoted.to_owned());
    }
    vars
}

/// The secrets the variables hold, per provider; a provider with some but not all of its
/// required variables is reported, not guessed.
fn secrets_in(vars: &BTreeMap<String, String>) -> Vec<(&'static str, Result<SecretPayload, String>)> {
    let get = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
    let mut found = Vec::new();
    if let Some(api_key) = get("VULTR_API_KEY") {
        found.push(("vultr", Ok(SecretPayload::Vultr { api_key })));
    }
    match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => found.push((
            "aws",
            Ok(SecretPayload::Aws {
                access_key_id,
                secret_access_key,
                session_token: get("AWS_SESSION_TOKEN"),
            }),
        )),
        (None, None) => {}
        _ => found.push(("aws", Err("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must both be set".into()))),
    }
    let gcp = match (get("GCP_SERVICE_ACCOUNT_JSON"), get("GOOGLE_APPLICATION_CREDENTIALS")) {
        (Some(json), _) => Some(Ok(json)),
        (None, Some(path)) => Some(std::fs::read_to_string(&path).map_err(|e| {
            format!("GOOGLE_APPLICATION_CREDENTIALS names {path}, which cannot be read ({})", e.kind())
        })),
        (None, None) => None,
    };
    if let Some(json) = gcp {
        found.push(("gcp", json.map(|service_account_json| SecretPayload::Gcp { service_account_json })));
    }
    match (get("AZURE_TENANT_ID"), get("AZURE_CLIENT_ID"), get("AZURE_CLIENT_SECRET")) {
        (Some(tenant_id), Some(client_id), Some(client_secret)) => found.push((
            "azure",
            Ok(SecretPayload::Azure {
                tenant_id,
                client_id,
                client_secret,
                subscription_id: get("AZURE_SUBSCRIPTION_ID"),
            }),
        )),
        (None, None, None) => {}
        _ => found.push((
            "azure",
            Err("AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET must all be set".into()),
        )),
    }
    found
}

/// Stores (and with `verify`, verifies) each provider's credential found in `vars` for
/// `customer`.
pub async fn import(
    vault: &Vault,
    customer: CustomerId,
    vars: &BTreeMap<String, String>,
    verify: bool,
) -> Vec<Outcome> {
    let operator = RequestContext::operator();
    let mut outcomes = Vec::new();
    for (provider, secret) in secrets_in(vars) {
        let result = match secret {
            Err(why) => Err(why),
            Ok(secret) => store_one(vault, &operator, customer, provider, secret, verify).await,
        };
        outcomes.push(Outcome { provider, result });
    }
    outcomes
}

async fn store_one(
    vault: &Vault,
    operator: &RequestContext,
    customer: CustomerId,
    provider: &'static str,
    secret: SecretPayload,
    verify: bool,
) -> Result<String, String> {
    let name = CredentialName::parse(&format!("{} (from the environment)", secret.provider()), "name")
        .map_err(|v| v.to_string())?;
    let request = NewCredentialRequest {
        customer_id: customer,
        name,
        credential_type: CredentialType::parse_or_default("", secret.provider(), "credential_type")
            .map_err(|v| v.to_string())?,
        permissions: Permission::ReadOnly,
        secret,
        idempotency_key: IdempotencyKey::parse_optional(&format!("env-import-{provider}"), "idempotency_key")
            .map_err(|v| v.to_string())?,
        make_default: true,
        // Checked before storing when asked (see `verify` above).
        verify: false,
    };
    let stored = vault.store_credential(operator.clone(), request).await.map_err(|e| match e {
        VaultError::InvalidArgument(v) if v.field == "idempotency_key" => {
            "a different value was imported before; rotate that credential instead".to_owned()
        }
        other => other.to_string(),
    })?;
    let id = stored.credential.id;
    let mut message =
        if stored.replayed { format!("already imported as {id}") } else { format!("stored as {id}") };
    if verify {
        let verified = vault
            .verify_credential(operator.clone(), VerifyTarget::Stored(id))
            .await
            .map_err(|e| e.to_string())?;
        let outcome = match verified.verification.outcome {
            VerifyOutcome::Valid => "valid",
            VerifyOutcome::Invalid => "invalid",
            VerifyOutcome::Unreachable => "could not be checked",
        };
        message.push_str(&format!("; verification: {outcome} ({})", verified.verification.reason));
    }
    Ok(message)
}

/// The variables of the environment, or of `file` when given.
pub fn variables(file: Option<&Path>) -> Result<BTreeMap<String, String>, String> {
    match file {
        Some(path) => std::fs::read_to_string(path)
            .map(|text| parse_env_file(&text))
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
        None => Ok(std::env::vars().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_are_read_as_docker_compose_and_shells_write_them() {
        let vars = parse_env_file(
            "# keys\nexport VULTR_API_KEY=\"abc\"\nAWS_ACCESS_KEY_ID='AKIA1'\n\nAWS_SECRET_ACCESS_KEY=s=x\n",
        );
        assert_eq!(vars["VULTR_API_KEY"], "abc");
        assert_eq!(vars["AWS_ACCESS_KEY_ID"], "AKIA1");
        assert_eq!(vars["AWS_SECRET_ACCESS_KEY"], "s=x");
        let found = secrets_in(&vars);
        assert_eq!(
            found.iter().map(|(p, r)| (*p, r.is_ok())).collect::<Vec<_>>(),
            [("vultr", true), ("aws", true)]
        );
        let half = secrets_in(&parse_env_file("AZURE_TENANT_ID=t\nAZURE_CLIENT_ID=c\n"));
        assert!(matches!(&half[..], [("azure", Err(why))] if why.contains("AZURE_CLIENT_SECRET")));
    }
}
