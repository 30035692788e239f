//! The pool as a `tower::Service`, driven at poll level around a `tower_test::mock` handler:
//! `poll_ready` reserves a queue place, `call` takes it, and the place comes back when a worker
//! takes the job out of the queue, when the queued job is cancelled, or when the handle that
//! reserved it is dropped without calling. The mock's `Handle` decides when the handler is
//! ready and what it answers, so the queue's state is known at every step.

use std::future::poll_fn;

use tokio_test::task;
use tokio_test::{assert_pending, assert_ready_ok};
use tower::Service;
use tower_test::mock;
use weft_pool::{JobError, Pool};

type MockPool = Pool<u32, u32, tower::BoxError>;

/// A pool of one worker over a mock handler that is not ready (so jobs stay queued), with a
/// queue of `cap` places.
fn pool(cap: usize) -> (MockPool, mock::Handle<u32, u32>) {
    let (svc, mut handle) = mock::pair::<u32, u32>();
    handle.allow(0);
    let pool = Pool::builder().workers(1).capacity(cap).build(svc);
    (pool, handle)
}

/// Lets the pool's worker task run until it waits again.
async fn settle() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn poll_ready_reserves_the_place_call_takes_it_and_the_worker_frees_it() {
    let (pool, mut handle) = pool(1);
    let (mut a, mut b) = (pool.clone(), pool.clone());

    let mut ready_a = task::spawn(poll_fn(|cx| a.poll_ready(cx)));
    assert_ready_ok!(ready_a.poll(), "the one place is free");
    drop(ready_a);
    let mut ready_b = task::spawn(poll_fn(|cx| b.poll_ready(cx)));
    assert_pending!(ready_b.poll(), "a's reservation holds the only place");
    drop(ready_b);

    let response = a.call(7);
    settle().await;
    let mut ready_b = task::spawn(poll_fn(|cx| b.poll_ready(cx)));
    assert_pending!(ready_b.poll(), "the queued job holds it now");

    // The handler gets ready: the worker takes the job out of the queue, freeing its place.
    handle.allow(1);
    let (req, send) = handle
        .next_request()
        .await
        .expect("the job reaches the handler");
    assert_eq!(req, 7);
    assert!(
        ready_b.is_woken(),
        "freeing the place wakes the waiting poll_ready"
    );
    assert_ready_ok!(ready_b.poll());
    send.send_response(70);
    assert_eq!(response.await.ok(), Some(70));
}

#[tokio::test(start_paused = true)]
async fn a_clone_dropped_with_a_reservation_gives_its_place_back() {
    let (pool, _handle) = pool(1);
    let (mut a, mut b) = (pool.clone(), pool.clone());
    assert_ready_ok!(task::spawn(poll_fn(|cx| a.poll_ready(cx))).poll());
    let mut ready_b = task::spawn(poll_fn(|cx| b.poll_ready(cx)));
    assert_pending!(ready_b.poll());
    drop(a);
    assert!(ready_b.is_woken());
    assert_ready_ok!(ready_b.poll(), "a's place came back when a was dropped");
}

#[tokio::test(start_paused = true)]
async fn poll_ready_twice_reserves_one_place() {
    let (pool, _handle) = pool(2);
    let mut a = pool.clone();
    assert_ready_ok!(task::spawn(poll_fn(|cx| a.poll_ready(cx))).poll());
    assert_ready_ok!(task::spawn(poll_fn(|cx| a.poll_ready(cx))).poll());
    // One of the two places is still free for anyone else.
    assert!(pool.try_submit(1).is_ok());
    assert!(pool.try_submit(2).unwrap_err().is_full());
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_queued_call_frees_its_place() {
    let (pool, _handle) = pool(1);
    let (mut a, mut b) = (pool.clone(), pool.clone());
    assert_ready_ok!(task::spawn(poll_fn(|cx| a.poll_ready(cx))).poll());
    let handle = a.call(1).into_handle();
    let mut ready_b = task::spawn(poll_fn(|cx| b.poll_ready(cx)));
    assert_pending!(ready_b.poll());
    assert!(handle.cancel());
    assert!(ready_b.is_woken());
    assert_ready_ok!(ready_b.poll());
    assert!(matches!(handle.await, Err(JobError::Cancelled)));
}

#[tokio::test(start_paused = true)]
async fn the_handlers_errors_resolve_failed_and_the_pool_goes_on() {
    let (pool, mut handle) = pool(4);
    handle.allow(2);
    let mut svc = pool.clone();
    assert_ready_ok!(task::spawn(poll_fn(|cx| svc.poll_ready(cx))).poll());
    let failed = svc.call(1);
    let (_, send) = handle.next_request().await.expect("first job");
    send.send_error("bad request");
    match failed.await {
        Err(JobError::Failed(e)) => assert_eq!(e.to_string(), "bad request"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_ready_ok!(task::spawn(poll_fn(|cx| svc.poll_ready(cx))).poll());
    let ok = svc.call(2);
    let (req, send) = handle.next_request().await.expect("second job");
    send.send_response(req * 10);
    assert_eq!(ok.await.ok(), Some(20));
}

#[tokio::test(start_paused = true)]
async fn poll_ready_fails_once_the_pool_is_closed() {
    let (pool, _handle) = pool(1);
    let mut svc = pool.clone();
    pool.close();
    let mut ready = task::spawn(poll_fn(|cx| svc.poll_ready(cx)));
    match ready.poll() {
        std::task::Poll::Ready(Err(JobError::Rejected)) => {}
        other => panic!("expected Rejected, got {other:?}"),
    }
}
