//! How a worker calls the user's handler: a `tower::Service<Req>`, a
//! `tower::Service<WithContext<Req>>`, or an async closure taking `(Context, Req)`.

use std::future::Future;
use std::task::{Context as TaskContext, Poll};

use tower_service::Service;
use weft_core::Context;

/// A job's request together with its own [`Context`]: what a handler built with
/// [`Builder::build_with_context`](crate::Builder::build_with_context) receives.
///
/// The Context is a child of the pool's Context; it is cancelled when the job is cancelled
/// while running, when it times out (its deadline is the job's timeout), and when the pool is
/// shut down with [`Shutdown::Abort`](crate::Shutdown::Abort).
///
/// ```
/// use std::convert::Infallible;
/// use weft_pool::{Pool, WithContext};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let svc = tower::service_fn(|job: WithContext<u32>| async move {
///     Ok::<_, Infallible>((job.request, job.context.is_done()))
/// });
/// let pool = Pool::builder().workers(1).build_with_context(svc);
/// assert_eq!(pool.submit(3).await.unwrap().await, Ok((3, false)));
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WithContext<Req> {
    /// The job's Context.
    pub context: Context,
    /// The request.
    pub request: Req,
}

/// The worker's view of a handler.
pub(crate) trait Handler<Req>: Send + 'static {
    type Response: Send + 'static;
    type Error: Send + 'static;
    type Future: Future<Output = Result<Self::Response, Self::Error>> + Send + 'static;

    /// Whether `call` uses the job's Context (if not, none is created: cheaper).
    const WANTS_CONTEXT: bool;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>>;

    fn call(&mut self, ctx: Option<Context>, req: Req) -> Self::Future;
}

/// A `Service<Req>`: the job's Context is not passed (cancelling drops the future).
#[derive(Clone)]
pub(crate) struct Plain<S>(pub(crate) S);

impl<S, Req> Handler<Req> for Plain<S>
where
    S: Service<Req> + Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    const WANTS_CONTEXT: bool = false;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, _ctx: Option<Context>, req: Req) -> S::Future {
        self.0.call(req)
    }
}

/// A `Service<WithContext<Req>>`.
#[derive(Clone)]
pub(crate) struct Contextual<S>(pub(crate) S);

impl<S, Req> Handler<Req> for Contextual<S>
where
    S: Service<WithContext<Req>> + Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    const WANTS_CONTEXT: bool = true;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, ctx: Option<Context>, request: Req) -> S::Future {
        self.0.call(WithContext {
            context: ctx.unwrap_or_default(),
            request,
        })
    }
}

/// An async closure `Fn(Context, Req) -> impl Future<Output = Result<Resp, E>>`.
#[derive(Clone)]
pub(crate) struct FnHandler<F>(pub(crate) F);

impl<F, Fut, Req, Resp, E> Handler<Req> for FnHandler<F>
where
    F: Fn(Context, Req) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    Resp: Send + 'static,
    E: Send + 'static,
{
    type Response = Resp;
    type Error = E;
    type Future = Fut;
    const WANTS_CONTEXT: bool = true;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, ctx: Option<Context>, req: Req) -> Fut {
        (self.0)(ctx.unwrap_or_default(), req)
    }
}
