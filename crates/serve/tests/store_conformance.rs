//! One conformance suite for every job store engine: each check is a generic function over
//! [`JobStore`], and `conformance!` runs all of them against one engine (memory, SQLite, and
//! PostgreSQL when a database is given). An engine that breaks a rule the server relies on (a
//! job stored twice, a second final state, a stale attempt's outcome, work lost on recovery,
//! a listing out of order) fails here by name.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use weft_serve::store::{JobStatus, JobStore, NewJob, StoreError};

fn job(id: &str, priority: u8) -> NewJob {
    NewJob::new(
        id,
        "notification",
        priority,
        json!({"recipients": ["a@x"], "message": id, "channel": "sms"}),
    )
}

async fn status<S: JobStore>(s: &S, id: &str) -> JobStatus {
    s.get(id).await.unwrap().unwrap().status
}

/// queued -> running -> completed, with the attempt, times, data and result recorded.
async fn a_job_moves_from_queued_to_running_to_final<S: JobStore>(s: S) {
    s.insert(job("a", 2)).await.unwrap();
    let a = s.get("a").await.unwrap().unwrap();
    assert_eq!(
        (a.status, a.attempts, a.priority),
        (JobStatus::Queued, 0, 2)
    );
    assert_eq!(a.job_type, "notification");
    assert_eq!(a.data["message"], "a");
    assert!(a.created_at > 0 && a.started_at.is_none() && a.finished_at.is_none());

    assert_eq!(s.mark_running("a").await.unwrap(), Some(1));
    let a = s.get("a").await.unwrap().unwrap();
    assert_eq!((a.status, a.attempts), (JobStatus::Running, 1));
    assert!(a.started_at.is_some());
    assert_eq!(s.mark_running("a").await.unwrap(), None, "already running");

    let done = s
        .finish(
            "a",
            Some(1),
            JobStatus::Completed,
            Some(json!({"n": 1})),
            None,
        )
        .await
        .unwrap();
    assert!(done);
    let a = s.get("a").await.unwrap().unwrap();
    assert_eq!(a.status, JobStatus::Completed);
    assert_eq!(a.result, Some(json!({"n": 1})));
    assert!(a.finished_at.is_some());
    assert_eq!(
        s.mark_running("a").await.unwrap(),
        None,
        "a final job never restarts"
    );
    assert!(s.get("nope").await.unwrap().is_none());
}

/// An id is stored once; a second insert is `Duplicate` and changes nothing.
async fn an_id_is_stored_at_most_once<S: JobStore>(s: S) {
    s.insert(job("a", 1)).await.unwrap();
    s.mark_running("a").await.unwrap();
    let err = s.insert(job("a", 0)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Duplicate(ref id) if id == "a"),
        "{err}"
    );
    let a = s.get("a").await.unwrap().unwrap();
    assert_eq!((a.status, a.priority), (JobStatus::Running, 1));
}

/// The first final state wins: a client's cancel is not overwritten by the worker's late
/// outcome, nor a completion by a later cancel.
async fn the_first_final_state_wins<S: JobStore>(s: S) {
    s.insert(job("a", 1)).await.unwrap();
    let attempt = s.mark_running("a").await.unwrap();
    assert!(
        s.finish(
            "a",
            None,
            JobStatus::Cancelled,
            None,
            Some("by client".into())
        )
        .await
        .unwrap()
    );
    assert!(
        !s.finish("a", attempt, JobStatus::Completed, Some(json!(1)), None)
            .await
            .unwrap()
    );
    let a = s.get("a").await.unwrap().unwrap();
    assert_eq!(a.status, JobStatus::Cancelled);
    assert_eq!((a.result, a.error.as_deref()), (None, Some("by client")));

    s.insert(job("b", 1)).await.unwrap();
    s.mark_running("b").await.unwrap();
    assert!(
        s.finish("b", Some(1), JobStatus::Failed, None, Some("x".into()))
            .await
            .unwrap()
    );
    assert!(
        !s.finish("b", None, JobStatus::Cancelled, None, None)
            .await
            .unwrap()
    );
    assert_eq!(status(&s, "b").await, JobStatus::Failed);
}

