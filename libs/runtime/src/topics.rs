//! The topic layout (docs/architecture.md, "Topics and events") and its
//! provisioning through the Kafka admin API.

use std::time::Duration;

use orderflow_envelope::Topic;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::RuntimeConfig;
use crate::consumer::retry::tier_topic;
use crate::error::RuntimeError;
use crate::producer::client_config;

/// The services that consume events, each in its own consumer group.
pub const CONSUMING_SERVICES: [&str; 5] =
    ["order", "inventory", "payment", "shipping", "notification"];

/// Where a service parks events it cannot process.
pub fn dead_letter_topic(service: &str) -> String {
    format!("{service}.dlq")
}

/// Where a service delays events to retry them without blocking a
/// partition: one topic per delay tier.
pub fn retry_topics(service: &str, tiers: &[Duration]) -> Vec<String> {
    let mut topics: Vec<String> = tiers.iter().map(|&t| tier_topic(service, t)).collect();
    topics.dedup();
    topics
}

/// Retry tier topics of `service` that exist on the broker but are no longer
/// configured (a tier was removed from the retry settings): the consumer
/// still reads them, so the copies waiting there run and the orders parked
/// behind them go on.
pub fn retired_retry_topics<'a>(
    service: &str,
    configured: &[String],
    existing: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let prefix = format!("{service}.retry.");
    let mut retired: Vec<String> = existing
        .into_iter()
        .filter(|t| t.starts_with(&prefix) && !configured.iter().any(|c| c == t))
        .map(str::to_string)
        .collect();
    retired.sort();
    retired.dedup();
    retired
}

/// A topic to create, with its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub config: Vec<(&'static str, String)>,
}

/// What `orderflow dlq replay` replayed, keyed by dead-letter id: compacted,
/// so the latest record per dead letter is kept for good.
pub const REPLAY_LOG_TOPIC: &str = "orderflow.dlq-replays";

/// Retry copies are only needed until their deadline; a week is plenty.
const RETRY_RETENTION_MS: &str = "604800000";

/// Partitions of a retry tier topic: a quarter of a domain topic's. Retries
/// are few; every partition costs each consumer's fetches even when idle,
/// and a tier needs no more members than that to spread its retries (the
/// order of one order's events does not depend on partitions: its later
/// events wait in the database).
pub fn retry_partitions(partitions: i32) -> i32 {
    (partitions / 4).max(1)
}

/// Every topic orderflow uses. Domain topics and dead letters keep their
/// events forever: the log is the event store read models are rebuilt from.
pub fn layout(partitions: i32, tiers: &[Duration]) -> Vec<TopicSpec> {
    let forever = vec![("retention.ms", "-1".to_string())];
    let mut specs: Vec<TopicSpec> = Topic::ALL
        .iter()
        .map(|t| TopicSpec {
            name: t.name().to_string(),
            partitions,
            config: forever.clone(),
        })
        .collect();
    for service in CONSUMING_SERVICES {
        for name in retry_topics(service, tiers) {
            specs.push(TopicSpec {
                name,
                partitions: retry_partitions(partitions),
                config: vec![("retention.ms", RETRY_RETENTION_MS.to_string())],
            });
        }
        specs.push(TopicSpec {
            name: dead_letter_topic(service),
            partitions,
            config: forever.clone(),
        });
    }
    specs.push(TopicSpec {
        name: REPLAY_LOG_TOPIC.to_string(),
        partitions: 1,
        config: vec![("cleanup.policy", "compact".to_string())],
    });
    specs
}

/// `acks=all` is only as strong as `min.insync.replicas`: with the broker's
/// default of 1, an acknowledged write survives only on the leader. Two of
/// three (or more) replicas is the usual choice; below three replicas, two
/// would stop every write when one broker is down, so it stays 1.
pub fn min_insync_replicas(replication: i32, wanted: Option<i32>) -> i32 {
    wanted.unwrap_or(if replication >= 3 { 2 } else { 1 })
}

/// What `apply` did and found.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub created: Vec<String>,
    /// Existing topics whose settings are weaker than the layout's, one line each.
    pub weaker: Vec<String>,
}

