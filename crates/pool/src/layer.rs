//! [`PoolLayer`]: a `tower::Layer` that puts a service behind a pool.

use std::fmt;

use tower_layer::Layer;
use tower_service::Service;

use crate::builder::Builder;
use crate::pool::Pool;

/// A `tower::Layer` that wraps a service in a [`Pool`] built from a [`Builder`], so a pool can
/// sit inside a `ServiceBuilder` stack like tower's `BufferLayer`.
///
/// Layering spawns the workers, so it must happen inside a tokio runtime.
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use weft_pool::{Pool, PoolLayer};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), tower::BoxError> {
/// let mut svc = ServiceBuilder::new()
///     .timeout(Duration::from_secs(1))
///     .layer(PoolLayer::new(Pool::builder().workers(2).capacity(64)))
///     .service_fn(|n: u32| async move { Ok::<_, Infallible>(n + 1) });
/// assert_eq!(svc.ready().await?.call(1).await?, 2);
/// # Ok(())
/// # }
/// ```
pub struct PoolLayer<Req, Resp, E> {
    builder: Builder<Req, Resp, E>,
}

impl<Req, Resp, E> PoolLayer<Req, Resp, E> {
    /// A layer that builds pools with `builder`'s configuration.
    pub fn new(builder: Builder<Req, Resp, E>) -> Self {
        PoolLayer { builder }
    }
}

impl<S, Req, Resp, E> Layer<S> for PoolLayer<Req, Resp, E>
where
    S: Service<Req, Response = Resp, Error = E> + Clone + Send + 'static,
    S::Future: Send + 'static,
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + 'static,
{
    type Service = Pool<Req, Resp, E>;

    fn layer(&self, inner: S) -> Self::Service {
        self.builder.clone().build(inner)
    }
}

impl<Req, Resp, E> Clone for PoolLayer<Req, Resp, E> {
    fn clone(&self) -> Self {
        PoolLayer {
            builder: self.builder.clone(),
        }
    }
}

impl<Req, Resp, E> fmt::Debug for PoolLayer<Req, Resp, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PoolLayer").field(&self.builder).finish()
    }
}
