//! Many orders racing for little stock: exactly as many succeed as there are
//! units, and stock never goes negative.

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
    stack.stop().await
}
