//! Catching a panic inside a future, so a panicking tool or approval channel becomes a value.
//!
//! `tokio::spawn` would catch it too, but moves the work to another task (and often another
//! thread) for every call; polling in place under `catch_unwind` costs nothing when nothing
//! panics.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs `future`, returning `Err` with a description of the panic if it panics.
pub(crate) async fn catch_panic<F: Future>(future: F) -> Result<F::Output, String> {
    CatchUnwind(Box::pin(future)).await.map_err(|panic| describe(panic.as_ref()))
}

/// The text of a panic payload.
pub(crate) fn describe(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.get_mut().0.as_mut();
        // AssertUnwindSafe: after a panic the future is never polled again (it is dropped with
        // this wrapper), so no broken state inside it can be observed.
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}