/// Creates the topics of [`layout`] that do not exist yet, and reports the
/// existing ones whose settings are weaker than the layout asks for.
pub async fn apply(
    config: &RuntimeConfig,
    replication: i32,
    min_insync: Option<i32>,
) -> Result<ApplyReport, RuntimeError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(config)
            .create()
            .map_err(|source| RuntimeError::Kafka {
                what: "admin client",
                source,
            })?;
    let min_insync = min_insync_replicas(replication, min_insync);
    if min_insync > replication {
        return Err(RuntimeError::Topics(format!(
            "min.insync.replicas {min_insync} is more than the replication factor {replication}: every write would fail"
        )));
    }
    let mut specs = layout(config.kafka_partitions, &config.retry_tiers());
    for spec in &mut specs {
        spec.config
            .push(("min.insync.replicas", min_insync.to_string()));
    }
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
    let mut report = ApplyReport::default();
    let mut existing = Vec::new();
    let mut refused = Vec::new();
    for result in results {
        match result {
            Ok(name) => report.created.push(name),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push(name),
            Err((name, code)) => refused.push((name, code)),
        }
    }
    if !refused.is_empty() {
        return Err(RuntimeError::Topics(creation_failure(
            &refused,
            &report.created,
            replication,
        )));
    }
    if existing.is_empty() {
        return Ok(report);
    }
    let resources: Vec<ResourceSpecifier<'_>> = existing
        .iter()
        .map(|name| ResourceSpecifier::Topic(name))
        .collect();
    let described = admin
        .describe_configs(resources.iter(), &options)
        .await
        .map_err(|e| RuntimeError::Topics(e.to_string()))?;
    for (name, result) in existing.iter().zip(described) {
        let resource = result.map_err(|e| RuntimeError::Topics(format!("{name}: {e}")))?;
        let spec = specs
            .iter()
            .find(|s| &s.name == name)
            .expect("a topic of the layout");
        let actual = |key: &str| resource.get(key).and_then(|entry| entry.value.clone());
        report.weaker.extend(weaker_settings(name, spec, actual));
    }
    Ok(report)
}

/// Why the broker refused to create topics, in words that say what to do:
/// the permission the principal lacks, the replication factor the cluster
/// cannot hold, or the cluster's policy. Every refused topic is named; what
/// was created meanwhile stays (a rerun creates only the rest).
fn creation_failure(
    refused: &[(String, RDKafkaErrorCode)],
    created: &[String],
    replication: i32,
) -> String {
    let names: Vec<&str> = refused.iter().map(|(n, _)| n.as_str()).collect();
    let (_, code) = &refused[0];
    let why = match code {
        RDKafkaErrorCode::TopicAuthorizationFailed
        | RDKafkaErrorCode::ClusterAuthorizationFailed => {
            "the Kafka principal may not create topics: grant it the CREATE permission on the \
             cluster or on these topic names (for example `kafka-acls.sh --add --allow-principal \
             User:<principal> --operation Create --operation DescribeConfigs --topic <name>`, or \
             a Strimzi KafkaUser ACL), or have an administrator create them \
             (`orderflow topics list` prints them) and set hooks.topics.enabled=false"
                .to_string()
        }
        RDKafkaErrorCode::InvalidReplicationFactor => format!(
            "the cluster has fewer brokers than the replication factor {replication}: \
             lower kafka.replicationFactor (--replication-factor) or add brokers"
        ),
        RDKafkaErrorCode::PolicyViolation => {
            "the cluster's create-topic policy refused them: check its rules against \
             `orderflow topics list` (partitions, retention, cleanup policy)"
                .to_string()
        }
        other => format!("the broker answered {other}"),
    };
    let others: Vec<String> = refused
        .iter()
        .filter(|(_, c)| c != code)
        .map(|(n, c)| format!("{n}: {c}"))
        .collect();
    let mut message = format!(
        "{} topics refused ({}): {why}",
        refused.len(),
        names.join(", ")
    );
    if !others.is_empty() {
        message.push_str(&format!("; also {}", others.join(", ")));
    }
    if !created.is_empty() {
        message.push_str(&format!(" ({} created meanwhile)", created.len()));
    }
    message
}

