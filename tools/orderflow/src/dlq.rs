//! `orderflow dlq`: find, inspect and replay dead letters, and mark them
//! reviewed. Talks to Kafka and the schema registry directly, as the
//! services do (see `connect.rs`); the work is done by `libs/dlq`.

use anyhow::{bail, Result};
use orderflow_dlq::{parse_since, DeadLetter, DeadLetters, Decoded, DlqId, Filter, ReplayOutcome};

use crate::connect::ConnectArgs;

#[derive(clap::Subcommand)]
pub enum Command {
    /// One line per dead letter, newest first.
    List {
        #[command(flatten)]
        filters: Filters,
        /// `table` for people, `json` for tools.
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// One dead letter: headers, error, source, and the payload decoded
    /// through the registry (hex when it does not decode).
    Show {
        /// `<service>/<partition>/<offset>`, as `list` prints it.
        id: String,
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Republish dead letters onto the topics they came from, with their
    /// original key and headers; consumers that applied them before do
    /// nothing (their inbox has the event).
    Replay {
        /// The dead letters to replay.
        ids: Vec<String>,
        /// Every dead letter the filters match (instead of ids).
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        #[command(flatten)]
        filters: Filters,
        /// Say what would be replayed; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Replay ones replayed before too.
        #[arg(long)]
        again: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Mark dead letters reviewed (nothing is deleted: a topic is a log):
    /// `list` hides them from then on. Up to now, or up to and including one id.
    Purge {
        #[arg(long)]
        service: Option<String>,
        /// Only up to this dead letter, in its partition.
        #[arg(long)]
        up_to: Option<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Where each service's reviewed marker stands.
    Markers {
        #[arg(long)]
        service: Option<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Filters {
    /// Only this service's (order, inventory, payment, shipping, notification).
    #[arg(long)]
    service: Option<String>,
    /// Only those that failed within this span: 30s, 15m, 1h, 7d.
    #[arg(long)]
    since: Option<String>,
    /// Only this event type (OrderCreated, …).
    #[arg(long)]
    event_type: Option<String>,
    /// Only this order's.
    #[arg(long)]
    order: Option<String>,
    /// Only those whose error contains this text.
    #[arg(long)]
    error: Option<String>,
    /// At most this many, the newest.
    #[arg(long)]
    limit: Option<usize>,
    /// Include the ones marked reviewed.
    #[arg(long)]
    include_reviewed: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

impl Filters {
    fn filter(&self) -> Result<Filter> {
        Ok(Filter {
            service: self.service.clone(),
            since: self
                .since
                .as_deref()
                .map(|s| parse_since(s, chrono::Utc::now()))
                .transpose()
                .map_err(|e| crate::UsageError(format!("--since: {e}")))?,
            event_type: self.event_type.clone(),
            order_id: self.order.clone(),
            error: self.error.clone(),
            limit: self.limit,
            include_reviewed: self.include_reviewed,
        })
    }
}

fn parse_id(id: &str) -> Result<DlqId> {
    id.parse()
        .map_err(|e: orderflow_dlq::DlqError| crate::UsageError(e.to_string()).into())
}

fn open(connect: &ConnectArgs) -> Result<DeadLetters> {
    let conn = connect
        .resolve()
        .map_err(|e| crate::UsageError(e.to_string()))?;
    Ok(DeadLetters::new(conn)?)
}

pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::List {
            filters,
            output,
            connect,
        } => {
            let listing = open(&connect)?.list(&filters.filter()?).await?;
            match output {
                Output::Json => outln!("{}", serde_json::to_string_pretty(&listing)?),
                Output::Table => {
                    print_table(&listing.letters);
                    if listing.reviewed_hidden > 0 {
                        outln!(
                            "({} reviewed dead letter(s) not shown: --include-reviewed shows them; `orderflow dlq markers` shows the markers)",
                            listing.reviewed_hidden
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Show {
            id,
            output,
            connect,
        } => {
            let id = parse_id(&id)?;
            let dlq = open(&connect)?;
            let letter = dlq.show(&id).await?;
            let decoded = dlq.decode(&letter).await;
            match output {
                Output::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "dead_letter": letter,
                        "payload": decoded,
                    }))?
                ),
                Output::Table => print_one(&letter, &decoded),
            }
            Ok(())
        }
        Command::Replay {
            ids,
            all,
            filters,
            dry_run,
            again,
            connect,
        } => {
            let dlq = open(&connect)?;
            let letters: Vec<DeadLetter> = if all {
                dlq.list(&filters.filter()?).await?.letters
            } else {
                if ids.is_empty() {
                    bail!(crate::UsageError(
                        "name the dead letters to replay (ids from `orderflow dlq list`), or --all with filters".into()
                    ));
                }
                let mut letters = Vec::new();
                for id in &ids {
                    letters.push(dlq.show(&parse_id(id)?).await?);
                }
                letters
            };
            let bar = orderflow_api::progress::bar(
                letters.len() as u64,
                "replaying {bar:40} {pos}/{len} {per_sec} {eta}",
            );
            let summary = dlq
                .replay(&letters, dry_run, again, &|done| {
                    bar.set_position(done as u64)
                })
                .await?;
            bar.finish_and_clear();
            for outcome in &summary.outcomes {
                match outcome {
                    ReplayOutcome::Replayed {
                        id,
                        topic,
                        partition,
                        offset,
                        replay_count,
                    } => outln!(
                        "replayed {id} → {topic}/{partition}/{offset} (replay {replay_count})"
                    ),
                    ReplayOutcome::WouldReplay { id, topic } => {
                        outln!("would replay {id} → {topic}")
                    }
                    ReplayOutcome::Skipped { id, reason } => outln!("skipped {id}: {reason}"),
                    ReplayOutcome::Failed { id, reason } => outln!("failed {id}: {reason}"),
                }
            }
            outln!(
                "{}: {} replayed, {} skipped, {} failed",
                if dry_run { "dry run" } else { "done" },
                summary.replayed,
                summary.skipped,
                summary.failed
            );
            if summary.failed > 0 {
                bail!("{} dead letter(s) could not be replayed", summary.failed);
            }
            Ok(())
        }
        Command::Purge {
            service,
            up_to,
            connect,
        } => {
            let up_to = up_to.as_deref().map(parse_id).transpose()?;
            let services = services(
                service
                    .as_deref()
                    .or(up_to.as_ref().map(|i| i.service.as_str())),
            )?;
            let set = open(&connect)?
                .mark_reviewed(&services, up_to.as_ref())
                .await?;
            if set.is_empty() {
                outln!("nothing new to mark reviewed");
            }
            for m in &set {
                outln!(
                    "{}.dlq partition {}: reviewed up to offset {} (nothing is deleted; `list --include-reviewed` still shows them)",
                    m.service, m.partition, m.reviewed_up_to
                );
            }
            Ok(())
        }
        Command::Markers { service, connect } => {
            let markers = open(&connect)?
                .markers(&services(service.as_deref())?)
                .await?;
            if markers.is_empty() {
                outln!("no dead letters marked reviewed");
            }
            for m in markers {
                outln!(
                    "{}.dlq partition {}: reviewed up to offset {}{}",
                    m.service,
                    m.partition,
                    m.reviewed_up_to,
                    m.at.map(|a| format!(", marked at {a}")).unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

fn services(service: Option<&str>) -> Result<Vec<String>> {
    let all = orderflow_runtime::topics::CONSUMING_SERVICES;
    match service {
        Some(s) if all.contains(&s) => Ok(vec![s.to_string()]),
        Some(s) => Err(crate::UsageError(
            orderflow_dlq::DlqError::UnknownService(s.into()).to_string(),
        )
        .into()),
        None => Ok(all.iter().map(|s| s.to_string()).collect()),
    }
}

fn print_table(letters: &[DeadLetter]) {
    if letters.is_empty() {
        outln!("no dead letters");
        return;
    }
    outln!(
        "{:<22} {:<20} {:<13} {:<21} {:<38} {:>3}  ERROR",
        "ID",
        "FAILED AT",
        "SERVICE",
        "EVENT",
        "ORDER",
        "TRY"
    );
    for l in letters {
        outln!(
            "{:<22} {:<20} {:<13} {:<21} {:<38} {:>3}  {}",
            l.id.to_string(),
            l.failed_at.format("%Y-%m-%d %H:%M:%S"),
            l.id.service,
            l.event_type.as_deref().unwrap_or("-"),
            l.order_id.as_deref().unwrap_or("-"),
            l.attempts,
            match l.copies {
                1 => l.short_error(60),
                n => format!("({n} copies) {}", l.short_error(48)),
            }
        );
    }
}

fn print_one(l: &DeadLetter, decoded: &Decoded) {
    outln!("dead letter  {}", l.id);
    outln!("failed at    {}", l.failed_at.to_rfc3339());
    outln!("service      {}", l.id.service);
    match &l.source {
        Some((topic, partition, offset)) => {
            outln!("source       {topic}/{partition}/{offset}")
        }
        None => outln!("source       (unknown)"),
    }
    outln!("attempts     {}", l.attempts);
    if let Some(from) = &l.replayed_from {
        outln!("replay of    {from} (replay {})", l.replay_count);
    }
    outln!("error        {}", l.error);
    outln!("headers:");
    for (k, v) in &l.headers {
        outln!("  {k}: {v}");
    }
    match decoded {
        Decoded::Json { value } => outln!(
            "payload (decoded with its writer's schema):\n{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Decoded::Hex { hex, why } => outln!("payload (does not decode: {why}):\n{hex}"),
        Decoded::Empty => outln!("payload: (none)"),
    }
}
