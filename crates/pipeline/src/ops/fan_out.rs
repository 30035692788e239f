//! Fan-out: [`Pipeline::broadcast`] (every item to every branch) and [`Pipeline::partition`]
//! (each item to one branch, by key), with their branches' outputs merged.

use std::convert::Infallible;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::chan::{Receiver, Sender};
use crate::counters::Meter;
use crate::pipeline::Pipeline;
use crate::policy::Overflow;
use crate::run::{Build, Env, Shared, next_chunk};
use crate::stage::{Accepts, IntoStage, Stage};

impl<T: Send + 'static> Pipeline<T> {
    /// Sends every item to each of `branches` branches (tee), built by `branch(i, input)`,
    /// and merges their outputs. Branch stages are named `{stage}[{i}]/{name}` in the report.
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let done = Pipeline::from_iter(1..=3u64)
    ///     .broadcast("tee", 2, |i, branch| match i {
    ///         0 => branch.map("double", |x| x * 2),
    ///         _ => branch.map("negate", |x| x * 100),
    ///     })
    ///     .collect::<Vec<_>>(Context::background())
    ///     .await?;
    /// let mut out = done.output;
    /// out.sort();
    /// assert_eq!(out, [2, 4, 6, 100, 200, 300]);
    /// assert_eq!(done.report.stage("tee[1]/negate").map(|s| s.received), Some(3));
    /// done.report.check()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `branches` is 0, or if the stage sets workers, `unordered`, `blocking` or an error
    /// policy: the fan-out stage runs no closure of the user's on items.
    #[track_caller]
    pub fn broadcast<U, F>(
        self,
        stage: impl IntoStage<T, Infallible>,
        branches: usize,
        branch: F,
    ) -> Pipeline<U>
    where
        T: Clone,
        U: Send + 'static,
        F: FnMut(usize, Pipeline<T>) -> Pipeline<U> + Send + 'static,
    {
        let stage = stage.into_stage();
        stage.check(
            "broadcast",
            Accepts {
                workers: false,
                blocking: false,
                policy: false,
            },
        );
        assert!(
            branches > 0,
            "Pipeline::broadcast needs at least 1 branch (stage `{}`)",
            stage.name
        );
        self.fan_out(stage, branches, branch, |rx, senders, meter, shared| {
            broadcast_stage(rx, senders, meter, shared)
        })
    }

    /// Sends each item to one of `branches` branches, chosen by hashing `key(item)`, so items
    /// with the same key go through the same branch, in order. Branches are built by
    /// `branch(i, input)` and their outputs merged.
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let events = vec![("alice", 1), ("bob", 1), ("alice", 2), ("bob", 2), ("alice", 3)];
    /// let done = Pipeline::from_iter(events)
    ///     .partition("by_user", 2, |e: &(&str, i32)| e.0, |_, branch| branch.map("tag", |e| e))
    ///     .collect::<Vec<_>>(Context::background())
    ///     .await?;
    /// let alice: Vec<i32> = done.output.iter().filter(|e| e.0 == "alice").map(|e| e.1).collect();
    /// assert_eq!(alice, [1, 2, 3], "per-key order is kept");
    /// done.report.check()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `branches` is 0, or if the stage sets workers, `unordered`, `blocking` or an error
    /// policy: the fan-out stage runs no closure of the user's on items (a panic in `key` fails the run).
    #[track_caller]
    pub fn partition<U, K, KF, F>(
        self,
        stage: impl IntoStage<T, Infallible>,
        branches: usize,
        key: KF,
        branch: F,
    ) -> Pipeline<U>
    where
        U: Send + 'static,
        K: Hash + 'static,
        KF: Fn(&T) -> K + Send + Sync + 'static,
        F: FnMut(usize, Pipeline<T>) -> Pipeline<U> + Send + 'static,
    {
        let stage = stage.into_stage();
        stage.check(
            "partition",
            Accepts {
                workers: false,
                blocking: false,
                policy: false,
            },
        );
        assert!(
            branches > 0,
            "Pipeline::partition needs at least 1 branch (stage `{}`)",
            stage.name
        );
        self.fan_out(
            stage,
            branches,
            branch,
            move |rx, senders, meter, shared| partition_stage(rx, senders, meter, key, shared),
        )
    }

    fn fan_out<U, F, R, RF>(
        self,
        stage: Stage<T, Infallible>,
        branches: usize,
        mut branch: F,
        runner: R,
    ) -> Pipeline<U>
    where
        U: Send + 'static,
        F: FnMut(usize, Pipeline<T>) -> Pipeline<U> + Send + 'static,
        R: FnOnce(Receiver<T>, Vec<Sender<T>>, Meter, Arc<Shared>) -> RF + Send + 'static,
        RF: Future<Output = ()> + Send + 'static,
    {
        let prev = self.build;
        let (opts, progress) = (self.opts, self.progress.clone());
        Pipeline {
            build: Build::Chan(Box::new(move |env, tx_out| {
                let c = env.counters(&stage.name);
                let (tx_in, rx_in) =
                    env.channel(stage.buffer, stage.overflow == Overflow::DropNewest, &c);
                prev.build(env, tx_in);
                env.register(&c);
                let slots: Arc<Mutex<Vec<Option<Sender<T>>>>> =
                    Arc::new(Mutex::new((0..branches).map(|_| None).collect()));
                let name = c.name.clone();
                for i in 0..branches {
                    let slot = slots.clone();
                    let input = Pipeline {
                        build: Build::Chan(Box::new(move |_env: &mut Env, tx: Sender<T>| {
                            slot.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(tx);
                        })),
                        opts,
                        progress: progress.clone(),
                    };
                    let p = branch(i, input);
                    let tx = tx_out.clone();
                    env.with_prefix(&format!("{}[{i}]/", stage.name), |env| {
                        p.build.build(env, tx)
                    });
                }
                drop(tx_out);
                let senders: Vec<Sender<T>> =
                    std::mem::take(&mut *slots.lock().unwrap_or_else(|e| e.into_inner()))
                        .into_iter()
                        .flatten()
                        .collect();
                for s in &senders {
                    env.link(&c, s.counters());
                }
                let fut = runner(rx_in, senders, Meter::new(c), env.shared.clone());
                env.spawn(&name, fut);
            })),
            opts,
            progress: self.progress,
        }
    }
}

