//! The sorted queue: the [`Queue`] workers pop from in priority order, one FIFO per level,
//! with aging, fed from the intake (`intake.rs`) a batch at a time.
//!
//! # Aging without a clock read per pop
//!
//! A job at level `l` enqueued at time `t` gets the sort key `t - l * aging`: each level is worth
//! `aging` of waiting. A pop takes the front of the level whose front has the smallest key. The
//! fronts are the oldest of their levels (FIFO), so only they compete, and a pop needs no clock
//! read: a low job beats a higher one exactly when it has waited `aging` longer per level of
//! difference. Without aging, the highest non-empty level wins (strict order).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::job::Cell;

/// A queued job.
pub(crate) struct Entry<Req, Resp, E> {
    pub(crate) req: Req,
    /// The job's result cell; `None` for a job submitted without a handle, or whose handle
    /// was dropped while it was in the intake: nobody waits for its outcome, which is only
    /// counted.
    pub(crate) cell: Option<Arc<Cell<Resp, E>>>,
    pub(crate) id: u64,
    pub(crate) level: u8,
    /// When it was enqueued, in ns of the pool's [`Clock`](crate::clock::Clock) (the sort
    /// key derives from it).
    pub(crate) stamp: i64,
    // No blacklist key: a worker that needs it computes it again (only when a blacklist is
    // configured), which keeps an entry at 40 bytes. Entries are written by submitters and
    // read by workers, so each cache line of them crosses between cores once.
}

/// Jobs per level, as one intake shard hands them to a claim.
pub(crate) type Levels<Req, Resp, E> = Vec<Vec<Entry<Req, Resp, E>>>;

/// The levels a search by id looks at: the one given, or all `n` (the intake's shards too).
pub(super) fn levels_to_search(level: Option<u8>, n: usize) -> std::ops::Range<usize> {
    match level {
        Some(l) => l as usize..l as usize + 1,
        None => 0..n,
    }
}

/// The priority levels, as workers see them: jobs moved from the intake shards, behind the
/// pool's `sorted` lock (workers and cancels only).
pub(crate) struct Queue<Req, Resp, E> {
    levels: Vec<VecDeque<Entry<Req, Resp, E>>>,
    len: usize,
    aging_ns: Option<i64>,
    /// Where [`append_shards`](Queue::append_shards) merges, kept so it does not allocate.
    scratch: Vec<Entry<Req, Resp, E>>,
}

