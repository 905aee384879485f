//! `credvault bench`: a load generator. N clients, each on its own HTTP/2 connection, call Get
//! or Store back to back for a fixed time against a running server; it prints throughput and
//! latency percentiles. The calls go through [`wire`], a client lean enough not to take the
//! server's CPU on a shared machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;

use crate::client::{Bearer, Client, client};
use crate::domain::DEMO_CUSTOMER_ID;
use crate::proto::{self as pb, get_request::Selector};

pub mod seed;
mod wire;

const GET: &str = "/credvault.v1.CredentialService/Get";
const STORE: &str = "/credvault.v1.CredentialService/Store";
const HEALTH: &str = "/grpc.health.v1.Health/Check";

/// What to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Operation {
    /// Get one stored credential by id (decrypt + audited use).
    Get,
    /// Store a new credential per call (seal + insert + audit).
    Store,
    /// The standard health check: no token check, no database, no audit row. What a call
    /// costs this client and the server's transport alone, the floor under Get and Store.
    Health,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The server's gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub endpoint: String,
    /// Which call every client makes, back to back.
    #[arg(long, value_enum, default_value = "get")]
    pub op: Operation,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Unmeasured warm-up seconds before.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// How many credentials Get spreads over (stored at setup; each call picks the next one),
    /// so that the load is not one hot row.
    #[arg(long, default_value_t = 100)]
    pub credentials: usize,
    /// Get these credentials (ids, one per line, as `credvault bench-seed --ids-file` writes
    /// them) instead of storing `--credentials` new ones.
    #[arg(long, conflicts_with = "credentials")]
    pub ids_file: Option<std::path::PathBuf>,
    /// A token with credentials:write and secrets:read for the customer (`serve --dev` prints one).
    #[arg(long, env = "CREDVAULT_TOKEN", hide_env_values = true, value_parser = secret_arg)]
    pub token: SecretString,
    /// The customer to store credentials for (must exist; `serve --dev` creates this one).
    #[arg(long, default_value = DEMO_CUSTOMER_ID)]
    pub customer_id: String,
    /// Also print the throughput of each such window of the measured time, as it ends, with
    /// the Unix time it ended at (`window end=<s> req/s=<n>`): for following a long run while
    /// something else happens on the server.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub every: Option<u64>,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub op: Operation,
    pub clients: usize,
    pub seconds: f64,
    pub ok: u64,
    pub errors: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Each `--every` window of the measured time, in order (empty without `--every`).
    pub windows: Vec<Window>,
}

/// The calls served in one window of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Unix time the window ended at, in seconds.
    pub ended_at: f64,
    pub calls: u64,
    pub seconds: f64,
}

impl Window {
    pub fn throughput(&self) -> f64 {
        self.calls as f64 / self.seconds
    }
}

impl Report {
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "op={:?} clients={} ok={} errors={} req/s={:.0} p50={:.2}ms p99={:.2}ms max={:.2}ms",
            self.op,
            self.clients,
            self.ok,
            self.errors,
            self.throughput(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3,
        )
    }
}

fn store_request(customer_id: &str, name: String) -> pb::StoreRequest {
    pb::StoreRequest {
        customer_id: customer_id.to_owned(),
        credential_name: name,
        secret: Some(pb::CredentialSecret {
            secret: Some(pb::credential_secret::Secret::Aws(pb::AwsSecret {
                access_key_id: "AKIABENCHMARK0000000".into(),
                secret_access_key: "bench/secret/access/key/0123456789abcdefghij".into(),
                session_token: None,
            })),
        }),
        ..Default::default()
    }
}

/// A small per-client pseudo-random sequence (xorshift64*): uniform enough to spread load,
/// and no dependency for a load generator.
struct Pick(u64);

