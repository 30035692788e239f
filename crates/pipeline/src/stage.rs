//! A stage's settings: name, workers, ordering, buffer, blocking threads, error policy.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::num::NonZeroUsize;

use crate::policy::{ErrorPolicy, Overflow};

/// A stage's settings. Every stage method takes `impl IntoStage`, so a plain name works where
/// the defaults do: `.map("square", f)` is `.map(Stage::new("square"), f)`.
///
/// `T` is the stage's input item and `E` its error type; they only matter for
/// [`ErrorPolicy::dead_letter`], and are inferred from the stage method.
///
/// # Examples
///
/// ```
/// use weft_core::Context;
/// use weft_pipeline::{Pipeline, Stage};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A CPU-bound stage on 4 blocking threads, output order kept.
/// let done = Pipeline::from_iter(0..1000u64)
///     .map(Stage::new("hash").workers(4).blocking().buffer(256), |x| x.wrapping_mul(0x9E37_79B9))
///     .collect::<Vec<_>>(Context::background())
///     .await?;
/// assert_eq!(done.output[3], 3u64.wrapping_mul(0x9E37_79B9));
/// # Ok(())
/// # }
/// ```
pub struct Stage<T = (), E = Infallible> {
    pub(crate) name: Cow<'static, str>,
    pub(crate) workers: NonZeroUsize,
    pub(crate) ordered: bool,
    pub(crate) buffer: Option<usize>,
    pub(crate) blocking: bool,
    pub(crate) overflow: Overflow,
    pub(crate) policy: ErrorPolicy<T, E>,
}

impl<T, E> fmt::Debug for Stage<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .field("ordered", &self.ordered)
            .field("buffer", &self.buffer)
            .field("blocking", &self.blocking)
            .field("overflow", &self.overflow)
            .field("policy", &self.policy)
            .finish()
    }
}

impl<T, E> Stage<T, E> {
    /// A stage with the defaults: one worker, ordered, the pipeline's default buffer, on the
    /// async workers, waits when full, fails fast.
    #[must_use]
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        Stage {
            name: name.into(),
            workers: NonZeroUsize::MIN,
            ordered: true,
            buffer: None,
            blocking: false,
            overflow: Overflow::Wait,
            policy: ErrorPolicy::fail_fast(),
        }
    }

    /// Run the stage's closure on `n` items (sync stages: `n` chunks) at a time. Output order
    /// is kept unless [`unordered`](Stage::unordered) is set. Sync stages with more than one
    /// worker run their chunks as separate tasks, so they use several cores. By default, 1.
    ///
    /// Only `map`, `filter`, `filter_map`, `flat_map`, `try_map`, `inspect`, `then` and
    /// `try_then` run a closure on several items at once; the other operators panic when
    /// given more than one worker.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[must_use]
    #[track_caller]
    pub fn workers(mut self, n: usize) -> Self {
        match NonZeroUsize::new(n) {
            Some(n) => self.workers = n,
            None => panic!("Stage::workers must be at least 1 (stage `{}`)", self.name),
        }
        self
    }

    /// Hand results on as they complete instead of in input order. By default, ordered. Only
    /// stages with several [`workers`](Stage::workers) have an order to keep; the operators
    /// without workers panic when given this.
    #[must_use]
    pub fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }

    /// The most items waiting in this stage's input queue; the upstream stage waits (or its
    /// hand-off is dropped, see [`overflow`](Stage::overflow)) when it is full. By default,
    /// the pipeline's [`default_buffer`](crate::Pipeline::default_buffer).
    ///
    /// # Panics
    ///
    /// If `items` is 0.
    #[must_use]
    #[track_caller]
    pub fn buffer(mut self, items: usize) -> Self {
        assert!(
            items > 0,
            "Stage::buffer must be at least 1 (stage `{}`)",
            self.name
        );
        self.buffer = Some(items);
        self
    }

    /// Run the closure on tokio's blocking threads (`spawn_blocking`), for CPU-bound work that
    /// must not hold up the async workers. Only sync stages (`map`, `filter`, `filter_map`,
    /// `flat_map`, `try_map`, `inspect`) have a blocking variant: the other operators
    /// (`then`, `try_then`, `batch`, ...) panic when given a blocking stage. By default, off.
    #[must_use]
    pub fn blocking(mut self) -> Self {
        self.blocking = true;
        self
    }

    /// What to do when this stage's input queue is full. By default, [`Overflow::Wait`].
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// The stage's error policy, applied to its errors and panics. By default,
    /// [`ErrorPolicy::fail_fast`]. Operators that run no closure of the user's on items
    /// (`batch`, `throttle`, `broadcast`, `partition`) have nothing to apply
    /// it to and panic when given another policy.
    #[must_use]
    pub fn on_error(mut self, policy: ErrorPolicy<T, E>) -> Self {
        self.policy = policy;
        self
    }
}

/// The settings an operator takes beyond name, buffer and overflow (which every operator
/// honours, since they belong to the stage's input queue).
#[derive(Clone, Copy)]
pub(crate) struct Accepts {
    pub(crate) workers: bool,
    pub(crate) blocking: bool,
    pub(crate) policy: bool,
}

impl<T, E> Stage<T, E> {
    /// Panics, at build time, if the stage sets something `operator` would ignore.
    #[track_caller]
    pub(crate) fn check(&self, operator: &str, accepts: Accepts) {
        let name = &self.name;
        assert!(
            accepts.workers || (self.workers.get() == 1 && self.ordered),
            "`{operator}` runs one item at a time: stage `{name}` cannot have workers or be unordered"
        );
        assert!(
            accepts.blocking || !self.blocking,
            "`{operator}` has no blocking variant: stage `{name}` cannot be blocking"
        );
        assert!(
            accepts.policy || self.policy.is_default(),
            "`{operator}` runs no closure that can fail: stage `{name}` cannot have an error policy"
        );
    }
}

/// Converts a name or a [`Stage`] into a [`Stage`]; what every stage method takes.
pub trait IntoStage<T, E> {
    /// Performs the conversion.
    fn into_stage(self) -> Stage<T, E>;
}

impl<T, E> IntoStage<T, E> for Stage<T, E> {
    fn into_stage(self) -> Stage<T, E> {
        self
    }
}

impl<T, E> IntoStage<T, E> for &'static str {
    fn into_stage(self) -> Stage<T, E> {
        Stage::new(self)
    }
}

impl<T, E> IntoStage<T, E> for String {
    fn into_stage(self) -> Stage<T, E> {
        Stage::new(self)
    }
}
