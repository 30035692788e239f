//! Result cells for jobs with a handle: a fresh one per job, or the cell of a handle this
//! thread dropped while its job was still queued (see [`stash`]); and the pool reference a
//! handle holds to cancel its job ([`PoolRef`]).

use std::any::Any;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, Weak};

use super::Shared;
use super::intake::Intake;
use crate::job::{CancelQueued, Cell, StashFn};
use crate::lock;

/// How a [`JobHandle`](crate::JobHandle) reaches its pool to cancel its job: a weak
/// reference, registered in [`POOLS`] under the pool's uid (which the handle's cell carries).
/// Handles used to hold a reference each: cloned by every submit and released by every handle
/// drop, its count bounced between the submitting and the working threads (BENCHMARKS.md).
struct PoolRef<Req, Resp, E>(Weak<Shared<Req, Resp, E>>);

/// The live pools by uid (see [`PoolRef`]): written when a pool is built and dropped, read
/// only by a handle's cancel.
static POOLS: Mutex<Vec<(u64, Arc<dyn CancelQueued>)>> = Mutex::new(Vec::new());

/// The pool of uid `uid`, if it is still alive.
pub(crate) fn pool_of(uid: u64) -> Option<Arc<dyn CancelQueued>> {
    lock(&POOLS)
        .iter()
        .find(|(u, _)| *u == uid)
        .map(|(_, r)| Arc::clone(r))
}

/// Called when the pool of uid `uid` is dropped.
pub(super) fn unregister(uid: u64) {
    let removed = {
        let mut pools = lock(&POOLS);
        pools
            .iter()
            .position(|(u, _)| *u == uid)
            .map(|i| pools.swap_remove(i))
    };
    drop(removed); // outside the lock
}

impl<Req, Resp, E> CancelQueued for PoolRef<Req, Resp, E>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + 'static,
{
    fn cancelled_while_queued(&self, id: u64, level: u8) {
        if let Some(s) = self.0.upgrade() {
            s.cancelled_while_queued(id, level);
        }
    }

    fn wake_workers(&self) {
        if let Some(s) = self.0.upgrade() {
            s.wake_runners();
        }
    }
}

/// A dropped handle's cell whose job was still queued.
pub(super) struct Stashed {
    uid: u64,
    id: u64,
    level: u8,
    cell: Arc<dyn Any + Send + Sync>,
}

thread_local! {
    /// The last cell this thread's dropped handles gave back (see [`stash`]).
    static DETACHED: RefCell<Option<Stashed>> = const { RefCell::new(None) };
}

/// A handle dropped while its job is queued gives its cell here. The next submit of this
/// thread to the same pool, under its intake shard's lock it takes anyway (a job pushed from another thread's
/// shard is not found, and keeps its cell), takes the cell's other
/// reference out of the job's queue entry (the job then runs detached: its worker never
/// touches the cell) and, holding both references, reuses the cell for the new job: a
/// submit whose handle is dropped costs no allocation and no atomic reference count. If no
/// such submit comes, the job runs with its cell as any job whose handle is gone.
fn stash<Resp, E>(cell: Arc<Cell<Resp, E>>, id: u64, level: u8)
where
    Resp: Send + 'static,
    E: Send + 'static,
{
    let Some((_, uid)) = cell.stash else { return };
    let new = Stashed {
        uid,
        id,
        level,
        cell,
    };
    // During thread teardown the slot may be gone: the cell is then simply dropped.
    let old = DETACHED.try_with(|d| d.borrow_mut().replace(new));
    drop(old);
}

/// A cell's two references (the handle's and the queue entry's).
type CellPair<Resp, E> = (Arc<Cell<Resp, E>>, Arc<Cell<Resp, E>>);

/// What to drop once the `intake` lock is released.
type Garbage<Resp, E> = (Option<Arc<Cell<Resp, E>>>, Arc<dyn Any + Send + Sync>);

impl Stashed {
    /// Under the `intake` lock: detaches the stashed cell's job and returns the cell's two
    /// references if they can serve a new job; else what to drop after the lock.
    pub(super) fn reuse<Req, Resp, E>(
        self,
        intake: &mut Intake<Req, Resp, E>,
    ) -> Result<CellPair<Resp, E>, Garbage<Resp, E>>
    where
        Resp: Send + 'static,
        E: Send + 'static,
    {
        let Some(entry) = intake.detach(self.id, self.level) else {
            return Err((None, self.cell));
        };
        match self.cell.downcast::<Cell<Resp, E>>() {
            // Both references in hand (a cell has no others: handle and queue entry only),
            // queued and never polled: as good as new.
            Ok(mine)
                if Arc::ptr_eq(&mine, &entry)
                    && Arc::strong_count(&mine) == 2
                    && mine.reusable() =>
            {
                Ok((mine, entry))
            }
            Ok(mine) => Err((Some(entry), mine)),
            Err(other) => Err((Some(entry), other)),
        }
    }
}

impl<Req, Resp, E> Shared<Req, Resp, E>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + 'static,
{
    /// Must be called once the pool is in its `Arc`, before any submit: registers it for its
    /// handles' cancels (see [`PoolRef`]).
    pub(super) fn init_handle_ref(self: &Arc<Self>) {
        let r: Arc<dyn CancelQueued> = Arc::new(PoolRef(Arc::downgrade(self)));
        lock(&POOLS).push((self.uid, r));
    }

    /// This thread's stashed cell if it is this pool's.
    pub(super) fn take_stashed(&self) -> Option<Stashed> {
        DETACHED
            .try_with(|d| {
                let mut d = d.borrow_mut();
                if d.as_ref().is_some_and(|s| s.uid == self.uid) {
                    d.take()
                } else {
                    None
                }
            })
            .ok()
            .flatten()
    }

    /// A fresh cell for a job with a handle.
    pub(super) fn new_cell(&self) -> Arc<Cell<Resp, E>> {
        Arc::new(Cell::new(Some((
            stash::<Resp, E> as StashFn<Resp, E>,
            self.uid,
        ))))
    }
}
