//! One order, one trace: the services run as their own processes (each with
//! its own `service.name`) on the embedded broker, export OTLP to a receiver in
//! the test, and every span of an order's saga — the gateway's request, each
//! hop over Kafka, compensations and notifications — must be one tree rooted
//! at the gateway's request span.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use orderflow_testkit::order_body;
use orderflow_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use orderflow_testkit::system::ProcessStack;

/// The spans of the trace the order belongs to, once the expected services have reported.
async fn trace_of(
    receiver: &OtlpReceiver,
    order_id: &str,
    services: &[&str],
) -> Result<Vec<ReceivedSpan>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans = receiver.spans();
        // The spans that act on the order: every hop over Kafka (producer 4,
        // consumer 5) and the request that created it. Reading the order
        // (`GET /v1/orders/{id}`) is a request of its own, with its own trace.
        let trace_ids: BTreeSet<&str> = spans
            .iter()
            .filter(|s| s.attributes.get("order.id").map(String::as_str) == Some(order_id))
            .filter(|s| s.kind == 4 || s.kind == 5 || s.name == "POST /v1/orders")
            .map(|s| s.trace_id.as_str())
            .collect();
        if trace_ids.len() > 1 {
            bail!(
                "order {order_id} is spread over {} traces: {trace_ids:?}",
                trace_ids.len()
            );
        }
        if let Some(trace_id) = trace_ids.into_iter().next() {
            let trace: Vec<ReceivedSpan> = spans
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect();
            let present: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
            if services.iter().all(|s| present.contains(s)) {
                // Let the last batches arrive.
                tokio::time::sleep(Duration::from_millis(500)).await;
                return Ok(receiver
                    .spans()
                    .into_iter()
                    .filter(|s| s.trace_id == trace_id)
                    .collect());
            }
            if Instant::now() > deadline {
                bail!("trace of {order_id} has services {present:?}, expected {services:?}");
            }
        } else if Instant::now() > deadline {
            bail!("no span names order {order_id}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks the spans form one tree under the gateway's request span; returns its depth.
fn check_tree(order_id: &str, trace: &[ReceivedSpan]) -> usize {
    let ids: BTreeSet<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
    let roots: Vec<&ReceivedSpan> = trace
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "order {order_id}: roots {roots:#?}");
    let root = roots[0];
    assert_eq!(
        (root.service.as_str(), root.name.as_str(), root.kind),
        ("orderflow-gateway", "POST /v1/orders", 2),
        "order {order_id}: the root must be the gateway's request span"
    );
    for span in trace.iter().filter(|s| !s.parent_span_id.is_empty()) {
        assert!(
            ids.contains(span.parent_span_id.as_str()),
            "order {order_id}: {span:#?} has a parent outside the trace"
        );
    }
    // Each consume span hangs off the publish span of the very message it
    // consumes (the relay's producer span), not merely off something in
    // the trace: that is what makes a hop over Kafka one edge of the tree.
    let by_id: BTreeMap<&str, &ReceivedSpan> =
        trace.iter().map(|s| (s.span_id.as_str(), s)).collect();
    for consume in trace.iter().filter(|s| s.kind == 5) {
        let parent = by_id[consume.parent_span_id.as_str()];
        assert_eq!(
            (
                parent.kind,
                parent.attributes.get("messaging.message.id"),
                parent.attributes.get("messaging.destination.name"),
            ),
            (
                4,
                consume.attributes.get("messaging.message.id"),
                consume.attributes.get("messaging.destination.name"),
            ),
            "order {order_id}: {consume:#?} is not the child of its message's publish span but of {parent:#?}"
        );
    }
    let parents: BTreeMap<&str, &str> = trace
        .iter()
        .map(|s| (s.span_id.as_str(), s.parent_span_id.as_str()))
        .collect();
    trace
        .iter()
        .map(|s| {
            let (mut depth, mut id) = (1, s.span_id.as_str());
            while let Some(parent) = parents.get(id).filter(|p| !p.is_empty()) {
                depth += 1;
                id = parent;
            }
            depth
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_order_is_one_connected_trace() -> Result<()> {
    let (receiver, endpoint) = OtlpReceiver::start().await?;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let stack = ProcessStack::start_embedded(&env).await?;
    let all = [
        "orderflow-gateway",
        "orderflow-order",
        "orderflow-inventory",
        "orderflow-payment",
        "orderflow-shipping",
        "orderflow-notification",
    ];
    let cases = [
        (
            "shipped",
            order_body("c-t1", "SKU-001", 1, "tok_visa", "DE"),
            all.to_vec(),
        ),
        (
            "out of stock",
            order_body("c-t2", "SKU-002", 500, "tok_visa", "DE"),
            vec![
                "orderflow-gateway",
                "orderflow-order",
                "orderflow-inventory",
                "orderflow-notification",
            ],
        ),
        (
            "payment declined",
            order_body("c-t3", "SKU-003", 1, "tok_chargeDeclined", "DE"),
            vec![
                "orderflow-gateway",
                "orderflow-order",
                "orderflow-inventory",
                "orderflow-payment",
                "orderflow-notification",
            ],
        ),
        (
            "shipping failed",
            order_body("c-t4", "SKU-004", 1, "tok_visa", "AQ"),
            all.to_vec(),
        ),
    ];
    for (name, body, services) in &cases {
        let order_id = stack.place(body).await?;
        stack.wait_terminal(&order_id).await?;
        let trace = trace_of(&receiver, &order_id, services).await?;
        let depth = check_tree(&order_id, &trace);
        let kinds: BTreeSet<i32> = trace.iter().map(|s| s.kind).collect();
        assert!(
            kinds.contains(&4) && kinds.contains(&5),
            "{name}: producer and consumer spans expected, got {kinds:?}"
        );
        let consume = trace.iter().find(|s| s.kind == 5).expect("a consumer span");
        for attribute in [
            "messaging.system",
            "messaging.destination.name",
            "messaging.destination.partition.id",
            "messaging.kafka.offset",
            "messaging.consumer.group.name",
            "order.id",
        ] {
            assert!(
                consume.attributes.contains_key(attribute),
                "{name}: consumer span lacks {attribute}: {consume:#?}"
            );
        }
        println!(
            "{name}: {} spans, depth {depth}, services {:?}",
            trace.len(),
            trace
                .iter()
                .map(|s| s.service.as_str())
                .collect::<BTreeSet<_>>()
        );
    }
    stack.stop().await
}
