//! The catalogue API: read a SKU's stock and price (any caller), or every
//! SKU's; set them (operator calls).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use orderflow_api::{SetStock, Sku, StockList, StockView};
use orderflow_auth::{require_operator, Principal};
use orderflow_http::{Path, Problem, StrictJson};
use orderflow_runtime::Runtime;

use crate::store;

pub fn routes(rt: Arc<Runtime>) -> Router {
    Router::new()
        .route("/v1/inventory", get(list_stock))
        .route("/v1/inventory/{sku}", get(get_stock).put(put_stock))
        .with_state(rt)
}

/// The whole catalogue, by SKU (the console's stock page): the first
/// 1,000 SKUs.
async fn list_stock(
    State(rt): State<Arc<Runtime>>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<StockList>, Problem> {
    require_operator(&caller)?;
    store::all_stock(rt.db().reader(), 1_000)
        .await
        .map(|items| Json(StockList { items }))
        .map_err(Problem::internal)
}

async fn get_stock(
    State(rt): State<Arc<Runtime>>,
    Path(sku): Path<Sku>,
) -> Result<Json<StockView>, Problem> {
    store::stock(rt.db().reader(), sku.as_str())
        .await
        .map_err(Problem::internal)?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("SKU {sku} is not in the catalogue")))
}

async fn put_stock(
    State(rt): State<Arc<Runtime>>,
    Extension(caller): Extension<Principal>,
    Path(sku): Path<Sku>,
    StrictJson(body): StrictJson<SetStock>,
) -> Result<Json<StockView>, Problem> {
    require_operator(&caller)?;
    body.validate()?;
    if let Some(other) =
        store::other_currency(rt.db().reader(), sku.as_str(), &body.unit_price.currency)
            .await
            .map_err(Problem::internal)?
    {
        return Err(Problem::validation(format!(
            "the catalogue is priced in {other}; an order cannot mix currencies, so every SKU must use {other}"
        )));
    }
    store::set_stock(rt.db(), sku.as_str(), body.available, &body.unit_price)
        .await
        .map_err(Problem::internal)?;
    tracing::info!(%sku, available = body.available, "stock set");
    get_stock(State(rt), Path(sku)).await
}