impl Pick {
    fn new(client_no: usize) -> Self {
        Self((client_no as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let n = u64::try_from(n).expect("a usize fits in a u64");
        usize::try_from(value % n).expect("below n, which is a usize")
    }
}

fn secret_arg(value: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(value.to_owned()))
}

async fn connect(endpoint: &str, token: &str) -> Result<Client, String> {
    let channel = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| format!("bad endpoint {endpoint}: {e}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
    Ok(client(channel, Bearer::new(token)?))
}

/// Runs the load and returns the measurements.
pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let run_id = uuid::Uuid::new_v4();
    let mut setup = connect(&args.endpoint, args.token.expose_secret()).await?;
    let mut targets = Vec::new();
    if let (Operation::Get, Some(path)) = (args.op, &args.ids_file) {
        let ids =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for id in ids.lines().map(str::trim).filter(|line| !line.is_empty()) {
            targets.push(wire::frame(&pb::GetRequest {
                selector: Some(Selector::CredentialId(id.to_owned())),
                version: 0,
            }));
        }
        if targets.is_empty() {
            return Err(format!("{} holds no credential ids", path.display()));
        }
    } else if args.op == Operation::Get {
        for i in 0..args.credentials.max(1) {
            let stored = setup
                .store(store_request(&args.customer_id, format!("bench-get-{run_id}-{i}")))
                .await
                .map_err(|s| format!("setup Store failed: {}", s.message()))?;
            let id = stored.into_inner().credential.map(|c| c.id).unwrap_or_default();
            targets.push(wire::frame(&pb::GetRequest {
                selector: Some(Selector::CredentialId(id)),
                version: 0,
            }));
        }
    }
    let targets = Arc::new(targets);
    let done = Arc::new(AtomicU64::new(0));

    let started = Instant::now();
    let measure_from = started + Duration::from_secs(args.warmup);
    let stop_at = measure_from + Duration::from_secs(args.seconds);
    let mut tasks = Vec::with_capacity(args.clients);
    for client_no in 0..args.clients {
        let mut client = wire::Connection::open(&args.endpoint, args.token.expose_secret()).await?;
        let (get, store, health) = (client.uri(GET)?, client.uri(STORE)?, client.uri(HEALTH)?);
        let check = wire::frame(&HealthCheckRequest::default());
        let (op, targets, customer, done) =
            (args.op, targets.clone(), args.customer_id.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut seq = 0usize;
            // Each client picks credentials at random (as pgbench and wrk's scripts do), so
            // that clients do not walk the same rows in step and queue on each other's row locks.
            let mut pick = Pick::new(client_no);
            loop {
                let now = Instant::now();
                if now >= stop_at {
                    break;
                }
                seq += 1;
                let result = match op {
                    Operation::Get => client.call(&get, targets[pick.below(targets.len())].clone()).await,
                    Operation::Store => {
                        let request = store_request(&customer, format!("bench-{run_id}-{client_no}-{seq}"));
                        client.call(&store, wire::frame(&request)).await
                    }
                    Operation::Health => client.call(&health, check.clone()).await,
                };
                let elapsed = now.elapsed();
                if now >= measure_from {
                    match result {
                        Ok(()) => {
                            latencies.push(elapsed);
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if errors == 0 {
                                eprintln!("bench: client {client_no}: a call failed: {e}");
                            }
                            errors += 1;
                        }
                    }
                }
            }
            (latencies, errors)
        }));
    }
    // Tells a harness sampling the server's CPU where the measured window starts.
    tokio::time::sleep_until(measure_from.into()).await;
    eprintln!("bench: measuring for {} s", args.seconds);
    let windows = args
        .every
        .map(|every| tokio::spawn(windows(Duration::from_secs(every), measure_from, args.seconds, done)));
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.map_err(|e| format!("client task failed: {e}"))?;
        latencies.extend(l);
        errors += e;
    }
    let windows = match windows {
        Some(task) => task.await.map_err(|e| format!("window task failed: {e}"))?,
        None => Vec::new(),
    };
    latencies.sort_unstable();
    // Nearest-rank percentile over the sorted samples.
    let pct = |per_mille: usize| {
        latencies
            .get((latencies.len() * per_mille / 1000).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Report {
        op: args.op,
        clients: args.clients,
        seconds: args.seconds as f64,
        ok: latencies.len() as u64,
        errors,
        p50: pct(500),
        p99: pct(990),
        max: latencies.last().copied().unwrap_or_default(),
        windows,
    })
}

/// Counts the calls `done` in each `every` of the measured time, from `measure_from` on, printing
/// each window as it ends (see [`BenchArgs::every`]).
async fn windows(every: Duration, measure_from: Instant, seconds: u64, done: Arc<AtomicU64>) -> Vec<Window> {
    let count = seconds / every.as_secs();
    let mut ticks = tokio::time::interval_at((measure_from + every).into(), every);
    let mut windows = Vec::new();
    let (mut before, mut from) = (0, measure_from);
    for _ in 0..count {
        ticks.tick().await;
        let (now, calls) = (Instant::now(), done.load(Ordering::Relaxed));
        let window = Window {
            ended_at: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64(),
            calls: calls - before,
            seconds: (now - from).as_secs_f64(),
        };
        println!("window end={:.3} req/s={:.0}", window.ended_at, window.throughput());
        windows.push(window);
        (before, from) = (calls, now);
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::Pick;

    #[test]
    fn picks_spread_over_every_credential_and_differ_between_clients() {
        let mut counts = [0u32; 100];
        let mut pick = Pick::new(0);
        for _ in 0..100_000 {
            counts[pick.below(100)] += 1;
        }
        // 1000 expected per credential; a walk or a stuck generator would be far off.
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
        let first: Vec<_> = (0..16).map(|_| Pick::new(1).below(1000)).collect();
        let (mut a, mut b) = (Pick::new(1), Pick::new(2));
        let same = (0..1000).filter(|_| a.below(1000) == b.below(1000)).count();
        assert!(same < 20, "clients 1 and 2 pick alike {same} times in 1000");
        assert!(first.iter().all(|&x| x == first[0]), "a client's sequence is reproducible");
    }
}
