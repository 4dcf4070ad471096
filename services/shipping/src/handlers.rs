//! Shipping's part in the saga: book a shipment for every paid order.

use async_trait::async_trait;
use orderflow_envelope::{Event, EventType, ShipmentCreated, ShipmentFailed};
use orderflow_runtime::{Handler, HandlerCtx, HandlerError};

use crate::domain::{Booking, Carrier};
use crate::store::{self, NewShipment};

pub struct ShippingHandler {
    pub carrier: Carrier,
}

#[async_trait]
impl Handler for ShippingHandler {
    fn handles(&self, event_type: EventType) -> bool {
        event_type == EventType::PaymentProcessed
    }

    async fn handle(&self, event: Event, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        let Event::PaymentProcessed(paid) = event else {
            return Ok(());
        };
        let order_id = paid.order_id.clone();
        let carrier = self.carrier.name.as_str();
        match self.carrier.book(&order_id, &paid.shipping_address.country) {
            Booking::Accepted {
                shipment_id,
                tracking_id,
            } => {
                let new = NewShipment {
                    order_id: &order_id,
                    status: "CREATED",
                    shipment_id: Some(&shipment_id),
                    tracking_id: Some(&tracking_id),
                    carrier,
                    reason: None,
                };
                if !store::insert(ctx.tx, new).await? {
                    return Ok(()); // booked already
                }
                ctx.emit(ShipmentCreated {
                    order_id,
                    customer_id: paid.customer_id,
                    shipment_id,
                    tracking_id,
                    carrier: carrier.to_string(),
                });
            }
            Booking::Refused { reason } => {
                let new = NewShipment {
                    order_id: &order_id,
                    status: "FAILED",
                    shipment_id: None,
                    tracking_id: None,
                    carrier,
                    reason: Some(&reason),
                };
                if !store::insert(ctx.tx, new).await? {
                    return Ok(()); // refused already
                }
                ctx.emit(ShipmentFailed {
                    order_id,
                    customer_id: paid.customer_id,
                    reason,
                });
            }
        }
        Ok(())
    }
}
