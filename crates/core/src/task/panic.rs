//! Turning a caught panic payload into the message a user can read.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

/// Runs `future`, catching a panic in its `poll` *or in its drop after it completes* (the
/// inner `async` block drops the finished future inside `catch_unwind`), and returns the
/// panic's message.
///
/// `AssertUnwindSafe`: after a panic the future is dropped, never polled again, so a broken
/// invariant inside it cannot be observed; state it shares is the caller's concern, exactly
/// as with `tokio::spawn`, which catches task panics the same way.
#[allow(clippy::redundant_async_block)] // the block is what moves the drop inside the catch
pub(crate) async fn catch_panic<F: Future>(future: F) -> Result<F::Output, String> {
    AssertUnwindSafe(async move { future.await })
        .catch_unwind()
        .await
        .map_err(|payload| panic_message(&*payload))
}

/// Returns the message a panic was raised with: the `&str` or `String` that `panic!` carries,
/// or a placeholder for other payloads (`std::panic::panic_any` with a custom type).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic payload is not a string".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn reads_str_string_and_other_payloads() {
        let p = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(&*p), "plain");
        let n = 3;
        let p = std::panic::catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(panic_message(&*p), "formatted 3");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(7_u8)).unwrap_err();
        assert_eq!(panic_message(&*p), "panic payload is not a string");
    }
}
