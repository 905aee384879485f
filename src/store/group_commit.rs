//! Group commit, shared by both backends: the writes that arrive while a commit is in flight wait
//! in a queue, and the next commit takes them all, as one transaction (one log flush, one round
//! trip) whatever its size. Each write still commits before its caller hears back: for Get's
//! audited use, no secret leaves before its own audit row is durable.
//!
//! Groups that follow each other without a pause share one session: on PostgreSQL a connection
//! (sqlx pings a connection when it is taken from its pool and again when it goes back: two more
//! round trips around a group), on SQLite the turn to write. A session ends after a failed group,
//! after [`HOLD`], or when no write is waiting, so that other writers waiting for their turn get
//! it; a recorder whose session keeps nobody out ([`Recorder::session_keeps_nobody_out`],
//! PostgreSQL's) waits for the next write instead until [`HOLD`] ends, so that one client's
//! writes in a row (a collector fetching one key after another) share a connection too.
//!
//! The committer runs as a task ([`Group::start`]) or, for a recorder that calls its database
//! directly and blocks while it does (SQLite's), on a thread of its own
//! ([`Group::start_on_thread`]).
//!
//! A recorder need not write: SQLite's Get reads by id go through the same queue
//! (`sqlite/get_reads.rs`), so that the reads arriving together share one transaction.
//!
//! A recorder may commit without waiting for the disk and sync separately
//! ([`Recorder::defers_sync`], SQLite's): a thread of its own then answers each committed group
//! after a sync that began once it had committed, so a group still commits durably before its
//! callers hear back, and the committer is already at the next group. A committer on a thread
//! of its own syncs a group itself when no write is waiting behind it (one client writing at a
//! time): then there is no next group to get on with, and the hand-off would only add a
//! thread's wake-up to that client's wait.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};

use super::{StoreError, UseClaim};
use crate::domain::AuditEntry;

/// Most writes one commit takes.
pub(super) const MAX_BATCH: usize = 512;

/// Longest a session keeps its connection while writes keep coming.
const HOLD: Duration = Duration::from_millis(20);

/// One Get's use to record.
pub(super) struct Use {
    pub(super) claim: UseClaim,
    pub(super) audit: AuditEntry,
    pub(super) now: OffsetDateTime,
}

/// One Store a group commits: a credential that does not move a default, and its audit row.
pub(super) struct NewStore {
    pub(super) new: super::NewCredential,
    pub(super) audit: AuditEntry,
}

/// A backend's way of committing one group.
#[async_trait]
pub(super) trait Recorder: Send + Sync + 'static {
    /// Names the group in metrics (`credvault_store_group_size{group=...}`).
    const NAME: &'static str;
    type Item: Send + 'static;
    type Outcome: Send + 'static;
    /// What back-to-back groups share: the connection they commit on.
    type Session: Send;

    async fn open(&self) -> Result<Self::Session, StoreError>;

    /// Commits `batch` in one transaction: one outcome per item, in order. An error means
    /// nothing of the batch was committed.
    async fn record(
        &self,
        session: &mut Self::Session,
        batch: &[Self::Item],
    ) -> Result<Vec<Self::Outcome>, StoreError>;

    /// Whether holding a session keeps no other writer out, so that it may stay open, until
    /// [`HOLD`] ends, waiting for the next write (a pooled connection: yes; SQLite's turn to
    /// write: no).
    fn session_keeps_nobody_out(&self) -> bool {
        false
    }

    /// Ends a session after its last group. The default hands the connection back.
    async fn close(&self, session: Self::Session) {
        drop(session);
    }

    /// Whether a group is durable only after [`Recorder::sync`], not when `record` returns.
    /// Such a recorder's groups are answered by a second task, after a sync that began once
    /// they were committed, while the committer already runs the next group: the disk's flush
    /// leaves the one serial step, and one flush covers every group committed before it.
    fn defers_sync(&self) -> bool {
        false
    }

    /// Makes every group `record` has returned so far durable. Blocks: it runs on the sync
    /// thread, which does nothing else.
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
}

type Reply<O> = oneshot::Sender<Result<O, StoreError>>;

