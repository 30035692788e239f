//! What a pool is configured with: the public policies ([`PanicPolicy`], [`Blacklist`]), how
//! queue capacity is shared ([`Capacity`]), and the settings the scheduler core and the workers
//! read ([`Config`]). This module imports nothing from the crate, so every other module can
//! depend on it without a cycle.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// What a worker does when a job panics. In every case the job resolves
/// [`JobError::Panicked`](crate::JobError::Panicked), the worker keeps serving and the pool keeps
/// its size.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PanicPolicy {
    /// Keep the worker's handler as it is. The default.
    #[default]
    KeepWorker,
    /// Replace the worker's handler with a fresh clone of the one the pool was built with (in
    /// case the panic left it in a bad state), counted in [`Stats::restarts`](crate::Stats).
    ReplaceWorker,
}

/// Blacklisting of job keys that keep panicking, like a circuit breaker: after `after` panics
/// of jobs with the same key (from [`Builder::job_key`](crate::Builder::job_key)), jobs with
/// that key resolve [`JobError::Blacklisted`](crate::JobError::Blacklisted) (or are handed back
/// by `submit`), for `cooldown` or for good. When the cooldown ends the key starts again from
/// zero panics.
///
/// ```
/// use std::time::Duration;
/// use weft_pool::Blacklist;
/// let b = Blacklist::after_panics(3).cooldown(Duration::from_secs(60));
/// assert_eq!(b.limit(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blacklist {
    pub(crate) after: NonZeroU32,
    pub(crate) cooldown: Option<Duration>,
}

impl Blacklist {
    /// Blacklists a key for good after `panics` panics (at least 1).
    pub fn after_panics(panics: u32) -> Self {
        Blacklist {
            after: NonZeroU32::new(panics).unwrap_or(NonZeroU32::MIN),
            cooldown: None,
        }
    }

    /// Lifts the blacklisting `cooldown` after it starts. By default, it lasts for good.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = Some(cooldown);
        self
    }

    /// The panic count that blacklists a key.
    pub fn limit(&self) -> u32 {
        self.after.get()
    }
}

/// How queue capacity is shared between priority levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Capacity {
    /// At most this many queued jobs across all levels.
    Shared(usize),
    /// At most this many queued jobs per level.
    PerPriority(usize),
    Unbounded,
}

/// The key jobs are grouped by for blacklisting.
pub(crate) type KeyFn<Req> = Arc<dyn Fn(&Req) -> Option<String> + Send + Sync>;

/// The settings the scheduler core and the workers read (never written after the build).
pub(crate) struct Config<Req> {
    pub(crate) levels: u8,
    pub(crate) timeout: Option<Duration>,
    pub(crate) panic_policy: PanicPolicy,
    pub(crate) job_key: Option<KeyFn<Req>>,
    pub(crate) batch: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) scale_up_depth: usize,
}
