//! Per-stage counters: live through [`Progress`], final in the [`Report`] a run returns.
//!
//! Every item a stage takes in ends in exactly one outcome, so for every stage of a finished
//! run
//!
//! ```text
//! received == emitted + filtered + failed + dropped + cancelled
//! ```
//!
//! and between two joined stages nothing disappears: the `output` of a stage (items it handed
//! on) equals the `received` of the stage after it (summed over branches for a merge, counted
//! per branch for a broadcast or partition). [`Report::check`] verifies both.
//!
//! The counters are atomics updated once per chunk (not per item), so reading them is cheap
//! and never slows the stages down.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::counters::Registry;

/// A cheap, cloneable handle to a pipeline's live counters, for progress bars and metrics.
///
/// Take it with [`Pipeline::progress`](crate::Pipeline::progress) before starting the run; it
/// lists the stages once the run has started and keeps the last values after it ends.
///
/// # Examples
///
/// ```
/// use weft_core::Context;
/// use weft_pipeline::Pipeline;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pipeline = Pipeline::from_iter(0..1000u64).map("double", |x| x * 2);
/// let progress = pipeline.progress();
/// assert!(progress.stages().is_empty(), "stages appear when the run starts");
/// let done = pipeline.collect::<Vec<_>>(Context::background()).await?;
/// assert_eq!(done.output.len(), 1000);
/// let double = progress.stage("double").expect("stage listed");
/// assert_eq!(double.received, 1000);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Progress {
    pub(crate) registry: Arc<Registry>,
}

impl Progress {
    /// A snapshot of every stage's counters, sources first.
    #[must_use]
    pub fn stages(&self) -> Vec<StageReport> {
        self.registry.list().iter().map(|c| c.snapshot()).collect()
    }

    /// A snapshot of the first stage called `name`.
    #[must_use]
    pub fn stage(&self, name: &str) -> Option<StageReport> {
        self.registry
            .list()
            .iter()
            .find(|c| &*c.name == name)
            .map(|c| c.snapshot())
    }

    pub(crate) fn links(&self) -> Vec<(usize, usize)> {
        self.registry.links()
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress")
            .field("stages", &self.stages())
            .finish()
    }
}

/// One stage's counters at one moment (live) or at the end of a run (final).
///
/// Counted in the stage's *input* items: `received` items each end as `emitted` (processed and
/// handed on), `filtered`, `failed` (by any error policy: skipped, dead-lettered or fatal),
/// `dropped` (by an overflow policy) or `cancelled` (still in the stage or its queue when the
/// run was aborted). `output` counts the items the stage handed on, which differs from
/// `emitted` for `flat_map`, `batch` and `unbatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StageReport {
    /// The stage name; stages inside a broadcast or partition branch are prefixed with the
    /// fan-out stage's name and branch index, as in `tee[1]/square`.
    pub name: Arc<str>,
    /// Items taken in (from the stage's queue, or from the user's source for a source).
    pub received: u64,
    /// Input items processed and handed on.
    pub emitted: u64,
    /// Input items a filter removed.
    pub filtered: u64,
    /// Input items that failed (error or panic), whatever the policy did with them.
    pub failed: u64,
    /// Retry attempts made (an item retried twice counts 2).
    pub retried: u64,
    /// Input items dropped by an overflow policy (a full queue).
    pub dropped: u64,
    /// Input items lost to an abort: in the stage or its queue when the run stopped.
    pub cancelled: u64,
    /// Items handed on to the next stage.
    pub output: u64,
    /// Time spent in the stage's own work (user closures, batching), not waiting.
    pub busy: Duration,
    /// Items waiting in the stage's input queue when the snapshot was taken.
    pub queue_depth: usize,
    /// The highest number of items ever waiting in the stage's input queue.
    pub max_queue_depth: usize,
}

