//! One node of a shared queue (PostgreSQL): claims jobs for this process's pool, keeps their
//! leases alive, sweeps lapsed ones, and stops jobs that a client cancelled on another node.
//!
//! # Invariants
//!
//! 1. A job is in `held` from its claim until its outcome is recorded (so heartbeats renew
//!    its lease until then); `held.len()` is the node's in-flight count, never above
//!    `capacity`. Once its run has ended it is marked `ran`, and no heartbeat takes it for
//!    lost: its row leaves `running` when the outcome is recorded, not because another node
//!    took it.
//! 2. The claim loop is the only task that claims, so two claims of this node never race for
//!    the same free slots.
//! 3. A job counts as lost (no longer this node's) only if a heartbeat that *started after
//!    its claim committed* did not return it: a claim committed while a heartbeat ran is never
//!    taken for lost (its epoch is read after the commit, and only heartbeats of a higher epoch
//!    judge it).
//!
//! # Queries while idle
//!
//! An idle node sends one claim per [`PgConfig::poll_interval`] (2 s), two statements per
//! sweep (10 s), and no heartbeat (it holds nothing): about 0.7 statements a second. New work
//! wakes it through `LISTEN`, not through polling.
//!
//! [`PgConfig::poll_interval`]: crate::store::PgConfig::poll_interval

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use weft_core::context::Context;

use crate::jobs::{JobSpec, JobType};
use crate::store::{JobStatus, JobStore, PgStore, QueueEvent};
use crate::{PRIORITY_LEVELS, PoolJob, Server};

/// One job this node holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: u64,
    ran: bool,
}

/// The shared-queue state of one node.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) store: PgStore,
    /// Jobs claimed and not yet recorded: id -> the heartbeat epoch when claimed, and whether
    /// its run has ended.
    held: Mutex<HashMap<String, Held>>,
    /// Heartbeats started so far.
    epoch: AtomicU64,
    /// Woken when a held job is recorded (a slot is free).
    freed: Notify,
    /// How many jobs the node holds at most: its workers, plus as many waiting in its pool so
    /// workers never wait for a round trip.
    capacity: usize,
    workers: usize,
    /// Jobs this node claimed since start.
    pub(crate) claimed: AtomicU64,
}

