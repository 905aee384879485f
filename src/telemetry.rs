//! Logging setup. `RUST_LOG` overrides the default filter for credvault's own events; other
//! crates' events are capped at INFO whatever it says (see [`third_party_allowed`]).

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber; logs go to stderr so stdout stays for command output.
/// Text logs are coloured only when stderr is a terminal: ANSI codes in a file or a log
/// collector are noise.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // At DEBUG, each span's end is a line with its time busy and idle (the vault's use cases,
    // the store's methods): where a call spent its time. INFO stays one line per event.
    let span_events =
        if filter.max_level_hint() >= Some(LevelFilter::DEBUG) { FmtSpan::CLOSE } else { FmtSpan::NONE };
    let cap = filter_fn(third_party_allowed);
    let builder = tracing_subscriber::fmt()
        .with_span_events(span_events)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.finish().with(cap).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).finish().with(cap).try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    drop(result);
}

/// Whether an event may be logged at all. Below INFO, libraries dump what they handle: the
/// SigV4 signer logs the request it signs and its credentials' access key id at TRACE, the
/// HTTP/2 and TLS stacks log headers (bearer tokens) and frames. Those never reach credvault's
/// log, at any `RUST_LOG`; credvault's own DEBUG and TRACE events name safe fields only.
fn third_party_allowed(meta: &Metadata<'_>) -> bool {
    is_own(meta.target()) || *meta.level() <= Level::INFO
}

fn is_own(target: &str) -> bool {
    target == "credvault" || target.starts_with("credvault::")
}

/// Lets one occurrence of a repeated log line through per interval and counts the others, for
/// failures that repeat on every call or tick while they last (an unreachable or read-only
/// database): one line every few seconds says as much as thousands a second.
pub struct RateLimited {
    every: Duration,
    last: Mutex<Option<Instant>>,
    held_back: AtomicU64,
}

impl RateLimited {
    pub const fn new(every: Duration) -> Self {
        Self { every, last: Mutex::new(None), held_back: AtomicU64::new(0) }
    }

    /// `Some(n)` when this occurrence is to be logged, `n` being how many were held back since
    /// the last one logged; `None` when it is to be held back.
    pub fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| now.duration_since(at) < self.every) {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.held_back.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_credvault_logs_below_info() {
        assert!(is_own("credvault::vault::get"));
        assert!(is_own("credvault"));
        for other in ["credvaultx", "aws_sigv4::http_request::sign", "h2::codec", "hyper_util::client"] {
            assert!(!is_own(other), "{other}");
        }
        assert!(Level::WARN <= Level::INFO && Level::ERROR <= Level::INFO);
        assert!(Level::DEBUG > Level::INFO && Level::TRACE > Level::INFO);
    }

    #[test]
    fn a_rate_limited_line_passes_once_per_interval_and_counts_the_rest() {
        let limit = RateLimited::new(Duration::from_secs(3600));
        assert_eq!(limit.allow(), Some(0));
        assert_eq!((limit.allow(), limit.allow()), (None, None));
        let limit = RateLimited::new(Duration::ZERO);
        assert_eq!((limit.allow(), limit.allow()), (Some(0), Some(0)));
    }
}
