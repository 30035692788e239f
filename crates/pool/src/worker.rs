//! A worker: one task that takes jobs from the queue in batches and runs them one at a time.
//!
//! Plan of the loop: make sure the handler is ready (a panic or error there replaces it with a
//! fresh clone), take the next job from the local batch or fetch a batch from the queue (parking
//! when it is empty), run the job under `catch_unwind` racing its cancel flag and its timeout,
//! count the outcome in the worker's own counters, then resolve the job's handle.
//!
//! The queue side of step 2 (searching, claiming, parking, leaving) is the scheduler core's
//! (`sched::claim`); this module is the worker's own loop and the running of one job.
//!
//! # Clock reads
//!
//! A job's start is the worker's last clock read while it has not waited since (the previous
//! job's end), and the clock is read at the end of a job only when the job waited (returned
//! `Pending`) or is the last of its claimed batch. Jobs that finish at their first poll in
//! between are recorded together at that read, each with the mean run time of the run of them:
//! a batch is sized to about 25 us of such work, and a clock read cost a fifth of a trivial
//! job. So run times of jobs that wait are exact, run times of jobs that do not are means over
//! at most a batch, and a job's queue wait is measured to the last read before it starts
//! (short by at most the batch's work before it). Under tokio's paused clock (tests), work
//! that does not wait takes no time, so every figure is exact there.

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use weft_core::{Context, Panicked};

use crate::clock::Clock;
use crate::config::PanicPolicy;
use crate::error::{JobError, Outcome};
use crate::handler::Handler;
use crate::lock;
use crate::sched::{Buffers, Entry, Fetched, Search, Shared, WorkerSlot, cancel_entry};
use crate::stats::Histogram;

/// How much work (at the recent average run time) a worker takes from the queue at once: a
/// batch amortises the queue lock over many short jobs, but a job queued behind a claimed batch
/// (say, a higher-priority one, or one another worker could run) waits for it. So a batch is
/// about this long: up to the configured batch of 100 ns jobs, and one job at a time once jobs
/// take longer than this.
const BATCH_WORK_NS: u64 = 25_000;

enum Ran<T, E> {
    Done(Result<T, E>),
    Panicked(Panicked),
    Cancelled,
    TimedOut,
}

