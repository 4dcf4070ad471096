//! The order service's HTTP API, behind the gateway: place an order, read one.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use orderflow_api::{
    CustomerId, CustomerOrdersPage, IdKind, OrderAccepted, OrderChanges, OrderId, OrdersList,
    PlaceOrder,
};
use orderflow_auth::{require_own, Principal};
use orderflow_http::{Path, Problem, ProblemType, StrictJson};
use orderflow_runtime::group_commit::GroupCommit;
use orderflow_runtime::telemetry::SagaMetrics;
use orderflow_runtime::{now_millis, HandlerError, Runtime};
use uuid::Uuid;

use crate::feeds::{self, Scope};
use crate::placement::{Placed, Placement};
use crate::store;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Clone)]
pub struct AppState {
    pub rt: Arc<Runtime>,
    pub saga: SagaMetrics,
    pub placements: GroupCommit<Placement>,
}

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/orders", post(place_order).get(newest_orders))
        .route("/v1/orders/summary", get(overview))
        .route("/v1/order-changes", get(changes))
        .route("/v1/orders/{order_id}", get(get_order))
        .route("/v1/customers/{customer_id}/orders", get(customer_orders))
        .with_state(state)
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
/// `Idempotency-Key`, a replay of the same body within a day returns the same
/// order and a different body under the same key is refused.
async fn place_order(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    StrictJson(mut request): StrictJson<PlaceOrder>,
) -> Result<Response, Problem> {
    request.on_behalf_of(&caller)?;
    request.validate()?;
    let key = match headers.get(IDEMPOTENCY_KEY) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255 && !k.contains('\u{1f}'))
                .ok_or_else(|| {
                    Problem::validation("Idempotency-Key must be 1 to 255 visible ASCII characters")
                })?
                .to_string(),
        ),
        None => None,
    };
    let order_id = Uuid::now_v7().to_string();
    tracing::Span::current().record("order.id", order_id.as_str());
    let placement = Placement::new(request, key.clone(), order_id, now_millis());
    let (placement, result) = state.placements.run(placement).await;
    match result {
        Ok(()) => {}
        Err(HandlerError::Transient(e)) => return Err(Problem::new(ProblemType::Unavailable, e)),
        Err(HandlerError::Permanent(e)) => return Err(Problem::internal(e)),
    }
    let placement = placement.expect("a committed placement comes back");
    match placement.placed {
        Placed::New => {
            state.saga.orders_placed.inc();
            Ok(accepted(&placement.order_id, "PENDING"))
        }
        Placed::Replay { order_id, status } => Ok(accepted(&order_id, &status)),
        Placed::KeyReused => Err(Problem::new(
            ProblemType::IdempotencyKeyReused,
            format!(
                "Idempotency-Key {} was used before with a different body: use a new key for a new order",
                key.unwrap_or_default()
            ),
        )),
        Placed::Pending => Err(Problem::internal("the order was not placed")),
    }
}

/// An order; someone else's is "not found", as an unknown one is.
async fn get_order(
    State(AppState { rt, .. }): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(order_id): Path<OrderId>,
) -> Result<Response, Problem> {
    match store::order_view(rt.db().reader(), order_id.as_str())
        .await
        .map_err(Problem::internal)?
    {
        Some(order) if caller.may_see(&order.customer_id) => Ok(Json(order).into_response()),
        _ => Err(Problem::not_found(format!(
            "order {order_id} does not exist"
        ))),
    }
}

/// A page of the customer's orders.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    /// Orders per page: 1 to 100, 20 by default.
    limit: Option<i64>,
    /// From a previous page's `next_cursor`.
    cursor: Option<String>,
}

/// The customer's orders, newest first, a page at a time.
async fn customer_orders(
    State(AppState { rt, .. }): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(customer_id): Path<CustomerId>,
    query: Result<axum::extract::Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    require_own(&caller, customer_id.as_str())?;
    let axum::extract::Query(query) =
        query.map_err(|e| Problem::validation(format!("query: {}", e.body_text())))?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Problem::validation(format!(
            "limit must be between 1 and 100, got {limit}"
        )));
    }
    let after = match &query.cursor {
        Some(c) => Some(store::Cursor::decode(c).ok_or_else(|| {
            Problem::validation("cursor is not one this API gave out: use a page's next_cursor")
        })?),
        None => None,
    };
    let mut rows = store::customer_orders(
        rt.db().reader(),
        customer_id.as_str(),
        after.as_ref(),
        limit + 1,
    )
    .await
    .map_err(Problem::internal)?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|(cursor, _)| cursor.encode())
    } else {
        None
    };
    Ok(Json(CustomerOrdersPage {
        orders: rows.into_iter().map(|(_, order)| order).collect(),
        next_cursor,
    })
    .into_response())
}

