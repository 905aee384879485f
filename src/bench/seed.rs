//! `credvault bench-seed`: fills a new database with generated customers, credentials and audit
//! history for `bench/scale.sh`, every row as credvault writes it: each secret sealed with the
//! vault's key, each audit row MACed and linked onto the chain. The rows are made on one thread
//! while the store writes the previous batch in one transaction on another
//! ([`SeedStore`](crate::store::seed::SeedStore)).
//!
//! The history spans [`SPAN_DAYS`] days up to now: the credentials are created in its first
//! tenth (one `created` row each), then `used` rows, each for a credential picked at random,
//! fill the rest in time order. The first customer holds `big_customer` credentials; the others
//! share the rest.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::{Binding, Keyring};
use crate::domain::{
    AuditEvent, AuditSigner, CredentialId, CredentialName, CredentialType, CustomerId, CustomerStatus,
    Permission, Provider, SecretPayload, SubscriptionTier,
};
use crate::store::import::{ImportedCredential, ImportedCustomer};
use crate::store::seed::SeedBatch;
use crate::store::{ChainHead, ChainPart, SignedRow, Store};

/// How far back the generated history reaches.
pub const SPAN_DAYS: i64 = 180;

/// What to generate.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// Customers.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub customers: u64,
    /// Credentials in all.
    #[arg(long, default_value_t = 1_000_000)]
    pub credentials: u64,
    /// Credentials of the first customer (the rest are shared by the others).
    #[arg(long, default_value_t = 10_000)]
    pub big_customer: u64,
    /// Audit rows in all: one `created` row per credential, the rest `used` rows.
    #[arg(long, default_value_t = 10_000_000)]
    pub audit_rows: u64,
    /// Write the ids of up to `--ids` credentials, spread over all of them, one per line, to
    /// this file (for `credvault bench --ids-file`).
    #[arg(long)]
    pub ids_file: Option<PathBuf>,
    /// How many ids `--ids-file` gets.
    #[arg(long, default_value_t = 100_000)]
    pub ids: u64,
    /// Credentials per transaction (and ten times as many `used` rows).
    #[arg(long, default_value_t = 10_000, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
}

/// What a seeding wrote.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The customer with `big_customer` credentials.
    pub big_customer: CustomerId,
    pub credentials: u64,
    pub audit_rows: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for Seeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "big_customer={} credentials={} audit_rows={} seconds={:.1}",
            self.big_customer,
            self.credentials,
            self.audit_rows,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Seeds `store`, which must hold no credentials' history yet; `keyring` seals and MACs.
pub async fn seed(store: Arc<dyn Store>, keyring: Arc<Keyring>, args: &SeedArgs) -> Result<Seeded, String> {
    if args.credentials < args.big_customer || args.audit_rows < args.credentials {
        return Err("--big-customer must be at most --credentials, and --audit-rows at least --credentials \
                    (one `created` row each)"
            .into());
    }
    if args.customers < 2 && args.credentials > args.big_customer {
        return Err("with one customer, --big-customer must equal --credentials".into());
    }
    let head = chain_head(store.as_ref()).await?;
    if head.seq > 0 {
        return Err(format!(
            "bench-seed fills a new database; this one already has {} sealed audit rows",
            head.seq
        ));
    }
    let started = Instant::now();
    let (batches, mut written) = tokio::sync::mpsc::channel::<SeedBatch>(2);
    let plan = Plan::new(args, OffsetDateTime::now_utc());
    let ids_file = args.ids_file.clone();
    let ids = args.ids;
    let maker =
        tokio::task::spawn_blocking(move || plan.make(keyring.as_ref(), head, ids_file, ids, &batches));
    let (mut rows, total) = (0usize, plan_rows(args));
    while let Some(batch) = written.recv().await {
        rows += batch.rows();
        store.seed(batch).await.map_err(|e| format!("writing a batch failed: {e}"))?;
        eprintln!("rows: {rows}/{total} ({:.0} s)", started.elapsed().as_secs_f64());
    }
    let big_customer = maker.await.map_err(|e| format!("the seeding thread failed: {e}"))??;
    Ok(Seeded {
        big_customer,
        credentials: args.credentials,
        audit_rows: args.audit_rows,
        elapsed: started.elapsed(),
    })
}

/// Rows a seeding writes in all (as [`SeedBatch::rows`] counts them).
fn plan_rows(args: &SeedArgs) -> usize {
    let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    count(args.customers) + 2 * count(args.credentials) + 2 * count(args.audit_rows)
}