pub(crate) async fn run<Req, H>(
    shared: Arc<Shared<Req, H::Response, H::Error>>,
    prototype: Arc<std::sync::Mutex<H>>,
    slot: Arc<WorkerSlot>,
) where
    Req: Send + 'static,
    H: Handler<Req> + Clone,
{
    // `None` while the handler's `Clone` panics: the worker stays (retrying with a backoff)
    // rather than die with the jobs it holds.
    let mut handler: Option<H> = fresh(&prototype);
    let worker_ctx = H::WANTS_CONTEXT.then(|| shared.ctx.with_cancel());
    let mut buf: Buffers<Req, H::Response, H::Error> = Buffers::new(shared.config.levels as usize);
    // Average run time of recent jobs (EWMA), to size batches. Until jobs are known to be
    // short, take one at a time: starting at zero made a fresh worker grab a whole batch, so
    // higher-priority jobs arriving meanwhile waited behind it.
    // In ns: `Duration` arithmetic (normalising seconds and nanoseconds) showed in profiles.
    let mut avg_run: u64 = 2 * BATCH_WORK_NS;
    let mut registered: Option<Waker> = None;
    let mut backoff = Duration::from_millis(1);
    let mut timing = Timing::default();
    // Whether the worker ran jobs since its last fetch.
    let mut ran_batch = false;
    // Whether this worker still counts in `state.workers` when the loop ends.
    let mut counted = true;
    tracing::trace!(worker = slot.id, "worker started");

    loop {
        // 1. The handler must be ready before a job is taken.
        let ready = poll_fn(|cx| {
            // A cancelling shutdown must reach a worker whose handler never gets ready.
            if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                slot.runner.register(cx.waker());
                registered = Some(cx.waker().clone());
            }
            if shared.cancelling() {
                return Poll::Ready(None);
            }
            let Some(handler) = handler.as_mut() else {
                return Poll::Ready(Some(false));
            };
            match std::panic::catch_unwind(AssertUnwindSafe(|| handler.poll_ready(cx))) {
                Ok(Poll::Pending) => {
                    timing.wait(&shared.clock, &slot.counters.run_time);
                    Poll::Pending
                }
                Ok(Poll::Ready(Ok(()))) => Poll::Ready(Some(true)),
                Ok(Poll::Ready(Err(_))) | Err(_) => Poll::Ready(Some(false)),
            }
        })
        .await;
        let Some(ready) = ready else {
            break;
        };
        if !ready {
            tracing::warn!(
                worker = slot.id,
                "handler not ready (error, panic or failed clone): replacing it"
            );
            handler = fresh(&prototype);
            if handler.is_some() {
                slot.counters.restart_single_writer();
            }
            if shared.cancelling() {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
            continue;
        }
        backoff = Duration::from_millis(1);
        let Some(handler) = handler.as_mut() else {
            continue; // not reached: step 1 is only ready with a handler
        };

        // 2. The next job.
        let entry = match buf.local.pop_front() {
            Some(e) => e,
            None => {
                // Jobs ended early (cancelled, blacklisted) may have left a run unrecorded.
                timing.flush(&shared.clock, &slot.counters.run_time);
                if std::mem::take(&mut ran_batch) {
                    // The batch's results woke their awaiting tasks, most often onto this
                    // thread's next-task slot, which no other thread can take: let them run
                    // (and submit the next jobs) before this worker takes another batch.
                    timing.wait(&shared.clock, &slot.counters.run_time);
                    yield_once().await;
                }
                let batch = usize::try_from(BATCH_WORK_NS / avg_run.max(1))
                    .unwrap_or(usize::MAX)
                    .clamp(1, shared.config.batch);
                if !fetch(
                    &shared,
                    &slot,
                    &mut buf,
                    batch,
                    &mut registered,
                    &mut timing,
                )
                .await
                {
                    counted = false; // `fetch` took this worker off the count
                    break;
                }
                continue;
            }
        };
        ran_batch = true;
        slot.claimed_len.store(buf.local.len(), Ordering::Relaxed);
        let last_in_batch = buf.local.is_empty();

        // 3. Run it (cancel by id finds it at `next`, and no longer after).
        let run_time = run_one(
            &shared,
            &slot,
            handler,
            &prototype,
            worker_ctx.as_ref().map(|(c, _)| c),
            entry,
            last_in_batch,
            &mut registered,
            &mut timing,
        )
        .await;
        slot.advance();
        if let Some(t) = run_time {
            avg_run = avg_run.saturating_mul(7).saturating_add(t) / 8;
        }
    }

    timing.flush(&shared.clock, &slot.counters.run_time);
    // Leaving on a cancelling shutdown: jobs claimed but not started end here, cancelled.
    for e in buf.local.drain(..) {
        cancel_entry(e, || slot.counters.bump_single_writer(Outcome::Cancelled));
    }
    if counted {
        shared.leave(&slot);
    }
    if let Some((_, cancel)) = worker_ctx {
        cancel.cancel_with("worker stopped");
    }
    slot.set_claimed(std::iter::empty());
    shared.retire(&slot);
    tracing::trace!(worker = slot.id, "worker stopped");
}

/// A fresh clone of the pool's handler, or `None` if its `Clone` panicked (logged): user code
/// must not take a worker down with the jobs it has claimed.
fn fresh<H: Clone>(prototype: &std::sync::Mutex<H>) -> Option<H> {
    let guard = lock(prototype);
    match std::panic::catch_unwind(AssertUnwindSafe(|| guard.clone())) {
        Ok(h) => Some(h),
        Err(payload) => {
            tracing::error!(
                message = Panicked::from_payload(&*payload).message(),
                "cloning the pool's handler panicked"
            );
            None
        }
    }
}

/// Waits for a batch of jobs. False: this worker must stop.
async fn fetch<Req, Resp, E>(
    shared: &Shared<Req, Resp, E>,
    slot: &WorkerSlot,
    buf: &mut Buffers<Req, Resp, E>,
    batch: usize,
    registered: &mut Option<Waker>,
    timing: &mut Timing,
) -> bool {
    let mut idle_timer: Option<Pin<Box<Sleep>>> = None;
    let mut search = EndSearch {
        shared,
        search: Search::Fresh,
    };
    poll_fn(|cx| {
        if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            slot.runner.register(cx.waker());
            *registered = Some(cx.waker().clone());
        }
        let expired = |waker: &Waker| {
            idle_timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(shared.config.idle_timeout)))
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker))
                .is_ready()
        };
        match shared.fetch(slot, batch, &mut search.search, buf, cx.waker(), expired) {
            Fetched::Batch => Poll::Ready(true),
            Fetched::Left => Poll::Ready(false),
            Fetched::Yield => {
                // Woken during its own poll, the task goes to the back of its thread's run
                // queue (tokio treats it as a yield), behind the task that was woken meanwhile.
                timing.wait(&shared.clock, &slot.counters.run_time);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Fetched::Parked => {
                timing.wait(&shared.clock, &slot.counters.run_time);
                Poll::Pending
            }
        }
    })
    .await
}

