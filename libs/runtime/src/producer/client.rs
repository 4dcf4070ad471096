//! One librdkafka producer and the thread of ours that serves its delivery
//! reports.
//!
//! rdkafka's own polling thread (behind `FutureProducer` and
//! `ThreadedProducer`) polls in windows of exactly 100 ms, and rdkafka turns
//! the time left in a window into whole milliseconds rounding down: the
//! call that should wait out the window waits 99 ms, and the last fraction
//! of a millisecond is polled with a zero timeout in a busy loop. Measured,
//! that loop was a third of an idle service's CPU (about 1 % of a core per
//! service, `clock_gettime` at the top of its thread's profile). This thread
//! polls in windows of [`POLL_WINDOW`], a whole number of milliseconds plus a
//! little: the wait rounds down to the whole window, and nothing is left of
//! it to spin on when no report comes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, DeliveryResult};
use tokio::sync::oneshot;

use crate::error::RuntimeError;

/// What the broker said about one message: its partition and offset, or why
/// it was not written.
pub type Report = Result<(i32, i64), KafkaError>;

/// Where a message's [`Report`] goes.
pub type ReportTo = Box<oneshot::Sender<Report>>;

/// Logs the producer's errors and hands each delivery report to whoever
/// waits for it. librdkafka reports a fatal error with its underlying code,
/// so [`super::Producer::check_fatal`] asks the client itself.
pub struct ProducerContext;

impl ClientContext for ProducerContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "kafka producer error");
    }
}

impl rdkafka::producer::ProducerContext for ProducerContext {
    type DeliveryOpaque = ReportTo;

    fn delivery(&self, result: &DeliveryResult<'_>, to: ReportTo) {
        let report = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((e, _)) => Err(e.clone()),
        };
        // Nobody waits any more (the send was given up): nothing to tell.
        let _ = to.send(report);
    }
}

/// How long one poll of the report queue lasts when no report comes: 100 ms
/// (how soon a dropped producer's thread notices), plus more than the few
/// microseconds between rdkafka setting the window's deadline and rounding
/// what is left of it down to whole milliseconds.
const POLL_WINDOW: Duration = Duration::from_micros(100_050);

/// A librdkafka producer whose delivery reports are served while it lives.
/// Dropped, it stops its thread, then purges what it still holds (each
/// waiting send gets an error) and is destroyed.
pub struct Client {
    producer: Arc<BaseProducer<ProducerContext>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    pub fn new(config: &ClientConfig) -> Result<Self, RuntimeError> {
        let producer: BaseProducer<ProducerContext> = config
            .create_with_context(ProducerContext)
            .map_err(|source| RuntimeError::Kafka {
            what: "producer",
            source,
        })?;
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (producer, stop) = (producer.clone(), stop.clone());
            std::thread::Builder::new()
                .name("kafka-reports".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        producer.poll(POLL_WINDOW);
                    }
                })?
        };
        Ok(Self {
            producer,
            stop,
            thread: Some(thread),
        })
    }

    pub fn producer(&self) -> &BaseProducer<ProducerContext> {
        &self.producer
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The producer drops next, the last reference to it: rdkafka purges
        // what it holds and serves the purged messages' reports.
    }
}
