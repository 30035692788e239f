//! Helpers shared by the bench files (included with `mod common;`).

use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

/// Times `body` run inside a task on `rt`, `iters` times: the work is measured where it runs in
/// real programs (on a runtime worker), not on the thread that blocks on the runtime.
pub(crate) fn time_in_task<F, Fut>(rt: &Runtime, iters: u64, body: F) -> Duration
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                body().await;
            }
            start.elapsed()
        })
        .await
        .expect("bench task panicked")
    })
}
