//! Placing an order: the order row, its first history entry, the claim of
//! its `Idempotency-Key` and its `OrderCreated` event, in one transaction.
//! Requests arriving together share a transaction (group commit), so a burst
//! of orders costs a few commits instead of one each.

use async_trait::async_trait;
use orderflow_api::PlaceOrder;
use orderflow_envelope::{Address, Event, OrderCreated, OrderItem};
use orderflow_runtime::group_commit::{Failed, Tx, Work};
use orderflow_runtime::Emitter;
use tracing::Instrument;

use crate::domain::Status;
use crate::store;

pub struct PlacementContext {
    pub emitter: Emitter,
    /// How long an `Idempotency-Key` stands for its order.
    pub key_ttl_ms: i64,
}

/// What placing the order came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    Pending,
    /// A new order.
    New,
    /// The key was used for the same request: that order, with its status.
    Replay {
        order_id: String,
        status: String,
    },
    /// The key was used for a different request (which order is not said:
    /// the answer must not name an order the request did not place).
    KeyReused,
}

pub struct Placement {
    request: PlaceOrder,
    key: Option<String>,
    pub order_id: String,
    placed_at: i64,
    span: tracing::Span,
    pub placed: Placed,
}

impl Placement {
    pub fn new(request: PlaceOrder, key: Option<String>, order_id: String, placed_at: i64) -> Self {
        Self {
            request,
            key,
            order_id,
            placed_at,
            // The request's span: the event's trace context comes from it.
            span: tracing::Span::current(),
            placed: Placed::Pending,
        }
    }

    async fn apply_one(&mut self, ctx: &PlacementContext, tx: &mut Tx<'_>) -> Result<(), Failed> {
        self.placed = Placed::Pending;
        if let Some(key) = &self.key {
            let fingerprint = self.request.fingerprint();
            // Keys are the customer's own: another customer's same key is
            // another key (and never tells one customer of another's order).
            let scoped = format!("{}\u{1f}{key}", self.request.customer());
            if let Some(earlier) = store::claim_idempotency_key(
                tx.conn,
                &scoped,
                &fingerprint,
                &self.order_id,
                self.placed_at,
                ctx.key_ttl_ms,
            )
            .await?
            {
                self.placed = if earlier.fingerprint != fingerprint {
                    Placed::KeyReused
                } else {
                    let status = store::status(tx.conn, &earlier.order_id)
                        .await?
                        .unwrap_or_else(|| "PENDING".into());
                    Placed::Replay {
                        order_id: earlier.order_id,
                        status,
                    }
                };
                return Ok(());
            }
        }
        let event =
            Event::OrderCreated(created_event(&self.order_id, &self.request, self.placed_at));
        let meta = ctx
            .emitter
            .emit(tx, &event, None)
            .await
            .map_err(|e| Failed {
                item: None,
                error: e,
            })?;
        store::insert_order(
            tx.conn,
            &self.order_id,
            self.request.customer(),
            &self.request.items,
            self.placed_at,
            meta.trace_id(),
        )
        .await?;
        store::record_change(
            tx.conn,
            &self.order_id,
            Status::Pending,
            None,
            self.placed_at,
        )
        .await?;
        store::record_history(
            tx.conn,
            &self.order_id,
            &meta.id,
            event.event_type(),
            &meta.source,
            self.placed_at,
        )
        .await?;
        self.placed = Placed::New;
        Ok(())
    }
}

#[async_trait]
impl Work for Placement {
    type Context = PlacementContext;

    async fn apply(
        ctx: &PlacementContext,
        items: &mut [Self],
        tx: &mut Tx<'_>,
    ) -> Result<(), Failed> {
        for (i, item) in items.iter_mut().enumerate() {
            let span = item.span.clone();
            item.apply_one(ctx, tx)
                .instrument(span)
                .await
                .map_err(|f| Failed::at(i, f.error))?;
        }
        Ok(())
    }

    fn committed(&mut self) {
        if self.placed == Placed::New {
            tracing::info!(parent: &self.span, order_id = %self.order_id, customer_id = %self.request.customer(), "order placed");
        }
    }
}

fn created_event(order_id: &str, request: &PlaceOrder, placed_at: i64) -> OrderCreated {
    let a = &request.shipping_address;
    OrderCreated {
        order_id: order_id.to_string(),
        customer_id: request.customer().to_string(),
        // Validation bounds quantities far below i32::MAX.
        items: request
            .items
            .iter()
            .map(|l| OrderItem {
                sku: l.sku.clone(),
                quantity: l.quantity as i32,
            })
            .collect(),
        payment_token: request.payment.token.clone(),
        shipping_address: Address {
            name: a.name.clone(),
            line1: a.line1.clone(),
            city: a.city.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
        },
        placed_at,
        customer_email: request.customer_email.clone(),
    }
}
