//! A worker: one task that takes jobs from the queue in batches and runs them one at a time.
//!
//! Plan of the loop: make sure the handler is ready (a panic or error there replaces it with a
//! fresh clone), take the next job from the local batch or fetch a batch from the queue (parking
//! when it is empty), run the job under `catch_unwind` racing its cancel flag and its timeout,
//! count the outcome in the worker's own counters, then resolve the job's handle.
//!
//! The queue side of step 2 (spinning, claiming, parking, leaving) is the scheduler core's
//! (`sched::claim`); this module is the worker's own loop and the running of one job.

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use weft_core::{Context, Panicked};

use crate::config::PanicPolicy;
use crate::error::{JobError, Outcome};
use crate::handler::Handler;
use crate::lock;
use crate::sched::{Buffers, Entry, Fetched, Shared, WorkerSlot, cancel_entry};

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
    // When the previous job ended, if nothing waited since: the next job's start time (one
    // clock read per job instead of two).
    let mut last_end: Option<i64> = None;
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
                    last_end = None;
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
                let batch = usize::try_from(BATCH_WORK_NS / avg_run.max(1))
                    .unwrap_or(usize::MAX)
                    .clamp(1, shared.config.batch);
                if !fetch(
                    &shared,
                    &slot,
                    &mut buf,
                    batch,
                    &mut registered,
                    &mut last_end,
                )
                .await
                {
                    counted = false; // `fetch` took this worker off the count
                    break;
                }
                continue;
            }
        };
        slot.claimed_len.store(buf.local.len(), Ordering::Relaxed);

        // 3. Run it (cancel by id finds it at `next`, and no longer after).
        let run_time = run_one(
            &shared,
            &slot,
            handler,
            &prototype,
            worker_ctx.as_ref().map(|(c, _)| c),
            entry,
            &mut registered,
            &mut last_end,
        )
        .await;
        slot.advance();
        if let Some(t) = run_time {
            avg_run = avg_run.saturating_mul(7).saturating_add(t) / 8;
        }
    }

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
    last_end: &mut Option<i64>,
) -> bool {
    let mut idle_timer: Option<Pin<Box<Sleep>>> = None;
    let mut may_spin = true;
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
        match shared.fetch(slot, batch, &mut may_spin, buf, cx.waker(), expired) {
            Fetched::Batch => Poll::Ready(true),
            Fetched::Left => Poll::Ready(false),
            Fetched::Parked => {
                *last_end = None; // it waits: the next start needs its own clock read
                Poll::Pending
            }
        }
    })
    .await
}

/// Runs one job; returns its run time in ns if it started.
#[allow(clippy::too_many_arguments)]
async fn run_one<Req, H>(
    shared: &Shared<Req, H::Response, H::Error>,
    slot: &WorkerSlot,
    handler: &mut H,
    prototype: &std::sync::Mutex<H>,
    worker_ctx: Option<&Context>,
    entry: Entry<Req, H::Response, H::Error>,
    registered: &mut Option<Waker>,
    last_end: &mut Option<i64>,
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
    let start_ns = last_end.take().unwrap_or_else(|| shared.clock.now_ns());
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

    let ran = {
        let _enter = span.enter();
        std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(job_ctx, req)))
    };
    let ran: Ran<H::Response, H::Error> = match ran {
        Err(payload) => Ran::Panicked(Panicked::from_payload(&*payload)),
        Ok(fut) => {
            let mut fut = pin!(fut);
            let mut sleep = deadline.map(|t| Box::pin(tokio::time::sleep_until(t)));
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
                    Ok(Poll::Pending) => Poll::Pending,
                    Err(payload) => Poll::Ready(Ran::Panicked(Panicked::from_payload(&*payload))),
                }
            })
            .await
        }
    };
    let end_ns = shared.clock.now_ns();
    let run_time = u64::try_from(end_ns - start_ns).unwrap_or(0);
    *last_end = Some(end_ns);
    slot.counters
        .run_time
        .record_ns_single_writer(end_ns - start_ns);

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
    Some(run_time)
}
