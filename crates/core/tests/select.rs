//! Integration tests for `weft_core::select` (merge, tee, or_done, fan-out), `weft_core::time`
//! (Ticker on tokio's paused clock) and `weft_core::rate` (RateLimiter on the paused clock).

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FusedStream;
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready_eq, task};
use weft_core::chan;
use weft_core::context::Context;
use weft_core::rate::RateLimiter;
use weft_core::select::{fan_out, merge, or_done, tee};
use weft_core::time::Ticker;

fn n(count: usize) -> NonZeroUsize {
    NonZeroUsize::new(count).expect("tests ask for at least one output")
}

#[tokio::test]
async fn merge_yields_every_value_and_ends_when_all_inputs_close() {
    let mut txs = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = chan::bounded(4);
        txs.push(tx);
        rxs.push(rx);
    }
    let mut merged = merge(rxs);
    assert_eq!(merged.len(), 3);
    let producers: Vec<_> = txs
        .into_iter()
        .enumerate()
        .map(|(i, tx)| {
            tokio::spawn(async move {
                for j in 0..100 {
                    tx.send(i * 1000 + j).await.unwrap();
                }
            })
        })
        .collect();
    let mut got = Vec::new();
    while let Some(v) = merged.next().await {
        got.push(v);
    }
    for p in producers {
        p.await.unwrap();
    }
    got.sort_unstable();
    let want: Vec<usize> = (0..3)
        .flat_map(|i| (0..100).map(move |j| i * 1000 + j))
        .collect();
    assert_eq!(got, want);
    assert!(merged.is_terminated() && merged.is_empty());
}

#[test]
fn merge_stays_open_while_one_input_is_open() {
    let (tx1, rx1) = chan::bounded::<u8>(1);
    let (tx2, rx2) = chan::bounded::<u8>(1);
    let mut merged = merge([rx1, rx2]);
    drop(tx1);
    let mut next = task::spawn(merged.next());
    assert_pending!(next.poll(), "one input is still open");
    tx2.try_send(9).unwrap();
    assert!(next.is_woken());
    assert_ready_eq!(next.poll(), Some(9));
    drop(next);
    drop(tx2);
    assert_ready_eq!(task::spawn(merged.next()).poll(), None);
}

#[test]
fn merge_next_cancelled_loses_nothing() {
    let (tx, rx) = chan::rendezvous::<u8>();
    let mut merged = merge([rx]);
    let mut next = task::spawn(merged.next());
    assert_pending!(next.poll());
    let mut send = task::spawn(tx.send(1));
    assert_ready_eq!(send.poll(), Ok(()), "handed to the waiting input");
    drop(next); // cancelled in a select! before it took the value
    assert_ready_eq!(
        task::spawn(merged.next()).poll(),
        Some(1),
        "the value waited in the channel for the next poll"
    );
}