impl Node {
    pub(crate) fn new(store: PgStore, workers: usize) -> Self {
        let workers = workers.max(1);
        Node {
            store,
            held: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            freed: Notify::new(),
            capacity: workers * 2,
            workers,
            claimed: AtomicU64::new(0),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by a job's watcher when its run ended, before its outcome is recorded.
    pub(crate) fn ran(&self, id: &str) {
        if let Some(held) = self.held().get_mut(id) {
            held.ran = true;
        }
    }

    /// Called by a job's watcher once its outcome is recorded: the slot is free.
    pub(crate) fn done(&self, id: &str) {
        if self.held().remove(id).is_some() {
            self.freed.notify_one();
        }
    }

    /// Jobs held now.
    pub(crate) fn in_flight(&self) -> usize {
        self.held().len()
    }
}

/// Runs the node: the claim loop here until `ctx` ends; heartbeats and sweeps beside it
/// until `stop` ends (after the pool drained, so leases of draining jobs stay alive).
pub(crate) async fn run(server: Arc<Server>, ctx: Context, stop: Context) {
    let Some(node) = server.node.as_ref() else {
        return;
    };
    let config = node.store.config().clone();
    let mut events = match node.store.listen().await {
        Ok(rx) => Some(rx),
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for new jobs; polling every {:?}", config.poll_interval);
            None
        }
    };
    let beats = tokio::spawn(heartbeats(
        Arc::clone(&server),
        stop.clone(),
        config.lease / 3,
    ));
    let sweeps = tokio::spawn(sweeps(
        Arc::clone(&server),
        ctx.clone(),
        config.sweep_interval,
    ));

    let mut poll = tokio::time::interval(config.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Look for work at once on start: jobs may have waited for any node.
    let mut look = true;
    // The last claim filled every free slot, so more work is probably waiting.
    let mut hungry = false;
    loop {
        if look && !server.is_shutting_down() {
            let free = node.capacity.saturating_sub(node.in_flight());
            if free > 0 {
                match claim(&server, node, free).await {
                    Ok(got) => hungry = got == free,
                    Err(e) => {
                        tracing::warn!(error = %e, "claim failed; trying again at the next poll");
                        hungry = false;
                    }
                }
            }
            look = false;
        }
        tokio::select! {
            biased;
            () = ctx.done() => break,
            event = recv(&mut events) => match event {
                Some(QueueEvent::Jobs) => look = true,
                Some(QueueEvent::Cancelled(id)) => server.cancel_local(&id),
                None => events = None,
            },
            // Refill once the pool's waiting half is used up, so a busy node claims a batch
            // at a time rather than one job per finished job.
            () = node.freed.notified() => {
                look = hungry && node.in_flight() <= node.workers;
            }
            _ = poll.tick() => look = true,
        }
    }
    let _ = beats.await;
    let _ = sweeps.await;
}

async fn recv(events: &mut Option<crate::store::QueueEvents>) -> Option<QueueEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Claims up to `free` jobs and hands them to the pool; returns how many it claimed.
async fn claim(
    server: &Arc<Server>,
    node: &Node,
    free: usize,
) -> Result<usize, crate::store::StoreError> {
    let claimed = node.store.claim(free).await?;
    // Read after the claim committed: a heartbeat that starts later (a higher epoch) sees these
    // rows as ours; one that started earlier may not, and must not count them lost (invariant
    // 3). SeqCst with the heartbeat's increment, so "later" is one order for both tasks.
    let epoch = node.epoch.load(Ordering::SeqCst);
    let got = claimed.len();
    node.claimed.fetch_add(got as u64, Ordering::Relaxed);
    for c in claimed {
        let record = c.record;
        let attempt = record.attempts;
        let spec = JobType::parse(&record.job_type)
            .ok_or_else(|| format!("unknown job type {}", record.job_type))
            .and_then(|t| JobSpec::parse(t, &record.data).map_err(|e| e.to_string()));
        let spec = match spec {
            Ok(spec) => spec,
            Err(e) => {
                let _ = node
                    .store
                    .finish(&record.id, Some(attempt), JobStatus::Failed, None, Some(e))
                    .await;
                continue;
            }
        };
        node.held()
            .insert(record.id.clone(), Held { epoch, ran: false });
        let job = PoolJob {
            id: record.id.clone(),
            spec: Arc::new(spec),
            room: None,
            attempt: Some(attempt),
        };
        if server
            .dispatch(job, c.level.min(PRIORITY_LEVELS - 1))
            .is_err()
        {
            // The pool closed (shutdown): give the job back at once.
            node.held().remove(&record.id);
            let _ = node.store.release(vec![record.id]).await;
        }
    }
    Ok(got)
}

/// Renews this node's leases every `every`; stops jobs that are no longer this node's.
async fn heartbeats(server: Arc<Server>, ctx: Context, every: Duration) {
    let Some(node) = server.node.as_ref() else {
        return;
    };
    let lease = node.store.config().lease;
    let mut last: Option<std::time::Instant> = None;
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = ctx.done() => return,
            _ = tick.tick() => {}
        }
        // Nothing held, nothing to renew: an idle node sends no heartbeat.
        if node.in_flight() == 0 {
            last = None;
            continue;
        }
        let epoch = node.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let started = std::time::Instant::now();
        let beat = node.store.heartbeat().await;
        // A late beat (the process or the database stalled) lets leases lapse: say so, since
        // the jobs then run again elsewhere.
        let late = last
            .map(|l| started.saturating_duration_since(l))
            .filter(|gap| *gap > lease * 2 / 3);
        if let Some(gap) = late {
            tracing::warn!(?gap, took = ?started.elapsed(), ?lease, "heartbeat late; leases may lapse");
        }
        last = Some(started);
        match beat {
            Ok(ours) => {
                let lost: Vec<String> = node
                    .held()
                    .iter()
                    .filter(|(id, held)| !held.ran && held.epoch < epoch && !ours.contains(*id))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in lost {
                    tracing::warn!(job = %id, "job is no longer this node's (cancelled, or its lease lapsed); stopping it");
                    server.stop_lost(&id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; leases may lapse"),
        }
    }
}

/// Sweeps lapsed leases and ages waiting jobs every `every`, from start until `ctx` ends.
async fn sweeps(server: Arc<Server>, ctx: Context, every: Duration) {
    let Some(node) = server.node.as_ref() else {
        return;
    };
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = ctx.done() => return,
            _ = tick.tick() => {}
        }
        match node.store.sweep().await {
            Ok(s) if s.requeued + s.dead > 0 => {
                tracing::info!(
                    requeued = s.requeued,
                    dead = s.dead,
                    "returned jobs whose lease lapsed"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweep failed"),
        }
    }
}
