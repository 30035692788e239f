//! [`ResponseFuture`]: the response future of the pool's `tower::Service` impl.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::JobError;
use crate::job::JobHandle;

/// The response future of the pool's `tower::Service` impl: the job's result.
///
/// A thin wrapper over [`JobHandle`] (see [`ResponseFuture::into_handle`]); dropping it detaches
/// the job rather than cancelling it, as with tower's `Buffer`.
///
/// # Cancel safety
///
/// As for [`JobHandle`]: dropping the `.await` loses nothing; the job runs on and is counted.
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<Resp, E> {
    handle: JobHandle<Resp, E>,
}

impl<Resp, E> ResponseFuture<Resp, E> {
    pub(crate) fn new(handle: JobHandle<Resp, E>) -> Self {
        ResponseFuture { handle }
    }

    /// The job's handle, to cancel it or read its id.
    pub fn into_handle(self) -> JobHandle<Resp, E> {
        self.handle
    }
}

impl<Resp, E> Future for ResponseFuture<Resp, E> {
    type Output = Result<Resp, JobError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.handle).poll(cx)
    }
}

impl<Resp, E> fmt::Debug for ResponseFuture<Resp, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ResponseFuture").field(&self.handle).finish()
    }
}
