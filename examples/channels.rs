//! Unbuffered versus buffered channels, side by side, and what closing means.
//!
//! Sections 3 to 5 of the Go material, on weft's channels. What it fixes there: the Go demos
//! print from several goroutines and "prove" orderings with `time.Sleep`, and sending on a
//! closed channel panics. Here every ordering is shown with the channel's own guarantees (a
//! rendezvous send returns only once a waiting receiver has been handed the value), and a send
//! on a closed channel hands the value back.
//!
//! Run: `cargo run --example channels [-- --items 1000 --capacity 100]`

#[path = "common/out.rs"]
mod out;
use out::outln;

use std::time::Duration;

use clap::Parser;
use tokio::time::Instant;
use weft::core::chan::{self, Receiver, Sender, TrySendError};

#[derive(Debug, Parser)]
struct Args {
    /// Items to stream through each channel in the timing race.
    #[arg(long, default_value_t = 1000)]
    items: u32,
    /// Capacity of the buffered channel in the timing race.
    #[arg(long, default_value_t = 100)]
    capacity: usize,
}

/// Streams `items` values through the channel with 1 producer and 1 consumer.
async fn race(tx: Sender<u32>, rx: Receiver<u32>, items: u32) -> Duration {
    let start = Instant::now();
    let producer = tokio::spawn(async move {
        for i in 0..items {
            if tx.send(i).await.is_err() {
                break;
            }
        }
    });
    let mut sum = 0u64;
    while let Some(v) = rx.recv().await {
        sum += u64::from(v);
    }
    let _ = producer.await;
    assert_eq!(
        sum,
        u64::from(items) * u64::from(items.saturating_sub(1)) / 2
    );
    start.elapsed()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();

    outln!("1. unbuffered (rendezvous): a send completes only once a receiver has the value");
    let (tx, rx) = chan::rendezvous::<&str>();
    let idle_receiver = rx.clone(); // alive, but not receiving
    // Started before the receiver's 20 ms sleep can begin, so a send that waits for the
    // receiver always measures at least 20 ms, however the threads are scheduled.
    let start = Instant::now();
    let receiver = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await; // a slow receiver
        rx.recv().await
    });
    tx.send("ping").await.expect("receiver is alive");
    let waited = start.elapsed();
    outln!(
        "   send waited {}ms for the receiver to arrive (it sleeps 20 ms first): {}",
        waited.as_millis(),
        if waited >= Duration::from_millis(20) {
            "synchronised"
        } else {
            "NOT synchronised"
        }
    );
    outln!("   received {:?}", receiver.await.ok().flatten());
    outln!(
        "   try_send with no receiver waiting: {}",
        describe(tx.try_send("pong"))
    );
    drop(idle_receiver);

    outln!("2. buffered (capacity 2): two sends complete at once, the third waits for room");
    let (tx, rx) = chan::bounded::<u32>(2);
    for i in 1..=2 {
        tx.send(i).await.expect("room in the buffer");
        outln!(
            "   send {i} completed, buffered {}/{:?}",
            tx.len(),
            tx.capacity()
        );
    }
    outln!("   try_send 3: {}", describe(tx.try_send(3)));
    let third = tx.send_timeout(3, Duration::from_millis(10)).await;
    outln!(
        "   send 3 with a 10 ms timeout: {}",
        if third.is_err() {
            "timed out, value handed back"
        } else {
            "sent"
        }
    );
    outln!(
        "   receive {:?} -> room for one more: {}",
        rx.recv().await,
        describe(tx.try_send(3))
    );

    outln!(
        "3. closing: receivers drain what is buffered, then see the end; senders get their value back"
    );
    tx.close();
    match tx.send(4).await {
        Err(e) => outln!(
            "   send 4 on a closed channel returned the value {}",
            e.into_inner()
        ),
        Ok(()) => outln!("   send 4 succeeded (unexpected)"),
    }
    let mut drained = Vec::new();
    while let Some(v) = rx.recv().await {
        drained.push(v);
    }
    outln!(
        "   drained {drained:?}, then recv() = None; is_closed = {}",
        rx.is_closed()
    );

    outln!("4. {} items, 1 producer, 1 consumer", args.items);
    let (tx, rx) = chan::rendezvous();
    let unbuffered = race(tx, rx, args.items).await;
    let (tx, rx) = chan::bounded(args.capacity.max(1));
    let buffered = race(tx, rx, args.items).await;
    outln!(
        "   unbuffered: {unbuffered:.2?}   buffered({}): {buffered:.2?}",
        args.capacity.max(1)
    );
    outln!(
        "   (a buffer lets the producer run ahead instead of meeting the consumer for every item)"
    );
}

fn describe<T>(r: Result<(), TrySendError<T>>) -> &'static str {
    match r {
        Ok(()) => "sent",
        Err(TrySendError::Full(_)) => "full (value handed back)",
        Err(TrySendError::Closed(_)) => "closed (value handed back)",
        Err(_) => "failed",
    }
}
