//! The payment service's SQL.

use orderflow_api::{MoneyView, PaymentView};
use orderflow_envelope::Money;
use orderflow_runtime::sql::Reader;
use orderflow_runtime::sql::{self, Connection};
use orderflow_runtime::sqlx;

pub use crate::domain::Status;

fn parse_status(s: &str) -> Result<Status, sqlx::Error> {
    Status::from_name(s)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown payment status {s}").into()))
}

pub struct PaymentRow {
    pub status: Status,
    pub payment_id: Option<String>,
    pub amount: Money,
    /// The order's shipment was created.
    pub shipped: bool,
}

pub async fn find(
    conn: &mut Connection,
    order_id: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    let row = sql::query(
        "SELECT status, payment_id, amount_minor, currency, shipped_at FROM payments WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(PaymentRow {
            status: parse_status(&r.try_get::<String, _>("status")?)?,
            payment_id: r.try_get("payment_id")?,
            amount: Money::new(
                r.try_get("amount_minor")?,
                r.try_get::<String, _>("currency")?,
            ),
            shipped: r.try_get::<Option<i64>, _>("shipped_at")?.is_some(),
        })
    })
    .transpose()
}

/// Records the intent to charge an order; false if it has a payment already.
pub async fn insert(
    conn: &mut Connection,
    order_id: &str,
    customer_id: &str,
    status: Status,
    amount: &Money,
) -> Result<bool, sqlx::Error> {
    let now = orderflow_runtime::now_millis();
    let result = sql::query(
        "INSERT INTO payments (order_id, customer_id, status, amount_minor, currency, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(customer_id)
    .bind(status.as_str())
    .bind(amount.amount_minor)
    .bind(&amount.currency)
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Moves the payment to `to` if it is in one of `from`, setting the payment
/// id and reason when given. False when it was not (another attempt moved
/// it first): then nothing is to be announced.
pub async fn finish(
    conn: &mut Connection,
    order_id: &str,
    from: &[Status],
    to: Status,
    payment_id: Option<&str>,
    reason: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let from_list = orderflow_runtime::in_list(from.len(), 5);
    let statement = format!(
        "UPDATE payments SET status = $1, payment_id = COALESCE($2, payment_id), reason = COALESCE($3, reason), updated_at = $4
         WHERE status IN ({from_list}) AND order_id = ${}",
        5 + from.len()
    );
    let mut query = sql::query(&statement)
        .bind(to.as_str())
        .bind(payment_id)
        .bind(reason)
        .bind(orderflow_runtime::now_millis());
    for status in from {
        query = query.bind(status.as_str());
    }
    let result = query.bind(order_id).execute(conn).await?;
    Ok(result.rows_affected() == 1)
}

/// The order's shipment was created; false when there is no payment.
pub async fn mark_shipped(conn: &mut Connection, order_id: &str) -> Result<bool, sqlx::Error> {
    let result = sql::query(
        "UPDATE payments SET shipped_at = $1 WHERE order_id = $2 AND shipped_at IS NULL",
    )
    .bind(orderflow_runtime::now_millis())
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn view(
    pool: &Reader,
    order_id: &str,
    ledger: (u32, u32),
) -> Result<Option<PaymentView>, sqlx::Error> {
    let row = sql::query("SELECT status, payment_id, amount_minor, currency, reason FROM payments WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await?;
    row.map(|r| {
        Ok(PaymentView {
            order_id: order_id.to_string(),
            status: r.try_get("status")?,
            payment_id: r.try_get("payment_id")?,
            amount: MoneyView {
                amount_minor: r.try_get("amount_minor")?,
                currency: r.try_get("currency")?,
            },
            reason: r.try_get("reason")?,
            provider_charges: ledger.0,
            provider_refunds: ledger.1,
        })
    })
    .transpose()
}
