//! The consumer runtime on its own, for tests of the runtime rather than the
//! saga: an embedded broker, a schema registry, one database, and any number
//! of members of one consumer group, each a [`Runtime`] running a test's
//! handler. Events are produced as the services would (CloudEvents headers,
//! Avro in the Confluent wire format).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use orderflow_envelope::{CloudEventHeaders, Codec, Event, HttpSchemaRegistry};
use orderflow_runtime::telemetry::Metrics;
use orderflow_runtime::{Handler, Runtime, RuntimeConfig, RuntimeError, ServiceSpec};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::kafka::KafkaProbe;

pub struct Harness {
    pub bootstrap: String,
    pub registry: String,
    /// Shared by every member, as replicas of a service share their database.
    pub database_url: String,
    pub codec: Arc<Codec>,
    producer: FutureProducer,
    registry_task: JoinHandle<()>,
    cluster: MockCluster<'static, DefaultProducerContext>,
    _dir: tempfile::TempDir,
}

/// A running member of the group.
pub struct Member {
    pub metrics: Metrics,
    /// Its HTTP address (health endpoints).
    pub url: String,
    stop: CancellationToken,
    task: JoinHandle<Result<(), RuntimeError>>,
}

impl Member {
    /// Stops it as SIGTERM would; it must stop cleanly.
    pub async fn stop(self) -> Result<()> {
        self.begin_stop();
        self.stopped().await
    }

    /// Tells it to stop (SIGTERM), without waiting.
    pub fn begin_stop(&self) {
        self.stop.cancel();
    }

    /// Waits until it has stopped; it must stop cleanly.
    pub async fn stopped(self) -> Result<()> {
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .context("member did not stop within 30s")???;
        Ok(())
    }
}

impl Harness {
    /// `topics` with their partition counts, plus the retry tier and
    /// dead-letter topics of `spec`'s service under `config`'s tiers.
    pub async fn start(
        spec: &'static ServiceSpec,
        topics: &[(&str, i32)],
        config: &RuntimeConfig,
    ) -> Result<Self> {
        crate::init_test_logging();
        let cluster = MockCluster::new(1).context("mock cluster")?;
        for (topic, partitions) in topics {
            cluster.create_topic(topic, *partitions, 1)?;
        }
        for topic in orderflow_runtime::topics::retry_topics(spec.name, &config.retry_tiers()) {
            cluster.create_topic(&topic, 3, 1)?;
        }
        cluster.create_topic(
            &orderflow_runtime::topics::dead_letter_topic(spec.name),
            3,
            1,
        )?;
        let bootstrap = cluster.bootstrap_servers();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let registry = format!("http://{}", listener.local_addr()?);
        let app = orderflow_registry::Registry::new().router();
        let registry_task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let dir = tempfile::tempdir()?;
        let database_url = crate::database_url(dir.path(), spec.name).await?;
        let codec = Arc::new(Codec::new(Arc::new(HttpSchemaRegistry::new(&registry))));
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("enable.idempotence", "true")
            .set("linger.ms", "2")
            .create()?;
        Ok(Self {
            bootstrap,
            registry,
            database_url,
            codec,
            producer,
            registry_task,
            cluster,
            _dir: dir,
        })
    }

    /// The configuration of a member: this harness's broker, registry and
    /// database over `base`.
    pub fn config(&self, base: &RuntimeConfig) -> RuntimeConfig {
        RuntimeConfig {
            http_addr: "127.0.0.1:0".parse().expect("an address"),
            database_url: self.database_url.clone(),
            schema_registry_url: self.registry.clone(),
            kafka_bootstrap_servers: self.bootstrap.clone(),
            kafka_fetch_wait_max_ms: orderflow_runtime::EMBEDDED_BROKER_FETCH_WAIT_MS,
            kafka_session_timeout_ms: 6_000,
            kafka_auto_commit_interval_ms: 100,
            outbox_poll_ms: 100,
            ..base.clone()
        }
    }

    /// Starts a member of `spec`'s group running `handler`.
    pub async fn member(
        &self,
        spec: &'static ServiceSpec,
        handler: Arc<dyn Handler>,
        config: RuntimeConfig,
    ) -> Result<Member> {
        Member::start(spec, handler, config).await
    }

    /// Publishes `events` in order, as a service's outbox relay would, and
    /// waits until the broker has all of them; returns where each landed
    /// (partition, offset).
    pub async fn produce(&self, events: &[Event]) -> Result<Vec<(i32, i64)>> {
        let mut deliveries = Vec::with_capacity(events.len());
        for event in events {
            let headers = CloudEventHeaders::new(
                event.event_type().topic().owner(),
                event.event_type().ce_type(),
                event.order_id(),
            );
            let envelope = self.codec.envelope(event, headers).await?;
            let mut owned = OwnedHeaders::new();
            for (k, v) in envelope.headers.to_pairs() {
                owned = owned.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            let record = FutureRecord::to(envelope.topic)
                .key(&envelope.key)
                .payload(&envelope.payload)
                .headers(owned);
            deliveries.push(
                self.producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .context("queueing a test event")?,
            );
        }
        let mut landed = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let delivered = delivery
                .await
                .context("delivery canceled")?
                .map_err(|(e, _)| e)
                .context("producing a test event")?;
            landed.push((delivered.partition, delivered.offset));
        }
        Ok(landed)
    }

    pub fn kafka(&self) -> KafkaProbe {
        KafkaProbe::new(&self.bootstrap)
    }

    /// The embedded broker, to inject errors.
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}

impl Member {
    /// Starts a member of `spec`'s group running `handler`, with `config`
    /// naming the broker, registry and database (those of a harness, maybe
    /// one in another process).
    pub async fn start(
        spec: &'static ServiceSpec,
        handler: Arc<dyn Handler>,
        config: RuntimeConfig,
    ) -> Result<Self> {
        let rt = Runtime::connect(spec, config).await?;
        let metrics = rt.metrics().clone();
        let listeners = orderflow_http::Listeners::local().await?;
        // A member has no API: its URL is the operations port's.
        let (_, url) = listeners.urls()?;
        let stop = CancellationToken::new();
        let shutdown = Box::pin(stop.clone().cancelled_owned());
        let task = tokio::spawn(rt.serve(listeners, axum::Router::new(), Some(handler), shutdown));
        Ok(Member {
            metrics,
            url,
            stop,
            task,
        })
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.registry_task.abort();
    }
}
