//! Behaviour of `weft_pool::Pool`, one test per behaviour. Time is tokio's paused
//! clock wherever it matters; "eventually" conditions are reached by yielding on a
//! current-thread runtime (no sleeps, no timing assertions).
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns too; clippy.toml allows it in tests

use std::convert::Infallible;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_test::{assert_pending, assert_ready_ok};
use tower::{Service, ServiceBuilder, ServiceExt};
use weft_core::{Context, ContextError};
use weft_pool::{
    Blacklist, JobError, Outcome, PanicPolicy, Panicked, Pool, Priority, Shutdown, SubmitError,
    TrySubmitError, WithContext,
};

/// A job vocabulary for the tests.
#[derive(Clone)]
enum Job {
    /// Records its tag, then completes.
    Record(u32),
    /// Signals it started, then waits until the gate opens.
    Gate(Arc<Gate>),
    /// Waits for its Context to end and records why.
    UntilDone(Arc<Mutex<Option<ContextError>>>),
    Sleep(Duration),
    Panic(&'static str),
    Fail,
}

struct Gate {
    started: Semaphore,
    open: Semaphore,
}

impl Gate {
    fn new() -> Arc<Gate> {
        Arc::new(Gate {
            started: Semaphore::new(0),
            open: Semaphore::new(0),
        })
    }
    async fn wait_started(&self) {
        self.started.acquire().await.unwrap().forget();
    }
    fn open(&self) {
        self.open.add_permits(1000);
    }
}

type Log = Arc<Mutex<Vec<u32>>>;
type TestPool = Pool<Job, u32, &'static str>;

fn handler(
    log: Log,
) -> impl Fn(Context, Job) -> futures::future::BoxFuture<'static, Result<u32, &'static str>> + Clone
{
    move |ctx: Context, job: Job| {
        let log = log.clone();
        Box::pin(async move {
            match job {
                Job::Record(n) => {
                    log.lock().unwrap().push(n);
                    Ok(n)
                }
                Job::Gate(g) => {
                    g.started.add_permits(1);
                    g.open.acquire().await.unwrap().forget();
                    Ok(0)
                }
                Job::UntilDone(slot) => {
                    ctx.done().await;
                    *slot.lock().unwrap() = ctx.err();
                    Ok(0)
                }
                Job::Sleep(d) => {
                    tokio::time::sleep(d).await;
                    Ok(0)
                }
                Job::Panic(msg) => panic!("{msg}"),
                Job::Fail => Err("failed"),
            }
        })
    }
}

fn pool_with(b: weft_pool::Builder<Job, u32, &'static str>) -> (TestPool, Log) {
    let log: Log = Arc::default();
    (b.build_fn(handler(log.clone())), log)
}

/// Yields until `cond` holds (the pool's tasks run in between on a current-thread runtime).
async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition never became true");
}

#[tokio::test(start_paused = true)]
async fn priorities_are_strict_and_fifo_within_a_level() {
    let (pool, log) = pool_with(Pool::builder().workers(1).priorities(3).aging(None));
    let gate = Gate::new();
    let g = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    for (tag, level) in [(1, 0), (2, 2), (3, 1), (4, 2), (5, 0), (6, 1)] {
        pool.submit_at(Priority::new(level), Job::Record(tag))
            .await
            .unwrap()
            .detach();
    }
    gate.open();
    g.await.unwrap();
    let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(1))).await;
    assert_eq!(*log.lock().unwrap(), [2, 4, 3, 6, 1, 5]);
    assert_eq!(stats.count(Outcome::Completed), 7);
}

#[tokio::test(start_paused = true)]
async fn aging_lets_a_waiting_low_job_pass_newer_high_ones() {
    let (pool, log) = pool_with(
        Pool::builder()
            .workers(1)
            .priorities(2)
            .aging(Duration::from_secs(1)),
    );
    let gate = Gate::new();
    let _g = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    pool.submit_at(Priority::LOW, Job::Record(1))
        .await
        .unwrap()
        .detach(); // low, t = 0
    tokio::time::advance(Duration::from_millis(500)).await;
    pool.submit_at(Priority::new(1), Job::Record(2))
        .await
        .unwrap()
        .detach(); // high, t = 0.5: still ahead
    tokio::time::advance(Duration::from_secs(1)).await;
    pool.submit_at(Priority::new(1), Job::Record(3))
        .await
        .unwrap()
        .detach(); // high, t = 1.5: low has aged past it
    gate.open();
    pool.shutdown(Shutdown::drain(Duration::from_secs(1))).await;
    assert_eq!(*log.lock().unwrap(), [2, 1, 3]);
    // Queue waits per level (paused clock, so exact up to the histogram's 12.5% buckets): the
    // gate and the low job at level 0 (0 s and 1.5 s), the high jobs at level 1 (1 s and 0 s).
    let stats = pool.stats();
    let (low, high) = (
        stats.queue_wait_by_priority[0],
        stats.queue_wait_by_priority[1],
    );
    assert_eq!((low.count, high.count), (2, 2));
    assert!(
        low.max >= Duration::from_millis(1500) && low.max < Duration::from_millis(1700),
        "{low:?}"
    );
    assert!(
        high.max >= Duration::from_secs(1) && high.max < Duration::from_millis(1130),
        "{high:?}"
    );
    assert_eq!(stats.queue_wait.count, 4);
    assert_eq!(stats.queue_wait.max, low.max);
}

#[tokio::test(start_paused = true)]
async fn poll_ready_reserves_capacity_and_waits_when_full() {
    let (pool, _log) = pool_with(Pool::builder().workers(1).capacity(1));
    let gate = Gate::new();
    let g = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await; // the queue is empty again; its one slot is free

    let mut a = pool.clone();
    let mut b = pool.clone();
    let mut ready_a = tokio_test::task::spawn(poll_fn(|cx| a.poll_ready(cx)));
    assert_ready_ok!(ready_a.poll());
    drop(ready_a);
    let queued = a.call(Job::Record(1));

    let mut ready_b = tokio_test::task::spawn(poll_fn(|cx| b.poll_ready(cx)));
    assert_pending!(ready_b.poll(), "the only slot is taken by the queued job");
    gate.open();
    g.await.unwrap();
    assert_eq!(queued.await, Ok(1));
    assert!(
        ready_b.is_woken(),
        "the worker took the job and freed its slot"
    );
    assert_ready_ok!(ready_b.poll());
    drop(ready_b);

    // A clone that reserved and is dropped gives its slot back.
    drop(b);
    assert!(pool.try_submit(Job::Record(2)).is_ok());
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "poll_ready must be called first")]
async fn call_without_poll_ready_panics() {
    let (mut pool, _log) = pool_with(Pool::builder().workers(1));
    drop(pool.call(Job::Record(1)));
}

#[tokio::test(start_paused = true)]
async fn try_submit_hands_the_job_back_when_full_and_counts_nothing() {
    let (pool, _log) = pool_with(Pool::builder().workers(1).capacity(1));
    let gate = Gate::new();
    let _g = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    let _q = pool.try_submit(Job::Record(1)).unwrap();
    match pool.try_submit(Job::Record(7)) {
        Err(TrySubmitError::Full(Job::Record(7))) => {}
        Err(e) => panic!("expected Full(Record(7)), got {e:?}"),
        Ok(_) => panic!("expected Full"),
    }
    assert_eq!(
        pool.stats().submitted,
        2,
        "the handed-back job was never submitted"
    );
    gate.open();
    let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(1))).await;
    assert_eq!(stats.submitted, stats.finished());
}

