//! One order, one trace, read in a real Jaeger: the services run as their own
//! processes (each with its own `service.name`) on the embedded broker and
//! export OTLP to Jaeger (v2 all-in-one, memory storage, built from its Go
//! module); the test reads what Jaeger's query API — the one its UI reads —
//! makes of each order's saga: one tree rooted at the gateway's request span,
//! every hop over Kafka an edge of it, every service that handled the order
//! in it, and not one span Jaeger has a warning about.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use orderflow_companions::Jaeger;
use orderflow_testkit::order_body;
use orderflow_testkit::system::ProcessStack;
use orderflow_testkit::traces::{TraceQuery, TraceSpan, SERVICES};

/// Checks the spans form one tree under the gateway's request span, each hop
/// over Kafka hanging off its event's creation span, with no warning from
/// Jaeger on any span; returns the tree's depth.
fn check_tree(order_id: &str, trace: &[TraceSpan]) -> usize {
    let warned: Vec<String> = trace
        .iter()
        .filter(|s| !s.warnings.is_empty())
        .map(|s| format!("{} {} ({}): {:?}", s.service, s.name, s.kind, s.warnings))
        .collect();
    assert!(
        warned.is_empty(),
        "order {order_id}: Jaeger warns about {} spans:\n{}",
        warned.len(),
        warned.join("\n")
    );
    let roots: Vec<&TraceSpan> = trace.iter().filter(|s| s.references.is_empty()).collect();
    assert_eq!(roots.len(), 1, "order {order_id}: roots {roots:#?}");
    let root = roots[0];
    assert_eq!(
        (
            root.service.as_str(),
            root.name.as_str(),
            root.kind.as_str()
        ),
        ("orderflow-gateway", "POST /v1/orders", "server"),
        "order {order_id}: the root must be the gateway's request span"
    );
    let by_id: BTreeMap<&str, &TraceSpan> = trace.iter().map(|s| (s.span_id.as_str(), s)).collect();
    for span in trace.iter().filter(|s| !s.references.is_empty()) {
        assert_eq!(
            span.references,
            [("CHILD_OF".to_string(), span.parent_span_id.clone())],
            "order {order_id}: {span:#?} should have one parent"
        );
        assert!(
            by_id.contains_key(span.parent_span_id.as_str()),
            "order {order_id}: {span:#?} has a parent outside the trace"
        );
    }
    // A hop over Kafka is one edge: the consumer's process span and the
    // relay's send span are children of the creation span of the very event
    // they process or send.
    let hop = |span: &TraceSpan| {
        let parent = by_id[span.parent_span_id.as_str()];
        assert_eq!(
            (
                parent.kind.as_str(),
                parent.attributes.get("messaging.operation.type").map(String::as_str),
                parent.attributes.get("messaging.message.id"),
                parent.attributes.get("messaging.destination.name"),
            ),
            (
                "producer",
                Some("create"),
                span.attributes.get("messaging.message.id"),
                span.attributes.get("messaging.destination.name"),
            ),
            "order {order_id}: {span:#?} is not the child of its event's creation span but of {parent:#?}"
        );
    };
    let consumed: Vec<&TraceSpan> = trace.iter().filter(|s| s.kind == "consumer").collect();
    let sent: Vec<&TraceSpan> = trace
        .iter()
        .filter(|s| {
            s.attributes
                .get("messaging.operation.type")
                .map(String::as_str)
                == Some("send")
        })
        .collect();
    consumed.iter().chain(&sent).for_each(|s| hop(s));
    // Every event created was sent, once (a relay sends each outbox row once
    // when nothing fails).
    let created: Vec<&TraceSpan> = trace.iter().filter(|s| s.kind == "producer").collect();
    for create in &created {
        let sends = sent
            .iter()
            .filter(|s| s.parent_span_id == create.span_id)
            .count();
        assert_eq!(
            sends, 1,
            "order {order_id}: {create:#?} was sent {sends} times"
        );
    }
    let depth_of = |s: &TraceSpan| {
        let (mut depth, mut id) = (1, s.span_id.as_str());
        while let Some(parent) = by_id
            .get(id)
            .map(|s| s.parent_span_id.as_str())
            .filter(|p| !p.is_empty())
        {
            depth += 1;
            id = parent;
        }
        depth
    };
    trace.iter().map(depth_of).max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_order_is_one_trace_that_reads_cleanly_in_jaeger() -> Result<()> {
    let jaeger = Jaeger::start_anywhere().await?;
    let stack = ProcessStack::start_traced(&jaeger).await?;
    let query = TraceQuery::new(&jaeger.query_url);
    let all = SERVICES;
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
        let trace = query.trace_of_order(&order_id, services).await?;
        let depth = check_tree(&order_id, &trace);
        // The order knows its trace: the console links to it.
        assert_eq!(
            stack.order(&order_id).await?.trace_id.as_deref(),
            Some(trace[0].trace_id.as_str()),
            "{name}: the order's trace id"
        );
        let present: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(
            present,
            services.iter().copied().collect(),
            "{name}: the services in the trace"
        );
        let consume = trace
            .iter()
            .find(|s| s.kind == "consumer")
            .expect("a consumer span");
        for attribute in [
            "messaging.system",
            "messaging.destination.name",
            "messaging.destination.partition.id",
            "messaging.kafka.offset",
            "messaging.consumer.group.name",
            "messaging.message.id",
            "order.id",
        ] {
            assert!(
                consume.attributes.contains_key(attribute),
                "{name}: consumer span lacks {attribute}: {consume:#?}"
            );
        }
        let send = trace
            .iter()
            .find(|s| s.name.ends_with(" send"))
            .expect("a send span");
        for attribute in [
            "messaging.destination.partition.id",
            "messaging.kafka.offset",
        ] {
            assert!(
                send.attributes.contains_key(attribute),
                "{name}: send span lacks {attribute}: {send:#?}"
            );
        }
        println!(
            "{name}: {} spans, depth {depth}, services {present:?}, no warnings",
            trace.len()
        );
        check_trace_api(&stack, &order_id, &trace).await?;
    }
    stack.stop().await
}

