//! The sending half a generator source gets.

use tokio::sync::mpsc;

/// The sending half a [generator](crate::Pipeline::generate) gets.
///
/// Sends wait while the pipeline is full (backpressure) and fail once the pipeline stops its
/// source (the context is done, or a stage failed).
///
/// # Examples
///
/// ```
/// use weft_core::Context;
/// use weft_pipeline::{Pipeline, Stopped};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let done = Pipeline::generate(|_ctx, tx| async move {
///     for word in ["a", "b"] {
///         if let Err(Stopped(item)) = tx.send(word).await {
///             eprintln!("pipeline stopped; {item} was not sent");
///             return;
///         }
///     }
/// })
/// .collect::<Vec<_>>(Context::background())
/// .await?;
/// assert_eq!(done.output, ["a", "b"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Emitter<T> {
    tx: mpsc::Sender<T>,
}

/// The pipeline stopped its source; the item is handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("pipeline source stopped")]
pub struct Stopped<T>(pub T);

impl<T> Emitter<T> {
    pub(crate) fn new(tx: mpsc::Sender<T>) -> Self {
        Emitter { tx }
    }

    /// Sends one item into the pipeline, waiting while it is full.
    ///
    /// # Errors
    ///
    /// [`Stopped`] with the item, once the pipeline stopped its source.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it completes, the item was not sent (and
    /// is dropped with the future).
    pub async fn send(&self, item: T) -> Result<(), Stopped<T>> {
        self.tx.send(item).await.map_err(|e| Stopped(e.0))
    }
}
