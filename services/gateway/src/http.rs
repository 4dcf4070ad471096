//! The public API (v1). The gateway checks who is calling and what they may
//! do, and what it can of the request before anything is written (shape,
//! unknown fields, values, SKUs), then hands it to the service that owns it.
//! A customer acts as themselves and sees only their own orders and
//! notifications (someone else's are "not found", so ids tell nothing);
//! stock, prices and payments are operators' business.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::future::try_join_all;
use orderflow_api::{unknown_sku, CustomerId, OrderId, OrderView, PlaceOrder, SetStock, Sku};
use orderflow_auth::Principal;
use orderflow_http::{Path, Problem, ProblemType, StrictJson};
use reqwest::Method;

use std::sync::Arc;

use crate::auth::{require_operator, require_own, Bearer};
use crate::catalogue::KnownSkus;
use crate::limits::RateLimiter;
use crate::orders_feed;
use crate::upstream::Upstream;

#[derive(Clone)]
pub struct Upstreams {
    pub order: Upstream,
    pub inventory: Upstream,
    pub notification: Upstream,
    pub payment: Upstream,
    pub known_skus: Arc<KnownSkus>,
    pub orders_limit: Arc<RateLimiter>,
    /// Cancelled when the gateway stops: open order streams end.
    pub stop: tokio_util::sync::CancellationToken,
    pub stream_slots: Arc<crate::limits::Slots>,
}

const OPENAPI: &str = include_str!("../openapi.json");

pub fn routes(upstreams: Upstreams) -> Router {
    Router::new()
        .route("/v1/me", get(orders_feed::me))
        .route("/v1/orders", post(place_order).get(orders_feed::newest))
        .route("/v1/orders/summary", get(orders_feed::summary))
        .route("/v1/orders/stream", get(orders_feed::stream))
        .route("/v1/orders/{order_id}", get(get_order))
        .route(
            "/v1/customers/{customer_id}/notifications",
            get(list_notifications),
        )
        .route("/v1/customers/{customer_id}/orders", get(list_orders))
        .route("/v1/inventory", get(list_stock))
        .route("/v1/inventory/{sku}", get(get_stock).put(put_stock))
        .route("/v1/payments/{order_id}", get(get_payment))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .with_state(upstreams)
}

