//! Many orders racing for little stock: exactly as many succeed as there are
//! units, and stock never goes negative. On SQLite the reservations run one
//! transaction at a time; the component suite's second pass runs this on
//! PostgreSQL, where inventory applies batches in four transactions at once
//! (`ORDERFLOW_DATABASE_WRITERS`), and the race is real. What must win it is
//! the reservation's guarded update, never the `available >= 0` constraint
//! behind it: a constraint violation would fail a batch, and the event whose
//! update broke it would be dead-lettered with its order stuck.

use orderflow_testkit::metrics::scrape;
use orderflow_testkit::{order_body, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_orders_race_for_fifty_units() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    stack.set_stock("SKU-010", 50, 500).await?;

    let placements = (0..200).map(|i| {
        let stack = &stack;
        async move {
            stack
                .place(&order_body(
                    &format!("c-race-{i}"),
                    "SKU-010",
                    1,
                    "tok_visa",
                    "DE",
                ))
                .await
        }
    });
    let order_ids = futures::future::try_join_all(placements).await?;
    let mut shipped = 0;
    let mut out_of_stock = 0;
    for id in &order_ids {
        let order = stack.wait_terminal(id).await?;
        match (order.status.as_str(), order.reason.as_deref()) {
            ("SHIPPED", None) => shipped += 1,
            ("CANCELLED", Some("OUT_OF_STOCK")) => out_of_stock += 1,
            other => panic!("order {id} ended {other:?}"),
        }
    }
    assert_eq!((shipped, out_of_stock), (50, 150));
    stack.wait_idle().await?;
    let stock = stack.stock("SKU-010").await?;
    assert_eq!((stock.available, stock.reserved), (0, 0));
    let inventory = scrape(&stack.http, &stack.ops["inventory"]).await?;
    assert_eq!(
        inventory.sum("orderflow_db_batch_fallbacks_total", ""),
        0.0,
        "no batch failed: the constraint never had to refuse an update"
    );
    assert_eq!(inventory.sum("orderflow_dead_letters_total", ""), 0.0);
    assert_eq!(
        inventory.sum_where(
            "orderflow_events_consumed_total",
            &[("event_type", "OrderCreated"), ("outcome", "handled")]
        ),
        200.0
    );
    stack.stop().await
}
