//! A producer that holds messages and delivers none is replaced: what it held
//! fails at once (so the outbox and the consumer send it again) instead of
//! after message.timeout.ms, and the new producer delivers.

use std::time::{Duration, Instant};

use orderflow_runtime::{is_purged, Producer, RuntimeConfig, PRODUCER_STALL_LIMIT};
use rdkafka::mocking::MockCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_producer_is_replaced_and_what_it_held_fails_at_once() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("orders", 1, 1).unwrap();
    let config = RuntimeConfig {
        kafka_bootstrap_servers: cluster.bootstrap_servers(),
        ..Default::default()
    };
    let producer = Producer::standalone(&config, "stuck-producer-test").unwrap();
    let first = producer
        .send_and_wait("orders", b"o-1", &[], b"first")
        .await;
    assert_eq!(first.unwrap(), (0, 0));
    assert!(
        producer
            .replace_if_stuck(Instant::now() + PRODUCER_STALL_LIMIT * 10)
            .is_none(),
        "nothing waits: not stuck, however long it was idle"
    );

    cluster.broker_down(1).unwrap();
    let held = producer.send("orders", b"o-1", &[], b"held").await.unwrap();
    let sent = Instant::now();
    assert!(
        producer.replace_if_stuck(sent).is_none(),
        "a message waiting for a moment is no stall"
    );
    let (why, retired) = producer
        .replace_if_stuck(sent + PRODUCER_STALL_LIMIT)
        .expect("stuck after the limit");
    assert!(why.starts_with("1 messages waiting"), "{why}");
    assert!(
        producer
            .replace_if_stuck(sent + PRODUCER_STALL_LIMIT * 2)
            .is_none(),
        "the new producer holds nothing"
    );
    tokio::task::spawn_blocking(move || retired.destroy())
        .await
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("the held message fails at once, not after message.timeout.ms");
    let error = match report {
        Ok(delivered) => panic!("delivered while the broker was down: {delivered:?}"),
        Err(e) => e,
    };
    assert!(is_purged(&error), "{error}");

    cluster.broker_up(1).unwrap();
    let after = tokio::time::timeout(
        Duration::from_secs(60),
        producer.send_and_wait("orders", b"o-1", &[], b"after"),
    )
    .await
    .expect("the new producer delivers once the broker is back");
    assert_eq!(
        after.unwrap(),
        (0, 1),
        "the held message was not written: the next offset is the new message's"
    );
}