/// A queued job can be cancelled; it then never starts.
async fn a_cancelled_queued_job_never_starts<S: JobStore>(s: S) {
    s.insert(job("a", 1)).await.unwrap();
    assert!(
        s.finish("a", None, JobStatus::Cancelled, None, None)
            .await
            .unwrap()
    );
    assert_eq!(s.mark_running("a").await.unwrap(), None);
    assert_eq!(status(&s, "a").await, JobStatus::Cancelled);
}

/// Fencing: an outcome tagged with an attempt other than the running one is refused, and so
/// is one for an attempt whose job went back to the queue.
async fn a_stale_attempt_cannot_record_an_outcome<S: JobStore>(s: S) {
    s.insert(job("a", 1)).await.unwrap();
    assert_eq!(s.mark_running("a").await.unwrap(), Some(1));
    assert!(
        !s.finish("a", Some(2), JobStatus::Completed, None, None)
            .await
            .unwrap()
    );
    assert_eq!(status(&s, "a").await, JobStatus::Running);
    // Back to the queue (a shutdown), then run again: attempt 1's outcome is stale.
    assert_eq!(s.requeue(vec!["a".into()]).await.unwrap(), 1);
    assert!(
        !s.finish("a", Some(1), JobStatus::Completed, None, None)
            .await
            .unwrap(),
        "job is queued"
    );
    assert_eq!(s.mark_running("a").await.unwrap(), Some(2));
    assert!(
        !s.finish("a", Some(1), JobStatus::Completed, None, None)
            .await
            .unwrap()
    );
    assert!(
        s.finish("a", Some(2), JobStatus::Completed, None, None)
            .await
            .unwrap()
    );
    let a = s.get("a").await.unwrap().unwrap();
    assert_eq!((a.status, a.attempts), (JobStatus::Completed, 2));
}

/// Recovery hands back every unfinished job in acceptance order, running ones reset to
/// queued with their attempts kept; finished ones stay finished.
async fn recovery_returns_unfinished_jobs_in_acceptance_order<S: JobStore>(s: S) {
    for id in ["a", "b", "c", "d"] {
        s.insert(job(id, 1)).await.unwrap();
    }
    s.mark_running("b").await.unwrap();
    s.mark_running("c").await.unwrap();
    s.finish("c", Some(1), JobStatus::Completed, None, None)
        .await
        .unwrap();
    let recovered = s.recover().await.unwrap();
    let ids: Vec<&str> = recovered.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "d"]);
    assert!(recovered.iter().all(|j| j.status == JobStatus::Queued));
    let b = s.get("b").await.unwrap().unwrap();
    assert_eq!((b.status, b.attempts), (JobStatus::Queued, 1));
    assert_eq!(status(&s, "c").await, JobStatus::Completed);
    // Recovered jobs run again, as a new attempt.
    assert_eq!(s.mark_running("b").await.unwrap(), Some(2));
}

/// Requeue moves only running jobs back and says how many; delete removes only queued ones.
async fn requeue_and_delete_touch_only_the_states_they_name<S: JobStore>(s: S) {
    for id in ["q", "r", "f"] {
        s.insert(job(id, 1)).await.unwrap();
    }
    s.mark_running("r").await.unwrap();
    s.mark_running("f").await.unwrap();
    s.finish("f", None, JobStatus::Failed, None, None)
        .await
        .unwrap();
    let n = s
        .requeue(vec!["q".into(), "r".into(), "f".into(), "missing".into()])
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(status(&s, "r").await, JobStatus::Queued);
    assert_eq!(status(&s, "f").await, JobStatus::Failed);

    s.mark_running("r").await.unwrap();
    for id in ["q", "r", "f", "missing"] {
        s.delete(id).await.unwrap();
    }
    assert!(s.get("q").await.unwrap().is_none());
    assert_eq!(status(&s, "r").await, JobStatus::Running);
    assert_eq!(status(&s, "f").await, JobStatus::Failed);
}

