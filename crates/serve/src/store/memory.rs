//! The in-memory engine: the store's operations on sharded maps, for `--in-memory` and tests.
//!
//! Jobs live in a [`Sharded`] map by id, each a compact record (its `data` and `result` kept
//! as the JSON text they arrived as, not as trees), and their acceptance order in a B-tree by
//! sequence number. Neither grows by moving every job at once, so a long queue does not stall
//! submissions while a map rehashes. Lock order: a shard, then the order; never the order and
//! then a shard (listings copy ids out of the order before they look jobs up).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use super::render::RecordView;
use super::{
    JobRecord, JobStatus, JobStore, NewJob, Page, StoreError, cutoff_ms, no_run_at, now_ms, page,
};
use crate::shards::Sharded;

/// Jobs in memory: nothing survives the process. Cloning shares the same jobs.
///
/// Every operation is a short critical section on one shard's lock (and the order's, to add or
/// remove), run on the caller's thread: there is no I/O to keep off the async workers.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: Sharded<Arc<str>, Entry>,
    order: Mutex<Order>,
}

/// Acceptance order (for listing and recovery): sequence number -> id.
#[derive(Debug, Default)]
struct Order {
    seqs: BTreeMap<u64, Arc<str>>,
    next_seq: u64,
}

/// One job, compactly: about 120 bytes and its JSON text.
#[derive(Debug)]
struct Entry {
    seq: u64,
    job_type: &'static str,
    priority: u8,
    status: JobStatus,
    attempts: u32,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    data: Box<str>,
    result: Option<Box<str>>,
    error: Option<Box<str>>,
}

impl Entry {
    fn view<'a>(&'a self, id: &'a str) -> RecordView<'a> {
        RecordView {
            id,
            job_type: self.job_type,
            priority: self.priority,
            data: &self.data,
            status: self.status,
            result: self.result.as_deref(),
            error: self.error.as_deref(),
            attempts: self.attempts,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        }
    }

    fn record(&self, id: &str) -> JobRecord {
        let parse = |text: &str| serde_json::from_str(text).unwrap_or(Value::Null);
        JobRecord {
            id: id.to_owned(),
            job_type: self.job_type.to_owned(),
            priority: self.priority,
            data: parse(&self.data),
            status: self.status,
            result: self.result.as_deref().map(parse),
            error: self.error.as_deref().map(str::to_owned),
            attempts: self.attempts,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        }
    }
}

/// Ids copied out of the order per look-up round of a listing.
const LIST_CHUNK: usize = 256;

impl MemoryStore {
    /// A new, empty store.
    ///
    /// ```
    /// use weft_serve::store::{JobStore, MemoryStore};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_serve::store::StoreError> {
    /// assert!(MemoryStore::new().get("nope").await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn order(&self) -> MutexGuard<'_, Order> {
        self.inner.order.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The job `id` as `GET /api/jobs/{id}` answers it, written from the stored text.
    pub(crate) fn get_json(&self, id: &str) -> Option<String> {
        let shard = self.inner.jobs.shard(id);
        let (id, entry) = shard.get_key_value(id)?;
        Some(entry.view(id).render())
    }

    /// Visits the jobs in acceptance order from sequence number `from`, each under its shard's
    /// lock, until `visit` returns `false`. Jobs removed meanwhile are skipped.
    fn walk(&self, from: u64, mut visit: impl FnMut(u64, &str, &mut Entry) -> bool) {
        let mut cursor = from;
        loop {
            let chunk: Vec<(u64, Arc<str>)> = self
                .order()
                .seqs
                .range(cursor..)
                .take(LIST_CHUNK)
                .map(|(seq, id)| (*seq, Arc::clone(id)))
                .collect();
            let Some(&(last, _)) = chunk.last() else {
                return;
            };
            cursor = last + 1;
            for (seq, id) in chunk {
                let mut shard = self.inner.jobs.shard(&id);
                if let Some(entry) = shard.get_mut(&*id).filter(|e| e.seq == seq)
                    && !visit(seq, &id, entry)
                {
                    return;
                }
            }
        }
    }
}

impl JobStore for MemoryStore {
    async fn insert(&self, job: NewJob) -> Result<(), StoreError> {
        if job.run_at.is_some() {
            return Err(no_run_at());
        }
        let data = job.data.to_string().into_boxed_str();
        let mut shard = self.inner.jobs.shard(&job.id);
        if shard.contains_key(job.id.as_str()) {
            return Err(StoreError::Duplicate(job.id));
        }
        let id: Arc<str> = job.id.into();
        let seq = {
            let mut order = self.order();
            let seq = order.next_seq;
            order.next_seq += 1;
            order.seqs.insert(seq, Arc::clone(&id));
            seq
        };
        shard.insert(
            id,
            Entry {
                seq,
                job_type: job.job_type,
                priority: job.priority,
                status: JobStatus::Queued,
                attempts: 0,
                created_at: now_ms(),
                started_at: None,
                finished_at: None,
                data,
                result: None,
                error: None,
            },
        );
        Ok(())
    }

