//! `orderflow load`: places orders through the gateway (a burst, or open loop
//! at a fixed rate) and reports throughput and placed→terminal latency. The
//! latency is read from each order's history (the time of its first and of its
//! terminal event), so how often this tool polls does not distort it.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::stream::{self, StreamExt};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    #[arg(long, default_value_t = 1000)]
    orders: usize,
    /// Orders per second (open loop); 0 sends them as fast as --concurrency allows.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Give up on orders not terminal after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Where customer and operator tokens come from.
    #[command(flatten)]
    issuer: crate::token::IssuerArg,
}

/// Customers the load spreads its orders over.
const CUSTOMERS: usize = 100;

pub async fn run(args: Args) -> Result<()> {
    let issuer = args.issuer.url()?;
    let token = |customer: Option<String>| {
        let issuer = issuer.clone();
        async move {
            let request = orderflow_auth::TokenRequest {
                operator: customer.is_none(),
                customer,
                ttl_s: Some(86_400),
                ..Default::default()
            };
            crate::token::fetch(&issuer, &request).await
        }
    };
    let client = orderflow_api::GatewayClient::with_token(&args.gateway, &token(None).await?);
    // One client (and token) per customer, each keeping its connections.
    let mut customers = Vec::with_capacity(CUSTOMERS);
    for i in 0..CUSTOMERS {
        customers.push(orderflow_api::bearer_client(
            &token(Some(format!("load-{i}"))).await?,
        ));
    }
    let skus: Vec<String> = (1..=10).map(|i| format!("SKU-{i:03}")).collect();
    // Enough stock that every order can ship: the run measures the saga, not stock-outs.
    for sku in &skus {
        let unit_price = orderflow_api::MoneyView {
            amount_minor: 999,
            currency: "EUR".into(),
        };
        let stock = orderflow_api::SetStock {
            available: args.orders as i64,
            unit_price,
        };
        client.set_stock(sku, &stock).await?;
    }

    let started = Instant::now();
    let placing_bar = orderflow_api::progress::bar(
        args.orders as u64,
        "placing  {bar:40} {pos}/{len} {per_sec} {elapsed}",
    );
    let placed: Vec<Result<String>> = stream::iter(0..args.orders)
        .map(|i| {
            let (http, gateway, sku) = (
                &customers[i % CUSTOMERS],
                &args.gateway,
                &skus[i % skus.len()],
            );
            let placing_bar = &placing_bar;
            let due = if args.rate > 0.0 {
                Some(started + Duration::from_secs_f64(i as f64 / args.rate))
            } else {
                None
            };
            async move {
                if let Some(due) = due {
                    tokio::time::sleep_until(due.into()).await;
                }
                let body = json!({
                    "items": [{"sku": sku, "quantity": 1}],
                    "payment": {"token": "tok_visa"},
                    "shipping_address": {"name": "Load", "line1": "1 Main St", "city": "Berlin",
                                         "postal_code": "10115", "country": "DE"}
                });
                let response = http
                    .post(format!("{gateway}/v1/orders"))
                    .json(&body)
                    .send()
                    .await?;
                if response.status() != 202 {
                    bail!(
                        "order {i} not accepted: {} {}",
                        response.status(),
                        response.text().await?
                    );
                }
                let accepted: serde_json::Value = response.json().await?;
                placing_bar.inc(1);
                Ok(accepted["order_id"]
                    .as_str()
                    .context("order_id")?
                    .to_string())
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let placing = started.elapsed();
    placing_bar.finish_and_clear();
    let pending: Vec<String> = placed.into_iter().collect::<Result<_>>()?;
    outln!(
        "placed {} orders in {:.2}s",
        pending.len(),
        placing.as_secs_f64()
    );

    let terminal_bar = orderflow_api::progress::bar(
        pending.len() as u64,
        "terminal {bar:40} {pos}/{len} {elapsed}",
    );
    let done = client
        .wait_all_terminal_reporting(&pending, Duration::from_secs(args.timeout_secs), &|n| {
            terminal_bar.set_position(n as u64)
        })
        .await?;
    terminal_bar.finish_and_clear();
    let stats = orderflow_api::SagaStats::of(&done);
    outln!("{stats}");
    // One line for scripts (make bench).
    outln!(
        "RESULT orders={} orders_per_s={:.1} p50_ms={} p99_ms={} placing_s={:.2}",
        done.len(),
        stats.per_second(),
        stats.p50_ms,
        stats.p99_ms,
        placing.as_secs_f64()
    );
    Ok(())
}
