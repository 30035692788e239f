//! [`JobId`]: a job's identity within its pool.

use std::fmt;

/// A job's identity, unique within its pool, for [`Pool::cancel`](crate::Pool::cancel) and
/// logs. Ids grow with submission order.
///
/// ```
/// use std::convert::Infallible;
/// use weft_pool::Pool;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = Pool::builder().workers(1).build_fn(|_ctx, ()| async { Ok::<_, Infallible>(()) });
/// let a = pool.submit(()).await.unwrap();
/// let b = pool.submit(()).await.unwrap();
/// assert!(a.id() < b.id());
/// assert_eq!(a.id().to_string(), format!("job-{}", a.id().as_u64()));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub(crate) u64);

impl JobId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job-{}", self.0)
    }
}
