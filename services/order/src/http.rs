//! The order service's HTTP API, behind the gateway: place an order, read one.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use orderflow_api::{OrderAccepted, PlaceOrder};
use orderflow_envelope::{Address, Event, OrderCreated, OrderItem};
use orderflow_http::{Path, Problem, ProblemType, StrictJson};
use orderflow_runtime::telemetry::SagaMetrics;
use orderflow_runtime::{now_millis, Runtime};
use uuid::Uuid;

use crate::store;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Clone)]
pub struct AppState {
    pub rt: Arc<Runtime>,
    pub saga: SagaMetrics,
}

pub fn routes(rt: Arc<Runtime>, saga: SagaMetrics) -> Router {
    Router::new()
        .route("/v1/orders", post(place_order))
        .route("/v1/orders/{order_id}", get(get_order))
        .with_state(AppState { rt, saga })
}

fn accepted(order_id: &str, status: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/orders/{order_id}"))],
        Json(OrderAccepted {
            order_id: order_id.to_string(),
            status: status.to_string(),
        }),
    )
        .into_response()
}

/// Creates the order and its `OrderCreated` event in one transaction. With an
/// `Idempotency-Key`, a replay of the same body returns the same order and a
/// different body under the same key is refused.
async fn place_order(
    State(AppState { rt, saga }): State<AppState>,
    headers: HeaderMap,
    StrictJson(request): StrictJson<PlaceOrder>,
) -> Result<Response, Problem> {
    request.validate()?;
    let key = match headers.get(IDEMPOTENCY_KEY) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    Problem::validation("Idempotency-Key must be 1 to 255 visible ASCII characters")
                })?,
        ),
        None => None,
    };
    let order_id = Uuid::now_v7().to_string();
    tracing::Span::current().record("order.id", order_id.as_str());
    let now = now_millis();
    let mut tx = rt.db().pool().begin().await.map_err(Problem::internal)?;
    if let Some(key) = key {
        let fingerprint = request.fingerprint();
        if let Some(earlier) =
            store::claim_idempotency_key(&mut tx, key, &fingerprint, &order_id, now)
                .await
                .map_err(Problem::internal)?
        {
            tx.rollback().await.map_err(Problem::internal)?;
            if earlier.fingerprint != fingerprint {
                return Err(Problem::new(
                    ProblemType::IdempotencyKeyReused,
                    format!(
                        "Idempotency-Key {key} was used for order {} with a different body",
                        earlier.order_id
                    ),
                ));
            }
            let order = store::order_view(rt.db().pool(), &earlier.order_id)
                .await
                .map_err(Problem::internal)?;
            let status = order.map(|o| o.status).unwrap_or_else(|| "PENDING".into());
            return Ok(accepted(&earlier.order_id, &status));
        }
    }
    store::insert_order(
        &mut tx,
        &order_id,
        &request.customer_id,
        &request.items,
        now,
    )
    .await
    .map_err(Problem::internal)?;
    let event = Event::OrderCreated(created_event(&order_id, &request, now));
    let meta = rt
        .emit(&mut tx, &event, None)
        .await
        .map_err(|e| Problem::new(ProblemType::Unavailable, e.to_string()))?;
    store::record_history(
        &mut tx,
        &order_id,
        &meta.id,
        event.event_type(),
        &meta.source,
        now,
    )
    .await
    .map_err(Problem::internal)?;
    tx.commit().await.map_err(Problem::internal)?;
    rt.wake_relay();
    saga.orders_placed.inc();
    tracing::info!(order_id, customer_id = %request.customer_id, "order placed");
    Ok(accepted(&order_id, "PENDING"))
}

fn created_event(order_id: &str, request: &PlaceOrder, placed_at: i64) -> OrderCreated {
    let a = &request.shipping_address;
    OrderCreated {
        order_id: order_id.to_string(),
        customer_id: request.customer_id.clone(),
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
    }
}

async fn get_order(
    State(AppState { rt, .. }): State<AppState>,
    Path(order_id): Path<String>,
) -> Result<Response, Problem> {
    match store::order_view(rt.db().pool(), &order_id)
        .await
        .map_err(Problem::internal)?
    {
        Some(order) => Ok(Json(order).into_response()),
        None => Err(Problem::not_found(format!(
            "order {order_id} does not exist"
        ))),
    }
}
