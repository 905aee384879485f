//! `credvault import pgcrypto`: moves the seed's system into credvault in one command, safe to
//! repeat. The source is read in one snapshot; every secret is decrypted in this process (on
//! every core: the OpenPGP key derivation dominates), validated and sealed; then customers,
//! credentials and the old audit history are written, each row in its own transaction and
//! skipped when it is there already, so a stopped import leaves nothing half-written and a rerun
//! finishes it. Rows that cannot come over are reported by id with the reason, and skipped.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use secrecy::SecretString;

use super::{Progress, Report};

use crate::crypto::pgcrypto;
use crate::store::import::ImportedCredential;
use crate::store::seed_source::{self, SourceCredential};
use crate::vault::{RequestContext, Vault, error_chain};

/// Decrypts and seals every credential on every core; each result is the sealed credential or
/// the reason it is skipped.
fn open_all(
    vault: &Vault,
    credentials: Vec<SourceCredential>,
    key: &SecretString,
) -> Vec<(String, Result<ImportedCredential, String>)> {
    let progress = Progress::new("decrypting", credentials.len());
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(credentials.len()));
    let workers = std::thread::available_parallelism().map_or(2, usize::from).min(credentials.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(source) = credentials.get(i) else { return };
                    let outcome = pgcrypto::open(&source.encrypted, key)
                        .map_err(|e| e.to_string())
                        .and_then(|plaintext| vault.seal_imported(source, &plaintext));
                    results.lock().expect("not poisoned").push((i, source.id.to_string(), outcome));
                    progress.tick();
                }
            });
        }
    });
    progress.finish();
    let mut results = results.into_inner().expect("not poisoned");
    results.sort_by_key(|(i, _, _)| *i);
    results.into_iter().map(|(_, id, outcome)| (id, outcome)).collect()
}

/// Imports the seed's database at `source_url` into `vault` (already prepared), decrypting with
/// `key`; with `dry_run`, decrypts and validates everything and writes nothing.
pub async fn run(
    vault: &Vault,
    source_url: &str,
    key: SecretString,
    dry_run: bool,
) -> Result<Report, String> {
    let operator = RequestContext::operator();
    let data = seed_source::read(source_url)
        .await
        .map_err(|e| format!("cannot read the source database: {}", error_chain(&e)))?;
    let mut report = Report { dry_run, ..Report::default() };

    let mut refused_customers = std::collections::HashSet::new();
    let progress = Progress::new("customers", data.customers.len());
    for customer in &data.customers {
        if dry_run {
            report.customers.imported += 1;
        } else {
            match vault.import_customer(&operator, customer).await {
                Ok(true) => report.customers.imported += 1,
                Ok(false) => report.customers.existing += 1,
                Err(e) => {
                    report.customers.skipped += 1;
                    refused_customers.insert(customer.id);
                    report.problems.push(("customer", customer.id.to_string(), e.to_string()));
                }
            }
        }
        progress.tick();
    }
    progress.finish();

    let opened = {
        let vault = vault.clone();
        let credentials = data.credentials;
        tokio::task::spawn_blocking(move || open_all(&vault, credentials, &key))
            .await
            .map_err(|e| format!("decryption stopped: {e}"))?
    };
    let progress = Progress::new("credentials", opened.len());
    for (id, outcome) in opened {
        match outcome {
            Err(why) => {
                report.credentials.skipped += 1;
                report.problems.push(("credential", id, why));
            }
            Ok(credential) if refused_customers.contains(credential.customer_id.as_uuid()) => {
                report.credentials.skipped += 1;
                report.problems.push(("credential", id, "its customer was not imported".into()));
            }
            Ok(_) if dry_run => report.credentials.imported += 1,
            Ok(credential) => match vault.import_credential(&operator, &credential).await {
                Ok(true) => report.credentials.imported += 1,
                Ok(false) => report.credentials.existing += 1,
                Err(e) => {
                    report.credentials.skipped += 1;
                    report.problems.push(("credential", id, e.to_string()));
                }
            },
        }
        progress.tick();
    }
    progress.finish();

    let progress = Progress::new("audit rows", data.audit.len());
    for row in &data.audit {
        if dry_run {
            report.audit_rows.imported += 1;
        } else {
            match vault.import_audit_row(&operator, row).await {
                Ok(true) => report.audit_rows.imported += 1,
                Ok(false) => report.audit_rows.existing += 1,
                Err(e) => {
                    report.audit_rows.skipped += 1;
                    report.problems.push(("audit row", row.id.to_string(), e.to_string()));
                }
            }
        }
        progress.tick();
    }
    progress.finish();

    if !dry_run {
        let summary = format!(
            "import from the pgcrypto database: {} customers, {} credentials, {} audit rows imported; \
             {} credentials and {} audit rows already there; {} rows skipped",
            report.customers.imported,
            report.credentials.imported,
            report.audit_rows.imported,
            report.credentials.existing,
            report.audit_rows.existing,
            report.problems.len()
        );
        vault.audit_import(&operator, summary).await.map_err(|e| e.to_string())?;
    }
    Ok(report)
}
