//! Driving a channel future to completion on a thread that is not in an async runtime, for
//! `send_blocking` and `recv_blocking`: poll, and park the thread until the waker unparks it.

use std::future::Future;

#[cfg(not(loom))]
pub(super) fn block_on<F: Future>(fut: F) -> F::Output {
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::{self, Thread};

    struct Unparker(Thread);

    impl Wake for Unparker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }

    thread_local! {
        // One waker per thread, made on first use: a blocking call then allocates nothing.
        static WAKER: Waker = Waker::from(Arc::new(Unparker(thread::current())));
    }

    let run = |waker: &Waker| {
        let mut fut = pin!(fut);
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            // An unpark that came before this park makes it return at once (the thread's
            // token), so a wake-up between the poll and here is not lost; a spurious return
            // just polls again.
            thread::park();
        }
    };
    // `try_with` fails only while the thread's locals are being destroyed (a blocking call
    // from another local's `Drop`): a waker of our own does the same job there.
    let mut run = Some(run);
    WAKER
        .try_with(|waker| (run.take().expect("called once"))(waker))
        .unwrap_or_else(|_| {
            let waker = Waker::from(Arc::new(Unparker(thread::current())));
            (run.take().expect("not called by the failed try_with"))(&waker)
        })
}

/// Under loom, its own executor, so that the models can block on a channel the same way.
#[cfg(loom)]
pub(super) fn block_on<F: Future>(fut: F) -> F::Output {
    loom::future::block_on(fut)
}
