//! [`JobHandle`]: await a job's result, or cancel it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::cell::{Cancel, Cell};
use super::id::JobId;
use crate::error::JobError;
use crate::priority::Priority;

/// Removes a cancelled job from the queue and accounts for it; implemented by the pool.
pub(crate) trait CancelQueued: Send + Sync {
    fn cancelled_while_queued(&self, id: u64, level: u8);
    /// Wakes the workers so the one running a job flagged for cancellation sees the flag.
    fn wake_workers(&self);
}

/// A handle to one submitted job: await it for the job's result, or cancel it.
///
/// Equivalent to an `async fn(self) -> Result<Resp, JobError<E>>`. Dropping the handle detaches
/// the job (it still runs and is counted), like dropping a tokio `JoinHandle`; it does not
/// cancel it.
///
/// # Cancel safety
///
/// Awaiting a handle is cancel safe: dropping the `.await` (for example in `select!`) loses
/// nothing; the job keeps its place and its outcome is still counted.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use weft_pool::{JobError, Pool};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let pool = Pool::builder().workers(1).build_fn(|ctx, ms: u64| async move {
///     // A job that notices its Context.
///     let _ = ctx.run(tokio::time::sleep(Duration::from_millis(ms))).await;
///     Ok::<_, Infallible>(ms)
/// });
/// let running = pool.submit(10_000).await.unwrap();
/// let queued = pool.submit(1).await.unwrap();
/// assert!(queued.cancel(), "queued: removed and resolved");
/// assert_eq!(queued.await, Err(JobError::Cancelled));
/// tokio::task::yield_now().await; // let the worker start the first job
/// assert!(running.cancel(), "running: its Context is cancelled");
/// assert_eq!(running.await, Err(JobError::Cancelled));
/// # }
/// ```
#[must_use = "the job runs whether or not its handle is awaited; await the handle for its result, or call `detach()` to say the result is not wanted"]
pub struct JobHandle<Resp, E> {
    /// `None` only while being dropped.
    cell: Option<Arc<Cell<Resp, E>>>,
    id: u64,
    level: u8,
}

impl<Resp, E> JobHandle<Resp, E> {
    pub(crate) fn new(cell: Arc<Cell<Resp, E>>, id: u64, level: u8) -> Self {
        JobHandle {
            cell: Some(cell),
            id,
            level,
        }
    }

    /// This job's id.
    pub fn id(&self) -> JobId {
        JobId(self.id)
    }

    /// The priority it was submitted at.
    pub fn priority(&self) -> Priority {
        Priority::new(self.level)
    }

    /// Whether the job has ended (its outcome is ready, or was already taken).
    pub fn is_finished(&self) -> bool {
        self.cell.as_ref().is_none_or(|c| c.is_done())
    }

    /// Lets the job run on without waiting for it (the same as dropping the handle, but says
    /// so; clippy flags `let _ = handle`). Its outcome is still counted in the pool's stats.
    pub fn detach(self) {}

    /// Cancels the job. A queued job is removed from the queue and resolves
    /// [`JobError::Cancelled`] at once; a running job has its Context cancelled and its future
    /// dropped by its worker, and resolves `Cancelled` (unless it finished in the meantime, in
    /// which case its real outcome stands).
    ///
    /// Returns `false` if the job had already ended (or a cancel was already requested).
    pub fn cancel(&self) -> bool {
        let Some(cell) = &self.cell else {
            return false;
        };
        // The pool (none for a job refused at submission) is found through its cell's uid,
        // only when needed (see `sched::stash::PoolRef`).
        let pool = || cell.stash.and_then(|(_, uid)| crate::sched::pool_of(uid));
        match cell.cancel() {
            Cancel::WasQueued => {
                if let Some(pool) = pool() {
                    pool.cancelled_while_queued(self.id, self.level);
                }
                cell.resolve(Err(JobError::Cancelled));
                true
            }
            Cancel::Flagged => {
                if let Some(pool) = pool() {
                    pool.wake_workers();
                }
                true
            }
            Cancel::NoEffect => false,
        }
    }
}

impl<Resp, E> Drop for JobHandle<Resp, E> {
    fn drop(&mut self) {
        // A job still queued gives its cell to the pool (see `sched::stash`): its worker then
        // neither touches the cell nor stores an outcome nobody can read, and the cell serves
        // this thread's next submit. A job already claimed or running keeps it (its worker
        // sees the handle is gone and stores nothing).
        if let Some(cell) = self.cell.take()
            && cell.maybe_queued()
            && let Some((stash, _)) = cell.stash
        {
            stash(cell, self.id, self.level);
        }
    }
}

impl<Resp, E> Future for JobHandle<Resp, E> {
    type Output = Result<Resp, JobError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.cell.as_ref().map(|c| c.poll_result(cx.waker())) {
            Some(Some(r)) => Poll::Ready(r),
            Some(None) => Poll::Pending,
            None => Poll::Ready(Err(JobError::Cancelled)), // unreachable: only while dropped
        }
    }
}

impl<Resp, E> fmt::Debug for JobHandle<Resp, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("id", &self.id)
            .field("priority", &self.level)
            .field("finished", &self.is_finished())
            .finish()
    }
}
