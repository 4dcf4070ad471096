//! The shipping service's SQL.

use orderflow_runtime::sqlx::{self, AnyConnection};

pub async fn exists(conn: &mut AnyConnection, order_id: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT order_id FROM shipments WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

pub struct NewShipment<'a> {
    pub order_id: &'a str,
    pub status: &'a str,
    pub shipment_id: Option<&'a str>,
    pub tracking_id: Option<&'a str>,
    pub carrier: &'a str,
    pub reason: Option<&'a str>,
}

pub async fn insert(conn: &mut AnyConnection, s: NewShipment<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO shipments (order_id, status, shipment_id, tracking_id, carrier, reason, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
    Ok(())
}
