//! The counters behind [`Progress`](crate::Progress) and [`Report`](crate::Report): one
//! [`Counters`] per stage, written through the stage's [`Meter`], listed in a [`Registry`].
//!
//! # Invariants
//!
//! 1. A stage writes its own counters only through its `Meter`, and only its input queue
//!    (`chan`) writes them otherwise (items it drops or drains, invariant 1 of `chan`).
//! 2. Whatever a `Meter` counted `received` and gave no outcome when it drops is counted
//!    `cancelled`, so the sums hold on abort, fail-fast and unwind.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::report::StageReport;

// All counters use `Relaxed`: each is an independent statistic, published by the stage that
// owns it; a reader wants a recent value, not an ordering with other memory. The final report
// is read after every stage task has been joined, which synchronises with all their writes.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) name: Arc<str>,
    pub(crate) received: AtomicU64,
    pub(crate) emitted: AtomicU64,
    pub(crate) filtered: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) output: AtomicU64,
    pub(crate) busy_ns: AtomicU64,
    pub(crate) queue_len: AtomicUsize,
    pub(crate) queue_high: AtomicUsize,
}

impl Counters {
    pub(crate) fn new(name: Arc<str>) -> Arc<Self> {
        Arc::new(Counters {
            name,
            received: AtomicU64::new(0),
            emitted: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            output: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            queue_len: AtomicUsize::new(0),
            queue_high: AtomicUsize::new(0),
        })
    }

    pub(crate) fn snapshot(&self) -> StageReport {
        StageReport {
            name: self.name.clone(),
            received: self.received.load(Relaxed),
            emitted: self.emitted.load(Relaxed),
            filtered: self.filtered.load(Relaxed),
            failed: self.failed.load(Relaxed),
            retried: self.retried.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            output: self.output.load(Relaxed),
            busy: Duration::from_nanos(self.busy_ns.load(Relaxed)),
            queue_depth: self.queue_len.load(Relaxed),
            max_queue_depth: self.queue_high.load(Relaxed),
        }
    }
}

/// A stage's local tally, published to its [`Counters`] once per chunk.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub(crate) received: u64,
    pub(crate) emitted: u64,
    pub(crate) filtered: u64,
    pub(crate) failed: u64,
    pub(crate) retried: u64,
    pub(crate) dropped: u64,
}

impl Tally {
    /// Items received but not yet given an outcome.
    pub(crate) fn open(&self) -> u64 {
        self.received - self.emitted - self.filtered - self.failed - self.dropped
    }
}

/// Handle a stage task uses to publish its tally.
#[derive(Debug)]
pub(crate) struct Meter {
    pub(crate) c: Arc<Counters>,
    pub(crate) t: Tally,
}

impl Meter {
    pub(crate) fn new(c: Arc<Counters>) -> Self {
        Meter {
            c,
            t: Tally::default(),
        }
    }
    pub(crate) fn received(&mut self, n: usize) {
        self.t.received += n as u64;
        self.c.received.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn emitted(&mut self, inputs: u64, outputs: usize) {
        self.t.emitted += inputs;
        self.c.emitted.fetch_add(inputs, Relaxed);
        self.c.output.fetch_add(outputs as u64, Relaxed);
    }
    pub(crate) fn filtered(&mut self, n: u64) {
        if n > 0 {
            self.t.filtered += n;
            self.c.filtered.fetch_add(n, Relaxed);
        }
    }
    pub(crate) fn failed(&mut self, n: u64) {
        self.t.failed += n;
        self.c.failed.fetch_add(n, Relaxed);
    }
    pub(crate) fn retried(&mut self, n: u64) {
        self.t.retried += n;
        self.c.retried.fetch_add(n, Relaxed);
    }
    pub(crate) fn busy(&self, d: Duration) {
        self.c
            .busy_ns
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }
}

impl Drop for Meter {
    /// Whatever the stage received and did not account for is cancelled: this is the rule that
    /// keeps the sums exact on abort, on fail-fast and when a stage task unwinds.
    fn drop(&mut self) {
        let open = self.t.open();
        if open > 0 {
            self.c.cancelled.fetch_add(open, Relaxed);
        }
    }
}

/// The stages of one run, in build order (sources first).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    stages: Mutex<Vec<Arc<Counters>>>,
    /// Hand-offs `(from, to)`: `from` sends into `to`'s queue.
    edges: Mutex<Vec<(Arc<Counters>, Arc<Counters>)>>,
}

impl Registry {
    pub(crate) fn push(&self, c: Arc<Counters>) -> usize {
        let mut v = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        v.push(c);
        v.len() - 1
    }
    pub(crate) fn link(&self, from: &Arc<Counters>, to: &Arc<Counters>) {
        let mut e = self.edges.lock().unwrap_or_else(|e| e.into_inner());
        if !e
            .iter()
            .any(|(a, b)| Arc::ptr_eq(a, from) && Arc::ptr_eq(b, to))
        {
            e.push((from.clone(), to.clone()));
        }
    }
    /// The hand-offs, as positions in [`Registry::list`].
    pub(crate) fn links(&self) -> Vec<(usize, usize)> {
        let stages = self.list();
        let pos = |c: &Arc<Counters>| stages.iter().position(|s| Arc::ptr_eq(s, c));
        let edges = self.edges.lock().unwrap_or_else(|e| e.into_inner());
        edges
            .iter()
            .filter_map(|(a, b)| Some((pos(a)?, pos(b)?)))
            .collect()
    }

    pub(crate) fn list(&self) -> Vec<Arc<Counters>> {
        self.stages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
