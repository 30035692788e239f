//! Workers coming and going: the pool's start, [`Pool::resize`](crate::Pool::resize), growth
//! on queue depth (decided by a push, `admission.rs`), and a worker's retirement. The counts
//! themselves change only in `state.rs` (its invariant 2).

use std::sync::Arc;

use super::Shared;
use super::slot::WorkerSlot;
use crate::lock;

/// Spawns one worker task for a slot (type-erases the handler).
pub(crate) type Spawner<Req, Resp, E> =
    Box<dyn Fn(&Arc<Shared<Req, Resp, E>>, Arc<WorkerSlot>) + Send + Sync>;

impl<Req, Resp, E> Shared<Req, Resp, E>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + 'static,
{
    /// Starts the pool once it is in its `Arc`: `spawner` starts each worker, the first
    /// `min` start now, and the pool ends with its Context.
    pub(crate) fn start(self: &Arc<Self>, spawner: Spawner<Req, Resp, E>, min: usize, max: usize) {
        let _ = self.spawner.set(spawner);
        self.init_handle_ref();
        self.set_bounds(min, max);
        // A weak reference: the watcher must not keep the pool alive.
        let weak = Arc::downgrade(self);
        let watcher = self.ctx.after_func(move || {
            if let Some(s) = weak.upgrade() {
                s.cancel_everything();
            }
        });
        *lock(&self.watcher) = Some(watcher);
    }

    /// Starts one worker; the caller has already counted it (`State::workers`).
    pub(crate) fn spawn_worker(self: &Arc<Self>) {
        let id = self.state.lock().next_worker_id();
        let slot = Arc::new(WorkerSlot::new(id, self.config.levels as usize));
        lock(&self.registry).slots.push(Arc::clone(&slot));
        if let Some(spawn) = self.spawner.get() {
            spawn(self, slot);
        }
    }

    /// Spawns a worker's task on `runtime`, tracked for shutdown.
    pub(crate) fn spawn_task<F>(&self, fut: F, runtime: &tokio::runtime::Handle)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn_on(fut, runtime);
    }

    /// New bounds for the worker count: starts the missing workers, wakes the parked ones so
    /// that those in excess leave.
    pub(crate) fn set_bounds(self: &Arc<Self>, min: usize, max: usize) {
        let (spawn, wake) = {
            let mut st = self.state.lock();
            let closed = self.intake.lock_mine().is_closed();
            st.set_bounds(min, max, closed)
        };
        for w in wake {
            w.wake();
        }
        for _ in 0..spawn {
            self.spawn_worker();
        }
    }

    /// A worker that is still counted stops (a cancelling shutdown ended its loop).
    pub(crate) fn leave(&self, slot: &WorkerSlot) {
        self.state.lock().leave(slot.id);
    }

    /// A worker's slot goes (invariant 3 of the module): its counters join the retired sums.
    pub(crate) fn retire(&self, slot: &Arc<WorkerSlot>) {
        let mut reg = lock(&self.registry);
        reg.retired.absorb(&slot.counters);
        reg.slots.retain(|s| !Arc::ptr_eq(s, slot));
    }
}