    async fn mark_running(&self, id: &str) -> Result<Option<u32>, StoreError> {
        let mut shard = self.inner.jobs.shard(id);
        Ok(match shard.get_mut(id) {
            Some(job) if job.status == JobStatus::Queued => {
                job.status = JobStatus::Running;
                job.attempts += 1;
                job.started_at = Some(now_ms());
                Some(job.attempts)
            }
            _ => None,
        })
    }

    async fn finish(
        &self,
        id: &str,
        attempt: Option<u32>,
        status: JobStatus,
        result: Option<Value>,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        let result = result.map(|r| r.to_string().into_boxed_str());
        let mut shard = self.inner.jobs.shard(id);
        Ok(match shard.get_mut(id) {
            // A fenced write needs the job still running in that very attempt: once it was
            // re-queued or re-run, the old run's outcome is stale.
            Some(job)
                if !job.status.is_final()
                    && attempt
                        .is_none_or(|a| job.status == JobStatus::Running && a == job.attempts) =>
            {
                job.status = status;
                job.result = result;
                job.error = error.map(String::into_boxed_str);
                job.finished_at = Some(now_ms());
                true
            }
            _ => false,
        })
    }

    async fn requeue(&self, ids: Vec<String>) -> Result<usize, StoreError> {
        let mut n = 0;
        for id in ids {
            if let Some(job) = self.inner.jobs.shard(&id).get_mut(id.as_str())
                && job.status == JobStatus::Running
            {
                job.status = JobStatus::Queued;
                job.started_at = None;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        let mut shard = self.inner.jobs.shard(id);
        if shard.get(id).is_some_and(|j| j.status == JobStatus::Queued)
            && let Some(job) = shard.remove(id)
        {
            self.order().seqs.remove(&job.seq);
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let shard = self.inner.jobs.shard(id);
        Ok(shard.get_key_value(id).map(|(id, job)| job.record(id)))
    }

    async fn list(
        &self,
        status: Option<JobStatus>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let from = after.map_or(0, |a| a.saturating_add(1));
        let want = limit.saturating_add(1);
        let mut rows = Vec::new();
        self.walk(from, |seq, id, job| {
            if status.is_none_or(|s| job.status == s) {
                rows.push((seq, job.record(id)));
            }
            rows.len() < want
        });
        Ok(page(rows, limit))
    }

    async fn purge_finished(&self, older_than: Duration) -> Result<u64, StoreError> {
        let cutoff = cutoff_ms(older_than);
        let mut gone = Vec::new();
        for mut shard in self.inner.jobs.each() {
            shard.retain(|_, j| {
                let old = j.status.is_final() && j.finished_at.is_some_and(|t| t < cutoff);
                if old {
                    gone.push(j.seq);
                }
                !old
            });
        }
        let mut order = self.order();
        for seq in &gone {
            order.seqs.remove(seq);
        }
        Ok(gone.len() as u64)
    }

    async fn recover(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut out = Vec::new();
        self.walk(0, |_, id, job| {
            if !job.status.is_final() {
                job.status = JobStatus::Queued;
                job.started_at = None;
                out.push(job.record(id));
            }
            true
        });
        Ok(out)
    }

    async fn counts(&self) -> Result<Vec<(JobStatus, u64)>, StoreError> {
        let mut counts: HashMap<JobStatus, u64> = HashMap::new();
        for shard in self.inner.jobs.each() {
            for job in shard.values() {
                *counts.entry(job.status).or_default() += 1;
            }
        }
        let mut out: Vec<_> = counts.into_iter().collect();
        out.sort_by_key(|(s, _)| s.as_str());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn get_json_answers_what_serialising_get_gives_in_every_state() {
        let store = MemoryStore::new();
        let data = json!({"recipients": ["a\"b"], "message": "é", "channel": "sms"});
        store
            .insert(NewJob::new("j", "notification", 1, data))
            .await
            .unwrap();
        let same = |store: &MemoryStore| {
            let record = futures_util::FutureExt::now_or_never(store.get("j"))
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(
                store.get_json("j").unwrap(),
                serde_json::to_string(&record).unwrap()
            );
        };
        same(&store);
        store.mark_running("j").await.unwrap();
        same(&store);
        let result = json!({"sent": 1});
        store
            .finish(
                "j",
                None,
                JobStatus::Completed,
                Some(result),
                Some("x".into()),
            )
            .await
            .unwrap();
        same(&store);
        assert!(store.get_json("nope").is_none());
    }

    #[tokio::test]
    async fn listing_and_deleting_keep_acceptance_order_across_shards() {
        let store = MemoryStore::new();
        for i in 0..600 {
            store
                .insert(NewJob::new(format!("j{i}"), "notification", 1, json!({})))
                .await
                .unwrap();
        }
        store.delete("j3").await.unwrap();
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let p = store.list(None, after, 100).await.unwrap();
            ids.extend(p.jobs.into_iter().map(|j| j.id));
            match p.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let want: Vec<String> = (0..600)
            .filter(|i| *i != 3)
            .map(|i| format!("j{i}"))
            .collect();
        assert_eq!(ids, want);
        let recovered: Vec<String> = store
            .recover()
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(recovered, want);
    }
}
