//! An operator's view of a payment, including what the provider's ledger holds.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use orderflow_api::PaymentView;
use orderflow_http::{Path, Problem};
use orderflow_runtime::Runtime;

use crate::provider::PaymentProvider;
use crate::store;

#[derive(Clone)]
struct AppState {
    rt: Arc<Runtime>,
    provider: Arc<dyn PaymentProvider>,
}

pub fn routes(rt: Arc<Runtime>, provider: Arc<dyn PaymentProvider>) -> Router {
    Router::new()
        .route("/v1/payments/{order_id}", get(get_payment))
        .with_state(AppState { rt, provider })
}

async fn get_payment(
    State(s): State<AppState>,
    Path(order_id): Path<String>,
) -> Result<Json<PaymentView>, Problem> {
    store::view(s.rt.db().pool(), &order_id, s.provider.ledger(&order_id))
        .await
        .map_err(Problem::internal)?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no payment for order {order_id}")))
}
