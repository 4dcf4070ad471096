//! `orderflow bench-chain`: the yardstick the saga is measured against. A
//! chain of relays on the same broker, with the runtime's client settings:
//! a source writes N messages to the first topic, each hop consumes its
//! topic and republishes every message to the next one without waiting for
//! each delivery (many in flight, as the outbox relay does), and a sink
//! counts what reaches the last topic. It reports messages per second through
//! the whole chain: what Kafka and librdkafka allow on this machine when
//! nothing else is done per message.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[derive(clap::Args)]
pub struct Args {
    #[arg(
        long,
        env = "ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    bootstrap_servers: String,
    /// Relays between the first topic and the last: the saga's hop count.
    #[arg(long, default_value_t = 5)]
    hops: usize,
    #[arg(long, default_value_t = 50_000)]
    messages: u64,
    #[arg(long, default_value_t = 12)]
    partitions: i32,
    /// Value size of each message, in bytes (a saga event is about this big).
    #[arg(long, default_value_t = 300)]
    bytes: usize,
}

/// Deliveries one producer keeps in flight at most.
const IN_FLIGHT: usize = 10_000;
const WARMUP: &str = "x-bench-warmup";

fn producer(bootstrap: &str) -> Result<FutureProducer> {
    // The outbox relay's producer settings.
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()?)
}

fn consumer(bootstrap: &str, topic: &str, partitions: i32) -> Result<StreamConsumer> {
    // The service consumer's fetch settings.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-{topic}"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .set("queued.min.messages", "1000")
        .set("queued.max.messages.kbytes", "8192")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// Creates the topics (the admin API on Kafka; a first message where the
/// broker creates topics on first use, as the embedded one does) and
/// returns their partition count.
async fn create_topics(bootstrap: &str, topics: &[String], partitions: i32) -> Result<i32> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(5)));
    let created = admin.create_topics(new.iter(), &options).await;
    let producer = producer(bootstrap)?;
    if created.is_err() {
        for topic in topics {
            let headers = OwnedHeaders::new().insert(Header {
                key: WARMUP,
                value: Some("1"),
            });
            producer
                .send(
                    FutureRecord::<str, str>::to(topic)
                        .payload("")
                        .headers(headers),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
                .with_context(|| format!("creating {topic}"))?;
        }
    }
    let metadata = producer
        .client()
        .fetch_metadata(Some(&topics[0]), Duration::from_secs(10))?;
    let count = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len() as i32)
        .unwrap_or(0);
    if count == 0 {
        bail!("topic {} has no partitions", topics[0]);
    }
    Ok(count)
}

fn is_warmup(m: &rdkafka::message::BorrowedMessage<'_>) -> bool {
    m.headers()
        .is_some_and(|h| h.iter().any(|h| h.key == WARMUP))
}

pub async fn run(args: Args) -> Result<()> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let topics: Vec<String> = (0..=args.hops)
        .map(|i| format!("bench.chain.{run}.{i}"))
        .collect();
    let partitions = create_topics(&args.bootstrap_servers, &topics, args.partitions).await?;
    let stop = Arc::new(AtomicBool::new(false));

    // The hops: consume topic i, republish to topic i + 1.
    let mut hops = Vec::new();
    for i in 0..args.hops {
        let consumer = consumer(&args.bootstrap_servers, &topics[i], partitions)?;
        let producer = producer(&args.bootstrap_servers)?;
        let next = topics[i + 1].clone();
        let stop = stop.clone();
        hops.push(tokio::spawn(async move {
            let mut deliveries = FuturesUnordered::new();
            while !stop.load(Ordering::Relaxed) {
                let message = tokio::select! {
                    m = consumer.recv() => m?,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    Some(_) = deliveries.next(), if !deliveries.is_empty() => continue,
                };
                if is_warmup(&message) {
                    continue;
                }
                while deliveries.len() >= IN_FLIGHT {
                    deliveries.next().await;
                }
                let mut record =
                    FutureRecord::to(&next).payload(message.payload().unwrap_or_default());
                if let Some(key) = message.key() {
                    record = record.key(key);
                }
                loop {
                    match producer.send_result(record) {
                        Ok(delivery) => {
                            deliveries.push(delivery);
                            break;
                        }
                        Err((_, back)) => {
                            record = back;
                            deliveries.next().await;
                        }
                    }
                }
            }
            anyhow::Ok(())
        }));
    }

    // The sink counts what comes out of the last topic.
    let sink = consumer(&args.bootstrap_servers, &topics[args.hops], partitions)?;
    let received = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let source = {
        let producer = producer(&args.bootstrap_servers)?;
        let topic = topics[0].clone();
        let (n, bytes) = (args.messages, args.bytes);
        tokio::spawn(async move {
            let payload = vec![b'x'; bytes];
            let mut deliveries = FuturesUnordered::new();
            for i in 0..n {
                while deliveries.len() >= IN_FLIGHT {
                    deliveries.next().await;
                }
                let key = format!("order-{}", i % 10_000);
                let mut record = FutureRecord::to(&topic).key(&key).payload(&payload);
                loop {
                    match producer.send_result(record) {
                        Ok(d) => {
                            deliveries.push(d);
                            break;
                        }
                        Err((_, back)) => {
                            record = back;
                            deliveries.next().await;
                        }
                    }
                }
            }
            while deliveries.next().await.is_some() {}
        })
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while received.load(Ordering::Relaxed) < args.messages {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} messages came through the chain in 300 s",
                received.load(Ordering::Relaxed),
                args.messages
            );
        }
        tokio::select! {
            m = sink.recv() => {
                if !is_warmup(&m?) {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    source.await?;
    for hop in hops {
        hop.await??;
    }
    let rate = args.messages as f64 / elapsed.as_secs_f64();
    println!(
        "raw chain: {} messages through {} hops ({} partitions) in {:.2}s: {:.0} msg/s",
        args.messages,
        args.hops,
        partitions,
        elapsed.as_secs_f64(),
        rate
    );
    println!("RESULT chain_msgs_per_s={rate:.0}");
    Ok(())
}
