//! A task scheduler with two priority queues, a results stream, acknowledged control requests,
//! and a shutdown that accounts for every task. Section 4 of the Go material (buffered and
//! unbuffered channels), built on weft's channels.
//!
//! What it fixes in the Go original:
//! - **The control acknowledgement could be answered by the wrong worker**: the Go version
//!   sends the request and the ack over the *same* unbuffered channel, so another worker's
//!   `case <-controlCh` can swallow the ack (or the caller can read its own request back).
//!   Here each request carries its own reply channel: only the worker that took it can answer.
//! - **Results were dropped when the results channel was full** (`default:` branch). Here a
//!   worker waits for room (backpressure), so every result is delivered.
//! - **Shutdown lost queued tasks and could panic submitters** (closing a channel that a
//!   submitter may still send on panics in Go). Here closing makes `try_send` return the task
//!   ("shutting down"), workers drain the queues for a grace period, and tasks still queued
//!   after it are reported as cancelled: submitted = completed + failed + cancelled.
//! - Priority is a `biased` select (high first), not a push-back dance that reorders tasks.
//!
//! Run: `cargo run --example task_scheduler [-- --tasks 40 --workers 3 --grace-ms 150]`

#[path = "common/out.rs"]
mod out;
use out::outln;
#[path = "common/runtime.rs"]
mod runtime;

use std::time::Duration;

use clap::Parser;
use tokio::time::Instant;
use weft::core::chan::{self, Receiver, Sender, TrySendError};
use weft::core::context::Context;
use weft::core::group::WaitGroup;

#[derive(Debug, Parser)]
struct Args {
    /// Tasks to submit (priority cycles 0..10; above 5 is high).
    #[arg(long, default_value_t = 40)]
    tasks: u32,
    /// Worker count.
    #[arg(long, default_value_t = 3)]
    workers: u32,
    /// High-priority queue capacity.
    #[arg(long, default_value_t = 8)]
    high_capacity: usize,
    /// Normal-priority queue capacity.
    #[arg(long, default_value_t = 16)]
    normal_capacity: usize,
    /// Work per task, in milliseconds.
    #[arg(long, default_value_t = 20)]
    work_ms: u64,
    /// How long workers may drain the queues after shutdown starts.
    #[arg(long, default_value_t = 150)]
    grace_ms: u64,
    /// Run on one thread with tokio's clock paused: every timeout resolves the same way on any
    /// machine (used by the tests).
    #[arg(long)]
    paused_clock: bool,
}

#[derive(Debug)]
struct Task {
    id: u32,
    priority: u8,
}

#[derive(Debug)]
struct TaskResult {
    id: u32,
    worker: u32,
    outcome: Result<u64, String>,
}

/// A control request: the reply goes on the requester's own channel.
struct Control {
    reply: Sender<u32>,
}

