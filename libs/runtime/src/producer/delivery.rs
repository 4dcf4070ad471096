//! The delivery report of one message ([`Report`]), which tells its
//! producer's [`Stall`] when the message is done with (delivered, failed,
//! or nobody waits for it any more), and which ends when its producer
//! is destroyed ([`super::Retired`]) even if librdkafka never reported: a
//! producer destroyed while it still held messages may drop their reports,
//! and a relay waiting for them would wait for good.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rdkafka::error::KafkaError;
use tokio::sync::oneshot;

use super::client::Report;
use super::stall::Stall;

pub struct Delivery {
    inner: oneshot::Receiver<Report>,
    /// The producer's account of it, and its number there, until it is done.
    stall: Option<(Arc<Stall>, u64)>,
}

impl Delivery {
    pub(super) fn new(inner: oneshot::Receiver<Report>, stall: Arc<Stall>, n: u64) -> Self {
        Self {
            inner,
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
    /// The partition and offset the broker acknowledged, or why not.
    type Output = Result<(i32, i64), KafkaError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let report = match Pin::new(&mut self.inner).poll(cx) {
            Poll::Ready(report) => Some(report),
            Poll::Pending => {
                let (stall, n) = self.stall.as_ref().expect("polled after it ended");
                if stall.wait(*n, cx.waker()) {
                    return Poll::Pending;
                }
                // Destroyed: the report came during the destruction, or never.
                match Pin::new(&mut self.inner).poll(cx) {
                    Poll::Ready(report) => Some(report),
                    Poll::Pending => None,
                }
            }
        };
        self.done();
        Poll::Ready(match report {
            Some(Ok(report)) => report,
            Some(Err(_dropped)) => Err(KafkaError::Canceled),
            None => {
                tracing::warn!("a delivery report never came; the message is taken as not sent");
                Err(KafkaError::Canceled)
            }
        })
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.done();
    }
}