impl StageReport {
    /// `received == emitted + filtered + failed + dropped + cancelled`.
    #[must_use]
    pub fn is_balanced(&self) -> bool {
        self.received == self.emitted + self.filtered + self.failed + self.dropped + self.cancelled
    }
}

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The source ended and every item went through.
    Completed,
    /// The context was done, the pipeline ran in drain mode and finished its in-flight items
    /// in time.
    Drained,
    /// The context was done and the pipeline ran in abort mode.
    Aborted,
    /// The context was done, the pipeline started draining and the drain timeout expired.
    DrainTimedOut,
    /// A stage failed under the fail-fast policy.
    Failed,
}

/// The final counters of a run: one [`StageReport`] per stage, sources first, the sink last.
///
/// # Examples
///
/// ```
/// use weft_core::Context;
/// use weft_pipeline::{Pipeline, StopReason};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let done = Pipeline::from_iter(1..=10u64)
///     .filter("even", |x| x % 2 == 0)
///     .collect::<Vec<_>>(Context::background())
///     .await?;
/// let even = done.report.stage("even").expect("stage listed");
/// assert_eq!((even.received, even.emitted, even.filtered), (10, 5, 5));
/// assert_eq!(done.report.stop, StopReason::Completed);
/// done.report.check()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// Every stage, sources first, the sink last.
    pub stages: Vec<StageReport>,
    /// Why the run stopped.
    pub stop: StopReason,
    /// Wall time of the run.
    pub elapsed: Duration,
    pub(crate) links: Vec<(usize, usize)>,
}

/// A broken accounting rule, found by [`Report::check`]. Seeing one is a bug in weft.
#[derive(Debug, Clone, thiserror::Error)]
#[error("report does not add up: {0}")]
pub struct Unbalanced(String);

impl Report {
    /// The first stage called `name`.
    #[must_use]
    pub fn stage(&self, name: &str) -> Option<&StageReport> {
        self.stages.iter().find(|s| &*s.name == name)
    }

    /// The sum of every stage's `failed`.
    #[must_use]
    pub fn failed(&self) -> u64 {
        self.stages.iter().map(|s| s.failed).sum()
    }

    /// Checks that every stage is balanced and that what each stage handed on is what the
    /// next stage received.
    ///
    /// # Errors
    ///
    /// [`Unbalanced`] naming the first stage or link that does not add up.
    pub fn check(&self) -> Result<(), Unbalanced> {
        for s in &self.stages {
            if !s.is_balanced() {
                return Err(Unbalanced(format!("stage `{}`: {s:?}", s.name)));
            }
        }
        // The hand-offs form a bipartite graph (senders on one side, receivers on the other).
        // In each connected part, what the senders handed on is what the receivers took in:
        // this covers straight links, merges (many to one) and fan-outs (one to many).
        let n = self.stages.len();
        let mut parent: Vec<usize> = (0..2 * n).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        for &(a, b) in &self.links {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, n + b));
            parent[ra] = rb;
        }
        let mut sums: std::collections::HashMap<usize, (u64, u64, Vec<usize>)> =
            std::collections::HashMap::new();
        let mut seen_from = vec![false; n];
        let mut seen_to = vec![false; n];
        for &(a, b) in &self.links {
            if !seen_from[a] {
                seen_from[a] = true;
                let r = find(&mut parent, a);
                sums.entry(r).or_default().0 += self.stages[a].output;
            }
            if !seen_to[b] {
                seen_to[b] = true;
                let r = find(&mut parent, n + b);
                let e = sums.entry(r).or_default();
                e.1 += self.stages[b].received;
                e.2.push(b);
            }
        }
        for (sent, received, to) in sums.values() {
            if sent != received {
                let names: Vec<&str> = to.iter().map(|b| &*self.stages[*b].name).collect();
                return Err(Unbalanced(format!(
                    "stages {names:?} received {received} but their upstream handed on {sent}"
                )));
            }
        }
        Ok(())
    }
}