/// Which orders a read across customers covers, and how many.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedQuery {
    customer_id: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
    /// `GET /v1/order-changes`: changes made at or after this time (ms)…
    since: Option<i64>,
    /// …and after this one (the last of a full page): its time, order, status.
    after_at: Option<i64>,
    after_order_id: Option<String>,
    after_status: Option<String>,
}

type Query = Result<axum::extract::Query<FeedQuery>, axum::extract::rejection::QueryRejection>;

impl FeedQuery {
    /// The query, its scope and its limit. A customer's scope is their own
    /// orders, whatever the query named.
    fn read(query: Query, caller: &Principal, max: i64) -> Result<(Self, Scope, i64), Problem> {
        let axum::extract::Query(q) =
            query.map_err(|e| Problem::validation(format!("query: {}", e.body_text())))?;
        let limit = q.limit.unwrap_or(max.min(100));
        if !(1..=max).contains(&limit) {
            return Err(Problem::validation(format!(
                "limit must be between 1 and {max}, got {limit}"
            )));
        }
        for (field, id, kind) in [
            ("customer_id", &q.customer_id, IdKind::Customer),
            ("after_order_id", &q.after_order_id, IdKind::Order),
        ] {
            if let Some(why) = id.as_deref().and_then(|id| kind.error(id)) {
                return Err(Problem::validation(format!("{field}: {why}")));
            }
        }
        if let Some(status) = &q.status {
            if crate::domain::Status::from_name(status).is_none() {
                return Err(Problem::validation(format!(
                    "status {status:?} is none of PENDING, RESERVED, PAID, SHIPPED, CANCELLED, REFUND_PENDING"
                )));
            }
        }
        let customer_id = if caller.is_operator() {
            q.customer_id.clone()
        } else {
            Some(caller.subject.clone())
        };
        let scope = Scope {
            customer_id,
            status: q.status.clone(),
        };
        Ok((q, scope, limit))
    }
}

/// The newest orders (every customer's, or one's), newest first.
async fn newest_orders(
    State(AppState { rt, .. }): State<AppState>,
    Extension(caller): Extension<Principal>,
    query: Query,
) -> Result<Json<OrdersList>, Problem> {
    let (_, scope, limit) = FeedQuery::read(query, &caller, 500)?;
    let orders = feeds::newest(rt.db().reader(), &scope, limit)
        .await
        .map_err(Problem::internal)?;
    Ok(Json(OrdersList { orders }))
}

/// Status changes since a moment, oldest first.
async fn changes(
    State(AppState { rt, .. }): State<AppState>,
    Extension(caller): Extension<Principal>,
    query: Query,
) -> Result<Json<OrderChanges>, Problem> {
    let (q, scope, limit) = FeedQuery::read(query, &caller, 5_000)?;
    let since = q
        .since
        .ok_or_else(|| Problem::validation("since (milliseconds since the epoch) is required"))?;
    let after = match (q.after_at, q.after_order_id, q.after_status) {
        (Some(at), Some(order_id), Some(status)) => Some((at, order_id, status)),
        (None, None, None) => None,
        _ => {
            return Err(Problem::validation(
                "after_at, after_order_id and after_status go together",
            ))
        }
    };
    let changes = feeds::changes_since(rt.db().reader(), &scope, since, after, limit)
        .await
        .map_err(Problem::internal)?;
    Ok(Json(OrderChanges {
        changes: changes.into_iter().map(|(_, c)| c).collect(),
    }))
}

/// Orders by status and reason, and placed per second over the last minute.
async fn overview(
    State(AppState { rt, .. }): State<AppState>,
    Extension(caller): Extension<Principal>,
    query: Query,
) -> Result<Json<orderflow_api::OrdersOverview>, Problem> {
    let (_, scope, _) = FeedQuery::read(query, &caller, 500)?;
    feeds::overview(rt.db().reader(), &scope, now_millis())
        .await
        .map(Json)
        .map_err(Problem::internal)
}
