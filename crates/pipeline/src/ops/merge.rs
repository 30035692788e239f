//! Fan-in: [`Pipeline::merge`].

use crate::pipeline::Pipeline;
use crate::run::Build;

impl<T: Send + 'static> Pipeline<T> {
    /// Joins several pipelines into one (fan-in, Go's `merge`): their last stages all feed the
    /// next stage's queue, in whatever order items arrive. Settings (chunk size, buffer,
    /// shutdown) come from the first pipeline.
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let evens = Pipeline::from_iter((0..100u64).step_by(2));
    /// let odds = Pipeline::from_iter((1..100u64).step_by(2));
    /// let done = Pipeline::merge([evens, odds]).fold(Context::background(), 0, |a, x| a + x).await?;
    /// assert_eq!(done.output, 4950);
    /// # Ok(())
    /// # }
    /// ```
    pub fn merge(pipelines: impl IntoIterator<Item = Pipeline<T>>) -> Self {
        let ps: Vec<Pipeline<T>> = pipelines.into_iter().collect();
        let (opts, progress) = ps
            .first()
            .map(|p| (p.opts, p.progress.clone()))
            .unwrap_or_default();
        Pipeline {
            build: Build::Chan(Box::new(move |env, tx| {
                for p in ps {
                    p.build.build(env, tx.clone());
                }
            })),
            opts,
            progress,
        }
    }
}
