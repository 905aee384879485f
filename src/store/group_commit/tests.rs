//! Unit tests of group commit: sessions, failed groups and sessions, deferred syncs, the
//! committer on a thread of its own.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// Counts sessions and items; a group takes a millisecond (the callers answered meanwhile
/// queue again), and the group holding `fail_on` fails. With `defer`, groups are durable
/// only after a sync; a sync fails with `fail_sync`.
#[derive(Default)]
struct Counting {
    sessions: Arc<AtomicUsize>,
    recorded: Arc<AtomicUsize>,
    fail_on: Option<usize>,
    defer: bool,
    fail_sync: bool,
    /// Items recorded when the last sync began: those it made durable.
    synced: Arc<AtomicUsize>,
    /// Every session fails to open, once this has permits (a database that is down).
    failing_open: Option<Arc<tokio::sync::Semaphore>>,
    /// Sessions keep nobody out: they wait for the next write until HOLD ends.
    lingers: bool,
    /// The threads syncs ran on, by name.
    synced_on: Arc<std::sync::Mutex<Vec<String>>>,
}

#[async_trait]
impl Recorder for Counting {
    const NAME: &'static str = "test";
    type Item = usize;
    /// The item's place in recording order, counting from 1.
    type Outcome = usize;
    type Session = usize;

    async fn open(&self) -> Result<usize, StoreError> {
        let session = self.sessions.fetch_add(1, Ordering::SeqCst);
        if let Some(release) = &self.failing_open {
            drop(release.acquire().await);
            return Err(StoreError::unavailable("no connection within the timeout"));
        }
        Ok(session)
    }

    async fn record(&self, _session: &mut usize, batch: &[usize]) -> Result<Vec<usize>, StoreError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if self.fail_on.is_some_and(|item| batch.contains(&item)) {
            return Err(StoreError::Other("this group fails".into()));
        }
        let before = self.recorded.fetch_add(batch.len(), Ordering::SeqCst);
        Ok((before + 1..=before + batch.len()).collect())
    }

    fn defers_sync(&self) -> bool {
        self.defer
    }

    fn session_keeps_nobody_out(&self) -> bool {
        self.lingers
    }

    fn sync(&self) -> std::io::Result<()> {
        self.synced.store(self.recorded.load(Ordering::SeqCst), Ordering::SeqCst);
        let thread = std::thread::current().name().unwrap_or_default().to_owned();
        self.synced_on.lock().unwrap().push(thread);
        std::thread::sleep(Duration::from_millis(2));
        if self.fail_sync {
            return Err(std::io::Error::other("the disk is gone"));
        }
        Ok(())
    }
}

/// Starts a group over `counting` and 32 callers submitting back to back for `run`; returns
/// (sessions opened, items recorded, items answered Ok). A caller answered Ok checks that
/// its item was durable by then.
async fn drive(run: Duration, counting: Counting) -> (usize, usize, usize) {
    drive_group(run, counting, Group::start).await
}

