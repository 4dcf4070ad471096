//! `orderflow audit`: whether the books balance. Reads each service's own
//! account through its API (an operator's token), then the saga's topics
//! from the beginning, and judges every order and the stock by the saga's
//! invariants. Exit 0 when nothing is broken, 1 with violations, 64 on bad
//! usage, 69 when a service, the broker or the registry cannot be read.

use std::time::Instant;

use anyhow::Result;
use orderflow_api::IdKind;
use orderflow_audit::{
    audit, read_log, Audit, Finding, Limits, LogBook, ServiceUrls, StoreBook, StoreError, STEPS,
};
use orderflow_auth::TokenRequest;
use serde::Serialize;

use crate::connect::{ConnectArgs, DevConnect};
use crate::dlq::Output;
use crate::token::IssuerArg;
use crate::{Unavailable, UsageError};

#[derive(clap::Args)]
pub struct Args {
    /// One order's story: its events from the log, each service's record
    /// of it, and what is wrong with it.
    #[arg(long, conflicts_with = "sku")]
    order: Option<String>,
    /// One SKU's stock account and what is wrong with it.
    #[arg(long)]
    sku: Option<String>,
    /// Only orders placed since then: RFC 3339 (2026-12-01T00:00:00Z) or a
    /// time ago (90s, 15m, 1h, 2d). Stock is then not judged.
    #[arg(long, conflicts_with_all = ["order", "sku"])]
    since: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    /// The services' step deadline (ms), as they are configured: an order
    /// may take five of them (reserve, charge, ship, refund, release), plus
    /// --margin-s, before it counts as stranded.
    #[arg(long, env = "ORDERFLOW_STEP_DEADLINE_MS", default_value_t = 3_600_000)]
    step_deadline_ms: u64,
    #[arg(long, default_value_t = 300)]
    margin_s: u64,
    /// How old (ms) an order's newest event must be before the order is
    /// judged: a younger one may still be moving.
    #[arg(long, default_value_t = 10_000)]
    settle_ms: u64,
    /// An operator's bearer token (default: one from the dev stack's issuer).
    #[arg(long, env = "ORDERFLOW_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    issuer: IssuerArg,
    #[command(flatten)]
    services: ServiceArgs,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Each service's own API (default: the running dev stack's).
#[derive(clap::Args)]
struct ServiceArgs {
    #[arg(long, env = "ORDERFLOW_ORDER_URL")]
    order_url: Option<String>,
    #[arg(long, env = "ORDERFLOW_INVENTORY_URL")]
    inventory_url: Option<String>,
    #[arg(long, env = "ORDERFLOW_PAYMENT_URL")]
    payment_url: Option<String>,
    #[arg(long, env = "ORDERFLOW_SHIPPING_URL")]
    shipping_url: Option<String>,
    #[arg(long, env = "ORDERFLOW_NOTIFICATION_URL")]
    notification_url: Option<String>,
}

impl ServiceArgs {
    fn resolve(&self) -> Result<ServiceUrls, UsageError> {
        let dev = DevConnect::read()
            .map(|d| d.service_urls)
            .unwrap_or_default();
        let url = |given: &Option<String>, name: &str| {
            given
                .clone()
                .or_else(|| dev.get(name).cloned())
                .ok_or_else(|| {
                    UsageError(format!(
                        "where is the {name} service? Set --{name}-url or ORDERFLOW_{}_URL (no dev stack found, or one started before `orderflow audit` existed: restart it)",
                        name.to_uppercase()
                    ))
                })
        };
        Ok(ServiceUrls {
            order: url(&self.order_url, "order")?,
            inventory: url(&self.inventory_url, "inventory")?,
            payment: url(&self.payment_url, "payment")?,
            shipping: url(&self.shipping_url, "shipping")?,
            notification: url(&self.notification_url, "notification")?,
        })
    }
}

/// `--since`: an RFC 3339 time, or a span ago; never in the future.
fn since_ms(s: &str, now: chrono::DateTime<chrono::Utc>) -> Result<i64, UsageError> {
    let at = if s.contains(['-', ':', 'T']) {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|at| at.with_timezone(&chrono::Utc))
            .map_err(|e| {
                UsageError(format!(
                    "--since {s:?}: {e}: give a time like 2026-12-01T00:00:00Z, or a span like 1h"
                ))
            })?
    } else {
        orderflow_dlq::parse_since(s, now).map_err(|e| UsageError(format!("--since: {e}")))?
    };
    if at > now {
        return Err(UsageError(format!(
            "--since {s:?} is in the future: no order was placed since"
        )));
    }
    Ok(at.timestamp_millis())
}