#[tokio::test]
async fn tee_copies_every_value_to_each_output_in_order() {
    let (tx, rx) = chan::bounded(2);
    let outs = tee(rx, n(3), &Context::background());
    assert_eq!(outs.len(), 3);
    assert_eq!(
        outs[0].capacity(),
        Some(2),
        "outputs take the input's capacity"
    );
    let producer = tokio::spawn(async move {
        for i in 0..50 {
            tx.send(i).await.unwrap();
        }
    });
    let consumers: Vec<_> = outs
        .into_iter()
        .map(|rx| tokio::spawn(async move { rx.collect::<Vec<u32>>().await }))
        .collect();
    producer.await.unwrap();
    for c in consumers {
        assert_eq!(c.await.unwrap(), (0..50).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn tee_keeps_feeding_the_outputs_still_alive() {
    let (tx, rx) = chan::unbounded();
    let mut outs = tee(rx, n(2), &Context::background());
    let kept = outs.pop().unwrap();
    drop(outs);
    for i in 0..5 {
        tx.send(i).await.unwrap();
    }
    drop(tx);
    assert_eq!(kept.collect::<Vec<_>>().await, [0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn tee_stops_when_the_context_is_done_even_behind_a_full_output() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, rx) = chan::bounded(1);
    let outs = tee(rx, n(2), &ctx);
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    // Output 0 drains; output 1 is never read, so the task waits on it with value 2.
    assert_eq!(outs[0].recv().await, Some(1));
    assert_eq!(outs[0].recv().await, Some(2));
    cancel.cancel();
    // The paused clock turns a task that ignores the context into a timeout, not a hang.
    let closed = tokio::time::timeout(Duration::from_secs(10), outs[0].recv()).await;
    assert_eq!(
        closed,
        Ok(None),
        "the task stopped with its context and closed output 0"
    );
    assert_eq!(
        outs[1].recv().await,
        Some(1),
        "an output keeps what it already holds"
    );
    assert_eq!(outs[1].recv().await, None);
    assert!(tx.is_closed(), "the task dropped the input");
}

#[tokio::test]
async fn tee_ends_when_every_output_is_gone() {
    let (tx, rx) = chan::bounded::<u8>(1);
    drop(tee(rx, n(2), &Context::background()));
    tx.send(1).await.unwrap();
    // The task takes the value, finds no output left, and drops the input: the channel closes.
    tokio::time::timeout(Duration::from_secs(10), async {
        while !tx.is_closed() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the tee task ends and drops its input");
}

#[tokio::test]
async fn or_done_ends_with_the_context_without_taking_values() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, rx) = chan::bounded(4);
    for i in 0..3 {
        tx.send(i).await.unwrap();
    }
    let mut s = or_done(rx.clone(), &ctx);
    assert_eq!(s.next().await, Some(0));
    cancel.cancel();
    assert_eq!(s.next().await, None);
    assert!(s.is_terminated());
    assert_eq!(s.next().await, None, "fused");
    assert_eq!(rx.len(), 2, "nothing was taken after the context ended");
}

#[tokio::test]
async fn or_done_ends_when_the_stream_ends() {
    let (tx, rx) = chan::bounded(4);
    tx.send(1).await.unwrap();
    drop(tx);
    let s = or_done(rx, &Context::background());
    assert_eq!(s.collect::<Vec<_>>().await, [1]);
}

#[tokio::test(start_paused = true)]
async fn or_done_wakes_on_a_deadline() {
    let (ctx, _c) = Context::background().with_timeout(Duration::from_secs(2));
    let (_tx, rx) = chan::rendezvous::<u8>();
    let start = Instant::now();
    assert_eq!(or_done(rx, &ctx).next().await, None);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test]
async fn round_robin_deals_in_turn_and_skips_gone_workers() {
    let (tx, rx) = chan::unbounded();
    let mut workers = fan_out::round_robin(rx, n(3), &Context::background());
    for i in 0..6 {
        tx.send(i).await.unwrap();
    }
    assert_eq!(workers[0].recv().await, Some(0));
    assert_eq!(workers[1].recv().await, Some(1));
    assert_eq!(workers[2].recv().await, Some(2));
    assert_eq!(workers[0].recv().await, Some(3));
    assert_eq!(workers[1].recv().await, Some(4));
    assert_eq!(workers[2].recv().await, Some(5));
    let gone = workers.remove(1);
    drop(gone);
    for i in 6..10 {
        tx.send(i).await.unwrap();
    }
    drop(tx);
    let a: Vec<u32> = workers.remove(0).collect().await;
    let b: Vec<u32> = workers.remove(0).collect().await;
    let mut all: Vec<u32> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    assert_eq!(all, [6, 7, 8, 9], "no value lost to the gone worker");
    assert!(!a.is_empty() && !b.is_empty());
}

#[tokio::test(start_paused = true)]
async fn round_robin_stops_when_the_context_is_done_even_behind_a_full_output() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, rx) = chan::bounded(1);
    let workers = fan_out::round_robin(rx, n(2), &ctx);
    for i in 0..3 {
        tx.send(i).await.unwrap();
    }
    // Worker 0 holds 0, worker 1 holds 1; the task waits to give 2 to the full worker 0.
    cancel.cancel();
    // Worker 1 is read first: reading worker 0 would make room for the value in flight.
    assert_eq!(workers[1].recv().await, Some(1));
    // The paused clock turns a task that ignores the context into a timeout, not a hang.
    let closed = tokio::time::timeout(Duration::from_secs(10), workers[1].recv()).await;
    assert_eq!(
        closed,
        Ok(None),
        "the task stopped with its context and closed worker 1"
    );
    assert_eq!(workers[0].recv().await, Some(0));
    assert_eq!(
        workers[0].recv().await,
        None,
        "the value in flight was dropped"
    );
    assert!(tx.is_closed(), "the task dropped the input");
}

#[tokio::test]
async fn shared_fan_out_gives_each_value_to_exactly_one_worker() {
    let (tx, rx) = chan::bounded(4);
    let workers = fan_out::shared(rx, n(4));
    assert_eq!(workers.len(), 4);
    let handles: Vec<_> = workers
        .into_iter()
        .map(|w| tokio::spawn(async move { w.collect::<Vec<u32>>().await }))
        .collect();
    for i in 0..1000 {
        tx.send(i).await.unwrap();
    }
    drop(tx);
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn ticker_ticks_on_schedule_and_skips_missed_ticks_like_go() {
    let start = Instant::now();
    let at = |ms| start + Duration::from_millis(ms);
    let mut ticker = Ticker::new(Duration::from_millis(10));
    assert_eq!(ticker.tick().await, at(10), "first tick one period in");
    assert_eq!(ticker.tick().await, at(20));
    tokio::time::sleep(Duration::from_millis(35)).await; // now 55: 30, 40, 50 missed
    assert_eq!(
        ticker.tick().await,
        at(30),
        "one missed tick is delivered at once"
    );
    assert_eq!(Instant::now(), at(55));
    assert_eq!(
        ticker.tick().await,
        at(60),
        "the rest are dropped; schedule unchanged"
    );
    assert_eq!(Instant::now(), at(60));
}

#[tokio::test(start_paused = true)]
async fn ticker_stop_and_reset() {
    let mut ticker = Ticker::new(Duration::from_millis(10));
    ticker.stop();
    assert!(ticker.is_stopped());
    assert!(
        tokio::time::timeout(Duration::from_secs(1), ticker.tick())
            .await
            .is_err()
    );
    ticker.reset(Duration::from_millis(30));
    assert!(!ticker.is_stopped());
    let before = Instant::now();
    let t = ticker.tick().await;
    assert_eq!(t - before, Duration::from_millis(30));
    assert_eq!(ticker.period(), Duration::from_millis(30));
}

#[tokio::test(start_paused = true)]
async fn ticker_tick_cancelled_loses_no_tick() {
    let start = Instant::now();
    let mut ticker = Ticker::new(Duration::from_millis(10));
    // Cancel a tick wait halfway through, as a select! would.
    let r = tokio::time::timeout(Duration::from_millis(5), ticker.tick()).await;
    assert!(r.is_err());
    assert_eq!(ticker.tick().await, start + Duration::from_millis(10));
    let mut stream = ticker.take(2);
    assert_eq!(stream.next().await, Some(start + Duration::from_millis(20)));
}

#[test]
#[should_panic(expected = "period must be positive")]
fn ticker_with_zero_period_panics() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let _ = Ticker::new(Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn rate_limiter_allows_a_burst_then_one_per_period() {
    let limiter = RateLimiter::new(Duration::from_millis(100), NonZeroU32::new(3).unwrap());
    let start = Instant::now();
    let mut times = Vec::new();
    for _ in 0..6 {
        limiter.until_ready().await;
        times.push(start.elapsed().as_millis());
    }
    assert_eq!(times, [0, 0, 0, 100, 200, 300]);
    assert!(!limiter.try_acquire(), "the next permit is 100ms away");
}

#[tokio::test(start_paused = true)]
async fn rate_limiter_clones_share_one_budget_and_cancelled_waits_spend_nothing() {
    let limiter = RateLimiter::per_second(NonZeroU32::new(2).unwrap());
    let other = limiter.clone();
    assert!(limiter.try_acquire());
    assert!(other.try_acquire());
    assert!(!limiter.try_acquire());
    // A wait cancelled before its permit is due takes nothing.
    let r = tokio::time::timeout(Duration::from_millis(100), other.until_ready()).await;
    assert!(r.is_err());
    tokio::time::sleep(Duration::from_millis(400)).await; // 500ms: one permit back
    assert!(limiter.try_acquire(), "the cancelled wait did not spend it");
    assert!(!limiter.try_acquire());
}