/// The queue in front of a group committer, and the committer's stop.
pub(super) struct Group<R: Recorder> {
    queue: mpsc::Sender<(R::Item, Reply<R::Outcome>)>,
    /// Tells the committer to commit what is queued and end ([`Group::close`]).
    stop: watch::Sender<bool>,
    /// Resolves once the committer, and its sync thread, have ended.
    stopped: std::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

/// What the committer is handed when it starts.
struct Worker<R: Recorder> {
    queue: mpsc::Receiver<(R::Item, Reply<R::Outcome>)>,
    stop: watch::Receiver<bool>,
    /// Dropped when the committer ends.
    _stopped: oneshot::Sender<()>,
}

impl<R: Recorder> Group<R> {
    fn new() -> (Self, Worker<R>) {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        let (stop, stop_rx) = watch::channel(false);
        let (stopped_tx, stopped) = oneshot::channel();
        let group = Self { queue, stop, stopped: std::sync::Mutex::new(Some(stopped)) };
        (group, Worker { queue: rx, stop: stop_rx, _stopped: stopped_tx })
    }

    /// Starts the committer as a task; it ends at [`Group::close`], or when the `Group` is
    /// dropped. One group commits at a time: the writes arriving meanwhile form the next.
    pub(super) fn start(recorder: R) -> Self {
        let (group, worker) = Self::new();
        tokio::spawn(commit_groups(Arc::new(recorder), worker, false));
        group
    }

    /// Starts the committer on a thread of its own, named `name`, for a recorder whose
    /// [`Recorder::record`] blocks that thread while it commits (SQLite's, which calls SQLite
    /// directly instead of handing each group to another thread and waiting to be woken).
    /// Must be called within a Tokio runtime, which the thread uses for the recorder's awaits.
    pub(super) fn start_on_thread(recorder: R, name: &str) -> std::io::Result<Self> {
        let (group, worker) = Self::new();
        let runtime = tokio::runtime::Handle::current();
        let recorder = Arc::new(recorder);
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || runtime.block_on(commit_groups(recorder, worker, true)))?;
        Ok(group)
    }

    /// Queues one write and waits for its group's commit. After [`Group::close`], UNAVAILABLE.
    pub(super) async fn submit(&self, item: R::Item) -> Result<R::Outcome, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send((item, reply)).await.map_err(|_| StoreError::closed())?;
        outcome.await.map_err(|_| StoreError::closed())?
    }

    /// Stops taking writes, commits (and syncs) the ones already queued, and returns once the
    /// committer and its sync thread have ended and let go of what they held (SQLite's
    /// committer, its connection).
    pub(super) async fn close(&self) {
        let _ = self.stop.send(true);
        let stopped = self.stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(stopped) = stopped {
            let _ = stopped.await;
        }
    }
}

/// The committer: takes what is queued, commits it as one group, and so on until it is told to
/// stop (then it commits what was queued before) or every `Group` handle is gone. `on_thread`:
/// it runs on a thread of its own, where it may block.
async fn commit_groups<R: Recorder>(recorder: Arc<R>, worker: Worker<R>, on_thread: bool) {
    let Worker { queue: mut rx, mut stop, _stopped } = worker;
    let (syncs, sync_thread) = match recorder.defers_sync() {
        true => {
            let (tx, thread) = start_syncs(recorder.clone());
            (Some(tx), thread)
        }
        false => (None, None),
    };
    let mut queued = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    loop {
        if queued.is_empty() {
            let taken = tokio::select! {
                taken = rx.recv_many(&mut queued, MAX_BATCH) => taken,
                // Told to stop (or the Group dropped): no more writes are taken; the ones
                // already queued still commit, then recv_many answers 0.
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    rx.close();
                    continue;
                }
            };
            if taken == 0 {
                break;
            }
        }
        let mut session = match recorder.open().await {
            Ok(session) => session,
            Err(e) => {
                // The writes that queued while the session tried to open have waited as long
                // as their own attempt would (the pool's connect timeout): they fail now, with
                // this group, instead of waiting that long again behind it.
                while let Ok(item) = rx.try_recv() {
                    queued.push(item);
                }
                answer(queued.drain(..).map(|(_, reply)| reply).collect(), Err(e));
                continue;
            }
        };
        let opened = Instant::now();
        loop {
            let (batch, replies): (Vec<_>, Vec<_>) = queued.drain(..).unzip();
            let outcome = recorder.record(&mut session, &batch).await;
            if outcome.is_ok() {
                super::metrics::group_committed(R::NAME, batch.len());
            }
            // A failed group may leave its connection unusable: the next opens another.
            let failed = outcome.is_err();
            match (&syncs, outcome) {
                // Nothing waits behind this group: sync it here (see the module's comment).
                (Some(_), Ok(outcomes)) if on_thread && rx.is_empty() => {
                    let synced = sync(recorder.as_ref()).map_err(|e| unsynced(&e));
                    answer(replies, synced.map(|()| outcomes));
                }
                (Some(syncs), Ok(outcomes)) => {
                    if let Err(mpsc::error::SendError((replies, _))) = syncs.send((replies, outcomes)) {
                        answer(replies, Err(StoreError::closed()));
                    }
                }
                (_, outcome) => answer(replies, outcome),
            }
            if failed || opened.elapsed() >= HOLD {
                break;
            }
            // The writes that arrived meanwhile form the next group, on this connection.
            // If none did, the callers just answered get one turn to send their next
            // write first. (Yielding every time put the committer, the one serial step,
            // behind every task the answers had just woken.) On a thread of its own the
            // committer yields to nobody: it looks at the queue twice.
            take_queued(&mut rx, &mut queued);
            if queued.is_empty() {
                tokio::task::yield_now().await;
                take_queued(&mut rx, &mut queued);
            }
            if queued.is_empty() && recorder.session_keeps_nobody_out() {
                // Bounded by HOLD, so a stop waits for it at most that long.
                let rest = HOLD.saturating_sub(opened.elapsed());
                let _ = tokio::time::timeout(rest, rx.recv_many(&mut queued, MAX_BATCH)).await;
            }
            if queued.is_empty() {
                break;
            }
        }
        recorder.close(session).await;
    }
    // The sync thread answers the groups it still holds, then ends with its channel.
    drop(syncs);
    if let Some(thread) = sync_thread
        && thread.join().is_err()
    {
        tracing::error!("the sync thread panicked");
    }
}

