//! How often credentials are verified again and how the answers are judged (`serve` only).

use std::num::NonZeroU32;
use std::time::Duration;

use super::{ConfigError, parse_duration};
use crate::jobs::ReverifySettings;
use crate::vault::VerificationPolicy;

#[derive(Debug, Clone, clap::Args)]
pub struct VerificationArgs {
    /// How often every credential is verified again with its provider (like 24h, 30m or 90s;
    /// each one about this long after its last verification, give or take a tenth), or `off`.
    #[arg(long, env = "CREDVAULT_REVERIFY_INTERVAL", default_value = "24h")]
    pub reverify_interval: String,
    /// Invalid answers in a row after which a credential is marked failing (audited as
    /// verification_failed and logged as a warning). A valid answer resets the count.
    #[arg(long, env = "CREDVAULT_FAILING_AFTER", default_value_t = VerificationPolicy::default().failing_after)]
    pub failing_after: u32,
    /// A current version older than this (like 90d) is reported as a key_age finding.
    #[arg(long, env = "CREDVAULT_MAX_KEY_AGE", default_value = "90d")]
    pub max_key_age: String,
    /// Scheduled verifications in flight per provider.
    #[arg(long, env = "CREDVAULT_VERIFY_CONCURRENCY", default_value_t = ReverifySettings::default().concurrency)]
    pub verify_concurrency: usize,
    /// Scheduled verifications started per provider per second (a provider's 429 Retry-After
    /// pauses it further).
    #[arg(long, env = "CREDVAULT_VERIFY_RATE", default_value_t = ReverifySettings::default().rate.get())]
    pub verify_rate: u32,
}

impl Default for VerificationArgs {
    fn default() -> Self {
        Self {
            reverify_interval: "24h".into(),
            failing_after: VerificationPolicy::default().failing_after,
            max_key_age: "90d".into(),
            verify_concurrency: ReverifySettings::default().concurrency,
            verify_rate: ReverifySettings::default().rate.get(),
        }
    }
}

impl VerificationArgs {
    pub fn validate(&self) -> Result<(VerificationPolicy, ReverifySettings), ConfigError> {
        let refuse = |what: &str| ConfigError(what.to_owned());
        let interval = match self.reverify_interval.trim() {
            "off" => None,
            value => Some(parse_duration(value).map_err(|e| {
                refuse(&format!("CREDVAULT_REVERIFY_INTERVAL / --reverify-interval: {e}, or off"))
            })?),
        };
        if !(1..=100).contains(&self.failing_after) {
            return Err(refuse("CREDVAULT_FAILING_AFTER / --failing-after must be 1 to 100"));
        }
        let max_key_age = parse_duration(self.max_key_age.trim())
            .map_err(|e| refuse(&format!("CREDVAULT_MAX_KEY_AGE / --max-key-age: {e}")))?;
        if !(1..=64).contains(&self.verify_concurrency) {
            return Err(refuse("CREDVAULT_VERIFY_CONCURRENCY / --verify-concurrency must be 1 to 64"));
        }
        let rate = NonZeroU32::new(self.verify_rate)
            .filter(|r| r.get() <= 1000)
            .ok_or_else(|| refuse("CREDVAULT_VERIFY_RATE / --verify-rate must be 1 to 1000"))?;
        let policy = VerificationPolicy {
            failing_after: self.failing_after,
            max_key_age,
            interval: interval.unwrap_or(VerificationPolicy::default().interval),
        };
        let tick = interval.map_or(Duration::from_secs(1), |i| (i / 4).min(Duration::from_secs(1)));
        let schedule = ReverifySettings {
            enabled: interval.is_some(),
            tick,
            concurrency: self.verify_concurrency,
            rate,
        };
        Ok((policy, schedule))
    }
}
