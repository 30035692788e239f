//! A worker: one task that takes jobs from the queue in batches and runs them one at a time.
//!
//! Plan of the loop: make sure the handler is ready (a panic or error there replaces it with a
//! fresh clone), take the next job from the local batch or fetch a batch from the queue (parking
//! when it is empty), run the job under `catch_unwind` racing its cancel flag and its timeout,
//! count the outcome in the worker's own counters, then resolve the job's handle.
//!
//! A worker that finds the queue empty does not park at once: if no other worker is doing so,
//! it spins for a few microseconds on the queue's fill hint (and, once a job is there, a
//! little longer for a batch's worth), while submits wake nobody. Waking a parked worker costs
//! the submitter a system call and both threads a context switch, which for short jobs cost
//! more than the jobs; the spin is bounded, so an idle pool still parks all its workers.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use weft_core::Context;

use crate::builder::PanicPolicy;
use crate::error::{JobError, Outcome, panic_message};
use crate::handler::Handler;
use crate::lock;
use crate::queue::{EMPTY, Entry, SOME};
use crate::shared::{Shared, WorkerSlot};

/// How much work (at the recent average run time) a worker takes from the queue at once: a
/// batch amortises the queue lock over many short jobs, but a job queued behind a claimed batch
/// (say, a higher-priority one, or one another worker could run) waits for it. So a batch is
/// about this long: up to the configured batch of 100 ns jobs, and one job at a time once jobs
/// take longer than this.
const BATCH_WORK_NS: u64 = 25_000;

/// How many times a worker that finds the queue empty checks it again, with a spin-loop hint
/// between checks (a few microseconds in all), before it parks.
const SPIN: u32 = 128;

/// Once a job has come, how many more checks a spinning worker waits for a batch's worth.
const SPIN_FOR_BATCH: u32 = 32;

