//! Queue room per priority level, reserved before anything is written.
//!
//! A submission first takes a unit of room at its level ([`Admission::try_reserve`]); only then
//! is the job stored and handed to the pool, carrying its [`Room`]. The room is given back when
//! a worker starts the job, or when the job is dropped unstarted (cancelled while queued, or
//! refused at shutdown). So a full queue is answered without touching the store, and the pool
//! itself never holds more than the configured queue.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Room in the queue of each priority level.
#[derive(Debug)]
pub(crate) struct Admission {
    levels: Vec<Arc<Semaphore>>,
}

/// One reserved place in a level's queue; released when dropped.
#[derive(Debug)]
pub(crate) struct Room {
    _place: OwnedSemaphorePermit,
}

impl Admission {
    pub(crate) fn new(levels: u8, per_level: usize) -> Self {
        Admission {
            levels: (0..levels)
                .map(|_| Arc::new(Semaphore::new(per_level.max(1))))
                .collect(),
        }
    }

    fn level(&self, priority: u8) -> &Arc<Semaphore> {
        &self.levels[usize::from(priority).min(self.levels.len() - 1)]
    }

    /// A place at `priority` if one is free now.
    pub(crate) fn try_reserve(&self, priority: u8) -> Option<Room> {
        Arc::clone(self.level(priority))
            .try_acquire_owned()
            .ok()
            .map(|place| Room { _place: place })
    }

    /// Waits for a place at `priority` (for recovered jobs). Waiters are served first come,
    /// first served, before any later [`try_reserve`](Admission::try_reserve).
    ///
    /// Cancel safe: a dropped wait holds no place.
    pub(crate) async fn reserve(&self, priority: u8) -> Option<Room> {
        Arc::clone(self.level(priority))
            .acquire_owned()
            .await
            .ok()
            .map(|place| Room { _place: place })
    }
}