/// `GET /v1/orders/{id}/trace`, as the console reads it: the spans Jaeger
/// has, by start, with their services and parents; for operators only.
async fn check_trace_api(stack: &ProcessStack, order_id: &str, trace: &[TraceSpan]) -> Result<()> {
    let url = stack.url(&format!("/v1/orders/{order_id}/trace"));
    let body: serde_json::Value = stack
        .http
        .get(&url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(body["trace_id"], trace[0].trace_id);
    let spans = body["spans"].as_array().expect("spans");
    assert_eq!(
        spans.len(),
        trace.len(),
        "{order_id}: every span Jaeger has"
    );
    let services: BTreeSet<&str> = spans.iter().filter_map(|s| s["service"].as_str()).collect();
    let expected: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(services, expected);
    let starts: Vec<u64> = spans
        .iter()
        .filter_map(|s| s["start_us"].as_u64())
        .collect();
    assert_eq!(starts[0], 0);
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "by start: {starts:?}"
    );
    let ids: BTreeSet<&str> = spans.iter().filter_map(|s| s["span_id"].as_str()).collect();
    let roots: Vec<&serde_json::Value> = spans
        .iter()
        .filter(|s| {
            !s["parent_span_id"]
                .as_str()
                .is_some_and(|p| ids.contains(p))
        })
        .collect();
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    assert_eq!(roots[0]["name"], "POST /v1/orders");
    // Operators only, not even the order's own customer: a trace is whatever
    // the placing request's traceparent named.
    let customer = stack.order(order_id).await?.customer_id;
    let own = stack.as_customer(&customer).get(&url).send().await?;
    assert_eq!(own.status(), 403);
    Ok(())
}