async fn place_order(
    State(u): State<Upstreams>,
    Extension(caller): Extension<Principal>,
    Extension(bearer): Extension<Bearer>,
    headers: HeaderMap,
    StrictJson(mut order): StrictJson<PlaceOrder>,
) -> Result<Response, Problem> {
    let limit_headers = u.orders_limit.check(&caller.subject)?;
    order.on_behalf_of(&caller)?;
    order.validate()?;
    check_skus(&u.inventory, &bearer, &u.known_skus, &order).await?;
    let mut request = u
        .order
        .request(&bearer, Method::POST, &["v1", "orders"])?
        .json(&order);
    if let Some(key) = headers.get("idempotency-key") {
        request = request.header("idempotency-key", key.as_bytes());
    }
    let mut response = u.order.relay(request).await?;
    for (name, value) in limit_headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// Every SKU of the order must be in the catalogue (unknown → 422).
async fn check_skus(
    inventory: &Upstream,
    caller: &Bearer,
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
            .send(inventory.request(caller, Method::GET, &["v1", "inventory", sku])?)
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

/// Someone else's order is "not found", as an unknown one is.
fn not_found(order_id: &str) -> Problem {
    Problem::not_found(format!("order {order_id} does not exist"))
}

async fn get_order(
    State(u): State<Upstreams>,
    Extension(caller): Extension<Principal>,
    Extension(bearer): Extension<Bearer>,
    Path(order_id): Path<OrderId>,
) -> Result<Response, Problem> {
    let order = visible_order(&u, &caller, &bearer, order_id.as_str()).await?;
    Ok(Json(order).into_response())
}

/// The order, if `caller` may see it; "not found" if not, as an unknown one.
pub(crate) async fn visible_order(
    u: &Upstreams,
    caller: &Principal,
    bearer: &Bearer,
    order_id: &str,
) -> Result<OrderView, Problem> {
    let o = &u.order;
    let response = o
        .send(o.request(bearer, Method::GET, &["v1", "orders", order_id])?)
        .await
        .map_err(|e| o.unavailable(e))?;
    match response.status().as_u16() {
        200 => {}
        404 => return Err(not_found(order_id)),
        status => return Err(o.answered(status)),
    }
    let order: OrderView = response.json().await.map_err(|e| o.unavailable(e))?;
    if !caller.may_see(&order.customer_id) {
        return Err(not_found(order_id));
    }
    Ok(order)
}

/// The customer's orders, a page at a time (`limit`, `cursor`), from the
/// order service's projection.
async fn list_orders(
    State(u): State<Upstreams>,
    Extension(caller): Extension<Principal>,
    Extension(bearer): Extension<Bearer>,
    Path(customer_id): Path<CustomerId>,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let customer_id = customer_id.as_str();
    require_own(&caller, customer_id)?;
    let o = &u.order;
    let mut request = o.request(
        &bearer,
        Method::GET,
        &["v1", "customers", customer_id, "orders"],
    )?;
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
    Extension(caller): Extension<Principal>,
    Extension(bearer): Extension<Bearer>,
    Path(customer_id): Path<CustomerId>,
) -> Result<Response, Problem> {
    let customer_id = customer_id.as_str();
    require_own(&caller, customer_id)?;
    let n = &u.notification;
    n.relay(n.request(
        &bearer,
        Method::GET,
        &["v1", "customers", customer_id, "notifications"],
    )?)
    .await
}

/// Every SKU's stock and price: an operator call.
async fn list_stock(
    State(u): State<Upstreams>,
    Extension(caller): Extension<Principal>,
    Extension(bearer): Extension<Bearer>,
) -> Result<Response, Problem> {
    require_operator(&caller)?;
    let i = &u.inventory;
    i.relay(i.request(&bearer, Method::GET, &["v1", "inventory"])?)
        .await
}

/// One SKU's stock and price: any caller.
async fn get_stock(
    State(u): State<Upstreams>,
    Extension(bearer): Extension<Bearer>,
    Path(sku): Path<Sku>,
) -> Result<Response, Problem> {
    let i = &u.inventory;
    i.relay(i.request(&bearer, Method::GET, &["v1", "inventory", sku.as_str()])?)
        .await
}

/// Stock and price: an operator call.
async fn put_stock(
    State(u): State<Upstreams>,
    Extension(caller): Extension<Principal>,
    Extension(bearer): Extension<Bearer>,
    Path(sku): Path<Sku>,
    StrictJson(body): StrictJson<SetStock>,
) -> Result<Response, Problem> {
    require_operator(&caller)?;
    body.validate()?;
    let request = u
        .inventory
        .request(&bearer, Method::PUT, &["v1", "inventory", sku.as_str()])?
        .json(&body);
    Ok(u.inventory.relay(request).await?.into_response())
}

/// A payment as the payment service records it, with the provider's
/// ledger: an operator call.
async fn get_payment(
    State(u): State<Upstreams>,
    Extension(caller): Extension<Principal>,
    Extension(bearer): Extension<Bearer>,
    Path(order_id): Path<OrderId>,
) -> Result<Response, Problem> {
    require_operator(&caller)?;
    let p = &u.payment;
    p.relay(p.request(&bearer, Method::GET, &["v1", "payments", order_id.as_str()])?)
        .await
}

#[cfg(test)]
mod tests {
    use orderflow_api::*;
    use serde_json::Value;

    /// The published document states the limits the gateway enforces, and
    /// that every /v1 call needs a bearer token.
    #[test]
    fn the_openapi_document_states_the_real_limits_and_the_security() {
        let doc: Value = serde_json::from_str(super::OPENAPI).unwrap();
        assert_eq!(
            doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
            "bearer"
        );
        assert_eq!(doc["security"][0]["bearerAuth"], serde_json::json!([]));
        let order = &doc["components"]["schemas"]["PlaceOrder"]["properties"];
        assert_eq!(order["customer_id"]["maxLength"], MAX_ID_LEN);
        assert_eq!(
            order["customer_email"]["maxLength"],
            orderflow_api::MAX_EMAIL_LEN
        );
        assert_eq!(order["items"]["maxItems"], MAX_LINES);
        assert_eq!(
            order["items"]["items"]["properties"]["sku"]["maxLength"],
            MAX_ID_LEN
        );
        assert_eq!(
            order["items"]["items"]["properties"]["quantity"]["maximum"],
            MAX_QUANTITY
        );
        assert_eq!(
            order["payment"]["properties"]["token"]["maxLength"],
            MAX_ID_LEN
        );
        let address = &order["shipping_address"]["properties"];
        assert_eq!(address["line1"]["maxLength"], MAX_TEXT_LEN);
        assert_eq!(address["postal_code"]["maxLength"], MAX_POSTAL_CODE_LEN);
        let required = doc["components"]["schemas"]["PlaceOrder"]["required"].to_string();
        assert!(
            !required.contains("customer_id"),
            "the token says who the customer is"
        );
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let public = op.get("security") == Some(&serde_json::json!([]));
                assert_eq!(public, !path.starts_with("/v1/"), "{method} {path}");
                if !public {
                    assert!(
                        op["responses"]["401"].is_object(),
                        "{method} {path} lists 401"
                    );
                }
            }
        }
        // Every id a path or filter names states its grammar, and its 422.
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap_or_default();
                    if ["order_id", "sku", "customer_id"].contains(&name) {
                        assert!(p["schema"]["pattern"].is_string(), "{method} {path} {name}");
                        assert!(op["responses"]["422"].is_object(), "{method} {path}");
                    }
                }
                if path.starts_with("/v1/") {
                    assert!(op["responses"]["429"].is_object(), "{method} {path}");
                }
            }
        }
        assert_eq!(
            doc["paths"]["/v1/orders/{order_id}"]["get"]["parameters"][0]["schema"]["maxLength"],
            36
        );
        for (path, method) in [
            ("/v1/inventory/{sku}", "put"),
            ("/v1/inventory", "get"),
            ("/v1/payments/{order_id}", "get"),
            ("/v1/dead-letters", "get"),
            ("/v1/dead-letters/{service}/{partition}/{offset}", "get"),
            (
                "/v1/dead-letters/{service}/{partition}/{offset}/replay",
                "post",
            ),
        ] {
            assert!(
                doc["paths"][path][method]["responses"]["403"].is_object(),
                "{method} {path}"
            );
        }
    }
}
