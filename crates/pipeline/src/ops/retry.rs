//! What happens to an item that failed: retries (one loop, shared by the sync and the async
//! stages) and then the stage's terminal policy.

use std::future::Future;
use std::sync::Arc;

use crate::policy::{DeadLetter, Retry, StageFailure, Terminal};
use crate::run::{Fatal, Shared};

/// How [`retry`] ended: the output of the attempt that succeeded, or the item (if it was not
/// consumed) and the last failure; and how many retries were made.
pub(crate) struct Retried<T, U, E> {
    pub(crate) result: Result<U, (Option<T>, StageFailure<E>)>,
    pub(crate) retries: u32,
}

/// Retries a failed item as `policy` says: waits the backoff, calls `call` again, and stops
/// when a call succeeds, the error is not one to retry (panics never are), the retries are
/// used up, or the item is gone (a closure that takes its item by value panicked with it).
///
/// `call` hands the item back with its failure, so the next attempt (or a dead letter) has it.
pub(crate) async fn retry<T, U, E, C, Fut>(
    policy: Option<&Retry<E>>,
    mut item: Option<T>,
    mut error: StageFailure<E>,
    mut call: C,
) -> Retried<T, U, E>
where
    C: FnMut(T) -> Fut,
    Fut: Future<Output = Result<U, (Option<T>, StageFailure<E>)>>,
{
    let mut attempt = 0u32;
    while let Some(r) = policy {
        let StageFailure::Error(e) = &error else {
            break;
        };
        if attempt >= r.max_retries || !r.applies_to(e) {
            break;
        }
        let Some(x) = item.take() else { break };
        attempt += 1;
        tokio::time::sleep(r.backoff.delay(attempt)).await;
        match call(x).await {
            Ok(u) => {
                return Retried {
                    result: Ok(u),
                    retries: attempt,
                };
            }
            Err((back, e)) => {
                item = back;
                error = e;
            }
        }
    }
    Retried {
        result: Err((item, error)),
        retries: attempt,
    }
}

/// What a stage does after [`terminal`].
pub(crate) enum Resolved {
    /// The item is accounted for (counted failed, maybe dead-lettered); the stage goes on.
    Done,
    /// The stage must stop (fail fast or abort).
    Stop,
}

/// The terminal policy for one failed item (already counted `failed`).
pub(crate) async fn terminal<T, E>(
    terminal: &Terminal<T, E>,
    name: &Arc<str>,
    item: Option<T>,
    error: StageFailure<E>,
    shared: &Shared,
) -> Resolved
where
    E: std::error::Error + Send + Sync + 'static,
{
    match terminal {
        Terminal::Skip => Resolved::Done,
        Terminal::DeadLetter(dl) => {
            let letter = DeadLetter {
                stage: name.clone(),
                item,
                error,
            };
            tokio::select! {
                biased;
                () = shared.abort.cancelled() => Resolved::Stop,
                _ = dl.send(letter) => Resolved::Done,
            }
        }
        Terminal::FailFast => {
            shared.fail(Fatal::Stage(name.clone(), Box::new(error)));
            Resolved::Stop
        }
    }
}
