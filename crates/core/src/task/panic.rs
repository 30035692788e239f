//! Turning a caught panic payload into the message a user can read.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

/// Runs `future`, catching a panic in its `poll` *or in its drop after it completes* (the
/// inner `async` block drops the finished future inside `catch_unwind`), and returns it as a
/// [`Panicked`].
///
/// `AssertUnwindSafe`: after a panic the future is dropped, never polled again, so a broken
/// invariant inside it cannot be observed; state it shares is the caller's concern, exactly
/// as with `tokio::spawn`, which catches task panics the same way.
#[allow(clippy::redundant_async_block)] // the block is what moves the drop inside the catch
pub(crate) async fn catch_panic<F: Future>(future: F) -> Result<F::Output, Panicked> {
    AssertUnwindSafe(async move { future.await })
        .catch_unwind()
        .await
        .map_err(|payload| Panicked::from_payload(&*payload))
}

/// A caught panic: the message a task, job or stage panicked with.
///
/// This is the one panic error of weft: [`TaskError::Panicked`](crate::task::TaskError),
/// [`GroupError::Panicked`](crate::group::GroupError), weft-pool's `JobError::Panicked` and
/// weft-pipeline's stage failures all carry it. Only the message is kept (a panic payload is
/// `Box<dyn Any + Send>`, which is neither `Clone` nor `Sync`); a payload that is not a
/// string (`std::panic::panic_any` with a custom type) reads as
/// [`Panicked::NON_STRING_PAYLOAD`].
///
/// # Examples
///
/// ```
/// use weft_core::task::Panicked;
///
/// let payload = std::panic::catch_unwind(|| panic!("bad header {}", 7)).unwrap_err();
/// let p = Panicked::from_payload(&*payload);
/// assert_eq!(p.message(), "bad header 7");
/// assert_eq!(p.to_string(), "panicked: bad header 7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("panicked: {message}")]
pub struct Panicked {
    message: String,
}

impl Panicked {
    /// The message given to a panic whose payload is neither `&str` nor `String`.
    pub const NON_STRING_PAYLOAD: &'static str = "panic payload is not a string";

    /// Reads the message out of a panic payload (what [`std::panic::catch_unwind`] and
    /// [`tokio::task::JoinError::into_panic`] hand back).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::task::Panicked;
    ///
    /// let payload = std::panic::catch_unwind(|| std::panic::panic_any(7_u8)).unwrap_err();
    /// assert_eq!(Panicked::from_payload(&*payload).message(), Panicked::NON_STRING_PAYLOAD);
    /// ```
    #[must_use]
    pub fn from_payload(payload: &(dyn Any + Send)) -> Self {
        Panicked {
            message: panic_message(payload),
        }
    }

    /// A `Panicked` with this message (for handlers that turn their own failures into one,
    /// and for tests).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::task::Panicked;
    /// assert_eq!(Panicked::new("boom").message(), "boom");
    /// ```
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Panicked {
            message: message.into(),
        }
    }

    /// The panic's message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The panic's message, by value.
    #[must_use]
    pub fn into_message(self) -> String {
        self.message
    }
}

/// Returns the message a panic was raised with: the `&str` or `String` that `panic!` carries,
/// or [`Panicked::NON_STRING_PAYLOAD`] for other payloads.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        Panicked::NON_STRING_PAYLOAD.to_owned()
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
