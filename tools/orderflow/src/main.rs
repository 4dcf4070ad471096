//! `orderflow`: the operator CLI. `dev` runs the whole platform on one
//! machine; `topics` shows and provisions the topic layout; `load` places
//! orders and measures them.

mod bench;
mod dev;
mod load;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "orderflow",
    version,
    about = "Operate orderflow: dev stack, topics, load"
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
    /// Place orders through the gateway and report throughput and latency.
    Load(load::Args),
    /// Measure a raw relay chain on a broker: the yardstick of `make bench`.
    BenchChain(bench::Args),
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
    },
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Print every topic orderflow uses, with partitions and configuration.
    List {
        #[arg(long, env = "ORDERFLOW_KAFKA_PARTITIONS", default_value_t = 12)]
        partitions: i32,
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
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Dev(args) => dev::run(args).await,
        Command::Load(args) => load::run(args).await,
        Command::BenchChain(args) => bench::run(args).await,
        Command::Schemas(SchemasCommand::Register { registry_url }) => {
            let registry = orderflow_envelope::HttpSchemaRegistry::new(&registry_url);
            for &t in orderflow_envelope::EventType::ALL {
                let subject = orderflow_envelope::Codec::subject(t);
                let id = orderflow_envelope::SchemaRegistry::register(
                    &registry,
                    &subject,
                    t.schema_json(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{subject}: {e}"))?;
                println!("{subject}: id {id}");
            }
            Ok(())
        }
        Command::Topics(TopicsCommand::List { partitions }) => {
            let tiers = orderflow_runtime::RuntimeConfig::default().retry_tiers();
            for t in orderflow_runtime::topics::layout(partitions, &tiers) {
                let config: Vec<String> =
                    t.config.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
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
        }) => {
            let config = orderflow_runtime::RuntimeConfig {
                kafka_bootstrap_servers: bootstrap_servers,
                kafka_partitions: partitions,
                kafka_properties,
                ..Default::default()
            };
            config.validate().map_err(anyhow::Error::msg)?;
            let report =
                orderflow_runtime::topics::apply(&config, replication_factor, min_insync_replicas)
                    .await?;
            if report.created.is_empty() {
                println!("all topics exist; nothing created");
            }
            for name in &report.created {
                println!("created {name}");
            }
            for weaker in &report.weaker {
                println!(
                    "weaker than wanted (not changed; alter it with kafka-configs.sh): {weaker}"
                );
            }
            Ok(())
        }
    }
}