/// Every page of a listing, from the first to the one whose `next` is `None`.
async fn all_pages<S: JobStore>(
    s: &S,
    status: Option<JobStatus>,
    limit: usize,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = s.list(status, after, limit).await.unwrap();
        assert!(page.jobs.len() <= limit);
        pages.push(page.jobs.iter().map(|j| j.id.clone()).collect());
        match page.next {
            Some(next) => after = Some(next),
            None => return pages,
        }
    }
}

/// Listing is in acceptance order, filtered by status, page by page with a cursor, never
/// longer than its limit; counts add up per status.
async fn listing_is_ordered_filtered_paged_and_counted<S: JobStore>(s: S) {
    for i in 0..30 {
        s.insert(job(&format!("j{i:02}"), (i % 3) as u8))
            .await
            .unwrap();
    }
    for i in (0..30).step_by(3) {
        s.mark_running(&format!("j{i:02}")).await.unwrap();
    }
    let all = s.list(None, None, 100).await.unwrap();
    let ids: Vec<String> = all.jobs.iter().map(|j| j.id.clone()).collect();
    let want: Vec<String> = (0..30).map(|i| format!("j{i:02}")).collect();
    assert_eq!(ids, want);
    assert_eq!(all.next, None, "one page holds them all");
    // Pages of 7: 7, 7, 7, 7, 2, in order, none twice.
    let pages = all_pages(&s, None, 7).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [7, 7, 7, 7, 2]
    );
    assert_eq!(pages.concat(), want);
    // An exact fit ends without an empty page.
    assert_eq!(all_pages(&s, None, 10).await.len(), 3);
    let running = s
        .list(Some(JobStatus::Running), None, 100)
        .await
        .unwrap()
        .jobs;
    assert_eq!(running.len(), 10);
    assert!(running.iter().all(|j| j.status == JobStatus::Running));
    assert_eq!(running[0].id, "j00");
    let running_pages = all_pages(&s, Some(JobStatus::Running), 4).await;
    let running_ids: Vec<String> = running.iter().map(|j| j.id.clone()).collect();
    assert_eq!(running_pages.concat(), running_ids);
    let none = s.list(Some(JobStatus::TimedOut), None, 100).await.unwrap();
    assert!(none.jobs.is_empty() && none.next.is_none());
    let mut counts = s.counts().await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(counts, [(JobStatus::Queued, 20), (JobStatus::Running, 10)]);
}

/// Group commit: many concurrent writes each get their own answer; a duplicate in a batch
/// fails alone, not its batch; every other job is stored exactly once.
async fn concurrent_inserts_each_get_their_own_answer<S: JobStore>(s: S) {
    let ids: Vec<String> = (0..200).map(|i| format!("c{}", i % 180)).collect();
    let results = futures_util::future::join_all(ids.iter().map(|id| s.insert(job(id, 1)))).await;
    let mut stored = HashSet::new();
    let mut duplicates = 0;
    for (id, r) in ids.iter().zip(results) {
        match r {
            Ok(()) => assert!(stored.insert(id.clone()), "{id} accepted twice"),
            Err(StoreError::Duplicate(d)) => {
                assert_eq!(&d, id);
                duplicates += 1;
            }
            Err(e) => panic!("{id}: {e}"),
        }
    }
    assert_eq!((stored.len(), duplicates), (180, 20));
    assert_eq!(s.list(None, None, 1000).await.unwrap().jobs.len(), 180);
    // Concurrent starts of one job: exactly one wins.
    let starts = futures_util::future::join_all((0..8).map(|_| s.mark_running("c7"))).await;
    let won: Vec<_> = starts.into_iter().filter_map(|r| r.unwrap()).collect();
    assert_eq!(won, [1]);
}

