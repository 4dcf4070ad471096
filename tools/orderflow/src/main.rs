//! `orderflow`: the operator CLI. `dev` runs the whole platform on one
//! machine; `topics` shows and provisions the topic layout; `dlq` finds,
//! inspects and replays dead letters; `load` places orders and measures them.

/// `println!` for what the commands print: a reader that stops early
/// (`orderflow dlq list | head`) ends the command quietly, with the status a
/// shell gives a tool its pipe closed on (128 + SIGPIPE), not with a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(141);
            }
            eprintln!("error: writing to stdout: {e}");
            std::process::exit(1);
        }
    }};
}

mod audit;
mod bench;
mod bench_replay;
mod connect;
mod dev;
mod dlq;
mod load;
mod rebuild;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "orderflow",
    version,
    about = "Operate orderflow: dev stack, topics, dead letters, audit, load"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything on this machine: embedded Kafka-protocol broker, schema
    /// registry and the six services, each as its own process.
    Dev(dev::Args),
    /// The topic layout.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Dead letters: list, show, replay, mark reviewed.
    #[command(subcommand)]
    Dlq(dlq::Command),
    /// A bearer token from the dev stack's issuer (customer or operator).
    Token(token::Args),
    /// Whether the books balance: every order and SKU judged by the saga's
    /// invariants, from the log and each service's own account.
    Audit(audit::Args),
    /// Rebuild a read model from the log into a fresh database.
    #[command(subcommand)]
    Rebuild(rebuild::Command),
    /// Place orders through the gateway and report throughput and latency.
    Load(load::Args),
    /// Measure a raw relay chain on a broker: the yardstick of `make bench`.
    BenchChain(bench::Args),
    /// Measure how fast dead letters are replayed, on a running stack.
    BenchReplay(bench_replay::Args),
    /// The event schemas in a Confluent-compatible registry.
    #[command(subcommand)]
    Schemas(SchemasCommand),
}

#[derive(Subcommand)]
enum SchemasCommand {
    /// Register every event schema under its subject (`<topic>-<record name>`),
    /// as a deploy step; an incompatible schema fails with the registry's reason.
    Register {
        #[arg(long, env = "ORDERFLOW_SCHEMA_REGISTRY_URL")]
        registry_url: String,
        #[command(flatten)]
        auth: connect::RegistryAuthArgs,
    },
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Print every topic orderflow uses, with partitions and configuration.
    List {
        #[arg(long, env = "ORDERFLOW_KAFKA_PARTITIONS", default_value_t = 12)]
        partitions: i32,
        #[command(flatten)]
        tiers: RetryTiers,
    },
    /// Create the missing topics on a Kafka cluster (admin API), idempotently.
    Apply {
        #[arg(long, env = "ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS")]
        bootstrap_servers: String,
        #[arg(long, env = "ORDERFLOW_KAFKA_PARTITIONS", default_value_t = 12)]
        partitions: i32,
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
        /// Replicas that must have a write before it is acknowledged
        /// (`acks=all`); by default 2 when the replication factor is 3 or
        /// more, else 1.
        #[arg(long)]
        min_insync_replicas: Option<i32>,
        /// Extra librdkafka properties, `key=value,key=value`.
        #[arg(long, env = "ORDERFLOW_KAFKA_PROPERTIES", default_value = "")]
        kafka_properties: String,
        #[command(flatten)]
        tiers: RetryTiers,
    },
}

/// The retry tiers the services run with: one retry topic per tier. The same
/// variables (and format, `[1000,4000,9000]`) as the services read.
#[derive(clap::Args)]
struct RetryTiers {
    /// The fast tiers, in milliseconds.
    #[arg(long, env = "ORDERFLOW_RETRY_BACKOFF_MS", value_parser = parse_ms_list, default_value = "[1000,4000,9000]")]
    retry_backoff_ms: MsList,
    /// The slow tiers, in milliseconds.
    #[arg(long, env = "ORDERFLOW_RETRY_SLOW_TIERS_MS", value_parser = parse_ms_list, default_value = "[60000,300000,900000]")]
    retry_slow_tiers_ms: MsList,
}