/// Committed groups waiting for their sync: the callers, and what each is to hear.
type Committed<O> = (Vec<Reply<O>>, Vec<O>);

/// Starts the thread that answers a deferring recorder's committed groups once synced; it ends
/// when the committer drops the sender. A thread, not a task: the sync blocks, and a task
/// handing each one to the blocking pool cost two more wake-ups between a group's commit and
/// its answers (on two busy cores, each a scheduling delay every Get waits through).
fn start_syncs<R: Recorder>(
    recorder: Arc<R>,
) -> (mpsc::UnboundedSender<Committed<R::Outcome>>, Option<std::thread::JoinHandle<()>>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Committed<R::Outcome>>();
    let syncs = move || {
        let mut committed = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            committed.push(first);
            while let Ok(more) = rx.try_recv() {
                committed.push(more);
            }
            // Every group taken here was committed before this sync began.
            let synced = sync(recorder.as_ref());
            for (replies, outcomes) in committed.drain(..) {
                let outcome = match &synced {
                    Ok(()) => Ok(outcomes),
                    Err(e) => Err(unsynced(e)),
                };
                answer(replies, outcome);
            }
        }
    };
    match std::thread::Builder::new().name("credvault-sync".into()).spawn(syncs) {
        Ok(thread) => (tx, Some(thread)),
        Err(e) => {
            // The receiver went with the closure: every committed group's callers get an error.
            tracing::error!(error = %e, "could not start the sync thread; audited writes will fail");
            (tx, None)
        }
    }
}

/// Makes the groups `recorder` has committed so far durable ([`Recorder::sync`]), timed, a
/// failure logged. Blocks.
fn sync<R: Recorder>(recorder: &R) -> std::io::Result<()> {
    let began = Instant::now();
    let synced = recorder.sync();
    super::metrics::synced(R::NAME, began.elapsed());
    if let Err(e) = &synced {
        tracing::error!(error = %e, "could not flush committed groups to disk; their callers get an error");
    }
    synced
}

/// A failed sync as the callers of the groups it was for hear it.
fn unsynced(e: &std::io::Error) -> StoreError {
    StoreError::unavailable(e.to_string())
}

fn take_queued<T>(rx: &mut mpsc::Receiver<T>, queued: &mut Vec<T>) {
    while queued.len() < MAX_BATCH
        && let Ok(item) = rx.try_recv()
    {
        queued.push(item);
    }
}

fn answer<O>(replies: Vec<Reply<O>>, outcome: Result<Vec<O>, StoreError>) {
    match outcome {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            // Nothing of the group was committed: every caller gets the failure.
            let unavailable = matches!(e, StoreError::Unavailable(_));
            let failure = Arc::new(e);
            for reply in replies {
                let shared = GroupFailed(failure.clone());
                let error = if unavailable {
                    StoreError::unavailable(shared)
                } else {
                    StoreError::Other(Box::new(shared))
                };
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// A group's failure, as each of its callers sees it.
#[derive(Debug, thiserror::Error)]
#[error("group commit failed")]
struct GroupFailed(#[source] Arc<StoreError>);

#[cfg(test)]
mod tests;
