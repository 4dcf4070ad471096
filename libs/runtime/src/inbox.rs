//! The idempotent consumer: a (consumer, event id) row written in the same
//! transaction as the handler's effects. A redelivered event finds its row and
//! changes nothing.

use sqlx::AnyConnection;

/// Records the event as received; false when it had been received before.
pub async fn first_delivery(
    conn: &mut AnyConnection,
    consumer: &str,
    event_id: &str,
    event_type: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO orderflow_inbox (consumer, event_id, event_type, received_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .bind(event_type)
    .bind(crate::now_millis())
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}
