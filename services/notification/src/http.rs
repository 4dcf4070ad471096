//! A customer's notifications.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use orderflow_api::{CustomerId, NotificationView};
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
    Path(customer_id): Path<CustomerId>,
) -> Result<Json<Vec<NotificationView>>, Problem> {
    store::for_customer(rt.db().reader(), customer_id.as_str())
        .await
        .map(Json)
        .map_err(Problem::internal)
}
