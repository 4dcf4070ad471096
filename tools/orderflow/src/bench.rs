//! `orderflow bench-chain`: the yardstick the saga is measured against. A
//! chain of relays on the same broker, with the runtime's client settings
//! and its threading: a source writes N messages to the first topic, each
//! hop polls its topic on a thread of its own (as the runtime's poll thread
//! does) and republishes every message to the next one without waiting for
//! each delivery (many in flight, as the outbox relay does), and a sink
//! counts what reaches the last topic. It reports messages per second through
//! the whole chain: what Kafka and librdkafka allow on this machine when
//! nothing else is done per message.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
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

const WARMUP: &str = "x-bench-warmup";

type Relay = ThreadedProducer<DefaultProducerContext>;

fn producer(bootstrap: &str) -> Result<Relay> {
    // The outbox relay's producer settings.
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()?)
}

/// Queues one message, waiting while librdkafka's queue is full.
fn send(producer: &Relay, topic: &str, key: Option<&[u8]>, payload: &[u8]) -> Result<()> {
    let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(payload);
    if let Some(key) = key {
        record = record.key(key);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

fn consumer(bootstrap: &str, topic: &str, partitions: i32) -> Result<BaseConsumer> {
    // The service consumer's fetch settings.
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-{topic}"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10");
    for (key, value) in orderflow_runtime::PREFETCH {
        config.set(key, value);
    }
    let consumer: BaseConsumer = config.create()?;
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
    if let Err(e) = created {
        tracing::debug!(error = %e, "no admin API; the first message creates each topic");
    }
    // A first message in every topic: it creates the topic where the admin
    // API is missing, and each consumer starts the clock only once it has
    // read its topic's first message (fetching has begun).
    let producer = producer(bootstrap)?;
    for topic in topics {
        let headers = OwnedHeaders::new().insert(Header {
            key: WARMUP,
            value: Some("1"),
        });
        producer
            .send(
                BaseRecord::<str, str>::to(topic)
                    .payload("")
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .with_context(|| format!("creating {topic}"))?;
    }
    producer
        .flush(Duration::from_secs(10))
        .context("creating the chain's topics")?;
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

fn is_warmup(m: &BorrowedMessage<'_>) -> bool {
    m.headers()
        .is_some_and(|h| h.iter().any(|h| h.key == WARMUP))
}

pub async fn run(args: Args) -> Result<()> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let topics: Vec<String> = (0..=args.hops)
        .map(|i| format!("bench.chain.{run}.{i}"))
        .collect();
    let partitions = create_topics(&args.bootstrap_servers, &topics, args.partitions).await?;
    tokio::task::spawn_blocking(move || chain(&args, &topics, partitions)).await?
}

fn chain(args: &Args, topics: &[String], partitions: i32) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    // Consumers (hops and the sink) that have read their warm-up message.
    let ready = Arc::new(AtomicU64::new(0));

    // The hops: consume topic i, republish to topic i + 1.
    let mut hops = Vec::new();
    for i in 0..args.hops {
        let consumer = consumer(&args.bootstrap_servers, &topics[i], partitions)?;
        let producer = producer(&args.bootstrap_servers)?;
        let next = topics[i + 1].clone();
        let (stop, ready) = (stop.clone(), ready.clone());
        hops.push(std::thread::spawn(move || -> Result<()> {
            while !stop.load(Ordering::Relaxed) {
                let Some(message) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let message = message?;
                if is_warmup(&message) {
                    ready.fetch_add(1, Ordering::Relaxed);
                } else {
                    send(
                        &producer,
                        &next,
                        message.key(),
                        message.payload().unwrap_or_default(),
                    )?;
                }
            }
            producer.flush(Duration::from_secs(10))?;
            Ok(())
        }));
    }

    // The sink counts what comes out of the last topic.
    let sink = consumer(&args.bootstrap_servers, &topics[args.hops], partitions)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready.load(Ordering::Relaxed) < args.hops as u64 + 1 {
        if Instant::now() > deadline {
            bail!("the chain's consumers did not start fetching in 60 s");
        }
        if let Some(message) = sink.poll(Duration::from_millis(100)) {
            if is_warmup(&message?) {
                ready.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let mut received = 0u64;
    let started = Instant::now();
    let source = {
        let producer = producer(&args.bootstrap_servers)?;
        let topic = topics[0].clone();
        let (n, bytes) = (args.messages, args.bytes);
        std::thread::spawn(move || -> Result<()> {
            let payload = vec![b'x'; bytes];
            for i in 0..n {
                let key = format!("order-{}", i % 10_000);
                send(&producer, &topic, Some(key.as_bytes()), &payload)?;
            }
            producer.flush(Duration::from_secs(60))?;
            Ok(())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while received < args.messages {
        if Instant::now() > deadline {
            bail!(
                "only {received} of {} messages came through the chain in 300 s",
                args.messages
            );
        }
        if let Some(message) = sink.poll(Duration::from_millis(200)) {
            if !is_warmup(&message?) {
                received += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    source.join().expect("source thread").context("source")?;
    for hop in hops {
        hop.join().expect("hop thread").context("hop")?;
    }
    let rate = args.messages as f64 / elapsed.as_secs_f64();
    outln!(
        "raw chain: {} messages through {} hops ({} partitions) in {:.2}s: {:.0} msg/s",
        args.messages,
        args.hops,
        partitions,
        elapsed.as_secs_f64(),
        rate
    );
    outln!("RESULT chain_msgs_per_s={rate:.0}");
    Ok(())
}
