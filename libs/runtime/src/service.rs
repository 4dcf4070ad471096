//! Wiring shared by every service: database, codec, producer, outbox relay,
//! consumer and HTTP server, started together and stopped in order.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use orderflow_auth::{authenticate, Gate, Verifier};
use orderflow_envelope::{
    CloudEventHeaders, Codec, Envelope, Event, EventType, HttpSchemaRegistry, Topic,
};
use orderflow_http::{health_routes, Listeners, Readiness};
use orderflow_telemetry::{metrics_route, observe_http, Metrics};
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

use crate::config::RuntimeConfig;
use crate::consumer;
use crate::db::{Backend, Database};
use crate::error::RuntimeError;
use crate::group_commit::{BatchLimits, GroupCommit, Tx, Work};
use crate::handler::{Handler, HandlerError};
use crate::outbox::OutboxRelay;
use crate::producer::{Fatal, Producer};

/// What a service is, as far as the runtime is concerned: its name, its
/// tables, the events it publishes and the topics it consumes. Each service
/// declares one as a `static`.
pub struct ServiceSpec {
    pub name: &'static str,
    pub migrations: Migrator,
    pub produces: &'static [EventType],
    pub consumes: &'static [Topic],
}

impl ServiceSpec {
    /// The service's consumer group.
    pub fn group_id(&self) -> String {
        format!("orderflow-{}", self.name)
    }
}

/// One service's connections to the outside world.
pub struct Runtime {
    service: &'static str,
    spec: &'static ServiceSpec,
    config: RuntimeConfig,
    db: Database,
    emitter: Emitter,
    producer: Producer,
    relay: Arc<OutboxRelay>,
    readiness: Readiness,
    metrics: Metrics,
    fatal: Fatal,
    stopping: crate::shutdown::Budget,
}

