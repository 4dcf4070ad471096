//! The shipping service's SQL.

use orderflow_runtime::sql::{self, Connection};
use orderflow_runtime::sqlx;

pub struct NewShipment<'a> {
    pub order_id: &'a str,
    pub status: &'a str,
    pub shipment_id: Option<&'a str>,
    pub tracking_id: Option<&'a str>,
    pub carrier: &'a str,
    pub reason: Option<&'a str>,
}

/// Records the order's shipment; false if it had one already.
pub async fn insert(conn: &mut Connection, s: NewShipment<'_>) -> Result<bool, sqlx::Error> {
    let result = sql::query(
        "INSERT INTO shipments (order_id, status, shipment_id, tracking_id, carrier, reason, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(s.order_id)
    .bind(s.status)
    .bind(s.shipment_id)
    .bind(s.tracking_id)
    .bind(s.carrier)
    .bind(s.reason)
    .bind(orderflow_runtime::now_millis())
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}