/// Per-job submits take queue places from the capacity semaphore several at a time (a lease,
/// 16 at a capacity of 1024) and keep the rest for the next submits: the queue still fills to
/// exactly its capacity, by any mix of submit forms, and then refuses.
#[tokio::test(start_paused = true)]
async fn leased_queue_places_still_fill_the_queue_to_exactly_its_capacity() {
    let (pool, _log) = pool_with(Pool::builder().workers(1).capacity(1024));
    let gate = Gate::new();
    let g = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await; // the worker is busy: whatever is submitted now stays queued
    // Bounded so that a lost place fails the test instead of hanging it (the paused clock
    // jumps to the deadline once everything waits).
    let fill = async {
        for i in 0..1000 {
            pool.submit_detached(Job::Record(i)).await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), fill)
        .await
        .expect("1000 places of 1024 are free");
    let mut handles = Vec::new();
    for i in 1000..1024 {
        handles.push(pool.try_submit(Job::Record(i)).unwrap());
    }
    assert!(
        pool.try_submit(Job::Record(9999)).unwrap_err().is_full(),
        "1024 jobs queued: the queue is full"
    );
    let mut svc = pool.clone();
    let mut ready = tokio_test::task::spawn(poll_fn(|cx| svc.poll_ready(cx)));
    assert_pending!(ready.poll(), "no place left for a reservation either");
    gate.open();
    g.await.unwrap();
    for h in handles {
        h.await.unwrap();
    }
    assert_ready_ok!(ready.poll());
    drop(ready);
    drop(svc);
    let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(1))).await;
    assert_eq!(stats.submitted, 1025);
    assert_eq!(stats.count(Outcome::Completed), 1025);
}

/// Places leased by per-job submits count as taken from the semaphore, so `poll_ready` uses
/// one of them rather than wait on the semaphore while they sit unused.
#[tokio::test(start_paused = true)]
async fn poll_ready_takes_a_leased_place_before_waiting() {
    let (pool, _log) = pool_with(Pool::builder().workers(1).capacity(1024));
    let gate = Gate::new();
    let _g = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    // 1008 reservations leave the semaphore 16 places; one submit leases all 16, uses one.
    let mut reserved = Vec::new();
    for _ in 0..1008 {
        let mut p = pool.clone();
        assert_ready_ok!(tokio_test::task::spawn(poll_fn(|cx| p.poll_ready(cx))).poll());
        reserved.push(p);
    }
    pool.submit_detached(Job::Record(1)).await.unwrap();
    for n in 0..15 {
        let mut p = pool.clone();
        let mut ready = tokio_test::task::spawn(poll_fn(|cx| p.poll_ready(cx)));
        assert_ready_ok!(ready.poll(), "leased place {n} is free");
        drop(ready);
        reserved.push(p);
    }
    let mut p = pool.clone();
    let mut ready = tokio_test::task::spawn(poll_fn(|cx| p.poll_ready(cx)));
    assert_pending!(ready.poll(), "all 1024 places are taken");
    drop(ready);
    gate.open();
}

#[tokio::test(start_paused = true)]
async fn capacity_per_priority_keeps_room_for_high_jobs() {
    let (pool, _log) = pool_with(
        Pool::builder()
            .workers(1)
            .priorities(2)
            .capacity_per_priority(1),
    );
    let gate = Gate::new();
    let _g = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    let _low = pool.try_submit_at(Priority::LOW, Job::Record(1)).unwrap();
    assert!(
        pool.try_submit_at(Priority::LOW, Job::Record(2))
            .unwrap_err()
            .is_full()
    );
    assert!(
        pool.try_submit_at(Priority::new(1), Job::Record(3)).is_ok(),
        "level 1 has its own room"
    );
    gate.open();
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_queued_job_removes_it_and_frees_its_slot() {
    let (pool, log) = pool_with(Pool::builder().workers(1).capacity(1));
    let gate = Gate::new();
    let _g = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    let queued = pool.submit(Job::Record(1)).await.unwrap();
    assert_eq!(pool.stats().queued, [1]);
    assert!(queued.cancel());
    assert!(!queued.cancel(), "a second cancel has nothing to do");
    assert_eq!(queued.await, Err(JobError::Cancelled));
    assert_eq!(pool.stats().queued, [0]);
    assert!(
        pool.try_submit(Job::Record(2)).is_ok(),
        "its slot was freed"
    );
    gate.open();
    let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(1))).await;
    assert_eq!(*log.lock().unwrap(), [2], "the cancelled job never ran");
    assert_eq!(stats.count(Outcome::Cancelled), 1);
    assert_eq!(stats.submitted, stats.finished());
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_running_job_cancels_its_context() {
    let (pool, _log) = pool_with(Pool::builder().workers(1));
    let why = Arc::new(Mutex::new(None));
    let h = pool.submit(Job::UntilDone(why.clone())).await.unwrap();
    eventually(|| pool.stats().busy == 1).await;
    assert!(h.cancel());
    assert_eq!(h.await, Err(JobError::Cancelled));
    let after = pool.submit(Job::Record(5)).await.unwrap();
    assert_eq!(after.await, Ok(5), "the worker goes on");
    assert_eq!(pool.stats().count(Outcome::Cancelled), 1);
}

#[tokio::test(start_paused = true)]
async fn a_running_job_sees_its_context_cancelled_with_a_cause() {
    // The job's future is dropped; work it spawned with its Context sees the cancellation.
    let seen: Arc<Mutex<Option<String>>> = Arc::default();
    let seen2 = seen.clone();
    let pool: Pool<(), (), Infallible> =
        Pool::builder()
            .workers(1)
            .build_fn(move |ctx: Context, ()| {
                let seen = seen2.clone();
                async move {
                    let child = ctx.clone();
                    tokio::spawn(async move {
                        child.done().await;
                        *seen.lock().unwrap() = child.cause().map(|c| c.to_string());
                    });
                    std::future::pending::<()>().await;
                    Ok(())
                }
            });
    let h = pool.submit(()).await.unwrap();
    eventually(|| pool.stats().busy == 1).await;
    assert!(pool.cancel(h.id()), "cancel by id reaches a running job");
    assert_eq!(h.await, Err(JobError::Cancelled));
    eventually(|| seen.lock().unwrap().is_some()).await;
    assert_eq!(seen.lock().unwrap().as_deref(), Some("job cancelled"));
}

#[tokio::test(start_paused = true)]
async fn cancel_by_id_removes_a_queued_job() {
    let (pool, log) = pool_with(Pool::builder().workers(1));
    let gate = Gate::new();
    let _g = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    let a = pool.submit(Job::Record(1)).await.unwrap();
    let b = pool.submit(Job::Record(2)).await.unwrap();
    assert!(pool.cancel(a.id()));
    assert!(!pool.cancel(a.id()));
    gate.open();
    assert_eq!(a.await, Err(JobError::Cancelled));
    assert_eq!(b.await, Ok(2));
    assert_eq!(*log.lock().unwrap(), [2]);
}

