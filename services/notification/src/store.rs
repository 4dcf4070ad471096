//! The notification service's SQL.

use orderflow_api::NotificationView;
use orderflow_runtime::sql::Reader;
use orderflow_runtime::sql::{self, Connection};
use orderflow_runtime::sqlx;

use crate::domain::Notification;

/// Recorded, the channel not yet called (or called, the answer not recorded).
pub const PENDING: &str = "PENDING";
/// Waiting for its order's OrderCreated to say where the email goes.
pub const WAITING: &str = "WAITING";

/// The notification's status (PENDING, WAITING, NO_ADDRESS or SENT), if it was recorded.
pub async fn status(
    conn: &mut Connection,
    order_id: &str,
    kind: &str,
) -> Result<Option<String>, sqlx::Error> {
    sql::query("SELECT status FROM notifications WHERE order_id = $1 AND kind = $2")
        .bind(order_id)
        .bind(kind)
        .fetch_optional(conn)
        .await?
        .map(|r| r.try_get("status"))
        .transpose()
}

/// Records `n` as `status` (PENDING: the intent to send it; WAITING: for
/// its address); false if it was recorded before.
pub async fn record(
    conn: &mut Connection,
    n: &Notification,
    channel: &str,
    status: &str,
) -> Result<bool, sqlx::Error> {
    let result = sql::query(
        "INSERT INTO notifications (notification_id, order_id, customer_id, kind, channel, message, sent_at, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(&n.notification_id)
    .bind(&n.order_id)
    .bind(&n.customer_id)
    .bind(n.kind)
    .bind(channel)
    .bind(&n.message)
    .bind(orderflow_runtime::now_millis())
    .bind(status)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// `order_id`'s notifications waiting for its address. They stay WAITING
/// until the channel took them ([`mark_sent`]): a send that fails is tried
/// again with its OrderCreated.
pub async fn waiting(
    conn: &mut Connection,
    order_id: &str,
) -> Result<Vec<Notification>, sqlx::Error> {
    let rows = sql::query(
        "SELECT kind, customer_id, message FROM notifications WHERE order_id = $1 AND status = 'WAITING' ORDER BY sent_at, kind",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    let mut waiting = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = row.try_get("kind")?;
        let customer_id: String = row.try_get("customer_id")?;
        let message: String = row.try_get("message")?;
        match Notification::recorded(&kind, order_id, &customer_id, message) {
            Some(n) => waiting.push(n),
            None => tracing::warn!(
                order_id,
                kind,
                "a waiting notification of a kind this version does not know: not sent"
            ),
        }
    }
    Ok(waiting)
}

/// The order has no address: what waited for one never goes.
pub async fn give_up_waiting(conn: &mut Connection, order_id: &str) -> Result<(), sqlx::Error> {
    sql::query(
        "UPDATE notifications SET status = 'NO_ADDRESS' WHERE order_id = $1 AND status = 'WAITING'",
    )
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The channel took it; false if it was marked sent already.
pub async fn mark_sent(conn: &mut Connection, notification_id: &str) -> Result<bool, sqlx::Error> {
    let result = sql::query(
        "UPDATE notifications SET status = 'SENT', sent_at = $1 WHERE notification_id = $2 AND status IN ('PENDING', 'WAITING')",
    )
    .bind(orderflow_runtime::now_millis())
    .bind(notification_id)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Remembers where `order_id`'s notifications go by email (`None`: nowhere).
pub async fn record_recipient(
    conn: &mut Connection,
    order_id: &str,
    email: Option<&str>,
) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO order_recipients (order_id, email) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(order_id)
    .bind(email)
    .execute(conn)
    .await?;
    Ok(())
}

/// Where `order_id`'s notifications go by email: `None` if its OrderCreated
/// was not seen yet, `Some(None)` if it has no address.
pub async fn recipient(
    conn: &mut Connection,
    order_id: &str,
) -> Result<Option<Option<String>>, sqlx::Error> {
    sql::query("SELECT email FROM order_recipients WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(conn)
        .await?
        .map(|r| r.try_get("email"))
        .transpose()
}

/// A customer's notifications, newest first.
pub async fn for_customer(
    pool: &Reader,
    customer_id: &str,
) -> Result<Vec<NotificationView>, sqlx::Error> {
    let rows = sql::query(
        "SELECT notification_id, order_id, kind, channel, message, sent_at FROM notifications
         WHERE customer_id = $1 AND status = 'SENT' ORDER BY sent_at DESC, notification_id DESC LIMIT 500",
    )
    .bind(customer_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let sent_at: i64 = r.try_get("sent_at")?;
            Ok(NotificationView {
                notification_id: r.try_get("notification_id")?,
                order_id: r.try_get("order_id")?,
                kind: r.try_get("kind")?,
                channel: r.try_get("channel")?,
                message: r.try_get("message")?,
                sent_at: chrono::DateTime::from_timestamp_millis(sent_at)
                    .unwrap_or_default()
                    .to_rfc3339(),
            })
        })
        .collect()
}
