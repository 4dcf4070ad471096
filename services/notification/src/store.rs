//! The notification service's SQL.

use orderflow_api::NotificationView;
use orderflow_runtime::sqlx::{self, AnyConnection, AnyPool, Row};

use crate::domain::Notification;

pub const SENT: &str = "SENT";

/// The notification's status (PENDING or SENT), if it was recorded.
pub async fn status(
    conn: &mut AnyConnection,
    order_id: &str,
    kind: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("SELECT status FROM notifications WHERE order_id = $1 AND kind = $2")
        .bind(order_id)
        .bind(kind)
        .fetch_optional(conn)
        .await?
        .map(|r| r.try_get("status"))
        .transpose()
}

/// Records the intent to send `n`; false if it was recorded before.
pub async fn record_pending(
    conn: &mut AnyConnection,
    n: &Notification,
    channel: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO notifications (notification_id, order_id, customer_id, kind, channel, message, sent_at, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'PENDING') ON CONFLICT DO NOTHING",
    )
    .bind(&n.notification_id)
    .bind(&n.order_id)
    .bind(&n.customer_id)
    .bind(n.kind)
    .bind(channel)
    .bind(&n.message)
    .bind(orderflow_runtime::now_millis())
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The channel took it; false if it was marked sent already.
pub async fn mark_sent(
    conn: &mut AnyConnection,
    notification_id: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE notifications SET status = 'SENT', sent_at = $1 WHERE notification_id = $2 AND status = 'PENDING'",
    )
    .bind(orderflow_runtime::now_millis())
    .bind(notification_id)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// A customer's notifications, newest first.
pub async fn for_customer(
    pool: &AnyPool,
    customer_id: &str,
) -> Result<Vec<NotificationView>, sqlx::Error> {
    let rows = sqlx::query(
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
