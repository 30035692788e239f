//! The error a run returns.

use std::error::Error;
use std::sync::Arc;

use crate::report::Report;

/// Why a run failed. Every variant carries the run's [`Report`], so the counters are there
/// even when the run did not complete.
///
/// A cancelled run is not an error: the sink returns what it got, and the report's
/// [`stop`](Report::stop) says why it stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A stage with the fail-fast policy failed (after its retries, if any); the run was
    /// cancelled. This is the first such failure.
    #[error("stage `{stage}` failed: {source}")]
    Stage {
        /// The stage's name.
        stage: Arc<str>,
        /// The error its closure returned, or a panic message.
        source: Box<dyn Error + Send + Sync>,
        /// The run's counters.
        report: Box<Report>,
    },
    /// The sink could not deliver: its channel or `Sink` is closed or failed.
    #[error("sink failed: {source}")]
    Sink {
        /// The sink's error.
        source: Box<dyn Error + Send + Sync>,
        /// The run's counters.
        report: Box<Report>,
    },
}

impl PipelineError {
    /// The counters of the failed run.
    #[must_use]
    pub fn report(&self) -> &Report {
        match self {
            PipelineError::Stage { report, .. } | PipelineError::Sink { report, .. } => report,
        }
    }

    /// The name of the failed stage (`"sink"` for a sink error).
    #[must_use]
    pub fn stage(&self) -> &str {
        match self {
            PipelineError::Stage { stage, .. } => stage,
            PipelineError::Sink { .. } => "sink",
        }
    }
}

/// A sink's channel was closed by its receiver.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("sink channel closed")]
pub struct SinkClosed;
