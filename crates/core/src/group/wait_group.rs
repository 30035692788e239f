//! Go's `sync.WaitGroup`, over tokio-util's `TaskTracker`, with panics reported.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, ready};

use pin_project_lite::pin_project;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::{TaskTrackerToken, TaskTrackerWaitFuture};

use super::error::PanicError;
use crate::task::{Panicked, catch_panic};

/// Go's `sync.WaitGroup` without its foot-guns: [`go`](WaitGroup::go) spawns and counts a
/// task, [`add`](WaitGroup::add) counts other work through a guard whose drop is `Done`, and
/// [`wait`](WaitGroup::wait) waits until the count is zero and reports the first panic.
///
/// | Go | weft |
/// |---|---|
/// | `wg.Add(1); go func() { defer wg.Done(); ... }()` | [`wg.go(async { ... })`](WaitGroup::go) |
/// | `wg.Add(1)` ... `defer wg.Done()` elsewhere | [`let guard = wg.add();`](WaitGroup::add) ... `drop(guard)` |
/// | `wg.Wait()` | [`wg.wait().await`](WaitGroup::wait) |
///
/// What cannot go wrong here: a `Done` is never forgotten (the guard's drop is the `Done`,
/// and it runs during a panic too), never doubled (the guard is consumed), the counter never
/// goes negative, `Add` never races `Wait` (`go` counts the task before spawning it), and a
/// copy is never a different group (clones share one counter). A panicking task neither
/// kills the program nor goes unseen: it is logged through `tracing` and `wait` returns
/// [`PanicError`] with the first panic's message, after every task has ended, as
/// sourcegraph/conc's `WaitGroup` does.
///
/// The group is reusable: once `wait` returns, new tasks start a new round (a panic is
/// reported by one `wait` only).
///
/// # Compared with `JoinSet` and `TaskTracker`
///
/// It is built on tokio-util's [`TaskTracker`] (kept closed, so waiting means "count is
/// zero", Go's semantics) and shares its trade-offs:
///
/// - **Drop.** Dropping a `WaitGroup` (or every clone) neither aborts nor waits for its
///   tasks: they run on, detached, exactly as with `TaskTracker`. A
///   [`JoinSet`](tokio::task::JoinSet) aborts all its tasks when dropped. Use
///   [`ErrGroup`](super::ErrGroup) (over `JoinSet`) for abort-on-drop.
/// - **Memory.** The group holds a counter, not the tasks: a finished task is freed at once
///   and its output (always `()`) is dropped. A `JoinSet` keeps every finished task and its
///   output until `join_next` collects it, so spawning a million tasks without joining keeps
///   a million entries.
/// - **Panics.** `JoinSet` hands each panic to `join_next` as a `JoinError` to downcast, and
///   `TaskTracker` loses it (its tasks are detached). Here `wait` reports it with its message.
/// - **Results.** Tasks return `()`. To collect outputs, use [`ResultGroup`](super::ResultGroup)
///   (submission order) or a `JoinSet` (completion order).
/// - **Sharing.** Methods take `&self` and the group is `Clone`, so tasks can spawn more
///   tasks into their own group; a `JoinSet` needs `&mut`.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use weft_core::group::WaitGroup;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let wg = WaitGroup::new();
/// let sum = Arc::new(AtomicUsize::new(0));
/// for i in 1..=5 {
///     let sum = Arc::clone(&sum);
///     wg.go(async move {
///         sum.fetch_add(i, Ordering::Relaxed);
///     });
/// }
/// wg.wait().await.expect("no task panicked");
/// assert_eq!(sum.load(Ordering::Relaxed), 15);
/// # }
/// ```
#[derive(Clone)]
pub struct WaitGroup {
    tracker: TaskTracker,
    panics: Arc<Panics>,
}

/// The first panic since the last `wait`, and how many there were.
#[derive(Default)]
struct Panics {
    slot: Mutex<Option<Recorded>>,
}

struct Recorded {
    first: Panicked,
    count: usize,
    /// `false` for a panic seen only by a guard's drop, which cannot know the message.
    precise: bool,
}

impl Panics {
    fn record(&self, panicked: Panicked, precise: bool) {
        tracing::error!(panic = %panicked.message(), "task in a WaitGroup panicked");
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_mut() {
            None => {
                *slot = Some(Recorded {
                    first: panicked,
                    count: 1,
                    precise,
                });
            }
            Some(r) => {
                // A `go` task that panics while holding a guard is seen twice: by the guard's
                // drop (without the message) and then by `go`'s catch. Keep the message and
                // count it once.
                if !r.precise && precise {
                    r.first = panicked;
                    r.precise = true;
                } else {
                    r.count += 1;
                }
            }
        }
    }

    fn take(&self) -> Option<PanicError> {
        let recorded = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        recorded.map(|r| PanicError {
            first: r.first,
            count: r.count,
        })
    }
}

