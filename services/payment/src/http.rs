//! An operator's view of a payment, including what the provider's ledger
//! holds; and the sandbox provider's settings, changeable while it runs
//! (operators only, and only where `sandbox_api` turns it on: a test and
//! demo tool, never a production one).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use orderflow_api::{OrderId, PaymentView};
use orderflow_auth::{require_operator, Principal};
use orderflow_http::{Path, Problem, StrictJson};
use orderflow_runtime::Runtime;
use serde::{Deserialize, Serialize};

use crate::provider::{PaymentProvider, Weather};
use crate::store;

#[derive(Clone)]
struct AppState {
    rt: Arc<Runtime>,
    provider: Arc<dyn PaymentProvider>,
    weather: Arc<Weather>,
}

pub fn routes(
    rt: Arc<Runtime>,
    provider: Arc<dyn PaymentProvider>,
    weather: Arc<Weather>,
    sandbox_api: bool,
) -> Router {
    let mut router = Router::new().route("/v1/payments/{order_id}", get(get_payment));
    if sandbox_api {
        router = router.route("/v1/sandbox", put(set_sandbox).get(get_sandbox));
    }
    router.with_state(AppState {
        rt,
        provider,
        weather,
    })
}

async fn get_payment(
    State(s): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(order_id): Path<OrderId>,
) -> Result<Json<PaymentView>, Problem> {
    require_operator(&caller)?;
    let order_id = order_id.as_str();
    let ledger = s
        .provider
        .ledger(order_id)
        .await
        .map_err(Problem::internal)?;
    store::view(s.rt.db().reader(), order_id, ledger)
        .await
        .map_err(Problem::internal)?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no payment for order {order_id}")))
}

/// The sandbox provider's weather: added latency of every call and the
/// share of calls that fail transiently.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    pub latency_ms: u64,
    pub failure_rate: f64,
}

async fn get_sandbox(
    State(s): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<SandboxSettings>, Problem> {
    require_operator(&caller)?;
    Ok(Json(SandboxSettings {
        latency_ms: s.weather.latency().as_millis() as u64,
        failure_rate: s.weather.failure_rate(),
    }))
}

async fn set_sandbox(
    State(s): State<AppState>,
    Extension(caller): Extension<Principal>,
    StrictJson(body): StrictJson<SandboxSettings>,
) -> Result<Json<SandboxSettings>, Problem> {
    require_operator(&caller)?;
    if !(0.0..=1.0).contains(&body.failure_rate) {
        return Err(Problem::validation(format!(
            "failure_rate must be between 0 and 1, got {}",
            body.failure_rate
        )));
    }
    if body.latency_ms > 60_000 {
        return Err(Problem::validation("latency_ms must be at most 60000"));
    }
    s.weather
        .set(Duration::from_millis(body.latency_ms), body.failure_rate);
    tracing::info!(
        latency_ms = body.latency_ms,
        failure_rate = body.failure_rate,
        "sandbox settings changed"
    );
    Ok(Json(body))
}