/// The report `--output json` prints.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    audit: &'a Audit,
    events: u64,
    duplicates: u64,
    skipped: u64,
    seconds: f64,
    violations: std::collections::BTreeMap<&'static str, usize>,
}

impl Args {
    /// `--order` and `--sku`, checked against the identifier grammar.
    fn check_ids(&self) -> Result<(), UsageError> {
        for (value, kind, flag) in [
            (&self.order, IdKind::Order, "--order"),
            (&self.sku, IdKind::Sku, "--sku"),
        ] {
            if let Some(error) = value.as_deref().and_then(|v| kind.error(v)) {
                return Err(UsageError(format!("{flag}: {error}")));
            }
        }
        Ok(())
    }

    fn limits(&self) -> Result<Limits, UsageError> {
        let ms = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let since_ms = match &self.since {
            Some(s) => Some(since_ms(s, chrono::Utc::now())?),
            None => None,
        };
        Ok(Limits {
            since_ms,
            deadline_ms: ms(self.step_deadline_ms)
                .saturating_mul(STEPS)
                .saturating_add(ms(self.margin_s).saturating_mul(1_000)),
            settle_ms: ms(self.settle_ms),
        })
    }

    /// `--token`, or an operator's token from the dev stack's issuer.
    async fn token(&self) -> Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let request = TokenRequest {
            operator: true,
            ..TokenRequest::default()
        };
        let issuer = self.issuer.url()?;
        Ok(crate::token::fetch(&issuer, &request)
            .await
            .map_err(|e| Unavailable(format!("{e:#}")))?)
    }
}

pub async fn run(args: Args) -> Result<()> {
    args.check_ids()?;
    let limits = args.limits()?;
    let urls = args.services.resolve()?;
    let source = args
        .connect
        .resolve()
        .map_err(|e| UsageError(e.to_string()))?;
    let client = store_client(&args.token().await?)?;

    let started = Instant::now();
    // Orders are judged as of now, before the stores are read: an order
    // whose newest event came later is too young to judge.
    let as_of = orderflow_runtime::now_millis();
    // The stores first: every write they hold is then explained by the log
    // read after them.
    let stores = StoreBook::read(&urls, &client).await.map_err(|e| match e {
        StoreError::Refused {
            status: 401 | 403, ..
        } => anyhow::Error::new(UsageError(format!(
            "{e}: pass an operator's token (--token or ORDERFLOW_TOKEN)"
        ))),
        e => anyhow::Error::new(Unavailable(e.to_string())),
    })?;
    let mut book = LogBook::focused(args.order.clone());
    let spinner = orderflow_api::progress::status("reading the log {spinner} {pos} messages");
    read_log(&source, &mut book, &|n| spinner.set_position(n))
        .await
        .map_err(|e| Unavailable(e.to_string()))?;
    spinner.finish_and_clear();
    let found = audit(&book, &stores, as_of, &limits);
    let seconds = started.elapsed().as_secs_f64();

    if let Some(order_id) = &args.order {
        return show_order(order_id, &book, &stores, &found, args.output);
    }
    if let Some(sku) = &args.sku {
        return show_sku(sku, &stores, &found, args.output);
    }
    match args.output {
        Output::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&Report {
                audit: &found,
                events: book.events,
                duplicates: book.duplicates,
                skipped: book.skipped,
                seconds,
                violations: found.summary(),
            })?
        ),
        Output::Table => print_summary(&found, &book, seconds),
    }
    verdict(&found.findings)
}

/// How long one page may take before the service counts as not answering.
const PAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A client that sends `token` to the services, and gives up on a page
/// after [`PAGE_TIMEOUT`].
fn store_client(token: &str) -> Result<reqwest::Client> {
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| UsageError("--token: not a bearer token (visible ASCII only)".into()))?;
    value.set_sensitive(true);
    let headers = reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)]);
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .timeout(PAGE_TIMEOUT)
        .build()?)
}

