//! Services as processes on the embedded broker, stopped and started again:
//! events waiting in a retry tier survive a restart, and a producer that
//! fails fatally takes its service down (readiness false first) rather than
//! leaving it up and silent.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use orderflow_testkit::metrics::scrape;
use orderflow_testkit::order_body;
use orderflow_testkit::system::ProcessStack;
use rdkafka::message::{Headers, Message};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

async fn metric(stack: &ProcessStack, service: &str, name: &str) -> Result<f64> {
    let base = format!("http://{}", stack.ops_addr(service, 0)?);
    Ok(scrape(&stack.http, &base).await?.sum(name, ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_waiting_in_a_retry_tier_are_delivered_after_a_restart_once_each() -> Result<()> {
    let stack = ProcessStack::start_embedded(&[("ORDERFLOW_PROVIDER_TIMEOUT_MS", "200")]).await?;
    let bodies: Vec<_> = (0..5)
        .map(|i| order_body(&format!("c-restart-{i}"), "SKU-003", 1, "tok_flaky", "DE"))
        .collect();
    let ids = stack.place_all(&bodies, 5).await?;
    // Every charge failed once and waits in a retry tier: stop payment now.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&stack, "payment", "orderflow_handler_retries_total").await? < 5.0 {
        assert!(
            Instant::now() < deadline,
            "the flaky charges never went to a retry tier"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.stop_one("payment", 0).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.restart("payment", 0).await?;
    let done = stack
        .wait_all_terminal(&ids, Duration::from_secs(120))
        .await?;
    assert!(
        done.iter().all(|o| o.status == "SHIPPED"),
        "{:?}",
        done.iter().map(|o| &o.status).collect::<Vec<_>>()
    );
    stack.wait_idle().await?;
    // Each charged once, and each PaymentProcessed published once.
    let mut processed: BTreeMap<String, usize> = BTreeMap::new();
    for m in stack.kafka().read_all("payments").await? {
        let is_processed = m.headers().is_some_and(|h| {
            h.iter().any(|h| {
                h.key == "ce_type" && h.value == Some(b"io.orderflow.events.PaymentProcessed")
            })
        });
        if is_processed {
            *processed
                .entry(String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned())
                .or_default() += 1;
        }
    }
    for id in &ids {
        let p = stack.payment(id).await?.context("payment")?;
        assert_eq!(
            p.provider_charges, 1,
            "order {id} charged {} times",
            p.provider_charges
        );
        assert_eq!(
            processed.get(id),
            Some(&1),
            "order {id}: PaymentProcessed published {:?} times",
            processed.get(id)
        );
    }
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fatal_producer_error_stops_the_service_with_readiness_false_first() -> Result<()> {
    let stack = ProcessStack::start_embedded(&[]).await?;
    let order = stack.ops_addr("order", 0)?;
    // The next produce request the broker sees fails as if the broker had
    // lost the producer's sequence: librdkafka's idempotent producer can no
    // longer guarantee order or once-only delivery and fails fatally.
    stack
        .cluster()
        .context("an embedded broker")?
        .request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
        );
    let id = stack
        .place(&order_body("c-fatal", "SKU-004", 1, "tok_visa", "DE"))
        .await?;
    let watch = async {
        let mut not_ready_at = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = stack
                .http
                .get(format!("http://{order}/readyz"))
                .send()
                .await;
            match ready {
                Ok(r) if r.status() == 503 => {
                    not_ready_at.get_or_insert_with(Instant::now);
                }
                Ok(_) => {}
                Err(_) => return not_ready_at, // gone
            }
            if Instant::now() > deadline {
                return not_ready_at;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (not_ready_at, exited) =
        tokio::join!(watch, stack.wait_exit("order", 0, Duration::from_secs(30)));
    let status =
        exited.map_err(|e| anyhow::anyhow!("{e}; its log:\n{}", stack.log_of("order", 0)))?;
    assert!(!status.success(), "the order service exited {status}");
    assert!(
        not_ready_at.is_some(),
        "readiness never went false before the process exited"
    );
    assert!(
        stack.log_of("order", 0).contains("failed fatally"),
        "the reason is logged"
    );
    // Started again, it publishes what its outbox kept: the order completes.
    stack.restart("order", 0).await?;
    assert_eq!(stack.wait_terminal(&id).await?.status, "SHIPPED");
    stack.stop().await
}
