//! The payment service's SQL.

use orderflow_api::{MoneyView, PaymentView};
use orderflow_envelope::Money;
use orderflow_runtime::sqlx::{self, AnyConnection, AnyPool, Row};

pub struct PaymentRow {
    pub status: String,
    pub payment_id: Option<String>,
    pub amount: Money,
}

pub async fn find(
    conn: &mut AnyConnection,
    order_id: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT status, payment_id, amount_minor, currency FROM payments WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(PaymentRow {
            status: r.try_get("status")?,
            payment_id: r.try_get("payment_id")?,
            amount: Money::new(
                r.try_get("amount_minor")?,
                r.try_get::<String, _>("currency")?,
            ),
        })
    })
    .transpose()
}

pub async fn insert(
    conn: &mut AnyConnection,
    order_id: &str,
    customer_id: &str,
    status: &str,
    payment_id: Option<&str>,
    amount: &Money,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    let now = orderflow_runtime::now_millis();
    sqlx::query(
        "INSERT INTO payments (order_id, customer_id, status, payment_id, amount_minor, currency, reason, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(order_id)
    .bind(customer_id)
    .bind(status)
    .bind(payment_id)
    .bind(amount.amount_minor)
    .bind(&amount.currency)
    .bind(reason)
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mark_refunded(
    conn: &mut AnyConnection,
    order_id: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payments SET status = 'REFUNDED', reason = $1, updated_at = $2 WHERE order_id = $3",
    )
    .bind(reason)
    .bind(orderflow_runtime::now_millis())
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn view(
    pool: &AnyPool,
    order_id: &str,
    ledger: (u32, u32),
) -> Result<Option<PaymentView>, sqlx::Error> {
    let row = sqlx::query("SELECT status, payment_id, amount_minor, currency, reason FROM payments WHERE order_id = $1")
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