/// Returns `Pending` once, woken: tokio puts a task woken during its own poll at the back of
/// its thread's run queue, so the tasks queued there run first (unlike `tokio::task::yield_now`,
/// this does not make the thread poll its I/O driver when nothing else is queued).
async fn yield_once() {
    let mut yielded = false;
    poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Ends a worker's search if its fetch is dropped mid-search (see `sched::claim`).
struct EndSearch<'a, Req, Resp, E> {
    shared: &'a Shared<Req, Resp, E>,
    search: Search,
}

impl<Req, Resp, E> Drop for EndSearch<'_, Req, Resp, E> {
    fn drop(&mut self) {
        self.shared.end_search(&mut self.search);
    }
}

/// Runs one job; returns a run time in ns when one was measured (see the module docs' clock
/// reads: the job's own, or the mean of the run of jobs recorded at its end).
#[allow(clippy::too_many_arguments)]
async fn run_one<Req, H>(
    shared: &Shared<Req, H::Response, H::Error>,
    slot: &WorkerSlot,
    handler: &mut H,
    prototype: &std::sync::Mutex<H>,
    worker_ctx: Option<&Context>,
    entry: Entry<Req, H::Response, H::Error>,
    last_in_batch: bool,
    registered: &mut Option<Waker>,
    timing: &mut Timing,
) -> Option<u64>
where
    Req: Send + 'static,
    H: Handler<Req> + Clone,
{
    let Entry {
        req,
        cell,
        id,
        level,
        stamp,
    } = entry;
    if slot.take_cancel(id) {
        // Cancelled by id while claimed: the worker ends it (unless its handle's cancel did,
        // and counted it).
        match &cell {
            Some(c) => {
                if c.cancel_claimed() {
                    slot.counters.bump_single_writer(Outcome::Cancelled);
                    c.resolve(Err(JobError::Cancelled));
                }
            }
            None => slot.counters.bump_single_writer(Outcome::Cancelled),
        }
        return None;
    }
    if let Some(c) = &cell
        && !c.start()
    {
        return None; // cancelled while claimed: the canceller resolved and counted it
    }
    let resolve = |result| {
        if let Some(c) = &cell {
            // `cell` is the worker's own reference. With no other, the handle was dropped and
            // nobody can ever read the outcome: it is not stored (only counted).
            if Arc::strong_count(c) <= 1 {
                c.resolve_detached();
            } else {
                c.resolve(result);
            }
        }
    };
    // The blacklist key, only when there is a blacklist to check and to feed on a panic.
    let key = shared.blacklist.as_ref().and_then(|_| shared.key_of(&req));
    let early = if shared.cancelling() {
        Some(JobError::Cancelled)
    } else if let (Some(bl), Some(k)) = (&shared.blacklist, &key)
        && bl.is_blacklisted(k)
    {
        Some(JobError::Blacklisted { key: k.clone() })
    } else {
        None
    };
    if let Some(err) = early {
        drop(req);
        slot.counters.bump_single_writer(err.outcome());
        resolve(Err(err));
        return None;
    }

    // Creating a span costs even when nothing records it (with tracing's `log` feature on, it
    // goes through `log`'s checks): skip it when no subscriber wants debug spans.
    let span = if tracing::level_enabled!(tracing::Level::DEBUG) {
        tracing::debug_span!("job", id, priority = level)
    } else {
        tracing::Span::none()
    };
    let mut start_ns = timing.now(&shared.clock);
    slot.counters.queue_wait[level as usize]
        .record_ns_single_writer(start_ns.saturating_sub(stamp));
    slot.busy.store(true, Ordering::Relaxed);

    let timeout = shared.config.timeout;
    // Deadlines are tokio's: its timers (and a paused clock in tests) measure them.
    let deadline = timeout.map(|d| Instant::now() + d);
    let (job_ctx, job_cancel) = match worker_ctx {
        Some(w) => {
            let (c, cancel) = match deadline {
                Some(t) => w.with_deadline(t),
                None => w.with_cancel(),
            };
            (Some(c), Some(cancel))
        }
        None => (None, None),
    };

    // Whether the job returned `Pending` (then its run time is measured alone).
    let mut waited = false;
    let ran = {
        let _enter = span.enter();
        std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(job_ctx, req)))
    };
    let ran: Ran<H::Response, H::Error> = match ran {
        Err(payload) => Ran::Panicked(Panicked::from_payload(&*payload)),
        Ok(fut) => {
            let mut fut = pin!(fut);
            let mut sleep = deadline.map(|t| Box::pin(tokio::time::sleep_until(t)));
            let mut first = true;
            poll_fn(|cx| {
                let _enter = span.enter();
                if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    slot.runner.register(cx.waker());
                    *registered = Some(cx.waker().clone());
                }
                if cell.as_ref().is_some_and(|c| c.cancel_requested())
                    || shared.cancelling()
                    || slot.take_cancel(id)
                {
                    return Poll::Ready(Ran::Cancelled);
                }
                // The timer first: a job that ends on its deadline (say, because its Context
                // did) timed out, as its Context says.
                if let Some(s) = &mut sleep
                    && s.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Ran::TimedOut);
                }
                match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                    Ok(Poll::Ready(r)) => Poll::Ready(Ran::Done(r)),
                    Ok(Poll::Pending) => {
                        if std::mem::take(&mut first) {
                            // It waits, so it gets its own run time: the run of jobs before
                            // it is recorded now (with this job's first poll).
                            waited = true;
                            if let Some(t) = timing.flush(&shared.clock, &slot.counters.run_time) {
                                start_ns = t;
                            }
                        }
                        Poll::Pending
                    }
                    Err(payload) => Poll::Ready(Ran::Panicked(Panicked::from_payload(&*payload))),
                }
            })
            .await
        }
    };
    let run_time = if waited {
        let end_ns = shared.clock.now_ns();
        timing.last = Some(end_ns);
        slot.counters
            .run_time
            .record_ns_single_writer(end_ns - start_ns);
        Some(u64::try_from(end_ns - start_ns).unwrap_or(0))
    } else {
        timing.unrecorded += 1;
        if last_in_batch {
            // Recorded before the job's handle resolves: once a batch's handles have all
            // resolved, its run times are all in the stats.
            timing.flush_mean(&shared.clock, &slot.counters.run_time)
        } else {
            None
        }
    };

    let result = match ran {
        Ran::Done(Ok(v)) => Ok(v),
        Ran::Done(Err(e)) => Err(JobError::Failed(e)),
        Ran::Cancelled => Err(JobError::Cancelled),
        Ran::TimedOut => Err(JobError::TimedOut),
        Ran::Panicked(panicked) => {
            let _enter = span.enter();
            tracing::warn!(message = panicked.message(), "job panicked");
            Err(JobError::Panicked(panicked))
        }
    };
    match (&result, job_cancel) {
        (Err(JobError::Cancelled), Some(c)) => c.cancel_with("job cancelled"),
        (Err(JobError::TimedOut), Some(c)) => c.cancel_with("job timed out"),
        _ => {}
    }
    if let Err(JobError::Panicked(_)) = &result {
        if let (Some(bl), Some(k)) = (&shared.blacklist, &key) {
            bl.record_panic(k);
        }
        if shared.config.panic_policy == PanicPolicy::ReplaceWorker
            && let Some(h) = fresh(prototype)
        {
            // (If the clone panicked, the worker keeps the handler it has.)
            *handler = h;
            slot.counters.restart_single_writer();
        }
    }
    let outcome = Outcome::of(&result);
    slot.counters.bump_single_writer(outcome);
    slot.busy.store(false, Ordering::Relaxed);
    resolve(result);
    run_time
}