/// The settings of an existing topic that are weaker than `spec`'s:
/// retention shorter than asked for, fewer in-sync replicas required.
fn weaker_settings(
    name: &str,
    spec: &TopicSpec,
    actual: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut weaker = Vec::new();
    for (key, wanted) in &spec.config {
        let Some(have) = actual(key) else { continue };
        let (Ok(w), Ok(h)) = (wanted.parse::<i64>(), have.parse::<i64>()) else {
            continue;
        };
        let is_weaker = match *key {
            // -1 is forever: anything finite is weaker than it
            "retention.ms" => h != -1 && (w == -1 || h < w),
            _ => h < w,
        };
        if is_weaker {
            weaker.push(format!("{name}: {key}={have}, wanted {wanted}"));
        }
    }
    weaker
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_topic_names_the_permission_it_needs() {
        let refused = [
            (
                "orders".to_string(),
                RDKafkaErrorCode::TopicAuthorizationFailed,
            ),
            (
                "payments".to_string(),
                RDKafkaErrorCode::TopicAuthorizationFailed,
            ),
            ("shipments".to_string(), RDKafkaErrorCode::PolicyViolation),
        ];
        let message = creation_failure(&refused, &["inventory".to_string()], 3);
        assert!(
            message.starts_with("3 topics refused (orders, payments, shipments): the Kafka principal may not create topics: grant it the CREATE permission"),
            "{message}"
        );
        assert!(message.contains("--operation Create"), "{message}");
        assert!(message.contains("hooks.topics.enabled=false"), "{message}");
        assert!(message.contains("; also shipments: "), "{message}");
        assert!(message.ends_with("(1 created meanwhile)"), "{message}");

        let replication = [(
            "orders".to_string(),
            RDKafkaErrorCode::InvalidReplicationFactor,
        )];
        let message = creation_failure(&replication, &[], 3);
        assert_eq!(
            message,
            "1 topics refused (orders): the cluster has fewer brokers than the replication factor 3: lower kafka.replicationFactor (--replication-factor) or add brokers"
        );
    }

    #[test]
    fn every_service_has_a_topic_per_retry_tier_and_a_dead_letter_topic() {
        let tiers = [1, 4, 9, 60].map(Duration::from_secs);
        let names: Vec<String> = layout(12, &tiers).into_iter().map(|t| t.name).collect();
        for expected in [
            "orders",
            "payment.retry.1s",
            "payment.retry.1m",
            "payment.dlq",
            "notification.retry.9s",
        ] {
            assert!(
                names.contains(&expected.to_string()),
                "{expected} in {names:?}"
            );
        }
        assert_eq!(names.len(), 5 + 5 * (4 + 1) + 1, "and the replay log");
        let partitions = |name: &str| {
            layout(12, &tiers)
                .into_iter()
                .find(|t| t.name == name)
                .map(|t| t.partitions)
        };
        assert_eq!(partitions("orders"), Some(12));
        assert_eq!(partitions("payment.retry.4s"), Some(3), "a quarter");
        assert_eq!(retry_partitions(3), 1, "at least one");
    }

    #[test]
    fn three_replicas_require_two_in_sync() {
        assert_eq!(min_insync_replicas(3, None), 2);
        assert_eq!(min_insync_replicas(5, None), 2);
        assert_eq!(min_insync_replicas(1, None), 1);
        assert_eq!(min_insync_replicas(3, Some(3)), 3);
    }

    #[test]
    fn weaker_settings_are_reported() {
        let spec = TopicSpec {
            name: "orders".into(),
            partitions: 12,
            config: vec![
                ("retention.ms", "-1".into()),
                ("min.insync.replicas", "2".into()),
            ],
        };
        let weak = weaker_settings("orders", &spec, |k| {
            Some(
                if k == "retention.ms" {
                    "604800000"
                } else {
                    "1"
                }
                .to_string(),
            )
        });
        assert_eq!(
            weak,
            vec![
                "orders: retention.ms=604800000, wanted -1",
                "orders: min.insync.replicas=1, wanted 2"
            ]
        );
        assert!(weaker_settings("orders", &spec, |k| Some(
            if k == "retention.ms" { "-1" } else { "3" }.to_string()
        ))
        .is_empty());
    }

    #[test]
    fn retry_tiers_no_longer_configured_are_still_read() {
        let configured = retry_topics("payment", &[Duration::from_secs(1), Duration::from_secs(4)]);
        let existing = [
            "payment.retry.1s",
            "payment.retry.9s",
            "payment.retry.4s",
            "payment.retry.15m",
            "payment.dlq",
            "payments",
            "shipping.retry.9s",
            "payment.retry.9s",
        ];
        assert_eq!(
            retired_retry_topics("payment", &configured, existing),
            vec![
                "payment.retry.15m".to_string(),
                "payment.retry.9s".to_string()
            ]
        );
        assert!(retired_retry_topics("payment", &configured, ["payment.retry.1s"]).is_empty());
    }
}