/// The chain's head, as the store has it.
async fn chain_head(store: &dyn Store) -> Result<ChainHead, String> {
    let mut head = None;
    store
        .walk_audit_chain(&mut |part| {
            if let ChainPart::Head { head: h, .. } = part {
                head = Some(h);
            }
            ControlFlow::Break(())
        })
        .await
        .map_err(|e| format!("cannot read the audit chain: {e}"))?;
    head.ok_or_else(|| "the audit chain has no head".into())
}

/// The generated database, row by row.
struct Plan {
    customers: Vec<CustomerId>,
    credentials: u64,
    big_customer: u64,
    audit_rows: u64,
    /// Credentials per batch; `used` rows per batch are ten times as many.
    batch: usize,
    start: OffsetDateTime,
    span: time::Duration,
}

/// A credential made so far: what a `used` row names.
struct Made {
    id: CredentialId,
    customer: CustomerId,
    provider: Provider,
    name: CredentialName,
}

impl Plan {
    fn new(args: &SeedArgs, now: OffsetDateTime) -> Self {
        let customers = (0..args.customers).map(|_| CustomerId::new_random()).collect();
        let span = time::Duration::days(SPAN_DAYS);
        Plan {
            customers,
            credentials: args.credentials,
            big_customer: args.big_customer,
            audit_rows: args.audit_rows,
            batch: usize::try_from(args.batch).unwrap_or(usize::MAX),
            start: now - span,
            span,
        }
    }

    /// The `n`-th of `of` moments spread over the part of the span between `from` and `to`
    /// (fractions of it).
    fn moment(&self, n: u64, of: u64, from: f64, to: f64) -> OffsetDateTime {
        let fraction = from + (to - from) * (n as f64 / of.max(1) as f64);
        self.start + self.span * fraction
    }

    /// The customer of the `n`-th credential.
    fn owner(&self, n: u64) -> CustomerId {
        if n < self.big_customer {
            return self.customers[0];
        }
        let others = self.customers.len() as u64 - 1;
        self.customers[usize::try_from(1 + (n - self.big_customer) % others).expect("an index")]
    }

    /// Makes every batch and sends it to `batches`; the big customer's id.
    fn make(
        &self,
        keyring: &Keyring,
        mut head: ChainHead,
        ids_file: Option<PathBuf>,
        ids: u64,
        batches: &tokio::sync::mpsc::Sender<SeedBatch>,
    ) -> Result<CustomerId, String> {
        let send = |batch: SeedBatch| {
            batches.blocking_send(batch).map_err(|_| "the store stopped writing".to_owned())
        };
        let mut ids_out = match &ids_file {
            Some(path) => Some(std::io::BufWriter::new(
                std::fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?,
            )),
            None => None,
        };
        let every = (self.credentials / ids.max(1)).max(1);
        let customers = self
            .customers
            .iter()
            .enumerate()
            .map(|(n, id)| ImportedCustomer {
                id: *id,
                email: format!("seed-{n}@bench.example"),
                company_name: format!("Seed Customer {n}"),
                status: CustomerStatus::Active,
                tier: SubscriptionTier::Professional,
                created_at: self.start,
            })
            .collect();
        let mut batch = SeedBatch { customers, ..SeedBatch::default() };
        let mut made = Vec::with_capacity(usize::try_from(self.credentials).unwrap_or(0));
        let mut pending = Vec::new();
        for n in 0..self.credentials {
            let at = self.moment(n, self.credentials, 0.0, 0.1);
            let credential = self.credential(keyring, n, at)?;
            if n.is_multiple_of(every)
                && let Some(out) = ids_out.as_mut()
            {
                writeln!(out, "{}", credential.id).map_err(|e| format!("cannot write the ids file: {e}"))?;
            }
            pending.push(signed(
                keyring,
                event(
                    &credential.id,
                    credential.customer_id,
                    credential.provider,
                    &credential.name,
                    "created",
                    at,
                ),
            ));
            made.push(Made {
                id: credential.id,
                customer: credential.customer_id,
                provider: credential.provider,
                name: credential.name.clone(),
            });
            batch.credentials.push(credential);
            if batch.credentials.len() == self.batch {
                send(sealed(keyring, std::mem::take(&mut batch), &mut head, std::mem::take(&mut pending)))?;
            }
        }
        if let Some(out) = ids_out.as_mut() {
            out.flush().map_err(|e| format!("cannot write the ids file: {e}"))?;
        }
        let uses = self.audit_rows - self.credentials;
        let mut pick = super::Pick::new(0);
        for n in 0..uses {
            let at = self.moment(n, uses, 0.1, 1.0);
            let m = &made[pick.below(made.len())];
            pending.push(signed(keyring, event(&m.id, m.customer, m.provider, &m.name, "used", at)));
            if pending.len() == self.batch.saturating_mul(10) {
                send(sealed(keyring, std::mem::take(&mut batch), &mut head, std::mem::take(&mut pending)))?;
            }
        }
        send(sealed(keyring, batch, &mut head, pending))?;
        Ok(self.customers[0])
    }