/// The worker's clock reads (see the module docs).
#[derive(Default)]
struct Timing {
    /// The last clock read, standing for "now" while the worker has not waited since.
    last: Option<i64>,
    /// Jobs run since `last` that finished at their first poll, their run time not recorded.
    unrecorded: u64,
}

impl Timing {
    /// A job's start: the last read, or a fresh one after a wait.
    fn now(&mut self, clock: &Clock) -> i64 {
        *self.last.get_or_insert_with(|| clock.now_ns())
    }

    /// Reads the clock if jobs are unrecorded, recording each with their mean run time: the
    /// time read.
    fn flush(&mut self, clock: &Clock, run_time: &Histogram) -> Option<i64> {
        if self.unrecorded == 0 {
            return None;
        }
        let now = clock.now_ns();
        self.record(now, run_time);
        Some(now)
    }

    /// Reads the clock and records the unrecorded jobs (at least one): their mean run time.
    fn flush_mean(&mut self, clock: &Clock, run_time: &Histogram) -> Option<u64> {
        let now = clock.now_ns();
        self.record(now, run_time)
    }

    fn record(&mut self, now: i64, run_time: &Histogram) -> Option<u64> {
        let n = std::mem::take(&mut self.unrecorded);
        let since = self.last.replace(now).unwrap_or(now);
        if n == 0 {
            return None;
        }
        let mean = u64::try_from(now.saturating_sub(since)).unwrap_or(0) / n;
        run_time.record_many_single_writer(mean, n);
        Some(mean)
    }

    /// The worker is about to wait: what it ran is recorded, and the next start reads the
    /// clock afresh.
    fn wait(&mut self, clock: &Clock, run_time: &Histogram) {
        self.flush(clock, run_time);
        self.last = None;
    }
}
