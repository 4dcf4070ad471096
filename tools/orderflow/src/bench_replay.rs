//! `orderflow bench-replay`: how fast dead letters are replayed. It writes
//! N poison messages (not events at all) onto `shipments` of a running stack,
//! waits until payment has dead-lettered every one, and replays them with
//! `orderflow dlq`'s own code, timed (each then fails again, being poison).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use orderflow_dlq::{DeadLetters, Filter};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::connect::ConnectArgs;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 2_000)]
    messages: usize,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub async fn run(args: Args) -> Result<()> {
    let conn = args
        .connect
        .resolve()
        .map_err(|e| crate::UsageError(e.to_string()))?;
    let dlq = DeadLetters::new(conn.clone())?;
    let filter = Filter {
        service: Some("payment".into()),
        ..Default::default()
    };
    let ours = |l: &orderflow_dlq::DeadLetter| {
        l.replayed_from.is_none()
            && l.order_id
                .as_deref()
                .is_some_and(|o| o.starts_with("bench-replay-"))
    };
    let count = |letters: &[orderflow_dlq::DeadLetter]| letters.iter().filter(|l| ours(l)).count();
    let before = count(&dlq.list(&filter).await?.letters);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &conn.bootstrap)
        .create()?;
    let run = chrono::Utc::now().timestamp_millis();
    let mut deliveries = Vec::with_capacity(args.messages);
    for i in 0..args.messages {
        let key = format!("bench-replay-{run}-{i}");
        let record = FutureRecord::to("shipments")
            .key(&key)
            .payload(b"not an event".as_slice());
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e)?);
    }
    for delivery in deliveries {
        delivery
            .await
            .map_err(|_| anyhow::anyhow!("a delivery was canceled"))?
            .map_err(|(e, _)| e)?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let letters = loop {
        let letters = dlq.list(&filter).await?.letters;
        if count(&letters) >= before + args.messages {
            break letters;
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {} poison messages dead-lettered after 120 s",
                count(&letters) - before,
                args.messages
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let fresh: Vec<_> = letters
        .into_iter()
        .filter(|l| {
            ours(l)
                && l.order_id
                    .as_deref()
                    .is_some_and(|o| o.contains(&format!("-{run}-")))
        })
        .collect();
    let started = Instant::now();
    let summary = dlq.replay(&fresh, false, false, &|_| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    outln!(
        "replayed {} dead letters in {seconds:.2} s ({} skipped, {} failed)",
        summary.replayed,
        summary.skipped,
        summary.failed
    );
    outln!(
        "RESULT replayed={} replays_per_s={:.0}",
        summary.replayed,
        summary.replayed as f64 / seconds
    );
    Ok(())
}