impl WaitGroup {
    /// Returns an empty group.
    ///
    /// ```
    /// use weft_core::group::WaitGroup;
    /// let wg = WaitGroup::new();
    /// assert!(wg.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> WaitGroup {
        let tracker = TaskTracker::new();
        // Kept closed for good: a closed tracker's `wait` ends whenever its count is zero,
        // which is Go's `Wait`, and spawning into a closed tracker is allowed.
        tracker.close();
        WaitGroup {
            tracker,
            panics: Arc::default(),
        }
    }

    /// Spawns `future` on the current tokio runtime and counts it until it ends (Go's
    /// `wg.Add(1); go func() { defer wg.Done(); ... }()`).
    ///
    /// The task is counted before it is spawned, so a `wait` that starts after `go` returns
    /// always waits for it. A panic in the task is caught, logged, and reported by the next
    /// [`wait`](WaitGroup::wait).
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime, as [`tokio::spawn`] does.
    ///
    /// ```
    /// use weft_core::group::WaitGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let wg = WaitGroup::new();
    /// let (tx, rx) = tokio::sync::oneshot::channel();
    /// wg.go(async move { tx.send(1).unwrap() });
    /// wg.wait().await.unwrap();
    /// assert_eq!(rx.await, Ok(1));
    /// # }
    /// ```
    #[track_caller]
    pub fn go<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let panics = Arc::clone(&self.panics);
        // The returned JoinHandle is dropped: the task is detached and only counted.
        drop(self.tracker.spawn(async move {
            if let Err(panicked) = catch_panic(future).await {
                panics.record(panicked, true);
            }
        }));
    }

    /// Counts one unit of work that is not spawned by this group, until the returned guard is
    /// dropped (Go's `wg.Add(1)`, with the guard's drop as `wg.Done()`).
    ///
    /// Move the guard into the work; it is released when the work ends however it ends,
    /// including by a panic, which `wait` then reports (without its message, which a guard
    /// cannot see: `panicked while holding a WaitGroup guard`).
    ///
    /// ```
    /// use weft_core::group::WaitGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let wg = WaitGroup::new();
    /// let guard = wg.add();
    /// std::thread::spawn(move || {
    ///     // ... blocking work ...
    ///     drop(guard); // Done
    /// });
    /// wg.wait().await.unwrap();
    /// assert!(wg.is_empty());
    /// # }
    /// ```
    #[must_use = "the work is counted until the guard is dropped; dropping it at once counts nothing"]
    pub fn add(&self) -> WaitGuard {
        WaitGuard {
            token: self.tracker.token(),
            panics: Arc::clone(&self.panics),
        }
    }

    /// Waits until every counted task and guard is done (Go's `wg.Wait()`), then returns the
    /// first panic since the previous `wait`, if any.
    ///
    /// It returns as soon as the count is zero, even if new work is added later (as in Go).
    /// With an empty group it returns at once.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing. Tasks keep running and a panic stays
    /// recorded for the next `wait`.
    ///
    /// ```
    /// use weft_core::group::WaitGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let wg = WaitGroup::new();
    /// wg.go(async { panic!("oops") });
    /// assert_eq!(wg.wait().await.unwrap_err().message(), "oops");
    /// // Reusable: the next round starts clean.
    /// wg.go(async {});
    /// assert!(wg.wait().await.is_ok());
    /// # }
    /// ```
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            inner: self.tracker.wait(),
            panics: &self.panics,
        }
    }

    /// Returns how many tasks and guards are counted now.
    ///
    /// ```
    /// use weft_core::group::WaitGroup;
    /// let wg = WaitGroup::new();
    /// let _g = wg.add();
    /// assert_eq!(wg.len(), 1);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Returns `true` if nothing is counted.
    ///
    /// ```
    /// use weft_core::group::WaitGroup;
    /// assert!(WaitGroup::new().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }
}

impl Default for WaitGroup {
    /// Same as [`WaitGroup::new`].
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("len", &self.tracker.len())
            .finish_non_exhaustive()
    }
}

/// Counts one unit of work in a [`WaitGroup`] until dropped; made by [`WaitGroup::add`].
///
/// Dropping it is Go's `wg.Done()`; [`done`](WaitGuard::done) says so explicitly.
///
/// ```
/// use weft_core::group::WaitGroup;
/// let wg = WaitGroup::new();
/// let guard = wg.add();
/// assert_eq!(wg.len(), 1);
/// guard.done();
/// assert_eq!(wg.len(), 0);
/// ```
#[must_use = "the work is counted until the guard is dropped; dropping it at once counts nothing"]
pub struct WaitGuard {
    token: TaskTrackerToken,
    panics: Arc<Panics>,
}

impl WaitGuard {
    /// Marks the work done (Go's `wg.Done()`); the same as dropping the guard.
    ///
    /// ```
    /// use weft_core::group::WaitGroup;
    /// let wg = WaitGroup::new();
    /// wg.add().done();
    /// assert!(wg.is_empty());
    /// ```
    pub fn done(self) {
        drop(self);
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.panics.record(
                Panicked::new("panicked while holding a WaitGroup guard"),
                false,
            );
        }
        // `token` is dropped after this body: the panic is recorded before the count drops,
        // so the `wait` this drop releases sees it.
    }
}

impl fmt::Debug for WaitGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGuard")
            .field("group_len", &self.token.task_tracker().len())
            .finish()
    }
}

pin_project! {
    /// Future returned by [`WaitGroup::wait`]; behaves like
    /// `async fn wait(&self) -> Result<(), PanicError>`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it loses nothing.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Wait<'a> {
        #[pin]
        inner: TaskTrackerWaitFuture<'a>,
        panics: &'a Panics,
    }
}

impl Future for Wait<'_> {
    type Output = Result<(), PanicError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        ready!(this.inner.poll(cx));
        Poll::Ready(this.panics.take().map_or(Ok(()), Err))
    }
}

impl fmt::Debug for Wait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait").finish_non_exhaustive()
    }
}
