//! The four outcomes of the saga, end to end through the gateway on the
//! embedded broker, with the stock, the payment and the customer's
//! notifications checked after each.

use orderflow_testkit::{check_four_outcomes, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_outcome_of_the_saga() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    check_four_outcomes(&stack, stack.wait_idle()).await?;
    stack.stop().await
}
