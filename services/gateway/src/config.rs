use std::net::SocketAddr;

use orderflow_runtime::ServiceConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub http_addr: SocketAddr,
    /// Where the health probes and the metrics listen, apart from the API.
    pub ops_addr: SocketAddr,
    pub order_url: String,
    pub inventory_url: String,
    pub notification_url: String,
    /// The payment service: its operator view of a payment.
    pub payment_url: String,
    /// Timeout of one call to a service behind the gateway, in milliseconds.
    pub upstream_timeout_ms: u64,
    /// How every call's bearer token is checked (`ORDERFLOW_AUTH_*`).
    #[serde(flatten)]
    pub auth: orderflow_auth::AuthConfig,
    /// Orders one caller may place per second, on average…
    pub orders_per_second: f64,
    /// …and at once, in a burst.
    pub orders_burst: u32,
    /// Authenticated requests in progress at once, at most; past it, 503…
    pub max_requests_in_flight: usize,
    /// …and one caller's, at most; past it, 429.
    pub max_requests_in_flight_per_caller: usize,
    /// Requests whose token is still being checked (and requests for the
    /// public paths) at once, at most; past it, 503.
    pub max_anonymous_in_flight: usize,
    /// Connections open at once, at most; one more is closed at once.
    pub max_connections: usize,
    /// How long a new connection may stay silent before its first byte.
    pub first_byte_timeout_ms: u64,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout_ms: u64,
    /// How long a connection may stay open with no request in progress.
    pub idle_timeout_ms: u64,
    /// How long a whole request may take.
    pub request_timeout_ms: u64,
    /// Open `GET /v1/orders/stream`s, at most: per caller (429 past it)…
    pub max_streams_per_caller: usize,
    /// …and in all (503 past it).
    pub max_streams: usize,
    /// Kafka, for the operator API's dead letters (read, decode, replay):
    /// the services' own settings. Empty: the dead-letter calls answer 503
    /// saying so.
    pub kafka_bootstrap_servers: String,
    /// Extra librdkafka properties, `key=value,key=value` (SASL, TLS).
    pub kafka_properties: String,
    /// The schema registry the dead letters are decoded with.
    pub schema_registry_url: String,
    pub schema_registry_basic_auth: String,
    pub schema_registry_bearer_token: String,
    pub schema_registry_ca_file: String,
    /// Jaeger's UI (`http://jaeger:16686`): the console links each order to
    /// its trace there. Empty: no link.
    pub console_jaeger_url: String,
    /// Jaeger's query API (`http://jaeger-query:16686`), as the gateway
    /// reaches it: `GET /v1/orders/{id}/trace` reads an order's trace there
    /// for the console's waterfall. Empty: no traces (the console shows the
    /// order's timeline alone).
    pub jaeger_query_url: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_addr: ([127, 0, 0, 1], 8080).into(),
            ops_addr: ([127, 0, 0, 1], 9080).into(),
            order_url: "http://127.0.0.1:8082".into(),
            inventory_url: "http://127.0.0.1:8083".into(),
            notification_url: "http://127.0.0.1:8086".into(),
            payment_url: "http://127.0.0.1:8084".into(),
            upstream_timeout_ms: 5_000,
            auth: Default::default(),
            orders_per_second: 50.0,
            orders_burst: 100,
            max_requests_in_flight: 1_024,
            max_requests_in_flight_per_caller: 64,
            max_anonymous_in_flight: 128,
            max_connections: 2_048,
            first_byte_timeout_ms: 5_000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            request_timeout_ms: 30_000,
            max_streams_per_caller: 8,
            max_streams: 256,
            kafka_bootstrap_servers: String::new(),
            kafka_properties: String::new(),
            schema_registry_url: String::new(),
            schema_registry_basic_auth: String::new(),
            schema_registry_bearer_token: String::new(),
            schema_registry_ca_file: String::new(),
            console_jaeger_url: String::new(),
            jaeger_query_url: String::new(),
        }
    }
}