/// Retention: only finished jobs older than the bound are deleted; queued and running ones
/// stay whatever their age.
async fn purging_deletes_only_old_finished_jobs<S: JobStore>(s: S) {
    for id in ["q", "r", "done", "failed"] {
        s.insert(job(id, 1)).await.unwrap();
    }
    s.mark_running("r").await.unwrap();
    s.finish("done", None, JobStatus::Completed, None, None)
        .await
        .unwrap();
    s.finish("failed", None, JobStatus::Failed, None, None)
        .await
        .unwrap();
    assert_eq!(
        s.purge_finished(Duration::from_secs(3600)).await.unwrap(),
        0,
        "too recent"
    );
    // A millisecond must pass for "ended before now": wait for it, a bounded number of times.
    let mut purged = 0;
    for _ in 0..1000 {
        purged += s.purge_finished(Duration::ZERO).await.unwrap();
        if purged == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(purged, 2);
    assert!(s.get("done").await.unwrap().is_none());
    assert!(s.get("failed").await.unwrap().is_none());
    assert_eq!(status(&s, "q").await, JobStatus::Queued);
    assert_eq!(status(&s, "r").await, JobStatus::Running);
    assert_eq!(s.list(None, None, 10).await.unwrap().jobs.len(), 2);
}

/// Runs every check against one engine: `$make` is an async expression giving
/// `Option<(store, guard)>` (`None`: the engine is not available here, the test is skipped;
/// the guard keeps what the store needs, such as its folder, alive).
macro_rules! conformance {
    ($engine:ident, $make:expr) => {
        mod $engine {
            conformance!(@each $make;
                a_job_moves_from_queued_to_running_to_final,
                an_id_is_stored_at_most_once,
                the_first_final_state_wins,
                a_cancelled_queued_job_never_starts,
                a_stale_attempt_cannot_record_an_outcome,
                recovery_returns_unfinished_jobs_in_acceptance_order,
                requeue_and_delete_touch_only_the_states_they_name,
                listing_is_ordered_filtered_paged_and_counted,
                purging_deletes_only_old_finished_jobs,
                concurrent_inserts_each_get_their_own_answer,
            );
        }
    };
    (@each $make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some((store, _guard)) = $make else { return };
                super::$check(store).await;
            }
        )+
    };
}

conformance!(
    memory,
    async { Some((weft_serve::store::MemoryStore::new(), ())) }.await
);

conformance!(
    sqlite,
    async {
        let dir = tempfile::tempdir().unwrap();
        let store = weft_serve::store::SqliteStore::open(
            &dir.path().join("jobs.db"),
            weft_serve::store::SqliteConfig::default(),
        )
        .unwrap();
        Some((store, dir))
    }
    .await
);

conformance!(
    postgres,
    async {
        let url = crate::common::pg_url().await?;
        let store = weft_serve::store::PgStore::open(weft_serve::store::PgConfig::new(url))
            .await
            .unwrap();
        Some((store, ()))
    }
    .await
);

/// The stores that run jobs at once refuse a delayed job whole instead of running it early.
#[tokio::test]
async fn stores_without_a_schedule_refuse_a_delayed_job() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = weft_serve::store::SqliteStore::open(
        &dir.path().join("jobs.db"),
        weft_serve::store::SqliteConfig::default(),
    )
    .unwrap();
    let memory = weft_serve::store::MemoryStore::new();
    for (name, r) in [
        ("sqlite", sqlite.insert(job("d", 1).run_at(1)).await),
        ("memory", memory.insert(job("d", 1).run_at(1)).await),
    ] {
        let err = r.unwrap_err();
        assert!(matches!(err, StoreError::Unsupported(_)), "{name}: {err}");
        assert!(err.to_string().contains("PostgreSQL"), "{name}: {err}");
    }
    assert!(sqlite.get("d").await.unwrap().is_none());
    assert!(memory.get("d").await.unwrap().is_none());
}
