//! The pool's `tower::Service` impl: `poll_ready` reserves a queue place, `call` takes it,
//! and the place goes back when a worker takes the job from the queue (or it is cancelled
//! there), or when the handle that reserved it is dropped.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::error::{JobError, SubmitError};
use crate::future::ResponseFuture;
use crate::job::{Cell, JobHandle};
use crate::pool::Pool;

impl<Req, Resp, E> Service<Req> for Pool<Req, Resp, E>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + 'static,
{
    type Response = Resp;
    type Error = JobError<E>;
    type Future = ResponseFuture<Resp, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_reserve(cx).map_err(|()| JobError::Rejected)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let handle = match self.call_reserved(req) {
            Ok(h) => h,
            Err(e) => {
                let err = match e {
                    SubmitError::Closed(_) => JobError::Rejected,
                    SubmitError::Blacklisted { key, .. } => JobError::Blacklisted { key },
                };
                JobHandle::new(Arc::new(Cell::resolved(Err(err))), 0, self.default_level())
            }
        };
        ResponseFuture::new(handle)
    }
}
