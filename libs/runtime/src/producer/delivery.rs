//! The delivery report of one message: rdkafka's [`DeliveryFuture`], which
//! tells its producer's [`Stall`] when the message is done with (delivered,
//! failed, or nobody waits for it any more), and which ends by
//! [`DELIVERY_BOUND`] even if librdkafka never reports: a producer destroyed
//! while it still held messages ([`super::Retired`]) may drop their reports,
//! and a relay waiting for them would wait for good.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::oneshot::Canceled;
use rdkafka::producer::DeliveryFuture;
use tokio::time::Sleep;

use super::stall::Stall;
use super::MESSAGE_TIMEOUT;

/// librdkafka reports every message within message.timeout.ms; this is the
/// margin after which a report is taken to be lost.
pub const DELIVERY_BOUND: Duration = MESSAGE_TIMEOUT.saturating_add(Duration::from_secs(30));

pub struct Delivery {
    inner: DeliveryFuture,
    bound: Pin<Box<Sleep>>,
    /// The producer's account of it, and its number there, until it is done.
    stall: Option<(Arc<Stall>, u64)>,
}

impl Delivery {
    pub(super) fn new(inner: DeliveryFuture, stall: Arc<Stall>, n: u64) -> Self {
        Self {
            inner,
            bound: Box::pin(tokio::time::sleep(DELIVERY_BOUND)),
            stall: Some((stall, n)),
        }
    }

    fn done(&mut self) {
        if let Some((stall, n)) = self.stall.take() {
            stall.finished(n);
        }
    }
}

impl Future for Delivery {
    type Output = <DeliveryFuture as Future>::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let report = match Pin::new(&mut self.inner).poll(cx) {
            Poll::Ready(report) => report,
            Poll::Pending => {
                std::task::ready!(self.bound.as_mut().poll(cx));
                tracing::warn!("a delivery report never came; the message is taken as not sent");
                Err(Canceled)
            }
        };
        self.done();
        Poll::Ready(report)
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.done();
    }
}