impl<Req, Resp, E> Queue<Req, Resp, E> {
    pub(crate) fn new(levels: usize, aging: Option<std::time::Duration>) -> Self {
        Queue {
            levels: (0..levels).map(|_| VecDeque::new()).collect(),
            len: 0,
            aging_ns: aging.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX).max(1)),
            scratch: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn level_lens(&self) -> impl Iterator<Item = usize> + '_ {
        self.levels.iter().map(VecDeque::len)
    }

    /// Appends jobs taken from every intake shard (`moved[shard][level]`, each sorted by id),
    /// merged by id per level: the order one intake would have given them.
    pub(crate) fn append_shards(&mut self, moved: &mut [Levels<Req, Resp, E>]) {
        for level in 0..self.levels.len() {
            let mut full = moved.iter_mut().filter(|m| !m[level].is_empty());
            let Some(first) = full.next() else { continue };
            let Some(second) = full.next() else {
                self.len += first[level].len();
                self.levels[level].extend(first[level].drain(..));
                continue;
            };
            let mut all = std::mem::take(&mut self.scratch);
            all.append(&mut first[level]);
            all.append(&mut second[level]);
            for m in full {
                all.append(&mut m[level]);
            }
            all.sort_unstable_by_key(|e| e.id);
            self.len += all.len();
            self.levels[level].extend(all.drain(..));
            self.scratch = all;
        }
    }

    #[cfg(test)]
    fn push(&mut self, e: Entry<Req, Resp, E>) {
        self.len += 1;
        self.levels[e.level as usize].push_back(e);
    }

    /// Which level to pop next (see the module docs).
    fn pick(&self) -> Option<usize> {
        let mut best: Option<(usize, i64)> = None;
        for (level, q) in self.levels.iter().enumerate().rev() {
            let Some(front) = q.front() else { continue };
            let Some(aging) = self.aging_ns else {
                return Some(level);
            };
            let key = front
                .stamp
                .saturating_sub((level as i64).saturating_mul(aging));
            // Strictly smaller: ties go to the higher level, visited first.
            if best.is_none_or(|(_, k)| key < k) {
                best = Some((level, key));
            }
        }
        best.map(|(l, _)| l)
    }

    #[cfg(test)]
    fn pop(&mut self) -> Option<Entry<Req, Resp, E>> {
        let level = self.pick()?;
        self.len -= 1;
        self.levels[level].pop_front()
    }

    /// Pops up to `n` jobs into `into`, in the order of `n` single pops, counting them per level
    /// in `released`. Rather than comparing the fronts of all levels per job, it takes a run
    /// from the picked level for as long as its front would still be picked: the other levels'
    /// fronts do not change meanwhile, so that is one comparison per job.
    pub(crate) fn pop_into(
        &mut self,
        n: usize,
        into: &mut VecDeque<Entry<Req, Resp, E>>,
        released: &mut [usize],
    ) {
        let aging = self.aging_ns;
        let mut left = n;
        while left > 0 {
            let Some(level) = self.pick() else { break };
            // The best key among higher levels (which win ties) and among lower ones.
            let (mut hi, mut lo): (Option<i64>, Option<i64>) = (None, None);
            if let Some(aging) = aging {
                for (m, q) in self.levels.iter().enumerate() {
                    let Some(front) = q.front() else { continue };
                    let key = front.stamp.saturating_sub((m as i64).saturating_mul(aging));
                    let bound = match m.cmp(&level) {
                        std::cmp::Ordering::Greater => &mut hi,
                        std::cmp::Ordering::Less => &mut lo,
                        std::cmp::Ordering::Equal => continue,
                    };
                    *bound = Some(bound.map_or(key, |b| b.min(key)));
                }
            }
            let q = &mut self.levels[level];
            let mut taken = 0;
            while taken < left {
                let Some(front) = q.front() else { break };
                if let Some(aging) = aging {
                    let key = front
                        .stamp
                        .saturating_sub((level as i64).saturating_mul(aging));
                    // Still picked: strictly before every higher level, not after a lower one.
                    if hi.is_some_and(|h| key >= h) || lo.is_some_and(|l| key > l) {
                        break;
                    }
                }
                if let Some(e) = q.pop_front() {
                    into.push_back(e);
                    taken += 1;
                }
            }
            // The first job of a run is always taken (it was picked), so this advances.
            self.len -= taken;
            released[level] += taken;
            left -= taken;
        }
    }

    /// Removes the queued job `id` (cancel by handle or by id).
    pub(crate) fn remove(&mut self, id: u64, level: Option<u8>) -> Option<Entry<Req, Resp, E>> {
        for l in levels_to_search(level, self.levels.len()) {
            let q = &mut self.levels[l];
            if let Ok(i) = q.binary_search_by_key(&id, |e| e.id) {
                let e = q.remove(i);
                self.len -= 1;
                return e;
            }
        }
        None
    }

    /// Empties the queue (cancelling shutdown).
    pub(crate) fn drain_all(&mut self) -> impl Iterator<Item = Entry<Req, Resp, E>> + '_ {
        self.len = 0;
        self.levels.iter_mut().flat_map(|q| q.drain(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::intake::{EMPTY, Intake};
    use std::time::Duration;

    fn push(q: &mut Queue<u32, (), ()>, id: u64, level: u8, at: Duration) {
        q.push(Entry {
            req: id as u32,
            cell: Some(Arc::new(Cell::new(None))),
            id,
            level,
            stamp: i64::try_from(at.as_nanos()).unwrap(),
        });
    }

    #[test]
    fn strict_levels_and_fifo_within_a_level_without_aging() {
        let t = Duration::ZERO;
        let mut q = Queue::new(3, None);
        push(&mut q, 1, 0, t);
        push(&mut q, 2, 2, t);
        push(&mut q, 3, 1, t);
        push(&mut q, 4, 2, t);
        let order: Vec<u32> = std::iter::from_fn(|| q.pop().map(|e| e.req)).collect();
        assert_eq!(order, [2, 4, 3, 1]);
    }

    #[test]
    fn aging_lets_an_old_low_job_pass_a_new_high_one() {
        let t = Duration::ZERO;
        let mut q = Queue::new(2, Some(Duration::from_secs(1)));
        push(&mut q, 1, 0, t);
        push(&mut q, 2, 1, t + Duration::from_millis(999));
        assert_eq!(q.pop().map(|e| e.req), Some(2), "not yet aged");
        push(&mut q, 3, 1, t + Duration::from_millis(1001));
        assert_eq!(q.pop().map(|e| e.req), Some(1), "aged past one level");
    }

    #[test]
    fn jobs_moved_from_the_intake_pop_in_the_same_order_as_from_one_queue() {
        // Old jobs already sorted, newer ones still in the intake: after the move, levels
        // stay FIFO and strict order holds across both.
        let mut q = Queue::new(2, None);
        push(&mut q, 1, 0, Duration::ZERO);
        push(&mut q, 2, 1, Duration::ZERO);
        let mut intake: Intake<u32, (), ()> = Intake::new(2, 4);
        for (req, level) in [(3, 0), (4, 1), (5, 1)] {
            intake.push(req, level, None, 0);
        }
        let mut moved: Vec<Vec<Entry<u32, (), ()>>> = vec![Vec::new(), Vec::new()];
        intake.take_into(&mut moved);
        assert_eq!(
            intake.level_lens().sum::<usize>(),
            0,
            "the intake is empty after a take"
        );
        assert_eq!(intake.fill.get(), EMPTY);
        q.append_shards(std::slice::from_mut(&mut moved));
        assert!(moved.iter().all(Vec::is_empty));
        let order: Vec<u32> = std::iter::from_fn(|| q.pop().map(|e| e.req)).collect();
        assert_eq!(order, [2, 4, 5, 1, 3]);
    }

    #[test]
    fn jobs_from_several_shards_are_merged_by_id_per_level() {
        let entry = |id: u64, level: u8| Entry {
            req: id as u32,
            cell: None,
            id,
            level,
            stamp: 0,
        };
        let mut q: Queue<u32, (), ()> = Queue::new(2, None);
        // Two shards: ids interleave between them, each shard's own ids ascending.
        let mut moved = vec![
            vec![vec![entry(1, 0), entry(4, 0)], vec![entry(2, 1)]],
            vec![vec![entry(3, 0), entry(5, 0)], vec![]],
        ];
        q.append_shards(&mut moved);
        assert!(moved.iter().flatten().all(Vec::is_empty), "all taken");
        assert_eq!(q.len(), 5);
        let order: Vec<u32> = std::iter::from_fn(|| q.pop().map(|e| e.req)).collect();
        assert_eq!(order, [2, 1, 3, 4, 5], "level 1 first, then level 0 by id");
    }

    #[test]
    fn pop_into_pops_what_single_pops_would_in_the_same_order() {
        // Random levels and stamps (not always increasing within a level: submitters read the
        // clock before they take the lock), with and without aging, batches of random sizes.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..200 {
            let aging = (round % 2 == 0).then(|| Duration::from_nanos(1 + rand(50)));
            let levels = 1 + rand(4) as usize;
            let (mut a, mut b) = (Queue::new(levels, aging), Queue::new(levels, aging));
            let mut at = 0u64;
            for id in 1..=(1 + rand(60)) {
                at = (at + rand(40)).saturating_sub(rand(10));
                let level = rand(levels as u64) as u8;
                push(&mut a, id, level, Duration::from_nanos(at));
                push(&mut b, id, level, Duration::from_nanos(at));
            }
            let mut expected = Vec::new();
            while let Some(e) = a.pop() {
                expected.push(e.id);
            }
            let mut got = VecDeque::new();
            let mut released = vec![0; levels];
            while b.len() > 0 {
                let before = got.len();
                b.pop_into(1 + rand(7) as usize, &mut got, &mut released);
                assert!(
                    got.len() > before,
                    "a pop from a non-empty queue takes a job"
                );
            }
            let got: Vec<u64> = got.iter().map(|e| e.id).collect();
            assert_eq!(got, expected, "round {round}, aging {aging:?}");
            assert_eq!(released.iter().sum::<usize>(), got.len());
        }
    }

    #[test]
    fn remove_finds_by_id() {
        let t = Duration::ZERO;
        let mut q = Queue::new(2, None);
        for id in 1..=5 {
            push(&mut q, id, (id % 2) as u8, t);
        }
        assert_eq!(q.remove(3, Some(1)).map(|e| e.req), Some(3));
        assert_eq!(q.remove(3, None).map(|e| e.req), None);
        assert_eq!(q.remove(4, None).map(|e| e.req), Some(4));
        assert_eq!(q.len(), 3);
    }
}
