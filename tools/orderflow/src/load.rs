//! `orderflow load`: places orders through the gateway (a burst, or open loop
//! at a fixed rate) and reports throughput and placed→terminal latency. The
//! latency is read from each order's history (the time of its first and of its
//! terminal event), so how often this tool polls does not distort it.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::stream::{self, StreamExt};
use orderflow_api::OrderView;
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
}

pub async fn run(args: Args) -> Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let skus: Vec<String> = (1..=10).map(|i| format!("SKU-{i:03}")).collect();
    // Enough stock that every order can ship: the run measures the saga, not stock-outs.
    for sku in &skus {
        let body = json!({"available": args.orders, "unit_price": {"amount_minor": 999, "currency": "EUR"}});
        http.put(format!("{}/v1/inventory/{sku}", args.gateway))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
    }

    let started = Instant::now();
    let placed: Vec<Result<String>> = stream::iter(0..args.orders)
        .map(|i| {
            let (http, gateway, sku) = (&http, &args.gateway, &skus[i % skus.len()]);
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
                    "customer_id": format!("load-{}", i % 100),
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
    let mut pending: Vec<String> = placed.into_iter().collect::<Result<_>>()?;
    println!(
        "placed {} orders in {:.2}s",
        pending.len(),
        placing.as_secs_f64()
    );

    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut done: Vec<OrderView> = Vec::new();
    while !pending.is_empty() {
        if Instant::now() > deadline {
            bail!(
                "{} orders not terminal after {}s",
                pending.len(),
                args.timeout_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let views: Vec<Result<OrderView>> = stream::iter(pending.iter())
            .map(|id| {
                let http = &http;
                let url = format!("{}/v1/orders/{id}", args.gateway);
                async move {
                    Ok(http
                        .get(url)
                        .send()
                        .await?
                        .error_for_status()?
                        .json::<OrderView>()
                        .await?)
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        pending.clear();
        for view in views {
            let view = view?;
            if view.status == "SHIPPED" || view.status == "CANCELLED" {
                done.push(view);
            } else {
                pending.push(view.order_id);
            }
        }
    }
    println!("{}", orderflow_api::SagaStats::of(&done));
    Ok(())
}
