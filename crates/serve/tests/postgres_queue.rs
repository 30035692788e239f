//! The PostgreSQL engine as a queue many nodes share, on a real PostgreSQL (each test in a
//! schema of its own): claims never hand one job to two nodes, follow priority with aging,
//! leases lapse back to the queue and fence the old attempt, retries back off then end dead,
//! cancels and new jobs reach every listening node, a failed batch stores nothing, and nodes
//! starting at once create the schema once.
//!
//! Waits are for a state, with a generous deadline; nothing asserts how fast it comes.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;
use weft_serve::store::{JobStatus, JobStore, NewJob, PgConfig, PgStore, QueueEvent, StoreError};

const PATIENCE: Duration = Duration::from_secs(30);

fn job(id: &str, priority: u8) -> NewJob {
    NewJob::new(
        id,
        "notification",
        priority,
        json!({"recipients": ["a@x"], "message": id, "channel": "sms"}),
    )
}

/// Two stores on one fresh schema, as two nodes; `None` when no database is configured.
async fn nodes(config: impl Fn(String) -> PgConfig) -> Option<(PgStore, PgStore)> {
    let url = common::pg_url().await?;
    let a = PgStore::open(config(url.clone())).await.unwrap();
    let b = PgStore::open(config(url)).await.unwrap();
    Some((a, b))
}

