//! What a run returns.

use crate::report::Report;

/// What a completed (or cancelled) run returns: the sink's output and the [`Report`].
///
/// # Examples
///
/// ```
/// use weft_core::Context;
/// use weft_pipeline::Pipeline;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let done = Pipeline::from_iter(0..3u8).collect::<Vec<_>>(Context::background()).await?;
/// assert_eq!(done.output, [0, 1, 2]);
/// assert_eq!(done.report.stage("sink").map(|s| s.emitted), Some(3));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Finished<R> {
    /// What the sink produced (`()` for `for_each` and the channel sinks).
    pub output: R,
    /// The run's counters, and why it stopped.
    pub report: Report,
}