/// Exit 1 when anything is broken.
fn verdict(findings: &[Finding]) -> Result<()> {
    match findings.len() {
        0 => Ok(()),
        n => Err(Violations(n).into()),
    }
}

/// The audit found broken promises: exit 1.
#[derive(Debug, thiserror::Error)]
#[error("{0} violations")]
pub struct Violations(usize);

/// The most findings a table lists; `--output json` lists every one.
const SHOWN: usize = 100;

fn print_summary(found: &Audit, book: &LogBook, seconds: f64) {
    outln!(
        "audited {} orders ({} judged, {} in flight) and {} SKUs from {} events in {seconds:.1} s{}",
        found.orders,
        found.judged,
        found.in_flight,
        found.skus,
        book.events,
        if found.stock_checked {
            ""
        } else {
            "; stock not judged (orders in flight, or --since)"
        }
    );
    if book.duplicates + book.skipped > 0 {
        outln!(
            "({} redelivered events counted once, {} messages that are not events skipped)",
            book.duplicates,
            book.skipped
        );
    }
    for (invariant, n) in found.summary() {
        outln!("  {invariant:<32} {n:>7}");
    }
    for f in found.findings.iter().take(SHOWN) {
        print_finding(f);
    }
    if found.findings.len() > SHOWN {
        outln!(
            "… and {} more (--output json lists every one)",
            found.findings.len() - SHOWN
        );
    }
}

fn print_finding(f: &Finding) {
    outln!("{} {}: {}", f.invariant, f.subject, f.detail);
    outln!("    log:    {}", f.log);
    outln!("    stores: {}", f.stores);
    outln!("    more:   {}", f.more);
}

fn show_order(
    order_id: &str,
    book: &LogBook,
    stores: &StoreBook,
    found: &Audit,
    output: Output,
) -> Result<()> {
    let findings = found.about(order_id);
    let logged = book.orders.get(order_id);
    if logged.is_none() && !stores.order_ids().any(|id| id == order_id) {
        return Err(UsageError(format!(
            "order {order_id}: neither the log nor any service knows it"
        ))
        .into());
    }
    let log = logged.map(|o| o.account()).unwrap_or_default();
    let held = stores.account(order_id);
    match output {
        Output::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "order_id": order_id,
                "events": logged.map(|o| o.timeline.iter().map(|(at, t)| {
                    serde_json::json!({"at_ms": at, "type": t.name()})
                }).collect::<Vec<_>>()),
                "log": log.to_string(),
                "stores": held.to_string(),
                "findings": findings,
            }))?
        ),
        Output::Table => {
            outln!("order {order_id}");
            let start = logged
                .and_then(|o| o.placed_at_ms)
                .or_else(|| logged.and_then(|o| o.timeline.first().map(|(at, _)| *at)))
                .unwrap_or(0);
            for (at, event_type) in logged.map(|o| o.timeline.as_slice()).unwrap_or_default() {
                outln!(
                    "  {:>+9} ms  {}",
                    at.saturating_sub(start),
                    event_type.name()
                );
            }
            outln!("log says:    {log}");
            outln!("stores say:  {held}");
            if findings.is_empty() {
                outln!("no violation");
            }
            for f in &findings {
                outln!("{}: {}", f.invariant, f.detail);
            }
        }
    }
    verdict(&findings)
}

fn show_sku(sku: &str, stores: &StoreBook, found: &Audit, output: Output) -> Result<()> {
    let Some(record) = stores.stock.iter().find(|s| s.sku == sku) else {
        return Err(UsageError(format!("SKU {sku} is not in the catalogue")).into());
    };
    let findings = found.about(sku);
    match output {
        Output::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "stock": record,
                "stock_checked": found.stock_checked,
                "findings": findings,
            }))?
        ),
        Output::Table => {
            outln!(
                "{sku}: initial {} + restocked {} = {}; available {} + reserved {} + shipped {} = {}",
                record.initial,
                record.restocked,
                record.initial.saturating_add(record.restocked),
                record.available,
                record.reserved,
                record.shipped,
                record
                    .available
                    .saturating_add(record.reserved)
                    .saturating_add(record.shipped)
            );
            if !found.stock_checked {
                outln!("(not judged: orders are in flight, or --since)");
            }
            for f in &findings {
                outln!("{}: {}", f.invariant, f.detail);
                outln!("    log: {}", f.log);
            }
        }
    }
    verdict(&findings)
}