/// Sets a flag when dropped: shows that a plain `Service`'s future is dropped on cancel.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_plain_service_job_drops_its_future() {
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    let svc = tower::service_fn(move |()| {
        let flag = DropFlag(d.clone());
        async move {
            let _flag = flag;
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(())
        }
    });
    let pool = Pool::builder().workers(1).build(svc);
    let h = pool.submit(()).await.unwrap();
    eventually(|| pool.stats().busy == 1).await;
    assert!(!dropped.load(Ordering::SeqCst));
    assert!(h.cancel());
    assert_eq!(h.await, Err(JobError::Cancelled));
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn timeouts_resolve_timed_out_and_cancel_the_jobs_context() {
    let (pool, _log) = pool_with(Pool::builder().workers(2).timeout(Duration::from_secs(1)));
    let why = Arc::new(Mutex::new(None));
    // A job that watches its Context, and one that ignores it.
    let watching = pool.submit(Job::UntilDone(why.clone())).await.unwrap();
    let ignoring = pool
        .submit(Job::Sleep(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(watching.await, Err(JobError::TimedOut));
    assert_eq!(ignoring.await, Err(JobError::TimedOut));
    let quick = pool
        .submit(Job::Sleep(Duration::from_millis(10)))
        .await
        .unwrap();
    assert_eq!(quick.await, Ok(0));
    let stats = pool.stats();
    assert_eq!(stats.count(Outcome::TimedOut), 2);
    assert_eq!(stats.workers, 2);
}

#[tokio::test(start_paused = true)]
async fn the_jobs_context_carries_the_timeout_as_its_deadline() {
    let pool: Pool<(), bool, Infallible> = Pool::builder()
        .workers(1)
        .timeout(Duration::from_secs(2))
        .build_fn(
            |ctx: Context, ()| async move { Ok(ctx.remaining() == Some(Duration::from_secs(2))) },
        );
    assert_eq!(pool.submit(()).await.unwrap().await, Ok(true));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_job_is_isolated_and_the_worker_keeps_serving() {
    let (pool, _log) = pool_with(Pool::builder().workers(1));
    let p = pool.submit(Job::Panic("kaboom")).await.unwrap();
    let after = pool.submit(Job::Record(9)).await.unwrap();
    assert_eq!(p.await, Err(JobError::Panicked(Panicked::new("kaboom"))));
    assert_eq!(after.await, Ok(9));
    let stats = pool.stats();
    assert_eq!(stats.workers, 1, "the pool keeps its size");
    assert_eq!(stats.count(Outcome::Panicked), 1);
    assert_eq!(stats.restarts, 0, "KeepWorker keeps the handler");
}

/// A handler whose `n`th `Clone` (from 0) panics when `fails(n)`; `call(n)` panics for 0 and
/// doubles anything else.
struct FlakyClone {
    clones: Arc<AtomicUsize>,
    fails: fn(usize) -> bool,
}

impl Clone for FlakyClone {
    fn clone(&self) -> Self {
        let n = self.clones.fetch_add(1, Ordering::SeqCst);
        assert!(!(self.fails)(n), "clone {n} fails");
        FlakyClone {
            clones: Arc::clone(&self.clones),
            fails: self.fails,
        }
    }
}

impl Service<u32> for FlakyClone {
    type Response = u32;
    type Error = Infallible;
    type Future = std::future::Ready<Result<u32, Infallible>>;
    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, n: u32) -> Self::Future {
        assert!(n != 0, "asked to");
        std::future::ready(Ok(n * 2))
    }
}

#[tokio::test(start_paused = true)]
async fn a_handler_whose_clone_panics_does_not_take_its_worker_down() {
    // The worker's first clones panic: it retries with a backoff instead of dying with the
    // pool still counting it, and the job runs once a clone succeeds.
    let clones = Arc::new(AtomicUsize::new(0));
    let pool = Pool::builder().workers(1).build(FlakyClone {
        clones: Arc::clone(&clones),
        fails: |n| n < 3,
    });
    let h = pool.submit(21).await.unwrap();
    // (A dead worker would leave the job queued forever: the paused clock then runs out.)
    let r = tokio::time::timeout(Duration::from_secs(60), h).await;
    assert_eq!(r.expect("the job runs"), Ok(42));
    assert_eq!(
        clones.load(Ordering::SeqCst),
        4,
        "three failed clones, then one"
    );
    let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(5))).await;
    assert_eq!(stats.count(Outcome::Completed), 1);
    assert_eq!(stats.workers, 0, "the worker left its loop normally");
}

#[tokio::test(start_paused = true)]
async fn replace_worker_keeps_the_handler_when_the_fresh_clone_panics() {
    // Only the worker's own first clone succeeds; the one after the job's panic fails.
    let pool = Pool::builder()
        .workers(1)
        .panic_policy(PanicPolicy::ReplaceWorker)
        .build(FlakyClone {
            clones: Arc::new(AtomicUsize::new(0)),
            fails: |n| n > 0,
        });
    // (A worker dying in the clone would leave this job unresolved: the paused clock then
    // runs out.)
    let r = tokio::time::timeout(Duration::from_secs(60), pool.submit(0).await.unwrap()).await;
    assert!(matches!(
        r.expect("the job ends"),
        Err(JobError::Panicked(_))
    ));
    let r = tokio::time::timeout(Duration::from_secs(60), pool.submit(5).await.unwrap()).await;
    assert_eq!(
        r.expect("the job runs"),
        Ok(10),
        "the worker still serves, with the handler it had"
    );
    let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(5))).await;
    assert_eq!(stats.restarts, 0, "no fresh handler: its clone panicked");
    assert_eq!(stats.count(Outcome::Completed), 1);
    assert_eq!(stats.workers, 0);
}

#[tokio::test(start_paused = true)]
async fn replace_worker_policy_gives_a_fresh_handler_after_a_panic() {
    // A handler with per-clone state: a counter that a fresh clone starts again from zero.
    #[derive(Clone, Default)]
    struct Counting(usize);
    impl Service<bool> for Counting {
        type Response = usize;
        type Error = Infallible;
        type Future = std::future::Ready<Result<usize, Infallible>>;
        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, panic: bool) -> Self::Future {
            self.0 += 1;
            assert!(!panic, "asked to");
            std::future::ready(Ok(self.0))
        }
    }
    let pool = Pool::builder()
        .workers(1)
        .panic_policy(PanicPolicy::ReplaceWorker)
        .build(Counting::default());
    assert_eq!(pool.submit(false).await.unwrap().await, Ok(1));
    assert_eq!(pool.submit(false).await.unwrap().await, Ok(2));
    assert!(matches!(
        pool.submit(true).await.unwrap().await,
        Err(JobError::Panicked(_))
    ));
    assert_eq!(
        pool.submit(false).await.unwrap().await,
        Ok(1),
        "a fresh clone"
    );
    assert_eq!(pool.stats().restarts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_handler_whose_poll_ready_fails_is_replaced_and_counted_as_a_restart() {
    #[derive(Clone)]
    struct FailsFirst(Arc<AtomicUsize>);
    impl Service<u32> for FailsFirst {
        type Response = u32;
        type Error = &'static str;
        type Future = std::future::Ready<Result<u32, &'static str>>;
        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), &'static str>> {
            if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                Poll::Ready(Err("broken connection"))
            } else {
                Poll::Ready(Ok(()))
            }
        }
        fn call(&mut self, n: u32) -> Self::Future {
            std::future::ready(Ok(n))
        }
    }
    let pool = Pool::builder()
        .workers(1)
        .build(FailsFirst(Arc::new(AtomicUsize::new(0))));
    assert_eq!(pool.submit(4).await.unwrap().await, Ok(4));
    let stats = pool.stats();
    assert_eq!(stats.restarts, 1);
    assert_eq!(stats.workers, 1);
}