#[derive(Debug, thiserror::Error)]
enum SubmitError {
    #[error("{0} priority queue is full")]
    Full(&'static str, Task),
    #[error("scheduler is shutting down")]
    ShuttingDown(Task),
}

struct Scheduler {
    high: Sender<Task>,
    normal: Sender<Task>,
    control: Sender<Control>,
    stop: weft::core::context::CancelFn,
    workers: WaitGroup,
    queues: (Receiver<Task>, Receiver<Task>),
}

impl Scheduler {
    fn start(args: &Args, results: Sender<TaskResult>) -> Scheduler {
        let (high, high_rx) = chan::bounded(args.high_capacity);
        let (normal, normal_rx) = chan::bounded(args.normal_capacity);
        let (control, control_rx) = chan::rendezvous::<Control>(); // unbuffered, as in Go
        let (ctx, stop) = Context::background().with_cancel();
        let workers = WaitGroup::new();
        for worker in 0..args.workers {
            let (high_rx, normal_rx, control_rx) =
                (high_rx.clone(), normal_rx.clone(), control_rx.clone());
            let (results, ctx, work) = (
                results.clone(),
                ctx.clone(),
                Duration::from_millis(args.work_ms),
            );
            workers.go(async move {
                loop {
                    let task: Task = tokio::select! {
                        biased; // Go's select picks at random; priority needs an order
                        () = ctx.done() => break,
                        Some(t) = high_rx.recv() => t,
                        Some(t) = normal_rx.recv() => t,
                        Some(req) = control_rx.recv() => {
                            // Answer on the requester's own channel: no other worker can.
                            let _ = req.reply.send(worker).await;
                            continue;
                        }
                        else => break, // every queue closed and drained
                    };
                    tokio::time::sleep(work).await;
                    let outcome = if task.id % 7 == 6 {
                        Err(format!("task {} hit a bad record", task.id))
                    } else {
                        Ok(u64::from(task.id) * u64::from(task.id))
                    };
                    // Wait for room rather than drop a result.
                    if results
                        .send(TaskResult {
                            id: task.id,
                            worker,
                            outcome,
                        })
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
        Scheduler {
            high,
            normal,
            control,
            stop,
            workers,
            queues: (high_rx, normal_rx),
        }
    }

    /// Non-blocking submit: the task comes back in the error.
    fn submit(&self, task: Task) -> Result<(), SubmitError> {
        let (queue, name) = if task.priority > 5 {
            (&self.high, "high")
        } else {
            (&self.normal, "normal")
        };
        queue.try_send(task).map_err(|e| match e {
            TrySendError::Full(t) => SubmitError::Full(name, t),
            TrySendError::Closed(t) => SubmitError::ShuttingDown(t),
            other => SubmitError::ShuttingDown(other.into_inner()),
        })
    }

    /// Sends a control request over the unbuffered channel and waits for *its* answer.
    async fn control(&self) -> Result<u32, String> {
        let (reply, answer) = chan::rendezvous();
        self.control
            .send_timeout(Control { reply }, Duration::from_secs(1))
            .await
            .map_err(|_| "no worker took the control request within 1 s".to_owned())?;
        answer
            .recv_timeout(Duration::from_secs(5))
            .await
            .map_err(|_| "control request was not acknowledged within 5 s".to_owned())
    }

    /// Stops accepting, lets workers drain for `grace`, then cancels: returns the tasks that
    /// were still queued (never run), so the caller can account for them.
    async fn shutdown(&self, grace: Duration) -> Vec<Task> {
        self.high.close();
        self.normal.close();
        self.control.close();
        if tokio::time::timeout(grace, self.workers.wait())
            .await
            .is_err()
        {
            self.stop.cancel_with("grace period over");
            let _ = self.workers.wait().await;
        }
        let mut left = Vec::new();
        for queue in [&self.queues.0, &self.queues.1] {
            while let Ok(task) = queue.try_recv() {
                left.push(task);
            }
        }
        left
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    runtime::build(args.paused_clock)?.block_on(run(args));
    Ok(())
}

async fn run(args: Args) {
    let start = Instant::now();
    let (results_tx, results_rx) = chan::bounded::<TaskResult>(4);
    let scheduler = Scheduler::start(&args, results_tx);
    let collector = tokio::spawn(async move {
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        while let Some(r) = results_rx.recv().await {
            match r.outcome {
                Ok(v) => ok.push((r.id, r.worker, v)),
                Err(e) => failed.push(e),
            }
        }
        (ok, failed)
    });

    match scheduler.control().await {
        Ok(worker) => outln!("control request acknowledged by worker {worker}"),
        Err(e) => outln!("control request failed: {e}"),
    }

    let (mut submitted, mut rejected) = (0u32, Vec::new());
    for id in 0..args.tasks {
        let task = Task {
            id,
            priority: (id % 10) as u8,
        };
        match scheduler.submit(task) {
            Ok(()) => submitted += 1,
            Err(e) => rejected.push(e.to_string()),
        }
    }
    outln!(
        "submitted {submitted}, rejected {} ({})",
        rejected.len(),
        rejected.first().map_or("-", String::as_str)
    );

    let cancelled = scheduler
        .shutdown(Duration::from_millis(args.grace_ms))
        .await;
    if let Err(e) = scheduler.submit(Task {
        id: args.tasks,
        priority: 9,
    }) {
        outln!("submit after shutdown: {e}");
    }
    drop(scheduler); // the last result sender goes with the workers; the collector ends
    let (ok, failed) = collector.await.unwrap_or_default();
    outln!(
        "completed {}, failed {}, cancelled at shutdown {} (ids {:?}) in {:.0?}",
        ok.len(),
        failed.len(),
        cancelled.len(),
        cancelled.iter().map(|t| t.id).collect::<Vec<_>>(),
        start.elapsed()
    );
    if let Some(e) = failed.first() {
        outln!("first failure: {e}");
    }
    let accounted = ok.len() + failed.len() + cancelled.len();
    outln!(
        "accounted {accounted} of {submitted} submitted: {}",
        if accounted == submitted as usize {
            "none lost"
        } else {
            "LOST TASKS"
        }
    );
}