impl Config {
    /// Where dead letters are read from, when Kafka is configured.
    pub fn dead_letter_source(&self) -> Result<Option<orderflow_runtime::LogSource>, String> {
        if self.kafka_bootstrap_servers.trim().is_empty() {
            return Ok(None);
        }
        let runtime = orderflow_runtime::RuntimeConfig {
            kafka_bootstrap_servers: self.kafka_bootstrap_servers.clone(),
            kafka_properties: self.kafka_properties.clone(),
            schema_registry_url: self.schema_registry_url.clone(),
            schema_registry_basic_auth: self.schema_registry_basic_auth.clone(),
            schema_registry_bearer_token: self.schema_registry_bearer_token.clone(),
            schema_registry_ca_file: self.schema_registry_ca_file.clone(),
            ..Default::default()
        };
        runtime.kafka_property_pairs().map_err(|e| {
            format!("kafka_properties: {e}: set ORDERFLOW_KAFKA_PROPERTIES to key=value,key=value")
        })?;
        Ok(Some(orderflow_runtime::LogSource {
            bootstrap: self.kafka_bootstrap_servers.clone(),
            kafka_properties: self.kafka_properties.clone(),
            registry: runtime.registry_connection()?,
        }))
    }
}

impl ServiceConfig for Config {
    fn validate(&self) -> Result<(), String> {
        for (name, url) in [
            ("order_url", &self.order_url),
            ("inventory_url", &self.inventory_url),
            ("notification_url", &self.notification_url),
            ("payment_url", &self.payment_url),
        ] {
            if is_http(url) {
                continue;
            }
            return Err(format!(
                "{name} `{}` is not an http(s) URL: set ORDERFLOW_{}",
                orderflow_runtime::redact(url),
                name.to_uppercase()
            ));
        }
        if !self.kafka_bootstrap_servers.trim().is_empty() && !is_http(&self.schema_registry_url) {
            return Err(format!(
                "schema_registry_url `{}` is not an http(s) URL: the dead letters Kafka holds are decoded through it; set ORDERFLOW_SCHEMA_REGISTRY_URL (or leave ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS empty to go without dead letters)",
                orderflow_runtime::redact(&self.schema_registry_url)
            ));
        }
        self.dead_letter_source()?;
        if !self.console_jaeger_url.is_empty() && !is_http(&self.console_jaeger_url) {
            return Err(format!(
                "console_jaeger_url `{}` is not an http(s) URL: set ORDERFLOW_CONSOLE_JAEGER_URL to Jaeger's UI, e.g. http://127.0.0.1:16686, or leave it empty",
                self.console_jaeger_url
            ));
        }
        if !self.jaeger_query_url.is_empty() && !is_http(&self.jaeger_query_url) {
            return Err(format!(
                "jaeger_query_url `{}` is not an http(s) URL: set ORDERFLOW_JAEGER_QUERY_URL to Jaeger's query API, e.g. http://127.0.0.1:16686, or leave it empty",
                orderflow_runtime::redact(&self.jaeger_query_url)
            ));
        }
        self.auth.validate()?;
        if self.orders_per_second.is_nan()
            || self.orders_per_second <= 0.0
            || self.orders_burst == 0
        {
            return Err("orders_per_second and orders_burst must be above 0: set ORDERFLOW_ORDERS_PER_SECOND and ORDERFLOW_ORDERS_BURST".into());
        }
        if self.max_streams == 0 || self.max_streams_per_caller == 0 {
            return Err(
                "max_streams and max_streams_per_caller must be above 0: set ORDERFLOW_MAX_STREAMS and ORDERFLOW_MAX_STREAMS_PER_CALLER"
                    .into(),
            );
        }
        for (name, n) in [
            ("max_requests_in_flight", self.max_requests_in_flight),
            (
                "max_requests_in_flight_per_caller",
                self.max_requests_in_flight_per_caller,
            ),
            ("max_anonymous_in_flight", self.max_anonymous_in_flight),
            ("max_connections", self.max_connections),
        ] {
            if n == 0 {
                return Err(format!(
                    "{name} must be above 0: set ORDERFLOW_{}",
                    name.to_uppercase()
                ));
            }
        }
        Ok(())
    }
}

fn is_http(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| u.scheme().starts_with("http"))
}
