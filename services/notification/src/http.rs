//! A customer's notifications: their own, or any for an operator.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use orderflow_api::{CustomerId, NotificationView};
use orderflow_auth::{require_own, Principal};
use orderflow_http::{Path, Problem};
use orderflow_runtime::Runtime;

use crate::store;

pub fn routes(rt: Arc<Runtime>) -> Router {
    Router::new()
        .route("/v1/customers/{customer_id}/notifications", get(list))
        .with_state(rt)
}

async fn list(
    State(rt): State<Arc<Runtime>>,
    Extension(caller): Extension<Principal>,
    Path(customer_id): Path<CustomerId>,
) -> Result<Json<Vec<NotificationView>>, Problem> {
    require_own(&caller, customer_id.as_str())?;
    store::for_customer(rt.db().reader(), customer_id.as_str())
        .await
        .map(Json)
        .map_err(Problem::internal)
}
