//! Prometheus metrics: request counts and latency per gRPC method and per REST route, by
//! outcome. One process-wide recorder; `/metrics` renders it. The same layers write each
//! call's DEBUG line ([`crate::call_log`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::call_log::CallIdentity;

const GRPC_REQUESTS: &str = "credvault_grpc_requests_total";
const GRPC_SECONDS: &str = "credvault_grpc_request_duration_seconds";
const HTTP_REQUESTS: &str = "credvault_http_requests_total";
const HTTP_SECONDS: &str = "credvault_http_request_duration_seconds";
/// Seconds since the sealer last sealed every audit row written: grows while it falls behind
/// or fails, 0 while it keeps up.
pub const AUDIT_CHAIN_LAG: &str = "credvault_audit_chain_lag_seconds";
pub const AUDIT_CHAINED: &str = "credvault_audit_chained_rows_total";
/// Verifications by provider and outcome (valid, invalid, unreachable).
pub const VERIFICATIONS: &str = "credvault_verifications_total";
/// Active credentials by verification state (unverified, verified, invalid, failing), as the
/// scheduler last counted them.
pub const CREDENTIALS_BY_VERIFICATION: &str = "credvault_credentials_by_verification_state";
/// Scheduled verifications put off because a provider asked to be left alone (HTTP 429).
pub const VERIFICATIONS_DEFERRED: &str = "credvault_verifications_deferred_total";
/// Keys the rewrap has still to move (as of its pass): customer keys to the current master-key
/// version, data keys under their customer's key (or, before customer keys, to that version).
/// The names predate customer keys.
pub const REWRAP_REMAINING: &str = "credvault_rewrap_remaining_data_keys";
/// Keys the rewrap moved.
pub const REWRAPPED: &str = "credvault_rewrapped_data_keys_total";
/// The rewrap's rate over its last batch.
pub const REWRAP_RATE: &str = "credvault_rewrap_data_keys_per_second";
/// The master-key version new secrets are sealed with.
pub const CURRENT_KEY_VERSION: &str = "credvault_current_key_version";

/// Latency buckets, in seconds: from a cached read to a slow verification call.
const BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide recorder, installed on first use. `None` if another recorder was installed
/// first (an embedding program's own), in which case metrics go there.
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::store::metrics::GROUP_SIZE.to_owned()),
                        crate::store::metrics::GROUP_SIZE_BUCKETS,
                    )
                })
                .expect("the bucket lists are not empty");
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    crate::store::metrics::describe();
    metrics::describe_gauge!(
        AUDIT_CHAIN_LAG,
        metrics::Unit::Seconds,
        "seconds since the audit sealer last caught up with every row written (0 while it keeps up)"
    );
    metrics::describe_counter!(AUDIT_CHAINED, "audit rows sealed onto the hash chain");
    metrics::describe_counter!(
        VERIFICATIONS,
        "checks of a credential against its provider, by provider and outcome (valid, invalid, unreachable)"
    );
    metrics::describe_gauge!(
        CREDENTIALS_BY_VERIFICATION,
        "active credentials by verification state (unverified, verified, invalid, failing), as last counted"
    );
    metrics::describe_counter!(
        VERIFICATIONS_DEFERRED,
        "scheduled verifications put off by provider because the provider asked to wait (HTTP 429 Retry-After)"
    );
    metrics::describe_gauge!(
        REWRAP_REMAINING,
        "keys the rewrap has still to move (customer keys under an older master-key version, data keys \
         not yet under their customer's key), as it last counted them"
    );
    metrics::describe_counter!(REWRAPPED, "keys (customer keys and data keys) the rewrap moved");
    metrics::describe_gauge!(REWRAP_RATE, "keys rewrapped per second over the rewrap's last batch");
    metrics::describe_gauge!(CURRENT_KEY_VERSION, "the master-key version new secrets are sealed with");
    metrics::describe_counter!(GRPC_REQUESTS, "gRPC calls by method and status code");
    metrics::describe_histogram!(
        GRPC_SECONDS,
        metrics::Unit::Seconds,
        "gRPC call latency by method and status code"
    );
    metrics::describe_counter!(HTTP_REQUESTS, "REST requests by route, method and status");
    metrics::describe_histogram!(
        HTTP_SECONDS,
        metrics::Unit::Seconds,
        "REST request latency by route, method and status"
    );
}

/// Installs the recorder and keeps its histograms drained; call once per server.
pub fn install() {
    if let Some(handle) = handle() {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    }
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

/// axum middleware: counts and times each request under its route template (never the raw path,
/// which would carry ids).
pub async fn http_middleware(mut request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let identity = CallIdentity::for_new_call();
    if let Some(identity) = &identity {
        request.extensions_mut().insert(identity.clone());
    }
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16().to_string();
    if let Some(identity) = identity {
        identity.log("http", &format!("{method} {route}"), &status, elapsed);
    }
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_SECONDS, &labels).record(elapsed);
    response
}

/// tower layer for the gRPC server: counts and times each call by method and grpc-status.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // Only our services' paths become labels: a client inventing paths must not be able
        // to grow the label set without bound.
        let path = request.uri().path();
        let known =
            ["/credvault.v1.", "/grpc.health.v1.", "/grpc.reflection."].iter().any(|p| path.starts_with(p));
        let method = if known && path.len() <= 128 { path.to_owned() } else { "unknown".to_owned() };
        let identity = CallIdentity::for_new_call();
        if let Some(identity) = &identity {
            request.extensions_mut().insert(identity.clone());
        }
        let started = Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            let result = call.await;
            // Unary failures are trailers-only responses: grpc-status is in the headers. A
            // response without it in the headers carries OK in its trailers.
            let status = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|code| code.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32),
                Err(_) => tonic::Code::Unknown,
            };
            let elapsed = started.elapsed();
            if let Some(identity) = identity {
                identity.log("grpc", &method, &format!("{status:?}"), elapsed);
            }
            let labels = [("method", method), ("code", format!("{status:?}"))];
            metrics::counter!(GRPC_REQUESTS, &labels).increment(1);
            metrics::histogram!(GRPC_SECONDS, &labels).record(elapsed);
            result
        })
    }
}