async fn broadcast_stage<T: Clone>(
    mut rx: Receiver<T>,
    branches: Vec<Sender<T>>,
    mut meter: Meter,
    shared: Arc<Shared>,
) {
    while let Some(chunk) = next_chunk(&mut rx, &mut meter, &shared).await {
        let n = chunk.len();
        let mut delivered = 0;
        let mut all = true;
        let last = branches.len().saturating_sub(1);
        let mut chunk = Some(chunk);
        for (i, b) in branches.iter().enumerate() {
            let part = if i == last {
                chunk.take().unwrap_or_default()
            } else {
                chunk.clone().unwrap_or_default()
            };
            let unsent = b.send(part, &shared.abort).await;
            delivered += n - unsent;
            all &= unsent == 0;
        }
        // Input items count as emitted only when every branch got them; `output` counts every
        // copy delivered, which is what the branches received between them.
        meter.emitted(if all { n as u64 } else { 0 }, delivered);
        if !all {
            return;
        }
    }
}

async fn partition_stage<T, K, F>(
    mut rx: Receiver<T>,
    branches: Vec<Sender<T>>,
    mut meter: Meter,
    key: F,
    shared: Arc<Shared>,
) where
    K: Hash,
    F: Fn(&T) -> K,
{
    let n_branches = branches.len().max(1);
    while let Some(chunk) = next_chunk(&mut rx, &mut meter, &shared).await {
        let t = Instant::now();
        let mut parts: Vec<Vec<T>> = (0..n_branches).map(|_| Vec::new()).collect();
        for x in chunk {
            // A fixed-key SipHash: the same key goes to the same branch in every run.
            let mut h = std::hash::DefaultHasher::new();
            key(&x).hash(&mut h);
            let i = (h.finish() % n_branches as u64) as usize;
            parts[i].push(x);
        }
        meter.busy(t.elapsed());
        for (part, b) in parts.into_iter().zip(&branches) {
            let n = part.len();
            let unsent = b.send(part, &shared.abort).await;
            meter.emitted((n - unsent) as u64, n - unsent);
            if unsent > 0 {
                return;
            }
        }
    }
}