enum Ran<T, E> {
    Done(Result<T, E>),
    Panicked(String),
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
    let mut local: VecDeque<Entry<Req, H::Response, H::Error>> = VecDeque::new();
    let mut release = vec![0usize; shared.config.levels as usize];
    // The intake's vectors land here (the intake gets these, emptied, in exchange: their
    // capacity goes back and forth instead of being allocated per batch), then move into
    // the sorted queue.
    let mut moved: Moved<Req, H::Response, H::Error> =
        (0..shared.config.levels).map(|_| Vec::new()).collect();
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
            if shared.cancel_all.load(Ordering::Relaxed) {
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
            if shared.cancel_all.load(Ordering::Relaxed) {
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
        let entry = match local.pop_front() {
            Some(e) => e,
            None => {
                let batch = usize::try_from(BATCH_WORK_NS / avg_run.max(1))
                    .unwrap_or(usize::MAX)
                    .clamp(1, shared.config.batch);
                if !fetch(
                    &shared,
                    &slot,
                    &mut local,
                    &mut moved,
                    &mut release,
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
        slot.claimed_len.store(local.len(), Ordering::Relaxed);

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
        slot.next
            .store(slot.next.load(Ordering::Relaxed) + 1, Ordering::Release);
        if let Some(t) = run_time {
            avg_run = avg_run.saturating_mul(7).saturating_add(t) / 8;
        }
    }

    // Leaving on a cancelling shutdown: jobs claimed but not started end here, cancelled.
    for e in local.drain(..) {
        match e.cell {
            Some(cell) => {
                if cell.cancel().0 {
                    slot.counters.bump_single_writer(Outcome::Cancelled);
                    cell.resolve(Err(JobError::Cancelled));
                }
            }
            None => slot.counters.bump_single_writer(Outcome::Cancelled),
        }
    }
    if counted {
        let mut st = lock(&shared.state);
        st.workers -= 1;
        st.unpark(slot.id);
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
                message = panic_message(&*payload),
                "cloning the pool's handler panicked"
            );
            None
        }
    }
}

/// Per level, jobs taken from the intake on their way to the sorted queue.
type Moved<Req, Resp, E> = Vec<Vec<Entry<Req, Resp, E>>>;

/// Waits for a batch of jobs. False: this worker must stop.
#[allow(clippy::too_many_arguments)]
async fn fetch<Req, Resp, E>(
    shared: &Arc<Shared<Req, Resp, E>>,
    slot: &WorkerSlot,
    local: &mut VecDeque<Entry<Req, Resp, E>>,
    moved: &mut [Vec<Entry<Req, Resp, E>>],
    release: &mut [usize],
    batch: usize,
    registered: &mut Option<Waker>,
    last_end: &mut Option<i64>,
) -> bool
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + 'static,
{
    let mut idle_timer: Option<Pin<Box<Sleep>>> = None;
    let mut may_spin = true;
    poll_fn(|cx| {
        if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            slot.runner.register(cx.waker());
            *registered = Some(cx.waker().clone());
        }
        let mut q = lock(&shared.sorted);
        let mut st = lock(&shared.state);
        // An empty queue: rather than park at once (a wake-up costs the submitter a system
        // call and both threads a context switch), one worker at a time spins briefly on the
        // queue's `nonempty` flag; meanwhile submits wake nobody.
        if may_spin
            && st.queued == 0
            && st.searching == 0
            && !st.closed
            && st.workers <= st.max
            && !shared.cancel_all.load(Ordering::Relaxed)
        {
            may_spin = false;
            st.searching += 1;
            let flag = std::sync::Arc::clone(&st.intake.nonempty);
            drop(st);
            drop(q);
            // Until a job comes; then, briefly, until a batch's worth has come, so that the
            // queue lock is taken once per batch rather than once per job.
            let mut wait = SPIN;
            let mut i = 0;
            while i < wait {
                match flag.get() {
                    EMPTY => {}
                    SOME if wait == SPIN => {
                        wait = i + SPIN_FOR_BATCH;
                    }
                    SOME => {}
                    _ => break,
                }
                std::hint::spin_loop();
                i += 1;
            }
            q = lock(&shared.sorted);
            st = lock(&shared.state);
            st.searching -= 1;
        }
        if let Some(i) = st.woken.iter().position(|w| *w == slot.id) {
            st.woken.swap_remove(i);
        }
        let leave = st.workers > st.max;
        if !leave && st.queued > 0 {
            st.unpark(slot.id);
            // Fair share: never take more than our part of what is queued (a parked worker
            // counts: a job held in this batch behind a slow one could have run there).
            let share = st.queued.div_ceil(st.workers.max(1));
            let n = batch.min(share).clamp(1, st.queued);
            st.queued -= n;
            st.intake.take_into(moved);
            // Jobs left and nobody on the way for them: wake the next worker (submits wake
            // one worker per batch, so the chain continues here).
            let next = if st.queued > 0 && st.woken.is_empty() && st.searching == 0 {
                st.idle.pop()
            } else {
                None
            };
            if let Some((w, _)) = &next {
                st.woken.push(*w);
            }
            drop(st);
            // Still under `sorted`: nobody else pops, so the `n` jobs counted out are there.
            q.append(moved);
            debug_assert!(q.len() >= n);
            q.pop_into(n, local, release);
            debug_assert_eq!(local.len(), n);
            drop(q);
            if let Some((_, w)) = next {
                w.wake();
            }
            slot.set_claimed(local.iter().map(|e| e.id));
            for (level, n) in release.iter_mut().enumerate() {
                shared.release(level as u8, std::mem::take(n));
            }
            return Poll::Ready(true);
        }
        let expired = !leave
            && !st.closed
            && st.workers > st.min
            && idle_timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(shared.config.idle_timeout)))
                .as_mut()
                .poll(cx)
                .is_ready();
        if leave || st.closed || expired {
            st.workers -= 1;
            st.unpark(slot.id);
            return Poll::Ready(false);
        }
        *last_end = None; // it waits: the next start needs its own clock read
        st.park(slot.id, cx.waker());
        Poll::Pending
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
    let early = if shared.cancel_all.load(Ordering::Relaxed) {
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
        Err(payload) => Ran::Panicked(panic_message(&*payload)),
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
                    || shared.cancel_all.load(Ordering::Relaxed)
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
                    Err(payload) => Poll::Ready(Ran::Panicked(panic_message(&*payload))),
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
        Ran::Panicked(message) => {
            let _enter = span.enter();
            tracing::warn!(message, "job panicked");
            Err(JobError::Panicked { message })
        }
    };
    match (&result, job_cancel) {
        (Err(JobError::Cancelled), Some(c)) => c.cancel_with("job cancelled"),
        (Err(JobError::TimedOut), Some(c)) => c.cancel_with("job timed out"),
        _ => {}
    }
    if let Err(JobError::Panicked { .. }) = &result {
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