    /// The `n`-th credential, created at `at`, its secret sealed.
    fn credential(
        &self,
        keyring: &Keyring,
        n: u64,
        at: OffsetDateTime,
    ) -> Result<ImportedCredential, String> {
        let customer_id = self.owner(n);
        let id = CredentialId::from_uuid(id_at(at));
        let (provider, fields) = if n.is_multiple_of(2) {
            (Provider::Vultr, vec![("api_key", format!("SEED{n:032}"))])
        } else {
            (
                Provider::Aws,
                vec![
                    ("access_key_id", format!("AKIA{n:016}")),
                    ("secret_access_key", format!("seed/secret/{n:028}")),
                ],
            )
        };
        let fields: BTreeMap<String, Zeroizing<String>> =
            fields.into_iter().map(|(name, value)| (name.to_owned(), Zeroizing::new(value))).collect();
        let secret = SecretPayload::from_fields(provider, fields).map_err(|v| v.to_string())?;
        let binding = Binding { credential_id: id, customer_id, provider, version: 1 };
        let (sealed, key_version) =
            keyring.seal(&binding, &secret.to_plaintext()).map_err(|e| format!("sealing failed: {e}"))?;
        let name =
            CredentialName::parse(&format!("seed key {n}"), "credential_name").map_err(|v| v.to_string())?;
        Ok(ImportedCredential {
            id,
            customer_id,
            provider,
            name,
            credential_type: CredentialType::parse_or_default("", provider, "credential_type")
                .map_err(|v| v.to_string())?,
            permissions: Permission::ReadOnly,
            is_active: true,
            is_verified: false,
            last_verified_at: None,
            last_used_at: None,
            usage_count: 0,
            created_at: at,
            updated_at: at,
            sealed,
            key_version: Some(key_version),
        })
    }
}

/// A time-ordered id for a row made at `at`, as the store's own are (UUIDv7).
fn id_at(at: OffsetDateTime) -> Uuid {
    let nanos = at.unix_timestamp_nanos();
    let seconds = u64::try_from(nanos / 1_000_000_000).unwrap_or(0);
    let subsec = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, seconds, subsec))
}

/// An audit row about a credential, as Store and Get write them.
fn event(
    id: &CredentialId,
    customer: CustomerId,
    provider: Provider,
    name: &CredentialName,
    action: &str,
    at: OffsetDateTime,
) -> AuditEvent {
    let details = match action {
        "created" => format!("created {provider} credential {:?}", name.as_str()),
        _ => format!("secret of {provider} credential {:?} version 1 handed out", name.as_str()),
    };
    AuditEvent {
        id: id_at(at),
        credential_id: Some(*id),
        customer_id: Some(customer),
        action: action.to_owned(),
        details,
        ip_address: Some("10.0.0.7".to_owned()),
        actor: Some("collector".to_owned()),
        created_at: at,
    }
}

fn signed(signer: &dyn AuditSigner, event: AuditEvent) -> SignedRow {
    let row_mac = Some(event.mac(signer));
    SignedRow { event, row_mac }
}

/// `batch` with `rows` linked onto the chain after `head`, which moves to the batch's last link.
fn sealed(
    signer: &dyn AuditSigner,
    mut batch: SeedBatch,
    head: &mut ChainHead,
    rows: Vec<SignedRow>,
) -> SeedBatch {
    let (links, new_head, refused) = crate::store::link(signer, head, &rows);
    debug_assert!(refused.is_empty(), "rows MACed here link");
    batch.audit = rows.into_iter().zip(links).collect();
    batch.head = new_head.clone();
    *head = new_head;
    batch
}
