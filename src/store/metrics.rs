//! The storage layer's measurements, recorded through the `metrics` facade (rendered at
//! `/metrics` by the server's recorder): how the write path is doing, without reading code.

use std::time::Duration;

/// Writes per committed group, by group (`sqlite_uses`, `postgres_uses`, `postgres_stores`).
pub(crate) const GROUP_SIZE: &str = "credvault_store_group_size";
/// Time a group's sync of the WAL took, by group (SQLite's deferred sync).
pub(crate) const SYNC_SECONDS: &str = "credvault_store_sync_seconds";
/// Time a write waited for its turn on SQLite's one writer.
pub(crate) const WRITE_TURN_WAIT_SECONDS: &str = "credvault_store_write_turn_wait_seconds";
/// Time moving SQLite's use journal into the audit log took.
pub(crate) const JOURNAL_MOVE_SECONDS: &str = "credvault_store_journal_move_seconds";

/// Group sizes: powers of two up to the largest group.
pub(crate) const GROUP_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

pub(crate) fn describe() {
    metrics::describe_histogram!(GROUP_SIZE, "writes committed together in one group, by group");
    metrics::describe_histogram!(
        SYNC_SECONDS,
        metrics::Unit::Seconds,
        "time one sync of the WAL took, by group"
    );
    metrics::describe_histogram!(
        WRITE_TURN_WAIT_SECONDS,
        metrics::Unit::Seconds,
        "time a write waited for its turn on SQLite's one writer"
    );
    metrics::describe_histogram!(
        JOURNAL_MOVE_SECONDS,
        metrics::Unit::Seconds,
        "time moving SQLite's use journal into the audit log took"
    );
}

pub(crate) fn group_committed(group: &'static str, size: usize) {
    #[allow(clippy::cast_precision_loss, reason = "group sizes are at most a few hundred")]
    metrics::histogram!(GROUP_SIZE, "group" => group).record(size as f64);
}

pub(crate) fn synced(group: &'static str, took: Duration) {
    metrics::histogram!(SYNC_SECONDS, "group" => group).record(took.as_secs_f64());
}

pub(crate) fn waited_for_turn(took: Duration) {
    metrics::histogram!(WRITE_TURN_WAIT_SECONDS).record(took.as_secs_f64());
}

pub(crate) fn journal_moved(took: Duration) {
    metrics::histogram!(JOURNAL_MOVE_SECONDS).record(took.as_secs_f64());
}
