//! `orderflow rebuild order`: the order service's read model rebuilt from
//! the log into a fresh database, then compared with the live one. Safe
//! beside the live service; swapping the rebuilt database in is a separate,
//! explicit step (README: "Rebuilding a read model").

use anyhow::{Context, Result};
use orderflow_order::rebuild::{compare, rebuild, Source};
use orderflow_runtime::Database;

use crate::connect::ConnectArgs;

#[derive(clap::Subcommand)]
pub enum Command {
    /// The order service's orders, statuses, totals, tracking ids, histories
    /// and customers' order lists, from `orders`, `inventory`, `payments` and
    /// `shipments`.
    Order {
        /// The fresh database to rebuild into (default: a new SQLite file
        /// under .data/rebuild/).
        #[arg(long)]
        into: Option<String>,
        /// The live order database to compare with (default: the order
        /// service's ORDERFLOW_DATABASE_URL, or the dev stack's).
        #[arg(long)]
        live: Option<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

pub async fn run(command: Command) -> Result<()> {
    let Command::Order {
        into,
        live,
        connect,
    } = command;
    let source: Source = connect
        .resolve()
        .map_err(|e| crate::UsageError(e.to_string()))?;
    let into = into.unwrap_or_else(|| {
        format!(
            "sqlite://.data/rebuild/order-{}.db",
            chrono::Utc::now().format("%Y%m%dT%H%M%S")
        )
    });
    let live = live
        .or_else(|| std::env::var("ORDERFLOW_DATABASE_URL").ok())
        .or_else(|| {
            let dev = std::path::Path::new(".data/dev/order.db");
            dev.exists().then(|| format!("sqlite://{}", dev.display()))
        });
    let target = Database::connect(&into, 4, false)
        .await
        .with_context(|| format!("opening {}", orderflow_runtime::redact(&into)))?;
    let spinner = orderflow_api::progress::status("rebuilding {spinner} {pos} events {per_sec}");
    let rebuilt = rebuild(&source, &target, &|n| spinner.set_position(n)).await?;
    spinner.finish_and_clear();
    outln!(
        "rebuilt {} orders from {} events in {:.1} s ({:.0} events/s; {} messages that are not orderflow events skipped) into {}",
        rebuilt.orders,
        rebuilt.events,
        rebuilt.seconds,
        rebuilt.events as f64 / rebuilt.seconds.max(0.001),
        rebuilt.skipped,
        orderflow_runtime::redact(&into)
    );
    let Some(live) = live else {
        outln!("no live database to compare with (--live URL)");
        return Ok(());
    };
    let live_db = Database::connect(&live, 4, false)
        .await
        .with_context(|| format!("opening {}", orderflow_runtime::redact(&live)))?;
    let c = compare(live_db.reader(), target.reader()).await?;
    outln!(
        "compared with {}: {} live orders, {} rebuilt; {} equal, {} differ, {} missing (placed after the log was read), {} extra; {} customer lists differ",
        orderflow_runtime::redact(&live),
        c.live_orders,
        c.rebuilt_orders,
        c.equal,
        c.mismatched,
        c.missing,
        c.extra,
        c.customer_lists_differing
    );
    for m in &c.mismatches {
        outln!("  {m}");
    }
    if c.mismatched == 0 && c.missing == 0 && c.extra == 0 && c.customer_lists_differing == 0 {
        outln!("the rebuilt read model equals the live one");
    }
    Ok(())
}
