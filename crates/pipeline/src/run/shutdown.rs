//! Shutdown: waiting for a run's tasks, and what a done [`Context`](weft_core::Context) does
//! to them ([`Shutdown::Abort`] or [`Shutdown::Drain`]).

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio::time::Instant;
use weft_core::Shutdown;

use super::Shared;
use crate::error::PipelineError;
use crate::finished::Finished;
use crate::report::{Progress, Report, StopReason};

/// The control side of a started run: the stage tasks and the context watcher.
pub(crate) struct Control {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
    shutdown: Shutdown,
    progress: Progress,
    started: Instant,
}

impl Drop for Control {
    fn drop(&mut self) {
        // Dropping a run before it finished (its future cancelled) stops every stage; the
        // JoinSet's drop then aborts the tasks.
        self.shared.abort.cancel();
    }
}

impl Control {
    pub(super) fn new(
        shared: Arc<Shared>,
        tasks: JoinSet<()>,
        shutdown: Shutdown,
        progress: Progress,
        started: Instant,
    ) -> Self {
        Control {
            shared,
            tasks,
            shutdown,
            progress,
            started,
        }
    }

    /// Waits for every stage task, applying the shutdown mode when the context is done.
    pub(crate) async fn supervise(&mut self) -> StopReason {
        let ctx = self.shared.ctx.clone();
        let mut reason = StopReason::Completed;
        tokio::select! {
            biased;
            () = join_all(&mut self.tasks) => {}
            () = ctx.done() => {
                match self.shutdown {
                    Shutdown::Drain { timeout } => {
                        reason = StopReason::Drained;
                        self.shared.stop.cancel();
                        tokio::select! {
                            biased;
                            () = join_all(&mut self.tasks) => {}
                            () = tokio::time::sleep(timeout) => {
                                reason = StopReason::DrainTimedOut;
                                self.shared.abort.cancel();
                            }
                        }
                    }
                    // `Abort`, and any mode a later weft-core adds that this version does not
                    // know: stopping at once loses nothing (every item is counted).
                    _ => {
                        reason = StopReason::Aborted;
                        self.shared.abort.cancel();
                    }
                }
                join_all(&mut self.tasks).await;
            }
        }
        if self.shared.failed() {
            StopReason::Failed
        } else {
            reason
        }
    }

    /// The report, once the sink and every task are done.
    pub(crate) fn finish<R>(
        &self,
        output: R,
        stop: StopReason,
    ) -> Result<Finished<R>, PipelineError> {
        let report = Report {
            stages: self.progress.stages(),
            stop,
            elapsed: self.started.elapsed(),
            links: self.progress.links(),
        };
        match self.shared.take_fatal() {
            Some(f) => Err(f.into_error(report)),
            None => Ok(Finished { output, report }),
        }
    }
}

async fn join_all(set: &mut JoinSet<()>) {
    while set.join_next().await.is_some() {}
}