#[tokio::test(start_paused = true)]
async fn cancel_shutdown_stops_workers_whose_handler_never_gets_ready() {
    #[derive(Clone)]
    struct NeverReady;
    impl Service<u32> for NeverReady {
        type Response = ();
        type Error = Infallible;
        type Future = std::future::Ready<Result<(), Infallible>>;
        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Pending
        }
        fn call(&mut self, _: u32) -> Self::Future {
            unreachable!("never ready")
        }
    }
    let pool = Pool::builder().workers(2).build(NeverReady);
    let h = pool.submit(1).await.unwrap();
    let stats = pool.shutdown(Shutdown::Abort).await;
    assert_eq!(h.await, Err(JobError::Cancelled));
    assert_eq!(stats.workers, 0);
    assert_eq!(stats.submitted, stats.finished());
}

#[tokio::test(start_paused = true)]
async fn keys_that_keep_panicking_are_blacklisted_until_the_cooldown_ends() {
    let (pool, _log) = pool_with(
        Pool::builder()
            .workers(1)
            .job_key(|j: &Job| match j {
                Job::Panic(k) => Some((*k).to_owned()),
                _ => None,
            })
            .blacklist(Blacklist::after_panics(2).cooldown(Duration::from_secs(60))),
    );
    for _ in 0..2 {
        let h = pool.submit(Job::Panic("bad")).await.unwrap();
        assert!(matches!(h.await, Err(JobError::Panicked(_))));
    }
    match pool.submit(Job::Panic("bad")).await {
        Err(SubmitError::Blacklisted {
            job: Job::Panic("bad"),
            key,
        }) => assert_eq!(key, "bad"),
        Err(e) => panic!("expected Blacklisted, got {e:?}"),
        Ok(_) => panic!("expected Blacklisted"),
    }
    let other = pool.submit(Job::Panic("other")).await.unwrap();
    assert!(
        matches!(other.await, Err(JobError::Panicked(_))),
        "other keys still run"
    );

    tokio::time::advance(Duration::from_secs(61)).await;
    let again = pool.submit(Job::Panic("bad")).await.unwrap();
    assert!(
        matches!(again.await, Err(JobError::Panicked(_))),
        "cooldown over"
    );
    let stats = pool.stats();
    assert_eq!(stats.count(Outcome::Blacklisted), 1);
    assert_eq!(stats.count(Outcome::Panicked), 4);
    assert_eq!(stats.submitted, stats.finished());
}

#[tokio::test(start_paused = true)]
async fn a_queued_job_whose_key_gets_blacklisted_resolves_blacklisted() {
    let (pool, _log) = pool_with(
        Pool::builder()
            .workers(1)
            .job_key(|j: &Job| matches!(j, Job::Panic(_) | Job::Fail).then(|| "k".to_owned()))
            .blacklist(Blacklist::after_panics(1)),
    );
    let gate = Gate::new();
    let _g = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    let first = pool.submit(Job::Panic("x")).await.unwrap();
    let second = pool.submit(Job::Fail).await.unwrap(); // same key, queued behind
    gate.open();
    assert!(matches!(first.await, Err(JobError::Panicked(_))));
    assert_eq!(second.await, Err(JobError::Blacklisted { key: "k".into() }));
    assert!(pool.unblacklist("k"));
    assert_eq!(
        pool.submit(Job::Fail).await.unwrap().await,
        Err(JobError::Failed("failed"))
    );
}

#[tokio::test(start_paused = true)]
async fn resize_up_runs_more_jobs_at_once_and_down_stops_extra_workers() {
    let (pool, _log) = pool_with(Pool::builder().workers(1));
    pool.resize(3);
    assert_eq!(pool.stats().workers, 3);
    let gate = Gate::new();
    let handles: Vec<_> =
        futures::future::join_all((0..3).map(|_| pool.submit(Job::Gate(gate.clone()))))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    for _ in 0..3 {
        gate.wait_started().await; // all three run at once
    }
    assert_eq!(pool.stats().busy, 3);
    pool.resize(1);
    assert_eq!(
        pool.stats().workers,
        3,
        "busy workers finish their job first"
    );
    gate.open();
    for h in handles {
        h.await.unwrap();
    }
    eventually(|| pool.stats().workers == 1).await;
    assert_eq!(pool.submit(Job::Record(1)).await.unwrap().await, Ok(1));
}

/// A fresh worker takes jobs one at a time until it knows they are short: had it grabbed a whole
/// batch first, the high-priority jobs in that batch would wait behind a long job it claimed
/// with them while other workers ran lower levels.
#[tokio::test(start_paused = true)]
async fn a_fresh_worker_does_not_hold_high_jobs_behind_a_long_one() {
    let (pool, log) = pool_with(Pool::builder().workers(2).priorities(3).aging(None));
    // Two long jobs at the top level, submitted before the workers ran once: each (fresh)
    // worker must claim only one of them.
    let gate = Gate::new();
    let gates: Vec<_> = futures::future::join_all(
        (0..2).map(|_| pool.submit_at(Priority::new(2), Job::Gate(gate.clone()))),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    // 30 short jobs over 3 levels, tagged `level * 100 + i`, in mixed order.
    for i in 0..10 {
        for level in [0u8, 1, 2] {
            pool.submit_at(
                Priority::new(level),
                Job::Record(u32::from(level) * 100 + i),
            )
            .await
            .unwrap()
            .detach();
        }
    }
    pool.resize(4);
    // The log records completion order, inside the job.
    eventually(|| log.lock().unwrap().len() >= 10).await;
    let first: Vec<u32> = log.lock().unwrap()[..10].to_vec();
    assert!(
        first.iter().all(|tag| tag / 100 == 2),
        "the first 10 completions must be the top level, got {first:?}"
    );
    gate.open();
    for g in gates {
        g.await.unwrap();
    }
    let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(1))).await;
    assert_eq!(stats.count(Outcome::Completed), 32);
}