#[derive(Clone, Debug)]
struct MsList(Vec<u64>);

fn parse_ms_list(s: &str) -> Result<MsList, String> {
    s.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<u64>()
                .map_err(|e| format!("`{v}` is not a number of milliseconds: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(MsList)
}

impl RetryTiers {
    fn config(&self) -> orderflow_runtime::RuntimeConfig {
        orderflow_runtime::RuntimeConfig {
            retry_backoff_ms: self.retry_backoff_ms.0.clone(),
            retry_slow_tiers_ms: self.retry_slow_tiers_ms.0.clone(),
            ..Default::default()
        }
    }
}

/// A command used wrongly or not told what it needs: exit code 64
/// (EX_USAGE).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Something the command reads (a service, the broker, the registry) could
/// not be read: exit code 69 (EX_UNAVAILABLE).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print and succeed; anything else is misuse.
        Err(e) => {
            let _ = e.print();
            return match e.use_stderr() {
                true => ExitCode::from(64),
                false => ExitCode::SUCCESS,
            };
        }
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(64)
            } else if e.downcast_ref::<Unavailable>().is_some() {
                ExitCode::from(69)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(args) => dev::run(args).await,
        Command::Dlq(command) => dlq::run(command).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Rebuild(command) => rebuild::run(command).await,
        Command::Token(args) => token::run(args).await,
        Command::Load(args) => load::run(args).await,
        Command::BenchChain(args) => bench::run(args).await,
        Command::BenchReplay(args) => bench_replay::run(args).await,
        Command::Schemas(SchemasCommand::Register { registry_url, auth }) => {
            let connection = auth
                .connection(&registry_url)
                .map_err(|e| UsageError(e.0))?;
            let registry = orderflow_envelope::HttpSchemaRegistry::connect(&connection)
                .map_err(|e| UsageError(e.to_string()))?;
            for &t in orderflow_envelope::EventType::ALL {
                let subject = orderflow_envelope::Codec::subject(t);
                let id = orderflow_envelope::SchemaRegistry::register(
                    &registry,
                    &subject,
                    t.schema_json(),
                )
                .await
                .map_err(|e| match e.is_unauthorized() {
                    true => anyhow::Error::new(UsageError(format!("{subject}: {e}"))),
                    false => anyhow::anyhow!("{subject}: {e}"),
                })?;
                outln!("{subject}: id {id}");
            }
            Ok(())
        }
        Command::Topics(TopicsCommand::List { partitions, tiers }) => {
            let tiers = tiers.config().retry_tiers();
            for t in orderflow_runtime::topics::layout(partitions, &tiers) {
                let config: Vec<String> =
                    t.config.iter().map(|(k, v)| format!("{k}={v}")).collect();
                outln!(
                    "{:<22} partitions={:<3} {}",
                    t.name,
                    t.partitions,
                    config.join(" ")
                );
            }
            Ok(())
        }
        Command::Topics(TopicsCommand::Apply {
            bootstrap_servers,
            partitions,
            replication_factor,
            min_insync_replicas,
            kafka_properties,
            tiers,
        }) => {
            let config = orderflow_runtime::RuntimeConfig {
                kafka_bootstrap_servers: bootstrap_servers,
                kafka_partitions: partitions,
                kafka_properties,
                ..tiers.config()
            };
            config.validate().map_err(UsageError)?;
            let report =
                orderflow_runtime::topics::apply(&config, replication_factor, min_insync_replicas)
                    .await?;
            if report.created.is_empty() {
                outln!("all topics exist; nothing created");
            }
            for name in &report.created {
                outln!("created {name}");
            }
            for weaker in &report.weaker {
                outln!(
                    "weaker than wanted (not changed; alter it with kafka-configs.sh): {weaker}"
                );
            }
            Ok(())
        }
    }
}
