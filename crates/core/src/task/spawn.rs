//! Panic-safe spawn: Go's "SafeGo", with a handle that says what happened.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};

use tokio::task::{AbortHandle, Id, JoinHandle};

use super::panic::{Panicked, catch_panic};

/// The name given to tasks spawned with [`spawn`].
const UNNAMED: &str = "unnamed";

/// Why a task spawned with [`spawn`] or [`spawn_named`] gave no output: the readable
/// replacement for tokio's [`JoinError`](tokio::task::JoinError).
///
/// # Examples
///
/// ```
/// use weft_core::task::{self, TaskError};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handle = task::spawn_named("parser", async { panic!("bad header") });
/// let err = handle.await.unwrap_err();
/// assert_eq!(err, TaskError::Panicked(weft_core::Panicked::new("bad header")));
/// assert_eq!(err.to_string(), "task panicked: bad header");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked; [`Panicked::message`] is what it panicked with (the `panic!`
    /// message, or a placeholder when the payload was not a string).
    #[error("task {0}")]
    Panicked(Panicked),
    /// The task was aborted (with [`TaskHandle::abort`]) or its runtime shut down before it
    /// finished.
    #[error("task was cancelled")]
    Cancelled,
}

impl TaskError {
    /// Returns `true` for [`TaskError::Panicked`].
    ///
    /// ```
    /// use weft_core::{Panicked, task::TaskError};
    /// assert!(TaskError::Panicked(Panicked::new("x")).is_panic());
    /// ```
    #[must_use]
    pub fn is_panic(&self) -> bool {
        matches!(self, TaskError::Panicked(_))
    }

    /// Returns `true` for [`TaskError::Cancelled`].
    ///
    /// ```
    /// use weft_core::task::TaskError;
    /// assert!(TaskError::Cancelled.is_cancelled());
    /// ```
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled)
    }
}

/// Spawns `future` on the current tokio runtime, catching its panics (Go's "SafeGo").
///
/// Same as [`spawn_named`] with the name `"unnamed"`; prefer `spawn_named` so that a panic
/// log says which task it was.
///
/// # Panics
///
/// Panics if called outside a tokio runtime, as [`tokio::spawn`] does.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handle = weft_core::task::spawn(async { 6 * 7 });
/// assert_eq!(handle.await, Ok(42));
/// # }
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> TaskHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_inner(Arc::from(UNNAMED), future)
}

/// Spawns `future` on the current tokio runtime under `name`, catching its panics (Go's
/// "SafeGo" pattern, without the boilerplate).
///
/// A panic ends only this task: it is logged through `tracing` at `ERROR` level (fields `task`
/// with the name, `task.id`, and `panic` with the message) and the handle resolves to
/// [`TaskError::Panicked`] with the message. Nothing else changes from [`tokio::spawn`]: the
/// task starts at once and runs to completion whether or not the handle is kept.
///
/// # Panics
///
/// Panics if called outside a tokio runtime, as [`tokio::spawn`] does.
///
/// # Examples
///
/// ```
/// use weft_core::task::{self, TaskError};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ok = task::spawn_named("adder", async { 1 + 1 });
/// let bad = task::spawn_named("divider", async {
///     let zero = std::hint::black_box(0);
///     1 / zero
/// });
/// assert_eq!(ok.await, Ok(2));
/// assert!(matches!(bad.await, Err(TaskError::Panicked(p)) if p.message().contains("divide by zero")));
/// # }
/// ```
#[track_caller]
pub fn spawn_named<F>(name: impl Into<Arc<str>>, future: F) -> TaskHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_inner(name.into(), future)
}

#[track_caller]
fn spawn_inner<F>(name: Arc<str>, future: F) -> TaskHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task_name = Arc::clone(&name);
    let inner = tokio::spawn(async move {
        match catch_panic(future).await {
            Ok(output) => Ok(output),
            Err(panicked) => {
                tracing::error!(
                    task = %task_name,
                    task.id = %tokio::task::id(),
                    panic = %panicked.message(),
                    "task panicked"
                );
                Err(panicked)
            }
        }
    });
    TaskHandle { inner, name }
}

/// An owned permission to await a task spawned with [`spawn`] or [`spawn_named`]: it resolves
/// to `Ok(output)`, or to a [`TaskError`] that says whether the task panicked (with the
/// message) or was cancelled.
///
/// # Drop
///
/// As with tokio's [`JoinHandle`], dropping the handle detaches the task: it keeps running,
/// and a panic is still logged.
///
/// # Cancel safety
///
/// Awaiting the handle is cancel safe: dropping the `.await` (for example in a `select!`
/// branch) drops only the handle, and the task runs on. Poll `&mut handle` to keep it.
///
/// # Examples
///
/// ```
/// use weft_core::task::{self, TaskError};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handle = task::spawn_named("forever", std::future::pending::<()>());
/// assert_eq!(handle.name(), "forever");
/// handle.abort();
/// assert_eq!(handle.await, Err(TaskError::Cancelled));
/// # }
/// ```
#[must_use = "dropping a TaskHandle detaches the task; await it to learn how it ended"]
pub struct TaskHandle<T> {
    inner: JoinHandle<Result<T, Panicked>>,
    name: Arc<str>,
}

impl<T> TaskHandle<T> {
    /// Returns the task's name (`"unnamed"` for [`spawn`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// assert_eq!(weft_core::task::spawn_named("a", async {}).name(), "a");
    /// # }
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns tokio's id of the task (the `task.id` field of the panic log).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let a = weft_core::task::spawn(async {});
    /// let b = weft_core::task::spawn(async {});
    /// assert_ne!(a.id(), b.id());
    /// # }
    /// ```
    #[must_use]
    pub fn id(&self) -> Id {
        self.inner.id()
    }

    /// Aborts the task; awaiting the handle then gives [`TaskError::Cancelled`] unless the task
    /// had already finished. As with tokio, a task is only stopped at an `.await` point.
    ///
    /// ```
    /// use weft_core::task::{self, TaskError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handle = task::spawn(std::future::pending::<()>());
    /// handle.abort();
    /// assert_eq!(handle.await, Err(TaskError::Cancelled));
    /// # }
    /// ```
    pub fn abort(&self) {
        self.inner.abort();
    }

    /// Returns a handle that can abort the task without owning this handle.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handle = weft_core::task::spawn(std::future::pending::<()>());
    /// let abort = handle.abort_handle();
    /// abort.abort();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # }
    /// ```
    #[must_use]
    pub fn abort_handle(&self) -> AbortHandle {
        self.inner.abort_handle()
    }

    /// Returns `true` once the task has finished (by returning, panicking or being aborted).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handle = weft_core::task::spawn(std::future::pending::<()>());
    /// assert!(!handle.is_finished());
    /// # }
    /// ```
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let joined = ready!(Pin::new(&mut self.inner).poll(cx));
        Poll::Ready(match joined {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(panicked)) => Err(TaskError::Panicked(panicked)),
            Err(err) if err.is_cancelled() => Err(TaskError::Cancelled),
            // Panics are caught inside the task, so tokio only reports one if dropping the
            // output or the future panicked; still report it rather than lose it.
            Err(err) => Err(TaskError::Panicked(Panicked::from_payload(
                &*err.into_panic(),
            ))),
        })
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("name", &self.name)
            .field("id", &self.inner.id())
            .field("finished", &self.inner.is_finished())
            .finish()
    }
}