impl Runtime {
    /// Connects to the database (running `migrations`), the schema registry
    /// (registering the schemas of the events the service `produces`, so an
    /// incompatible schema stops it here) and Kafka.
    pub async fn connect(
        spec: &'static ServiceSpec,
        config: RuntimeConfig,
    ) -> Result<Arc<Self>, RuntimeError> {
        let service = spec.name;
        let db = Database::connect(
            &config.database_url,
            config.database_max_connections,
            config.sqlite_durable,
        )
        .await?;
        db.migrate(&spec.migrations).await?;
        let registry = config
            .registry_connection()
            .and_then(|c| HttpSchemaRegistry::connect(&c).map_err(|e| e.to_string()))
            .map_err(RuntimeError::Config)?;
        let codec = Arc::new(Codec::new(Arc::new(registry)));
        register_with_retry(&codec, spec.produces).await?;
        let fatal = Fatal::default();
        let producer = Producer::new(&config, service, fatal.clone())?;
        let metrics = Metrics::new();
        let relay = Arc::new(OutboxRelay::new(
            db.clone(),
            producer.clone(),
            Duration::from_millis(config.outbox_poll_ms),
            Duration::from_millis(config.outbox_lease_ms),
            config.outbox_max_attempts,
            metrics.clone(),
        ));
        let stopping =
            crate::shutdown::Budget::new(Duration::from_millis(config.shutdown_budget_ms));
        Ok(Arc::new(Self {
            service,
            spec,
            config,
            db,
            emitter: Emitter { service, codec },
            producer,
            relay,
            readiness: Readiness::default(),
            metrics,
            fatal,
            stopping,
        }))
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    pub fn spec(&self) -> &'static ServiceSpec {
        self.spec
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    pub fn codec(&self) -> &Codec {
        &self.emitter.codec
    }

    /// What writes this service's events to its outbox.
    pub fn emitter(&self) -> &Emitter {
        &self.emitter
    }

    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    pub fn relay(&self) -> &Arc<OutboxRelay> {
        &self.relay
    }

    /// What a stop has left of its time (see [`crate::shutdown::Budget`]).
    pub fn stopping(&self) -> &crate::shutdown::Budget {
        &self.stopping
    }

    /// Starts group commit for one kind of work of this service (see
    /// [`crate::group_commit`]): one writer on SQLite, several on PostgreSQL.
    pub fn group_commit<W: Work>(
        &self,
        kind: &'static str,
        context: Arc<W::Context>,
    ) -> GroupCommit<W> {
        let limits = BatchLimits {
            max_items: self.config.consumer_batch_max,
            concurrency: match self.db.backend() {
                Backend::Sqlite => 1,
                Backend::Postgres => self.config.database_writers,
            },
        };
        GroupCommit::start(
            kind,
            self.db.clone(),
            self.relay.clone(),
            context,
            limits,
            self.metrics.clone(),
        )
    }

    /// Serves `routes` on the API port, each call's bearer token checked (a
    /// service with no routes has no API and checks none), and `/healthz`,
    /// `/readyz` and `/metrics` on the operations port; relays the outbox
    /// and runs `handler` on the topics the service consumes, until
    /// `shutdown`. Then: readiness goes false, the consumer finishes
    /// in-flight work, commits and leaves its group, in-flight HTTP requests
    /// finish, and the outbox is flushed.
    pub async fn serve(
        self: Arc<Self>,
        listeners: Listeners,
        routes: Router,
        handler: Option<Arc<dyn Handler>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let stop_consumer = CancellationToken::new();
        let stop_http = CancellationToken::new();
        let stop_relay = CancellationToken::new();

        let relay = {
            let relay = self.relay.clone();
            let stop = stop_relay.clone();
            tokio::spawn(async move { relay.run(stop).await })
        };
        let housekeeping = tokio::spawn(crate::housekeeping::run(self.clone(), stop_relay.clone()));
        let producer_watch = tokio::spawn(self.producer.clone().watch(stop_relay.clone()));
        let mut consumer_task = handler.map(|handler| {
            tokio::spawn(consumer::run(self.clone(), handler, stop_consumer.clone()))
        });
        let api = if routes.has_routes() {
            let gate = Gate::new(Arc::new(Verifier::new(self.config.auth.clone())));
            routes.layer(axum::middleware::from_fn_with_state(gate, authenticate))
        } else {
            routes
        }
        .layer(axum::middleware::from_fn_with_state(
            self.metrics.clone(),
            observe_http,
        ));
        let ops = health_routes(self.readiness.clone()).merge(metrics_route(self.metrics.clone()));
        let http = tokio::spawn(orderflow_http::serve(
            listeners.api,
            api,
            stop_http.clone().cancelled_owned(),
        ));
        let ops = tokio::spawn(orderflow_http::serve(
            listeners.ops,
            ops,
            stop_http.clone().cancelled_owned(),
        ));
        self.readiness.set(true);
        tracing::info!(service = self.service, "started");

        let early_exit = async {
            match consumer_task.as_mut() {
                Some(task) => task.await,
                None => std::future::pending().await,
            }
        };
        let mut result = Ok(());
        tokio::select! {
            _ = shutdown => {}
            reason = self.fatal.raised() => {
                result = Err(RuntimeError::FatalProducer(reason));
            }
            exited = early_exit => {
                consumer_task = None;
                result = match exited {
                    Ok(Err(e)) => Err(e),
                    _ => Err(RuntimeError::ConsumerStopped),
                };
            }
        }

        self.stopping.start();
        self.readiness.set(false);
        if matches!(result, Err(RuntimeError::FatalProducer(_))) {
            // Not ready for a moment before the process goes, so probes and
            // load balancers see why it went.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        stop_consumer.cancel();
        if let Some(task) = consumer_task {
            if let Ok(Err(e)) = task.await {
                tracing::error!(error = %e, "consumer failed");
            }
        }
        stop_http.cancel();
        match self.within_budget("HTTP requests in progress", http).await {
            Some(Ok(Err(e))) => tracing::error!(error = %e, "HTTP server failed"),
            Some(Err(e)) => tracing::error!(error = %e, "HTTP server panicked"),
            _ => {}
        }
        stop_relay.cancel();
        // Rows the relay leaves are published at the next start.
        self.within_budget("the outbox relay's last rows", relay)
            .await;
        let _ = ops.await;
        let _ = housekeeping.await;
        let _ = producer_watch.await;
        tracing::info!(service = self.service, "stopped");
        result
    }

    /// Waits for a step of the stop while the budget lasts (each step has
    /// its own limits, 15 s at most); then gives it up.
    async fn within_budget<T>(
        &self,
        what: &str,
        task: tokio::task::JoinHandle<T>,
    ) -> Option<Result<T, tokio::task::JoinError>> {
        let abort = task.abort_handle();
        match tokio::time::timeout(self.stopping.left(Duration::from_secs(15)), task).await {
            Ok(done) => Some(done),
            Err(_) => {
                tracing::warn!(
                    "{what} did not finish within the shutdown budget; stopping without them"
                );
                abort.abort();
                None
            }
        }
    }
}

/// The registry may come up after the service (a cluster starts everything at
/// once): keep trying transient failures for a while before giving up.
/// What writes a service's events: its name (their `ce_source`) and the
/// codec that encodes them.
#[derive(Clone)]
pub struct Emitter {
    service: &'static str,
    codec: Arc<Codec>,
}

impl Emitter {
    pub fn new(service: &'static str, codec: Arc<Codec>) -> Self {
        Self { service, codec }
    }

    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// Writes `event` to the outbox in the transaction `tx`. `cause` is the
    /// event being handled, if any: its id becomes the causation id and its
    /// trace context carries over.
    pub async fn emit(
        &self,
        tx: &mut Tx<'_>,
        event: &Event,
        cause: Option<&CloudEventHeaders>,
    ) -> Result<CloudEventHeaders, HandlerError> {
        let envelope = self.envelope(event, cause).await?;
        let headers = envelope.headers.clone();
        tx.publish(envelope);
        Ok(headers)
    }

    /// The envelope of `event`: its CloudEvents headers (caused by `cause`,
    /// in the current span's trace) and its Avro value.
    pub async fn envelope(
        &self,
        event: &Event,
        cause: Option<&CloudEventHeaders>,
    ) -> Result<Envelope, HandlerError> {
        let ce_type = event.event_type().ce_type();
        let mut headers = match cause {
            Some(cause) => cause.caused(self.service, ce_type, event.order_id()),
            None => CloudEventHeaders::new(self.service, ce_type, event.order_id()),
        };
        // The event's creation context (a `create` span under the span that
        // writes it: the handler's process span, or an HTTP request's) is
        // the parent of the relay's send span and of every consumer's.
        let topic = event.event_type().topic().name();
        if let Some((traceparent, tracestate)) =
            orderflow_telemetry::trace::message_created(topic, &headers.id, event.order_id())
        {
            headers.traceparent = Some(traceparent);
            headers.tracestate = tracestate;
        }
        self.codec.envelope(event, headers).await.map_err(|e| {
            if e.is_transient() {
                HandlerError::Transient(e.to_string())
            } else {
                HandlerError::Permanent(e.to_string())
            }
        })
    }
}

async fn register_with_retry(codec: &Codec, produces: &[EventType]) -> Result<(), RuntimeError> {
    let mut wait = Duration::from_millis(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match codec.register(produces).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "schema registry not reachable yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            // Wrong or missing credentials: a configuration to fix (exit 64).
            Err(orderflow_envelope::EncodeError::Registry { source, .. })
                if source.is_unauthorized() =>
            {
                return Err(RuntimeError::Config(source.to_string()))
            }
            Err(e) => return Err(e.into()),
        }
    }
}