/// Retries `f` until it gives `Some`, for at most [`PATIENCE`] (a wait for a state the
/// database reaches on its own, such as a lease lapsing).
async fn eventually<T, F: AsyncFnMut() -> Option<T>>(what: &str, mut f: F) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claiming_at_once_never_take_the_same_job() {
    let Some((a, b)) = nodes(PgConfig::new).await else {
        return;
    };
    let ids: Vec<String> = (0..300).map(|i| format!("j{i}")).collect();
    futures_util::future::try_join_all(
        ids.iter().map(|id| a.insert(job(id, (id.len() % 3) as u8))),
    )
    .await
    .unwrap();
    let drain = |s: PgStore| async move {
        let mut mine = Vec::new();
        loop {
            let got = s.claim(7).await.unwrap();
            if got.is_empty() {
                return mine;
            }
            for c in got {
                assert_eq!(
                    (c.record.status, c.record.attempts),
                    (JobStatus::Running, 1)
                );
                mine.push(c.record.id);
            }
        }
    };
    let (from_a, from_b) = tokio::join!(tokio::spawn(drain(a.clone())), tokio::spawn(drain(b)));
    let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
    let all: HashSet<&String> = from_a.iter().chain(&from_b).collect();
    assert_eq!(
        from_a.len() + from_b.len(),
        300,
        "a job was claimed twice or lost"
    );
    assert_eq!(all.len(), 300);
    assert!(
        !from_a.is_empty() && !from_b.is_empty(),
        "both nodes got work"
    );
    assert_eq!(a.counts().await.unwrap(), [(JobStatus::Running, 300)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_take_the_highest_priority_first_and_the_oldest_within_a_level() {
    let Some((a, _b)) = nodes(PgConfig::new).await else {
        return;
    };
    for (id, p) in [
        ("l1", 0),
        ("n1", 1),
        ("h1", 2),
        ("l2", 0),
        ("h2", 2),
        ("n2", 1),
    ] {
        a.insert(job(id, p)).await.unwrap();
    }
    let first: Vec<String> = a
        .claim(3)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.record.id)
        .collect();
    assert_eq!(first, ["h1", "h2", "n1"]);
    let rest: Vec<(String, u8)> = a
        .claim(10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.record.id, c.level))
        .collect();
    assert_eq!(rest, [("n2".into(), 1), ("l1".into(), 0), ("l2".into(), 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_low_priority_job_ages_past_newer_normal_ones_but_not_fresh_high_ones() {
    let Some((a, _b)) = nodes(|u| PgConfig::new(u).aging(Duration::from_millis(20))).await else {
        return;
    };
    a.insert(job("old-low", 0)).await.unwrap();
    // Two agings later it is at the top level, with no sweep: the level is computed from its
    // age when read or claimed.
    eventually("the low job aged to the top level", async || {
        let depth = a.queue_depth().await.unwrap();
        (depth == [(2, 1)]).then_some(())
    })
    .await;
    a.insert(job("new-normal", 1)).await.unwrap();
    a.insert(job("new-high", 2)).await.unwrap();
    let order: Vec<String> = a
        .claim(3)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.record.id)
        .collect();
    // At the top level, a native high job first, then the aged one; both before normal.
    assert_eq!(order, ["new-high", "old-low", "new-normal"]);
    // Its stored priority is still what the client asked for.
    assert_eq!(a.get("old-low").await.unwrap().unwrap().priority, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_returns_the_job_to_another_node_and_fences_the_old_attempt() {
    let Some((a, b)) = nodes(|u| PgConfig::new(u).lease(Duration::from_millis(200))).await else {
        return;
    };
    a.insert(job("x", 1)).await.unwrap();
    let claimed = a.claim(1).await.unwrap();
    assert_eq!(claimed[0].record.attempts, 1);
    // While the lease holds, nobody else gets it and a sweep leaves it alone.
    assert!(b.claim(1).await.unwrap().is_empty());
    assert_eq!(
        a.heartbeat().await.unwrap(),
        HashSet::from(["x".to_owned()])
    );
    // Node a goes silent; node b's sweep returns the job once the lease lapses.
    let taken = eventually("the lapsed job was claimed by b", async || {
        b.sweep().await.unwrap();
        b.claim(1).await.unwrap().pop()
    })
    .await;
    assert_eq!((taken.record.id.as_str(), taken.record.attempts), ("x", 2));
    assert!(
        a.heartbeat().await.unwrap().is_empty(),
        "a no longer holds it"
    );
    // a's late outcome is refused; b's is recorded.
    assert!(
        !a.finish("x", Some(1), JobStatus::Completed, Some(json!("a")), None)
            .await
            .unwrap()
    );
    assert!(
        b.finish("x", Some(2), JobStatus::Completed, Some(json!("b")), None)
            .await
            .unwrap()
    );
    let x = b.get("x").await.unwrap().unwrap();
    assert_eq!(
        (x.status, x.result),
        (JobStatus::Completed, Some(json!("b")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_last_lease_lapses_ends_dead_with_the_reason() {
    let Some((a, b)) = nodes(|u| {
        PgConfig::new(u)
            .lease(Duration::from_millis(100))
            .max_attempts(1)
    })
    .await
    else {
        return;
    };
    a.insert(job("poison", 1)).await.unwrap();
    assert_eq!(a.claim(1).await.unwrap().len(), 1);
    let swept = eventually("the lease lapsed", async || {
        let s = b.sweep().await.unwrap();
        (s.dead == 1).then_some(s)
    })
    .await;
    assert_eq!(swept.requeued, 0);
    let dead = b.get("poison").await.unwrap().unwrap();
    assert_eq!(dead.status, JobStatus::Dead);
    assert!(dead.error.unwrap().contains("lapsed"));
    assert!(
        b.claim(1).await.unwrap().is_empty(),
        "a dead job is never claimed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_are_retried_after_a_backoff_then_end_dead() {
    let Some((a, _b)) = nodes(|u| {
        PgConfig::new(u)
            .max_attempts(3)
            .retry_failed(true, Duration::from_millis(50))
    })
    .await
    else {
        return;
    };
    a.insert(job("flaky", 1)).await.unwrap();
    for attempt in 1..=3u32 {
        let c = eventually("the retry is due", async || a.claim(1).await.unwrap().pop()).await;
        assert_eq!(c.record.attempts, attempt);
        let err = format!("boom {attempt}");
        assert!(
            a.finish("flaky", Some(attempt), JobStatus::Failed, None, Some(err))
                .await
                .unwrap()
        );
        let j = a.get("flaky").await.unwrap().unwrap();
        if attempt < 3 {
            assert_eq!(j.status, JobStatus::Queued, "retried");
            assert!(j.finished_at.is_none());
            // Not due yet: the backoff is at least half of 50 ms * 2^(attempt - 1).
            assert!(
                a.claim(1).await.unwrap().is_empty(),
                "claimed before its backoff"
            );
        } else {
            assert_eq!(j.status, JobStatus::Dead);
            assert_eq!(j.error.as_deref(), Some("boom 3"));
        }
    }
    // Successes and cancels are never retried.
    a.insert(job("ok", 1)).await.unwrap();
    let c = a.claim(1).await.unwrap().pop().unwrap();
    assert!(
        a.finish(
            "ok",
            Some(c.record.attempts),
            JobStatus::Completed,
            None,
            None
        )
        .await
        .unwrap()
    );
    assert_eq!(
        a.get("ok").await.unwrap().unwrap().status,
        JobStatus::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_jobs_and_cancels_reach_every_listening_node() {
    let Some((a, b)) = nodes(PgConfig::new).await else {
        return;
    };
    let mut on_b = b.listen().await.unwrap();
    a.insert(job("n", 1)).await.unwrap();
    let event = tokio::time::timeout(PATIENCE, on_b.recv()).await.unwrap();
    assert_eq!(event, Some(QueueEvent::Jobs));
    let claimed = b.claim(1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // A client cancels through node a: node b, which runs the job, hears of it.
    assert!(
        a.finish("n", None, JobStatus::Cancelled, None, None)
            .await
            .unwrap()
    );
    let event = tokio::time::timeout(PATIENCE, on_b.recv()).await.unwrap();
    assert_eq!(event, Some(QueueEvent::Cancelled("n".into())));
    assert!(
        b.heartbeat().await.unwrap().is_empty(),
        "b no longer holds it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_stores_none_of_its_jobs_and_says_so_to_each_writer() {
    let Some(url) = common::pg_url().await else {
        return;
    };
    let a = PgStore::open(PgConfig::new(url.clone())).await.unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.id = 'poison' THEN RAISE EXCEPTION 'poisoned by the test'; END IF;
             RETURN NEW; END $$;
             CREATE TRIGGER poison BEFORE INSERT ON weft_jobs FOR EACH ROW EXECUTE FUNCTION poison();",
        )
        .await
        .unwrap();
    let ids: Vec<String> = (0..50)
        .map(|i| format!("p{i}"))
        .chain(["poison".into()])
        .collect();
    let results = futures_util::future::join_all(ids.iter().map(|id| a.insert(job(id, 1)))).await;
    for (id, r) in ids.iter().zip(results) {
        match r {
            Ok(()) => assert!(
                a.get(id).await.unwrap().is_some(),
                "{id} answered Ok, not stored"
            ),
            Err(StoreError::BatchFailed { reason, .. }) => {
                assert!(reason.contains("poisoned by the test"), "{reason}");
                assert!(a.get(id).await.unwrap().is_none(), "{id} half-stored");
            }
            Err(e) => panic!("{id}: {e}"),
        }
    }
    assert!(a.get("poison").await.unwrap().is_none());
    // The next batch commits as usual.
    a.insert(job("after", 1)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_create_the_schema_once() {
    let Some(url) = common::pg_url().await else {
        return;
    };
    let stores = futures_util::future::try_join_all(
        (0..6).map(|_| PgStore::open(PgConfig::new(url.clone()))),
    )
    .await
    .unwrap();
    stores[0].insert(job("one", 1)).await.unwrap();
    for s in &stores {
        assert_eq!(s.get("one").await.unwrap().unwrap().id, "one");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_job_is_claimed_only_once_it_is_due() {
    let Some((a, _b)) = nodes(PgConfig::new).await else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    a.insert(job("later", 2).run_at(now + 300)).await.unwrap();
    a.insert(job("far", 2).run_at(now + 3_600_000))
        .await
        .unwrap();
    a.insert(job("now", 0)).await.unwrap();
    let first: Vec<String> = a
        .claim(10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.record.id)
        .collect();
    assert_eq!(first, ["now"], "delayed jobs wait, whatever their priority");
    let later = eventually("the delayed job came due", async || {
        a.claim(10).await.unwrap().pop()
    })
    .await;
    assert_eq!(later.record.id, "later");
    assert_eq!(
        a.get("far").await.unwrap().unwrap().status,
        JobStatus::Queued
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_queue_admits_exactly_its_size_per_level_over_every_node() {
    let Some((a, b)) = nodes(|u| PgConfig::new(u).queue_size(5)).await else {
        return;
    };
    // Both nodes submit 40 low jobs at once: exactly 5 get in, the rest are refused.
    let ids: Vec<String> = (0..40).map(|i| format!("low{i}")).collect();
    let answers = futures_util::future::join_all(ids.iter().enumerate().map(|(i, id)| {
        let node = if i % 2 == 0 { &a } else { &b };
        node.insert(job(id, 0))
    }))
    .await;
    let admitted = answers.iter().filter(|r| r.is_ok()).count();
    assert_eq!(admitted, 5, "{answers:?}");
    assert!(answers.iter().all(|r| matches!(
        r,
        Ok(())
            | Err(StoreError::QueueFull {
                level: 0,
                capacity: 5
            })
    )));
    // The room is per level: a high job still gets in.
    b.insert(job("high", 2)).await.unwrap();
    // A client's retry of an admitted job is a duplicate, not a refusal.
    let first = ids[answers.iter().position(|r| r.is_ok()).unwrap()].clone();
    assert!(matches!(
        a.insert(job(&first, 0)).await,
        Err(StoreError::Duplicate(_))
    ));
    // A claim frees a place at the low level, for either node.
    assert!(matches!(
        b.insert(job("late", 0)).await,
        Err(StoreError::QueueFull { .. })
    ));
    let claimed = a.claim(2).await.unwrap();
    assert_eq!(claimed.len(), 2);
    b.insert(job("late", 0)).await.unwrap();
}
