//! Cancelling a future at a chosen await point.

use std::{future::Future, task::Poll};

/// Polls `future` at most `polls` times and drops it, cancelled at that await point, if it is
/// still pending then. `None` when it was cancelled.
pub async fn cancel_after_polls<F: Future>(polls: usize, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut left = polls;
    std::future::poll_fn(move |cx| match future.as_mut().poll(cx) {
        Poll::Ready(value) => Poll::Ready(Some(value)),
        Poll::Pending => {
            left -= 1;
            if left == 0 {
                Poll::Ready(None)
            } else {
                Poll::Pending
            }
        }
    })
    .await
}
