use std::error::Error;
use std::fmt;

use crate::task::Panicked;

/// The first panic among a [`WaitGroup`](super::WaitGroup)'s tasks, reported by
/// [`WaitGroup::wait`](super::WaitGroup::wait) after every task has ended.
///
/// # Examples
///
/// ```
/// use weft_core::group::WaitGroup;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let wg = WaitGroup::new();
/// wg.go(async { panic!("disk on fire") });
/// wg.go(async {});
/// let err = wg.wait().await.unwrap_err();
/// assert_eq!(err.message(), "disk on fire");
/// assert_eq!(err.panicked().message(), "disk on fire");
/// assert_eq!(err.count(), 1);
/// assert_eq!(err.to_string(), "task panicked: disk on fire");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicError {
    pub(super) first: Panicked,
    pub(super) count: usize,
}

impl PanicError {
    /// Returns the first panic.
    ///
    /// ```
    /// # use weft_core::group::WaitGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let wg = WaitGroup::new();
    /// wg.go(async { panic!("x") });
    /// let first = wg.wait().await.unwrap_err().panicked().clone();
    /// assert_eq!(first, weft_core::Panicked::new("x"));
    /// # }
    /// ```
    #[must_use]
    pub fn panicked(&self) -> &Panicked {
        &self.first
    }

    /// Returns the first panic's message.
    ///
    /// ```
    /// # use weft_core::group::WaitGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let wg = WaitGroup::new();
    /// wg.go(async { panic!("x") });
    /// assert_eq!(wg.wait().await.unwrap_err().message(), "x");
    /// # }
    /// ```
    #[must_use]
    pub fn message(&self) -> &str {
        self.first.message()
    }

    /// Returns how many tasks panicked since the previous `wait` (at least 1).
    ///
    /// ```
    /// # use weft_core::group::WaitGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let wg = WaitGroup::new();
    /// wg.go(async { panic!("a") });
    /// wg.go(async { panic!("b") });
    /// assert_eq!(wg.wait().await.unwrap_err().count(), 2);
    /// # }
    /// ```
    #[must_use]
    pub fn count(&self) -> usize {
        self.count
    }
}

impl fmt::Display for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.first)?;
        if self.count > 1 {
            write!(f, " (and {} more panicked)", self.count - 1)?;
        }
        Ok(())
    }
}

impl Error for PanicError {}

/// Why an [`ErrGroup`](super::ErrGroup) or [`ResultGroup`](super::ResultGroup) task failed:
/// the error it returned, or its panic.
///
/// `Display` shows the task's error as it is, or `task panicked: {message}`; `source()` is
/// the task's error's source.
///
/// # Examples
///
/// ```
/// use weft_core::group::{ErrGroup, GroupError};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut group = ErrGroup::new();
/// group.go(async { Err::<(), _>("no route to host") }).await;
/// match group.wait().await {
///     Err(GroupError::Failed(e)) => assert_eq!(e, "no route to host"),
///     other => panic!("unexpected {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupError<E> {
    /// The task returned this error.
    Failed(E),
    /// The task panicked; [`Panicked::message`] says with what.
    Panicked(Panicked),
}

impl<E> GroupError<E> {
    /// Returns the task's error, or `None` if it panicked.
    ///
    /// ```
    /// use weft_core::group::GroupError;
    /// assert_eq!(GroupError::Failed(5).into_error(), Some(5));
    /// ```
    #[must_use]
    pub fn into_error(self) -> Option<E> {
        match self {
            GroupError::Failed(e) => Some(e),
            GroupError::Panicked(_) => None,
        }
    }

    /// Returns `true` if the task panicked.
    ///
    /// ```
    /// use weft_core::{Panicked, group::GroupError};
    /// assert!(GroupError::<()>::Panicked(Panicked::new("x")).is_panic());
    /// ```
    #[must_use]
    pub fn is_panic(&self) -> bool {
        matches!(self, GroupError::Panicked(_))
    }
}

impl<E: fmt::Display> fmt::Display for GroupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::Failed(e) => fmt::Display::fmt(e, f),
            GroupError::Panicked(p) => write!(f, "task {p}"),
        }
    }
}

impl<E: Error + 'static> Error for GroupError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            GroupError::Failed(e) => e.source(),
            GroupError::Panicked(_) => None,
        }
    }
}

/// The error of `try_go` on a group at its concurrency limit, or of
/// [`ErrGroupHandle::try_go`](super::ErrGroupHandle::try_go) once the group is dropped; it
/// hands the future back.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroUsize;
/// use weft_core::group::ErrGroup;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut group = ErrGroup::<String>::new();
/// group.set_limit(NonZeroUsize::MIN);
/// group.try_go(std::future::pending()).unwrap();
/// let err = group.try_go(async { Ok(()) }).unwrap_err();
/// assert_eq!(err.to_string(), "group is at its concurrency limit or dropped");
/// let _future = err.into_inner(); // run it later, or elsewhere
/// # }
/// ```
pub struct TryGoError<F>(pub F);

impl<F> TryGoError<F> {
    /// Returns the future that was not spawned.
    ///
    /// ```
    /// use weft_core::group::TryGoError;
    /// assert_eq!(TryGoError(7).into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> F {
        self.0
    }
}

impl<F> fmt::Debug for TryGoError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TryGoError").finish_non_exhaustive()
    }
}

impl<F> fmt::Display for TryGoError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("group is at its concurrency limit or dropped")
    }
}

impl<F> Error for TryGoError<F> {}
