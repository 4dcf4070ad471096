//! The relay against the embedded broker and a SQLite outbox.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::RuntimeConfig;

fn row(id: String, key: &str) -> OutboxRow {
    OutboxRow {
        id,
        topic: "orders".into(),
        key: key.into(),
        headers: Vec::new(),
        payload: b"x".to_vec(),
        attempts: 0,
    }
}

/// An outbox relay over a SQLite outbox and the embedded broker (topic
/// `orders`, one partition), polling every 50 ms, leasing rows for 10 s.
struct Setup {
    cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    _dir: tempfile::TempDir,
    db: Database,
    producer: Producer,
    relay: Arc<OutboxRelay>,
}

impl Setup {
    async fn new() -> Self {
        Self::polling(Duration::from_millis(50)).await
    }

    async fn polling(poll: Duration) -> Self {
        let cluster = MockCluster::new(1).expect("a broker");
        cluster.create_topic("orders", 1, 1).expect("a topic");
        let config = RuntimeConfig {
            kafka_bootstrap_servers: cluster.bootstrap_servers(),
            ..Default::default()
        };
        let dir = tempfile::tempdir().expect("a folder");
        let url = format!("sqlite:{}", dir.path().join("outbox.db").display());
        let db = Database::connect(&url, 2, false).await.expect("a database");
        let producer = Producer::standalone(&config, "outbox-test").expect("a producer");
        let relay = Arc::new(OutboxRelay::new(
            db.clone(),
            producer.clone(),
            poll,
            Duration::from_secs(10),
            3,
            Metrics::default(),
        ));
        Self {
            cluster,
            _dir: dir,
            db,
            producer,
            relay,
        }
    }
}

/// Runs the relay until the token is cancelled.
fn start(relay: &Arc<OutboxRelay>) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let running = tokio::spawn({
        let (relay, stop) = (relay.clone(), stop.clone());
        async move { relay.run(stop).await }
    });
    (stop, running)
}

/// Writes `row` into the outbox, leased until `lease_until`, as a
/// handler's transaction does before handing it to the relay.
async fn write(db: &Database, row: &OutboxRow, lease_until: i64) {
    sql::query(
        "INSERT INTO orderflow_outbox (id, topic, message_key, headers, payload, created_at, lease_until)
         VALUES ($1, $2, $3, '[]', $4, 0, $5)",
    )
    .bind(&row.id)
    .bind(&row.topic)
    .bind(&row.key)
    .bind(row.payload.clone())
    .bind(lease_until)
    .execute(&mut db.acquire().await.expect("the writer"))
    .await
    .expect("a row written");
}

/// Whether the row `id` is still in the outbox.
async fn stored(db: &Database, id: &str) -> bool {
    sql::query("SELECT id FROM orderflow_outbox WHERE id = $1")
        .bind(id)
        .fetch_optional(db.reader())
        .await
        .expect("read the outbox")
        .is_some()
}

/// A row whose lease ran out (its writer died, or its producer was
/// replaced before the broker answered) must not wait for the writes of
/// this process to stop: under sustained writes the hand-off queue is
/// never empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_whose_lease_ran_out_goes_out_while_new_rows_keep_coming() {
    // The folder is bound, not `..`-dropped: the database lives in it.
    let Setup {
        cluster: _cluster,
        _dir,
        db,
        relay,
        ..
    } = Setup::new().await;
    write(&db, &row("0-expired".into(), "k-old"), 0).await;
    // Sustained writes: far more handed-off rows than one pass publishes.
    let rows: Vec<OutboxRow> = (0..20_000)
        .map(|i| row(format!("1-{i:06}"), &format!("k-{}", i % 50)))
        .collect();
    relay.handoff(rows);
    let (stop, running) = start(&relay);
    let waiting = tokio::time::timeout(Duration::from_secs(60), async {
        while stored(&db, "0-expired").await {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        relay.handoff.lock().expect("handoff lock").len()
    })
    .await
    .expect("the expired row was published");
    stop.cancel();
    running.await.expect("the relay stops");
    assert!(
        waiting > 0,
        "the expired row went out only once the hand-off queue was empty"
    );
}

/// The payloads of `orders` in order of their first copy (a row sent again
/// may land twice: inboxes drop the copy), once `last` is among them (or
/// 40 s passed).
async fn read_until(
    cluster: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    last: &'static str,
) -> Vec<String> {
    let bootstrap = cluster.bootstrap_servers();
    tokio::task::spawn_blocking(move || read_blocking(&bootstrap, last))
        .await
        .expect("read")
}