/// Also pins that an idle worker's search of the empty queue ends (it parks): a search that
/// kept yielding would keep the paused clock from ever advancing, and this test would hang.
#[tokio::test(start_paused = true)]
async fn a_dynamic_pool_scales_up_on_queue_depth_and_down_when_idle() {
    let (pool, _log) = pool_with(
        Pool::builder()
            .dynamic_workers(1..=4)
            .idle_timeout(Duration::from_secs(5)),
    );
    assert_eq!(pool.stats().workers, 1);
    let gate = Gate::new();
    let mut handles = Vec::new();
    for _ in 0..6 {
        handles.push(pool.submit(Job::Gate(gate.clone())).await.unwrap());
    }
    for _ in 0..4 {
        gate.wait_started().await;
    }
    let stats = pool.stats();
    assert_eq!((stats.workers, stats.busy), (4, 4), "scaled up to max");
    gate.open();
    for h in handles {
        h.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(4)).await; // paused clock: virtual time
    assert_eq!(pool.stats().workers, 4, "not idle for 5 s yet");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pool.stats().workers,
        1,
        "idle workers above the minimum expired"
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(pool.stats().workers, 1, "never below the minimum");
}

#[tokio::test(start_paused = true)]
async fn drain_shutdown_finishes_queued_and_running_jobs() {
    let (pool, log) = pool_with(Pool::builder().workers(1));
    let sleeper = pool
        .submit(Job::Sleep(Duration::from_secs(1)))
        .await
        .unwrap();
    for n in 0..5 {
        pool.submit(Job::Record(n)).await.unwrap().detach();
    }
    let stats = pool
        .shutdown(Shutdown::drain(Duration::from_secs(10)))
        .await;
    assert_eq!(sleeper.await, Ok(0));
    assert_eq!(*log.lock().unwrap(), [0, 1, 2, 3, 4]);
    assert_eq!(stats.count(Outcome::Completed), 6);
    assert_eq!(stats.workers, 0);
    assert!(matches!(
        pool.submit(Job::Record(9)).await,
        Err(SubmitError::Closed(Job::Record(9)))
    ));
    assert_eq!(pool.stats().count(Outcome::Rejected), 1);
}

#[tokio::test(start_paused = true)]
async fn cancel_shutdown_cancels_queued_and_running_jobs() {
    let (pool, log) = pool_with(Pool::builder().workers(1));
    let why = Arc::new(Mutex::new(None));
    let running = pool.submit(Job::UntilDone(why)).await.unwrap();
    eventually(|| pool.stats().busy == 1).await;
    let queued = pool.submit(Job::Record(1)).await.unwrap();
    let stats = pool.shutdown(Shutdown::Abort).await;
    assert_eq!(running.await, Err(JobError::Cancelled));
    assert_eq!(queued.await, Err(JobError::Cancelled));
    assert!(log.lock().unwrap().is_empty());
    assert_eq!(stats.count(Outcome::Cancelled), 2);
    assert_eq!(stats.submitted, stats.finished());
}

