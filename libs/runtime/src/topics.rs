//! The topic layout (SPEC §4) and its provisioning through the Kafka admin API.

use std::time::Duration;

use orderflow_envelope::Topic;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::RuntimeConfig;
use crate::error::RuntimeError;
use crate::producer::client_config;

/// The services that consume events, each in its own consumer group.
pub const CONSUMING_SERVICES: [&str; 5] =
    ["order", "inventory", "payment", "shipping", "notification"];

/// Where a service parks events it cannot process.
pub fn dead_letter_topic(service: &str) -> String {
    format!("{service}.dlq")
}

/// Where a service delays events to retry them without blocking a partition.
pub fn retry_topic(service: &str) -> String {
    format!("{service}.retry")
}

/// A topic to create, with its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub config: Vec<(&'static str, &'static str)>,
}

/// Every topic orderflow uses. Domain topics and dead letters keep their
/// events forever: the log is the event store read models are rebuilt from.
pub fn layout(partitions: i32) -> Vec<TopicSpec> {
    let forever = vec![("retention.ms", "-1")];
    let mut specs: Vec<TopicSpec> = Topic::ALL
        .iter()
        .map(|t| TopicSpec {
            name: t.name().to_string(),
            partitions,
            config: forever.clone(),
        })
        .collect();
    for service in CONSUMING_SERVICES {
        specs.push(TopicSpec {
            name: retry_topic(service),
            partitions,
            config: vec![("retention.ms", "604800000")],
        });
        specs.push(TopicSpec {
            name: dead_letter_topic(service),
            partitions,
            config: forever.clone(),
        });
    }
    specs
}

/// Creates the topics of [`layout`] that do not exist yet; returns their names.
pub async fn apply(config: &RuntimeConfig, replication: i32) -> Result<Vec<String>, RuntimeError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(config)
            .create()
            .map_err(|source| RuntimeError::Kafka {
                what: "admin client",
                source,
            })?;
    let specs = layout(config.kafka_partitions);
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            let mut t = NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(replication));
            for (k, v) in &s.config {
                t = t.set(k, v);
            }
            t
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(new_topics.iter(), &options)
        .await
        .map_err(|e| RuntimeError::Topics(e.to_string()))?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(RuntimeError::Topics(format!("{name}: {code}"))),
        }
    }
    Ok(created)
}