fn read_blocking(bootstrap: &str, last: &str) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "outbox-test-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("a consumer");
    consumer.subscribe(&["orders"]).expect("subscribed");
    let mut read: Vec<String> = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(40);
    while !read.iter().any(|p| p == last) && std::time::Instant::now() < until {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let payload = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            if !read.contains(&payload) {
                read.push(payload);
            }
        }
    }
    read
}

/// A row its replaced producer dropped goes out before the rows of its
/// order written after it, not once its lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_its_producer_dropped_goes_before_the_rows_written_after_it() {
    let Setup {
        cluster,
        _dir,
        db,
        producer,
        relay,
    } = Setup::new().await;
    let (stop, running) = start(&relay);
    cluster.broker_down(1).expect("broker down");
    let mut first = row("1-first".into(), "k-1");
    first.payload = b"first".to_vec();
    write(&db, &first, relay.fresh_lease()).await;
    relay.handoff(vec![first]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, retired) = producer
        .replace_if_stuck(std::time::Instant::now() + crate::PRODUCER_STALL_LIMIT * 2)
        .expect("the producer holding the row is stuck");
    tokio::task::spawn_blocking(move || retired.destroy())
        .await
        .expect("retired");
    let mut second = row("2-second".into(), "k-1");
    second.payload = b"second".to_vec();
    write(&db, &second, relay.fresh_lease()).await;
    relay.handoff(vec![second]);
    cluster.broker_up(1).expect("broker up");
    let read = read_until(&cluster, "second").await;
    stop.cancel();
    running.await.expect("the relay stops");
    assert_eq!(
        read,
        ["first", "second"],
        "the order's events in the order written"
    );
}

/// Work that writes nothing: a transaction of the group commit and no more.
struct Nothing;

#[async_trait::async_trait]
impl crate::group_commit::Work for Nothing {
    type Context = ();

    async fn apply(
        _: &(),
        _: &mut [Self],
        _: &mut crate::group_commit::Tx<'_>,
    ) -> Result<(), crate::group_commit::Failed> {
        Ok(())
    }
}

/// A published row is deleted by the next transaction of a batch, with its
/// writes, not by a commit of its own; with no transaction coming, the
/// relay deletes it itself, at the latest when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_row_is_deleted_by_the_next_batch_not_a_commit_of_its_own() {
    // A poll interval far longer than the test: the relay does not delete
    // on its own while it runs.
    let Setup {
        cluster: _cluster,
        _dir,
        db,
        relay,
        ..
    } = Setup::polling(Duration::from_secs(600)).await;
    let (stop, running) = start(&relay);
    let published = |id: &'static str| {
        let relay = relay.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(20), async {
                while !relay.is_published(id) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("the row was published");
        }
    };
    let first = row("1-first".into(), "k-1");
    write(&db, &first, relay.fresh_lease()).await;
    relay.handoff(vec![first]);
    published("1-first").await;
    assert!(stored(&db, "1-first").await, "published, not deleted yet");

    let batches = crate::group_commit::GroupCommit::<Nothing>::start(
        "test",
        db.clone(),
        relay.clone(),
        Arc::new(()),
        crate::group_commit::BatchLimits {
            max_items: 8,
            concurrency: 1,
        },
        Metrics::default(),
    );
    let (_, committed) = batches.run(Nothing).await;
    committed.expect("the batch committed");
    assert!(!stored(&db, "1-first").await, "the batch deleted it");

    let second = row("2-second".into(), "k-1");
    write(&db, &second, relay.fresh_lease()).await;
    relay.handoff(vec![second]);
    published("2-second").await;
    assert!(stored(&db, "2-second").await);
    stop.cancel();
    running.await.expect("the relay stops");
    assert!(
        !stored(&db, "2-second").await,
        "the relay deleted it as it stopped"
    );
}

/// A row published and waiting for deletion is not sent again when its
/// lease runs out first (a long pass, a slow hand-off): it was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_row_whose_lease_ran_out_is_not_sent_again() {
    let Setup {
        cluster,
        _dir,
        db,
        relay,
        ..
    } = Setup::polling(Duration::from_millis(300)).await;
    let mut sent = row("1-sent".into(), "k-1");
    sent.payload = b"sent".to_vec();
    write(&db, &sent, 0).await;
    relay.restore_published(Published {
        ids: vec!["1-sent".into()],
        since: Some(tokio::time::Instant::now()),
    });
    let mut next = row("2-next".into(), "k-1");
    next.payload = b"next".to_vec();
    write(&db, &next, relay.fresh_lease()).await;
    relay.handoff(vec![next]);
    let (stop, running) = start(&relay);
    let read = read_until(&cluster, "next").await;
    stop.cancel();
    running.await.expect("the relay stops");
    assert_eq!(read, ["next"], "the acknowledged row went out once only");
    assert!(!stored(&db, "1-sent").await, "and was deleted");
}