/// [`drive`], with the group started by `start`.
async fn drive_group(
    run: Duration,
    counting: Counting,
    start: impl FnOnce(Counting) -> Group<Counting>,
) -> (usize, usize, usize) {
    let (sessions, recorded, synced) =
        (counting.sessions.clone(), counting.recorded.clone(), counting.synced.clone());
    let defer = counting.defer;
    let group = Arc::new(start(counting));
    let until = Instant::now() + run;
    let next = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..32)
        .map(|_| {
            let (group, next, synced) = (group.clone(), next.clone(), synced.clone());
            tokio::spawn(async move {
                let mut ok = 0;
                while Instant::now() < until {
                    if let Ok(place) = group.submit(next.fetch_add(1, Ordering::SeqCst)).await {
                        let durable = synced.load(Ordering::SeqCst);
                        assert!(!defer || place <= durable, "item {place} answered, {durable} synced");
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for caller in callers {
        ok += caller.await.unwrap();
    }
    (sessions.load(Ordering::SeqCst), recorded.load(Ordering::SeqCst), ok)
}

#[tokio::test]
async fn back_to_back_groups_share_a_session_for_at_most_hold() {
    let run = HOLD * 10;
    let (sessions, recorded, ok) = drive(run, Counting::default()).await;
    assert_eq!(recorded, ok, "every item recorded once and answered");
    // Groups never stop coming for the whole run: about one session per HOLD (fewer if the
    // machine stalls), not one per group, and not one for the whole run.
    assert!(recorded > 10 * sessions, "{recorded} items in {sessions} sessions");
    assert!(sessions >= 3, "{sessions} sessions in {run:?} with HOLD {HOLD:?}");
}

/// One caller writing with a pause between its writes (the pause longer than a committer's
/// look at its queue): (sessions, writes).
async fn one_paused_caller(counting: Counting) -> (usize, usize) {
    let sessions = counting.sessions.clone();
    let group = Group::start(counting);
    let mut writes = 0;
    let until = Instant::now() + HOLD * 5;
    while Instant::now() < until {
        group.submit(writes).await.unwrap();
        writes += 1;
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    (sessions.load(Ordering::SeqCst), writes)
}

#[tokio::test]
async fn a_session_that_keeps_nobody_out_waits_for_the_next_write_until_hold() {
    let (sessions, writes) = one_paused_caller(Counting::default()).await;
    assert_eq!(sessions, writes, "a session ends when no write is waiting");
    let (sessions, writes) = one_paused_caller(Counting { lingers: true, ..Counting::default() }).await;
    // About one session per HOLD (more if the machine stalls), not one per write.
    assert!(writes >= 4 * sessions, "{writes} writes in {sessions} sessions");
    assert!(sessions >= 2, "a session still ends after HOLD ({sessions} in {:?})", HOLD * 5);
}

#[tokio::test]
async fn a_failed_group_ends_its_session_and_fails_only_its_callers() {
    // Item 40 is in the second group (32 callers), so the failure comes early in a run
    // shorter than HOLD even on a loaded machine: only the failure can end the session.
    let (sessions, recorded, ok) =
        drive(HOLD / 2, Counting { fail_on: Some(40), ..Counting::default() }).await;
    assert_eq!(recorded, ok, "the callers of the failed group hear the failure, nobody else");
    assert!(sessions >= 2, "after the failure a new session opens ({sessions})");
}

#[tokio::test]
async fn a_deferred_sync_answers_each_group_after_a_sync_that_covers_it() {
    let counting = Counting { defer: true, ..Counting::default() };
    let (_, recorded, ok) = drive(HOLD * 2, counting).await;
    assert_eq!(recorded, ok, "every item recorded once and answered, each after its sync");
    assert!(ok > 32, "groups kept coming while syncs ran ({ok} items)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committer_on_a_thread_of_its_own_answers_each_group_after_its_sync() {
    let counting = Counting { defer: true, ..Counting::default() };
    let on_thread = |counting| Group::start_on_thread(counting, "test-commit").unwrap();
    let (sessions, recorded, ok) = drive_group(HOLD * 2, counting, on_thread).await;
    assert_eq!(recorded, ok, "every item recorded once and answered, each after its sync");
    assert!(ok > 32 && sessions >= 1, "groups kept coming while syncs ran ({ok} items)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committer_on_a_thread_of_its_own_syncs_a_group_nothing_waits_behind_itself() {
    let counting = Counting { defer: true, ..Counting::default() };
    let (synced, synced_on) = (counting.synced.clone(), counting.synced_on.clone());
    let group = Group::start_on_thread(counting, "test-commit").unwrap();
    for item in 0..20 {
        let place = group.submit(item).await.unwrap();
        assert!(place <= synced.load(Ordering::SeqCst), "item {place} answered before its sync");
    }
    let synced_on = synced_on.lock().unwrap().clone();
    assert_eq!(synced_on.len(), 20, "one sync per group of one");
    assert!(synced_on.iter().all(|t| t == "test-commit"), "synced on {synced_on:?}");

    let failing = Counting { defer: true, fail_sync: true, ..Counting::default() };
    let group = Group::start_on_thread(failing, "test-commit").unwrap();
    let outcome = group.submit(0).await;
    assert!(matches!(outcome, Err(StoreError::Unavailable(_))), "{outcome:?}");
}

#[tokio::test]
async fn a_failed_sync_fails_the_callers_of_the_groups_it_was_for() {
    let counting = Counting { defer: true, fail_sync: true, ..Counting::default() };
    let (_, recorded, ok) = drive(HOLD / 2, counting).await;
    assert!(recorded > 0);
    assert_eq!(ok, 0, "no group is answered Ok without a sync");
}

#[tokio::test]
async fn writes_queued_while_a_session_fails_to_open_fail_with_it_not_after_another_attempt() {
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let counting = Counting { failing_open: Some(release.clone()), ..Counting::default() };
    let sessions = counting.sessions.clone();
    let group = Arc::new(Group::start(counting));
    let submit = |item: usize| {
        let group = group.clone();
        tokio::spawn(async move { group.submit(item).await })
    };
    let first = submit(0);
    while sessions.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Eight more writes arrive while the first session is still trying to open.
    let later: Vec<_> = (1..=8).map(submit).collect();
    while group.queue.max_capacity() - group.queue.capacity() < 8 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    release.add_permits(1);
    for caller in std::iter::once(first).chain(later) {
        let outcome = caller.await.unwrap();
        assert!(matches!(outcome, Err(StoreError::Unavailable(_))), "{outcome:?}");
    }
    assert_eq!(sessions.load(Ordering::SeqCst), 1, "one failed attempt answered all nine writes");
}
