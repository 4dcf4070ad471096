//! Inventory's part in the saga: reserve every line of a new order or none,
//! give a reservation back when payment or shipping fails, and let it go when
//! the order ships.

use async_trait::async_trait;
use orderflow_envelope::reasons::PROVIDER_UNAVAILABLE;
use orderflow_envelope::{
    Event, EventType, InventoryReleased, InventoryReserved, InventoryUnavailable, OrderCreated,
    ReservedLine,
};
use orderflow_runtime::sql::Connection;
use orderflow_runtime::{Handler, HandlerCtx, HandlerError};

use crate::{domain, store};

pub struct InventoryHandler;

#[async_trait]
impl Handler for InventoryHandler {
    fn handles(&self, event_type: EventType) -> bool {
        matches!(
            event_type,
            EventType::OrderCreated
                | EventType::PaymentFailed
                | EventType::ShipmentFailed
                | EventType::ShipmentCreated
        )
    }

    async fn handle(&self, event: Event, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        match event {
            Event::OrderCreated(order) => reserve_lines(order, ctx).await,
            Event::PaymentFailed(e) => {
                let reason = if e.reason == PROVIDER_UNAVAILABLE {
                    "PAYMENT_UNAVAILABLE"
                } else {
                    "PAYMENT_DECLINED"
                };
                release(&e.order_id, &e.customer_id, reason, ctx).await
            }
            Event::ShipmentFailed(e) => {
                release(&e.order_id, &e.customer_id, "SHIPPING_FAILED", ctx).await
            }
            Event::ShipmentCreated(e) => ship(&e.order_id, ctx).await,
            _ => Ok(()),
        }
    }

    /// Every order of a batch takes or gives back stock of a few SKUs: the
    /// stock rows of all of them are locked first, in SKU order.
    async fn lock_rows(
        &self,
        events: &[&Event],
        conn: &mut Connection,
    ) -> Result<(), HandlerError> {
        let mut skus: Vec<String> = Vec::new();
        let mut holding: Vec<&str> = Vec::new();
        for event in events {
            match event {
                Event::OrderCreated(o) => skus.extend(o.items.iter().map(|i| i.sku.clone())),
                other => holding.push(other.order_id()),
            }
        }
        skus.extend(store::skus_held(conn, &holding).await?);
        store::lock_stock(conn, skus).await?;
        Ok(())
    }
}

/// Reserves all lines atomically: each line is a conditional update; if any
/// fails, the ones taken are given back in the same transaction. An order
/// decided before is not reserved for again, whatever the inbox remembers.
async fn reserve_lines(order: OrderCreated, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
    if let Some(outcome) = store::decision(ctx.tx, &order.order_id).await? {
        tracing::info!(order_id = %order.order_id, outcome, "this order was decided before; nothing reserved again");
        return Ok(());
    }
    let lines = domain::merge_lines(&order.items);
    let mut taken = Vec::new();
    let mut missing = Vec::new();
    for line in &lines {
        match store::take(ctx.tx, &line.sku, i64::from(line.quantity)).await? {
            Some(unit_price) => taken.push((line, unit_price)),
            None if store::in_catalogue(ctx.tx, &line.sku).await? => {
                missing.push(line.sku.clone())
            }
            // The gateway lets no order in with an unknown SKU: one here is a
            // broken invariant (a catalogue entry gone, an order from another
            // channel), not an out-of-stock. Dead-lettered, the order waits
            // until the SKU is added and the dead letter replayed.
            None => {
                return Err(HandlerError::Permanent(format!(
                    "SKU {} of order {} is not in the catalogue: add it (PUT /v1/inventory/{}) and replay this dead letter",
                    line.sku, order.order_id, line.sku
                )))
            }
        }
    }
    if !missing.is_empty() {
        for (line, _) in taken {
            store::give_back(ctx.tx, &line.sku, i64::from(line.quantity)).await?;
        }
        tracing::info!(order_id = %order.order_id, ?missing, "out of stock");
        store::record_decision(ctx.tx, &order.order_id, "UNAVAILABLE").await?;
        ctx.emit(InventoryUnavailable {
            order_id: order.order_id,
            customer_id: order.customer_id,
            missing_skus: missing,
        });
        return Ok(());
    }
    let mut reserved = Vec::with_capacity(lines.len());
    for (line, unit_price) in taken {
        store::insert_reservation(ctx.tx, &order.order_id, line).await?;
        reserved.push(ReservedLine {
            sku: line.sku.clone(),
            quantity: line.quantity,
            unit_price,
        });
    }
    let total = domain::total(&reserved).map_err(HandlerError::Permanent)?;
    store::record_decision(ctx.tx, &order.order_id, "RESERVED").await?;
    ctx.emit(InventoryReserved {
        order_id: order.order_id,
        customer_id: order.customer_id,
        lines: reserved,
        total,
        payment_token: order.payment_token,
        shipping_address: order.shipping_address,
    });
    Ok(())
}

/// Compensation: the held lines go back to available stock.
async fn release(
    order_id: &str,
    customer_id: &str,
    reason: &str,
    ctx: &mut HandlerCtx<'_>,
) -> Result<(), HandlerError> {
    let held = store::settle_reservation(ctx.tx, order_id, "RELEASED").await?;
    if held.is_empty() {
        return Ok(()); // nothing held (already released or shipped)
    }
    for line in &held {
        store::give_back(ctx.tx, &line.sku, i64::from(line.quantity)).await?;
    }
    ctx.emit(InventoryReleased {
        order_id: order_id.to_string(),
        customer_id: customer_id.to_string(),
        lines: held,
        reason: reason.to_string(),
    });
    Ok(())
}

/// The goods left: reserved units are no longer stock.
async fn ship(order_id: &str, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
    for line in store::settle_reservation(ctx.tx, order_id, "SHIPPED").await? {
        store::ship(ctx.tx, &line.sku, i64::from(line.quantity)).await?;
    }
    Ok(())
}
