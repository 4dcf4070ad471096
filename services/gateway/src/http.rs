//! The public API (v1). The gateway checks what it can before anything is
//! written (shape, unknown fields, values, SKUs), then hands the request to
//! the service that owns it.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::future::try_join_all;
use orderflow_api::{unknown_sku, PlaceOrder, SetStock};
use orderflow_http::{Path, Problem, ProblemType, StrictJson};
use reqwest::Method;

use std::sync::Arc;

use crate::catalogue::KnownSkus;
use crate::upstream::Upstream;

#[derive(Clone)]
pub struct Upstreams {
    pub order: Upstream,
    pub inventory: Upstream,
    pub notification: Upstream,
    pub known_skus: Arc<KnownSkus>,
}

const OPENAPI: &str = include_str!("../openapi.json");

pub fn routes(upstreams: Upstreams) -> Router {
    Router::new()
        .route("/v1/orders", post(place_order))
        .route("/v1/orders/{order_id}", get(get_order))
        .route(
            "/v1/customers/{customer_id}/notifications",
            get(list_notifications),
        )
        .route("/v1/customers/{customer_id}/orders", get(list_orders))
        .route("/v1/inventory/{sku}", get(get_stock).put(put_stock))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .with_state(upstreams)
}

async fn place_order(
    State(u): State<Upstreams>,
    headers: HeaderMap,
    StrictJson(order): StrictJson<PlaceOrder>,
) -> Result<Response, Problem> {
    order.validate()?;
    check_skus(&u.inventory, &u.known_skus, &order).await?;
    let mut request = u
        .order
        .request(Method::POST, &["v1", "orders"])
        .json(&order);
    if let Some(key) = headers.get("idempotency-key") {
        request = request.header("idempotency-key", key.as_bytes());
    }
    u.order.relay(request).await
}

/// Every SKU of the order must be in the catalogue (unknown → 422).
async fn check_skus(
    inventory: &Upstream,
    known: &KnownSkus,
    order: &PlaceOrder,
) -> Result<(), Problem> {
    let mut skus: Vec<&str> = order
        .items
        .iter()
        .map(|l| l.sku.as_str())
        .filter(|sku| !known.contains(sku))
        .collect();
    skus.sort_unstable();
    skus.dedup();
    let lookups = skus.iter().map(|sku| async move {
        let response = inventory
            .send(inventory.request(Method::GET, &["v1", "inventory", sku]))
            .await
            .map_err(|e| inventory.unavailable(e))?;
        match response.status().as_u16() {
            200 => {
                known.remember(sku);
                Ok(())
            }
            404 => Err(unknown_sku(sku)),
            status => Err(Problem::new(
                ProblemType::Unavailable,
                format!("the inventory service answered {status} for SKU {sku}"),
            )),
        }
    });
    try_join_all(lookups).await.map(|_| ())
}

async fn get_order(
    State(u): State<Upstreams>,
    Path(order_id): Path<String>,
) -> Result<Response, Problem> {
    u.order
        .relay(u.order.request(Method::GET, &["v1", "orders", &order_id]))
        .await
}

/// The customer's orders, a page at a time (`limit`, `cursor`), from the
/// order service's projection.
async fn list_orders(
    State(u): State<Upstreams>,
    Path(customer_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let o = &u.order;
    let mut request = o.request(Method::GET, &["v1", "customers", &customer_id, "orders"]);
    if let Some(query) = query {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        request = request.query(&pairs);
    }
    o.relay(request).await
}

async fn list_notifications(
    State(u): State<Upstreams>,
    Path(customer_id): Path<String>,
) -> Result<Response, Problem> {
    let n = &u.notification;
    n.relay(n.request(
        Method::GET,
        &["v1", "customers", &customer_id, "notifications"],
    ))
    .await
}

async fn get_stock(
    State(u): State<Upstreams>,
    Path(sku): Path<String>,
) -> Result<Response, Problem> {
    u.inventory
        .relay(u.inventory.request(Method::GET, &["v1", "inventory", &sku]))
        .await
}

async fn put_stock(
    State(u): State<Upstreams>,
    Path(sku): Path<String>,
    StrictJson(body): StrictJson<SetStock>,
) -> Result<Response, Problem> {
    body.validate()?;
    let request = u
        .inventory
        .request(Method::PUT, &["v1", "inventory", &sku])
        .json(&body);
    Ok(u.inventory.relay(request).await?.into_response())
}