#[tokio::test(start_paused = true)]
async fn the_pool_shuts_down_when_its_context_ends() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (pool, _log) = pool_with(Pool::builder().workers(1).context(ctx));
    let why = Arc::new(Mutex::new(None));
    let running = pool.submit(Job::UntilDone(why)).await.unwrap();
    eventually(|| pool.stats().busy == 1).await;
    cancel.cancel();
    assert_eq!(running.await, Err(JobError::Cancelled));
    eventually(|| pool.is_closed()).await;
    assert!(matches!(
        pool.submit(Job::Record(1)).await,
        Err(SubmitError::Closed(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_pool_handle_drains_the_queue() {
    let (pool, log) = pool_with(Pool::builder().workers(1));
    let handles: Vec<_> = futures::future::join_all((0..3).map(|n| pool.submit(Job::Record(n))))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    drop(pool);
    for (n, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await, Ok(n as u32));
    }
    assert_eq!(*log.lock().unwrap(), [0, 1, 2]);
}

// ---- cancel safety ----

#[tokio::test(start_paused = true)]
async fn submit_cancelled_while_waiting_for_room_submits_nothing() {
    let (pool, log) = pool_with(Pool::builder().workers(1).capacity(1));
    let gate = Gate::new();
    let _g = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    let _q = pool.submit(Job::Record(1)).await.unwrap();
    tokio::select! {
        biased;
        _ = pool.submit(Job::Record(2)) => panic!("the queue is full"),
        () = tokio::task::yield_now() => {}
    }
    assert_eq!(
        pool.stats().submitted,
        2,
        "the dropped submit counted nothing"
    );
    gate.open();
    let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(1))).await;
    assert_eq!(*log.lock().unwrap(), [1]);
    assert_eq!(stats.submitted, stats.finished());
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_await_on_a_handle_loses_nothing() {
    let (pool, _log) = pool_with(Pool::builder().workers(1));
    let mut h = pool
        .submit(Job::Sleep(Duration::from_secs(1)))
        .await
        .unwrap();
    tokio::select! {
        _ = &mut h => panic!("not yet"),
        () = tokio::time::sleep(Duration::from_millis(10)) => {}
    }
    assert_eq!(
        h.await,
        Ok(0),
        "the job kept running and its result is still there"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_shutdown_keeps_draining() {
    let (pool, log) = pool_with(Pool::builder().workers(1));
    let h = pool
        .submit(Job::Sleep(Duration::from_secs(1)))
        .await
        .unwrap();
    let _q = pool.submit(Job::Record(1)).await.unwrap();
    tokio::select! {
        _ = pool.shutdown(Shutdown::drain(Duration::from_secs(5))) => panic!("still running"),
        () = tokio::time::sleep(Duration::from_millis(10)) => {}
    }
    assert!(pool.is_closed());
    assert_eq!(h.await, Ok(0));
    eventually(|| log.lock().unwrap().len() == 1).await;
}

// ---- composition ----

#[tokio::test(start_paused = true)]
async fn composes_with_service_builder_retry_and_timeout() {
    #[derive(Clone)]
    struct RetryFailed(usize);
    impl<E> tower::retry::Policy<u32, u32, E> for RetryFailed {
        type Future = std::future::Ready<()>;
        fn retry(&mut self, _: &mut u32, r: &mut Result<u32, E>) -> Option<Self::Future> {
            (r.is_err() && self.0 > 0).then(|| {
                self.0 -= 1;
                std::future::ready(())
            })
        }
        fn clone_request(&mut self, req: &u32) -> Option<u32> {
            Some(*req)
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let pool: Pool<u32, u32, &'static str> =
        Pool::builder().workers(2).build_fn(move |_ctx, n: u32| {
            let c = c.clone();
            async move {
                // Fails twice, then succeeds.
                if c.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err("flaky")
                } else {
                    Ok(n)
                }
            }
        });
    let mut svc = ServiceBuilder::new()
        .retry(RetryFailed(3))
        .timeout(Duration::from_secs(1))
        .service(pool);
    let out = svc.ready().await.unwrap().call(7).await.unwrap();
    assert_eq!(out, 7);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn composes_with_a_rate_limit_in_front() {
    let (pool, log) = pool_with(Pool::builder().workers(2));
    let mut svc = ServiceBuilder::new()
        .rate_limit(2, Duration::from_secs(1))
        .service(pool);
    let t0 = tokio::time::Instant::now();
    for n in 0..5 {
        svc.ready()
            .await
            .unwrap()
            .call(Job::Record(n))
            .await
            .unwrap();
    }
    // 2 per second: the 5th call starts in the third window (paused clock, virtual time).
    assert_eq!(tokio::time::Instant::now() - t0, Duration::from_secs(2));
    assert_eq!(*log.lock().unwrap(), [0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn a_context_service_gets_each_jobs_context() {
    let (ctx, _cancel) = Context::background().with_cancel();
    #[derive(Debug, PartialEq)]
    struct Tenant(&'static str);
    let ctx = ctx.with_value(Tenant("acme"));
    let svc = tower::service_fn(|job: WithContext<u32>| async move {
        let tenant = job.context.value::<Tenant>().map(|t| t.0);
        Ok::<_, Infallible>((job.request, tenant))
    });
    let pool = Pool::builder()
        .workers(1)
        .context(ctx)
        .build_with_context(svc);
    assert_eq!(pool.submit(1).await.unwrap().await, Ok((1, Some("acme"))));
}

#[tokio::test(start_paused = true)]
async fn trivial_jobs_run_in_batches_are_all_counted_and_a_waiting_one_keeps_its_run_time() {
    // Jobs that finish at their first poll share clock reads within a claimed batch (their run
    // time is the batch's mean); one that waits among them is timed alone. Every started job
    // is counted once in both histograms, and under the paused clock the figures are exact.
    let (pool, log) = pool_with(
        Pool::builder()
            .workers(1)
            .batch(std::num::NonZeroUsize::new(64).unwrap()),
    );
    let gate = Gate::new();
    let g = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    // Queued behind the gate, so the worker claims them in batches of more than one.
    for n in 0..500 {
        pool.submit_detached(Job::Record(n)).await.unwrap();
        if n == 250 {
            pool.submit_detached(Job::Sleep(Duration::from_secs(2)))
                .await
                .unwrap();
        }
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    gate.open();
    g.await.unwrap();
    let stats = pool
        .shutdown(Shutdown::drain(Duration::from_secs(10)))
        .await;
    assert_eq!(log.lock().unwrap().len(), 500);
    assert_eq!(stats.count(Outcome::Completed), 502);
    assert_eq!(stats.run_time.count, 502, "{:?}", stats.run_time);
    assert_eq!(stats.queue_wait.count, 502, "{:?}", stats.queue_wait);
    // The gate ran 1 s and the sleeper 2 s, each measured alone; the trivial jobs took no
    // (paused) time, even those sharing a batch with the sleeper.
    assert!(
        stats.run_time.max >= Duration::from_secs(2)
            && stats.run_time.max < Duration::from_millis(2260),
        "{:?}",
        stats.run_time
    );
    assert_eq!(stats.run_time.p90, Duration::ZERO, "{:?}", stats.run_time);
    // Queued at t = 0 and started after the gate (1 s), or after the sleeper too (3 s).
    assert!(
        stats.queue_wait.max >= Duration::from_secs(3)
            && stats.queue_wait.max < Duration::from_millis(3400),
        "{:?}",
        stats.queue_wait
    );
    assert!(
        stats.queue_wait.p50 >= Duration::from_secs(1),
        "{:?}",
        stats.queue_wait
    );
}

#[tokio::test(start_paused = true)]
async fn stats_count_every_outcome_and_latencies() {
    let (pool, _log) = pool_with(Pool::builder().workers(2).timeout(Duration::from_secs(1)));
    let jobs = [
        Job::Record(1),
        Job::Fail,
        Job::Panic("p"),
        Job::Sleep(Duration::from_secs(5)),
        Job::Sleep(Duration::from_millis(100)),
    ];
    let mut hs = Vec::new();
    for j in jobs {
        hs.push(pool.submit(j).await.unwrap());
    }
    let mut seen = [0u64; 7];
    for h in hs {
        let outcome = Outcome::of(&h.await);
        seen[Outcome::all().position(|o| o == outcome).unwrap()] += 1;
    }
    let stats = pool.stats();
    assert_eq!(
        stats.outcomes, seen,
        "the counters match the handles' outcomes"
    );
    assert_eq!(stats.count(Outcome::Completed), 2);
    assert_eq!(stats.count(Outcome::TimedOut), 1);
    assert_eq!(stats.run_time.count, 5);
    assert!(
        stats.run_time.max >= Duration::from_secs(1),
        "{:?}",
        stats.run_time
    );
    assert!(
        stats.run_time.p50 < Duration::from_millis(1),
        "{:?}",
        stats.run_time
    );
    assert_eq!(stats.submitted, stats.finished() + stats.in_flight());
}

/// `submit_many` returns one handle per job in order, never queues more than the capacity, and
/// dropped while waiting for room keeps what it queued and submits nothing else.
#[tokio::test(start_paused = true)]
async fn submit_many_respects_capacity_and_dropped_keeps_only_what_it_queued() {
    let (pool, log) = pool_with(Pool::builder().workers(1).capacity(2));
    let gate = Gate::new();
    let g = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    {
        let fut = pool.submit_many(Priority::LOW, (1..=5).map(Job::Record));
        let mut fut = std::pin::pin!(fut);
        let polled = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        assert!(polled.is_pending(), "3 of 5 jobs wait for room");
        assert_eq!(pool.stats().queued, [2], "never more than the capacity");
    } // dropped while waiting
    assert_eq!(
        pool.stats().submitted,
        3,
        "the gate and the two queued jobs"
    );
    gate.open();
    g.await.unwrap();
    let handles = pool
        .submit_many(Priority::LOW, (10..15).map(Job::Record))
        .await;
    let mut got = Vec::new();
    for h in handles {
        got.push(h.unwrap().await.unwrap());
    }
    assert_eq!(got, [10, 11, 12, 13, 14], "one handle per job, in order");
    let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(1))).await;
    assert_eq!(*log.lock().unwrap(), [1, 2, 10, 11, 12, 13, 14]);
    assert_eq!(stats.submitted, 8);
    assert_eq!(stats.count(Outcome::Completed), 8);
}

/// `submit_many` hands back blacklisted jobs one by one and every job once the pool is closed,
/// counting them as `submit` does.
#[tokio::test(start_paused = true)]
async fn submit_many_hands_back_blacklisted_and_closed_jobs() {
    let (pool, log) = pool_with(
        Pool::builder()
            .workers(1)
            .job_key(|j: &Job| match j {
                Job::Panic(k) => Some((*k).to_owned()),
                _ => None,
            })
            .blacklist(Blacklist::after_panics(1)),
    );
    let h = pool.submit(Job::Panic("bad")).await.unwrap();
    assert!(matches!(h.await, Err(JobError::Panicked(_))));
    let results = pool
        .submit_many(
            Priority::LOW,
            [Job::Record(1), Job::Panic("bad"), Job::Record(2)],
        )
        .await;
    assert_eq!(results.len(), 3);
    let mut results = results.into_iter();
    assert_eq!(results.next().unwrap().unwrap().await, Ok(1));
    assert!(matches!(
        results.next(),
        Some(Err(SubmitError::Blacklisted {
            job: Job::Panic("bad"),
            ..
        }))
    ));
    assert_eq!(results.next().unwrap().unwrap().await, Ok(2));

    pool.close();
    let results = pool
        .submit_many(Priority::LOW, (3..5).map(Job::Record))
        .await;
    assert!(
        matches!(
            results.as_slice(),
            [
                Err(SubmitError::Closed(Job::Record(3))),
                Err(SubmitError::Closed(Job::Record(4)))
            ]
        ),
        "closed: every job handed back"
    );
    let stats = pool.shutdown(Shutdown::Abort).await;
    assert_eq!(*log.lock().unwrap(), [1, 2]);
    assert_eq!(stats.submitted, 6);
    assert_eq!(stats.count(Outcome::Blacklisted), 1);
    assert_eq!(stats.count(Outcome::Rejected), 2);
    assert_eq!(stats.submitted, stats.finished());
}

/// Jobs spawned without handles run and are counted like others; a cancelling shutdown cancels
/// the queued ones (each counted once), and a closed pool hands every job back.
#[tokio::test(start_paused = true)]
async fn submit_many_detached_runs_counts_and_cancels_jobs_without_handles() {
    let (pool, log) = pool_with(Pool::builder().workers(1).capacity(8));
    assert!(
        pool.submit_many_detached(Priority::LOW, (1..=3).map(Job::Record))
            .await
            .is_empty()
    );
    eventually(|| log.lock().unwrap().len() == 3).await;
    assert_eq!(*log.lock().unwrap(), [1, 2, 3]);

    let gate = Gate::new();
    let g = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    assert!(
        pool.submit_many_detached(Priority::LOW, (4..=6).map(Job::Record))
            .await
            .is_empty()
    );
    assert_eq!(pool.stats().queued, [3]);
    let stats = pool.shutdown(Shutdown::Abort).await;
    assert_eq!(g.await, Err(JobError::Cancelled));
    assert_eq!(*log.lock().unwrap(), [1, 2, 3], "queued ones never ran");
    assert_eq!(stats.count(Outcome::Completed), 3);
    assert_eq!(
        stats.count(Outcome::Cancelled),
        4,
        "the gate and the 3 queued"
    );
    assert_eq!(stats.submitted, stats.finished());

    let refused = pool
        .submit_many_detached(Priority::LOW, (7..=8).map(Job::Record))
        .await;
    assert!(matches!(
        refused.as_slice(),
        [
            SubmitError::Closed(Job::Record(7)),
            SubmitError::Closed(Job::Record(8))
        ]
    ));
    assert_eq!(pool.stats().count(Outcome::Rejected), 2);
}

#[tokio::test(start_paused = true)]
async fn result_cells_of_dropped_handles_are_reused_without_mixing_outcomes() {
    // The pool reuses the result cell of a finished job whose handle is gone. A reused cell must
    // start clean: a stale outcome, state or id would show in the handles of later jobs.
    let (pool, _log) = pool_with(Pool::builder().workers(2).capacity(8));
    let within = |f| tokio::time::timeout(Duration::from_secs(60), f);
    // Finished jobs whose handles are dropped only after their outcome was stored, and jobs
    // detached at once (never stored), with every kind of outcome.
    let mut kept = Vec::new();
    for n in 0..300u32 {
        let job = match n % 5 {
            0 => Job::Fail,
            1 => Job::Panic("boom"),
            _ => Job::Record(n),
        };
        let h = pool.submit(job).await.unwrap();
        if n % 2 == 0 {
            kept.push(h);
        }
    }
    eventually(|| kept.iter().all(|h| h.is_finished())).await;
    drop(kept);
    eventually(|| pool.stats().finished() == 300).await;
    // New jobs get the reused cells: each handle sees its own id and outcome.
    let mut last_id = None;
    let mut handles = Vec::new();
    for n in 1000..1300u32 {
        let job = if n % 7 == 0 {
            Job::Fail
        } else {
            Job::Record(n)
        };
        let h = pool.submit(job).await.unwrap();
        assert!(Some(h.id()) > last_id, "ids grow");
        last_id = Some(h.id());
        assert!(!h.is_finished(), "a new job's cell is not finished");
        if n % 3 == 0 {
            h.detach();
        } else {
            handles.push((n, h));
        }
    }
    for (n, h) in handles {
        let want = if n % 7 == 0 {
            Err(JobError::Failed("failed"))
        } else {
            Ok(n)
        };
        assert_eq!(within(h).await.expect("resolves"), want);
    }
    // A reused cell can be cancelled while queued.
    let gate = Gate::new();
    let g1 = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    let g2 = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    gate.wait_started().await;
    let queued = pool.submit(Job::Record(7)).await.unwrap();
    assert!(queued.cancel());
    assert_eq!(queued.await, Err(JobError::Cancelled));
    gate.open();
    assert_eq!(within(g1).await.expect("resolves"), Ok(0));
    assert_eq!(within(g2).await.expect("resolves"), Ok(0));
    let stats = pool
        .shutdown(Shutdown::drain(Duration::from_secs(10)))
        .await;
    assert_eq!(stats.submitted, 603);
    assert_eq!(stats.submitted, stats.finished());
    assert_eq!(stats.count(Outcome::Cancelled), 1);
    assert_eq!(stats.count(Outcome::Panicked), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_cells_keep_outcomes_apart_across_threads() {
    // Real threads: submits, detached handles, cancels and awaits race with the workers that
    // recycle cells. Every awaited handle must get its own job's outcome, whatever cell it got.
    let pool: Pool<u32, u32, u32> = Pool::builder()
        .workers(2)
        .priorities(2)
        .capacity(64)
        .build_fn(|_ctx, n: u32| async move {
            if n.is_multiple_of(11) {
                tokio::task::yield_now().await;
            }
            if n.is_multiple_of(13) { Err(n) } else { Ok(n) }
        });
    let expected = |n: u32| {
        if n.is_multiple_of(13) {
            Err(JobError::Failed(n))
        } else {
            Ok(n)
        }
    };
    let mut waiting = std::collections::VecDeque::new();
    let mut cancelled = 0u64;
    for n in 0..20_000u32 {
        let h = pool
            .submit_at(Priority::new((n % 2) as u8), n)
            .await
            .unwrap();
        match n % 4 {
            0 => h.detach(),
            1 if n % 5 == 0 => {
                let took = h.cancel();
                let r = h.await;
                if r == Err(JobError::Cancelled) {
                    assert!(took, "only a cancel that took effect cancels");
                    cancelled += 1;
                } else {
                    // Too late (ended), or the job finished during the poll that the cancel
                    // raced with: its real outcome stands.
                    assert_eq!(r, expected(n));
                }
            }
            _ => waiting.push_back((n, h)),
        }
        if waiting.len() > 100 {
            let (n, h) = waiting.pop_front().unwrap();
            assert_eq!(h.await, expected(n));
        }
    }
    for (n, h) in waiting {
        assert_eq!(h.await, expected(n));
    }
    let stats = pool
        .shutdown(Shutdown::drain(Duration::from_secs(60)))
        .await;
    assert_eq!(stats.submitted, 20_000);
    assert_eq!(stats.submitted, stats.finished());
    assert_eq!(stats.count(Outcome::Cancelled), cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_queued_handle_gives_its_cell_to_the_next_submit_without_mixing_jobs() {
    // Dropping the handle of a queued job hands its result cell to this thread's next submit,
    // which takes it out of the first job's queue entry. If the first job still pointed at
    // the cell, cancelling the second job would also stop the first (or its outcome would
    // reach the second's handle).
    let (pool, log) = pool_with(Pool::builder().workers(1));
    let gate = Gate::new();
    let blocker = pool.submit(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    let first = pool.submit(Job::Record(1)).await.unwrap();
    let first_id = first.id();
    drop(first);
    let second = pool.submit(Job::Record(2)).await.unwrap();
    assert_ne!(second.id(), first_id);
    assert!(!second.is_finished());
    assert!(second.cancel(), "the second job is queued");
    assert_eq!(second.await, Err(JobError::Cancelled));
    gate.open();
    assert_eq!(blocker.await, Ok(0));
    eventually(|| pool.stats().finished() == 3).await;
    assert_eq!(
        *log.lock().unwrap(),
        [1],
        "the first job ran, the second did not"
    );
    let stats = pool.stats();
    assert_eq!(stats.count(Outcome::Completed), 2);
    assert_eq!(stats.count(Outcome::Cancelled), 1);
    assert_eq!(stats.submitted, 3);
}

#[tokio::test(start_paused = true)]
async fn cancel_by_id_reaches_a_running_job_whose_handle_was_dropped() {
    // A job whose handle is gone may have no result cell to flag: its worker's claimed ids
    // must still let cancel by id stop it.
    let (pool, _log) = pool_with(Pool::builder().workers(1));
    let seen = Arc::new(Mutex::new(None));
    let h = pool.submit(Job::UntilDone(seen.clone())).await.unwrap();
    let id = h.id();
    h.detach();
    eventually(|| pool.stats().busy == 1).await;
    assert!(pool.cancel(id), "running: cancelled");
    eventually(|| pool.stats().finished() == 1).await;
    assert_eq!(pool.stats().count(Outcome::Cancelled), 1);
    assert!(!pool.cancel(id), "ended: nothing to cancel");
}

#[tokio::test(start_paused = true)]
async fn detached_jobs_run_without_handles_and_can_be_cancelled_by_id() {
    let (pool, log) = pool_with(Pool::builder().workers(1).priorities(2).aging(None));
    let gate = Gate::new();
    pool.submit_detached(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    // Queued behind the gate: the high one runs first, the cancelled one never.
    pool.submit_detached_at(Priority::LOW, Job::Record(1))
        .await
        .unwrap();
    let doomed = pool
        .submit_detached_at(Priority::LOW, Job::Record(2))
        .await
        .unwrap();
    pool.submit_detached_at(Priority::new(1), Job::Record(3))
        .await
        .unwrap();
    pool.submit_detached_at(Priority::LOW, Job::Fail)
        .await
        .unwrap();
    assert!(
        pool.cancel(doomed),
        "a queued spawned job is cancelled by id"
    );
    assert!(!pool.cancel(doomed), "once");
    gate.open();
    let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(1))).await;
    assert_eq!(*log.lock().unwrap(), [3, 1]);
    assert_eq!(stats.submitted, 5);
    assert_eq!(stats.count(Outcome::Completed), 3);
    assert_eq!(stats.count(Outcome::Cancelled), 1);
    assert_eq!(stats.count(Outcome::Failed), 1);
    assert!(matches!(
        pool.submit_detached(Job::Record(4)).await,
        Err(SubmitError::Closed(Job::Record(4)))
    ));
    assert_eq!(pool.stats().count(Outcome::Rejected), 1);
}

#[tokio::test(start_paused = true)]
async fn submit_detached_cancelled_while_waiting_for_room_submits_nothing() {
    let (pool, log) = pool_with(Pool::builder().workers(1).capacity(1));
    let gate = Gate::new();
    pool.submit_detached(Job::Gate(gate.clone())).await.unwrap();
    gate.wait_started().await;
    pool.submit_detached(Job::Record(1)).await.unwrap();
    tokio::select! {
        biased;
        _ = pool.submit_detached(Job::Record(2)) => panic!("the queue is full"),
        () = tokio::task::yield_now() => {}
    }
    assert_eq!(
        pool.stats().submitted,
        2,
        "the dropped spawn counted nothing"
    );
    gate.open();
    let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(1))).await;
    assert_eq!(*log.lock().unwrap(), [1]);
    assert_eq!(stats.submitted, stats.finished());
}

/// Counts that cannot be zero panic where they are passed, instead of being raised to 1 behind
/// the caller's back (the pipeline's stage settings do the same).
#[test]
fn zero_workers_or_capacity_panic_at_the_caller() {
    type B = weft_pool::Builder<u32, u32, Infallible>;
    for (what, set) in [
        ("workers(0)", (|b: B| b.workers(0)) as fn(B) -> B),
        ("dynamic_workers(0..=0)", |b: B| b.dynamic_workers(0..=0)),
        ("capacity(0)", |b: B| b.capacity(0)),
        ("capacity_per_priority(0)", |b: B| {
            b.capacity_per_priority(0)
        }),
    ] {
        let caught = std::panic::catch_unwind(|| set(Pool::builder()));
        assert!(caught.is_err(), "{what} was accepted");
    }
    // One is fine.
    let _ = Pool::<u32, u32, Infallible>::builder()
        .workers(1)
        .capacity(1);
}

/// `resize(0)` at run time panics too, and leaves the pool as it was.
#[tokio::test(flavor = "current_thread")]
async fn resizing_to_zero_workers_panics_and_keeps_the_pool() {
    let pool = Pool::builder()
        .workers(2)
        .build_fn(|_ctx, n: u32| async move { Ok::<_, Infallible>(n) });
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.resize(0)));
    assert!(caught.is_err());
    assert_eq!(pool.stats().workers, 2);
    assert_eq!(pool.submit(7).await.unwrap().await, Ok(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_pushed_from_several_threads_run_in_id_order_within_a_level() {
    // Submitters on both runtime threads push into different intake shards; a claim merges
    // them by id. With one worker and one level, jobs must run in exactly id order (FIFO),
    // and each submitter's jobs in its own order.
    let ran = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&ran);
    let pool: Pool<u32, (), Infallible> =
        Pool::builder()
            .workers(1)
            .capacity(256)
            .build_fn(move |_ctx, n: u32| {
                log.lock().unwrap().push(n);
                async { Ok(()) }
            });
    let ids = Arc::new(Mutex::new(std::collections::HashMap::new()));
    let tasks: Vec<_> = (0..4u32)
        .map(|t| {
            let (pool, ids) = (pool.clone(), Arc::clone(&ids));
            tokio::spawn(async move {
                for seq in 0..2_000u32 {
                    let n = t * 10_000 + seq;
                    let id = pool.submit_detached(n).await.unwrap();
                    ids.lock().unwrap().insert(n, id);
                    if seq % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let stats = pool
        .shutdown(Shutdown::drain(Duration::from_secs(60)))
        .await;
    assert_eq!(stats.count(Outcome::Completed), 8_000);
    let ran = ran.lock().unwrap();
    let ids = ids.lock().unwrap();
    let order: Vec<_> = ran.iter().map(|n| ids[n]).collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "jobs ran out of id order"
    );
    for t in 0..4u32 {
        let mine: Vec<u32> = ran.iter().copied().filter(|n| n / 10_000 == t).collect();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "submitter {t} reordered"
        );
    }
}
