//! The in-memory engine: the store's operations on a map, for `--in-memory` and tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use super::{
    JobRecord, JobStatus, JobStore, NewJob, Page, StoreError, cutoff_ms, no_run_at, now_ms, page,
};

/// Jobs in memory: nothing survives the process. Cloning shares the same jobs.
///
/// Every operation is a short critical section on one lock, run on the caller's thread: there
/// is no I/O to keep off the async workers.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Jobs>>,
}

#[derive(Debug, Default)]
struct Jobs {
    by_id: HashMap<String, JobRecord>,
    /// Acceptance order (for listing and recovery): sequence number -> id.
    order: BTreeMap<u64, String>,
    next_seq: u64,
}

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

    fn lock(&self) -> MutexGuard<'_, Jobs> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl JobStore for MemoryStore {
    async fn insert(&self, job: NewJob) -> Result<(), StoreError> {
        if job.run_at.is_some() {
            return Err(no_run_at());
        }
        let mut jobs = self.lock();
        if jobs.by_id.contains_key(&job.id) {
            return Err(StoreError::Duplicate(job.id));
        }
        let seq = jobs.next_seq;
        jobs.next_seq += 1;
        jobs.order.insert(seq, job.id.clone());
        let record = JobRecord {
            id: job.id.clone(),
            job_type: job.job_type.to_owned(),
            priority: job.priority,
            data: job.data,
            status: JobStatus::Queued,
            result: None,
            error: None,
            attempts: 0,
            created_at: now_ms(),
            started_at: None,
            finished_at: None,
        };
        jobs.by_id.insert(job.id, record);
        Ok(())
    }

    async fn mark_running(&self, id: &str) -> Result<Option<u32>, StoreError> {
        let mut jobs = self.lock();
        Ok(match jobs.by_id.get_mut(id) {
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
        let mut jobs = self.lock();
        Ok(match jobs.by_id.get_mut(id) {
            // A fenced write needs the job still running in that very attempt: once it was
            // re-queued or re-run, the old run's outcome is stale.
            Some(job)
                if !job.status.is_final()
                    && attempt
                        .is_none_or(|a| job.status == JobStatus::Running && a == job.attempts) =>
            {
                job.status = status;
                job.result = result;
                job.error = error;
                job.finished_at = Some(now_ms());
                true
            }
            _ => false,
        })
    }

    async fn requeue(&self, ids: Vec<String>) -> Result<usize, StoreError> {
        let mut jobs = self.lock();
        let mut n = 0;
        for id in ids {
            if let Some(job) = jobs.by_id.get_mut(&id)
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
        let mut jobs = self.lock();
        if jobs
            .by_id
            .get(id)
            .is_some_and(|j| j.status == JobStatus::Queued)
        {
            jobs.by_id.remove(id);
            jobs.order.retain(|_, v| v != id);
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.lock().by_id.get(id).cloned())
    }

    async fn list(
        &self,
        status: Option<JobStatus>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let jobs = self.lock();
        let from = after.map_or(0, |a| a.saturating_add(1));
        let rows = jobs
            .order
            .range(from..)
            .filter_map(|(seq, id)| Some((*seq, jobs.by_id.get(id)?)))
            .filter(|(_, j)| status.is_none_or(|s| j.status == s))
            .take(limit.saturating_add(1))
            .map(|(seq, j)| (seq, j.clone()))
            .collect();
        Ok(page(rows, limit))
    }

    async fn purge_finished(&self, older_than: Duration) -> Result<u64, StoreError> {
        let cutoff = cutoff_ms(older_than);
        let mut jobs = self.lock();
        let jobs = &mut *jobs;
        let before = jobs.by_id.len();
        jobs.by_id
            .retain(|_, j| !(j.status.is_final() && j.finished_at.is_some_and(|t| t < cutoff)));
        let by_id = &jobs.by_id;
        jobs.order.retain(|_, id| by_id.contains_key(id));
        Ok((before - jobs.by_id.len()) as u64)
    }

    async fn recover(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut jobs = self.lock();
        let jobs = &mut *jobs;
        let mut out = Vec::new();
        for id in jobs.order.values() {
            if let Some(job) = jobs.by_id.get_mut(id)
                && !job.status.is_final()
            {
                job.status = JobStatus::Queued;
                job.started_at = None;
                out.push(job.clone());
            }
        }
        Ok(out)
    }

    async fn counts(&self) -> Result<Vec<(JobStatus, u64)>, StoreError> {
        let mut counts: HashMap<JobStatus, u64> = HashMap::new();
        for job in self.lock().by_id.values() {
            *counts.entry(job.status).or_default() += 1;
        }
        let mut out: Vec<_> = counts.into_iter().collect();
        out.sort_by_key(|(s, _)| s.as_str());
        Ok(out)
    }
}
