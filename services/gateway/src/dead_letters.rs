//! The operator API's dead letters: list them with filters, read one with its
//! payload decoded, replay one onto the topic it came from. The work is
//! libs/dlq's, as for `orderflow dlq`; this puts it behind the gateway's
//! authentication (operators only) and in problem+json.
#![deny(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use orderflow_auth::Principal;
use orderflow_dlq::{parse_since, DeadLetters, DlqError, DlqId, Filter, ReplayOutcome};
use orderflow_http::{Path, Problem, ProblemType};
use serde::{Deserialize, Serialize};

use crate::auth::require_operator;

/// The dead letters, or why there are none to read.
#[derive(Clone)]
pub struct Source(Option<Arc<DeadLetters>>);

impl Source {
    pub fn new(letters: Option<DeadLetters>) -> Self {
        Self(letters.map(Arc::new))
    }

    fn get(&self, caller: &Principal) -> Result<&DeadLetters, Problem> {
        require_operator(caller)?;
        self.0.as_deref().ok_or_else(|| {
            Problem::new(
                ProblemType::Unavailable,
                "this gateway reads no dead letters: set ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS and ORDERFLOW_SCHEMA_REGISTRY_URL",
            )
        })
    }
}

pub fn routes(source: Source) -> Router {
    Router::new()
        .route("/v1/dead-letters", get(list))
        .route("/v1/dead-letters/{service}/{partition}/{offset}", get(show))
        .route(
            "/v1/dead-letters/{service}/{partition}/{offset}/replay",
            post(replay),
        )
        .with_state(source)
}

/// Problems an operator can act on: a bad id is the caller's, a missing
/// letter is 404, Kafka or the registry away is 503.
fn problem(e: DlqError) -> Problem {
    match e {
        DlqError::BadId(_) | DlqError::UnknownService(_) => Problem::validation(e.to_string()),
        DlqError::NotFound { .. } => Problem::not_found(e.to_string()),
        DlqError::NoSource(_) => Problem::validation(e.to_string()),
        DlqError::Unreachable { .. } | DlqError::Registry(_) | DlqError::Kafka(_) => {
            Problem::new(ProblemType::Unavailable, e.to_string())
        }
    }
}

/// The filters of `GET /v1/dead-letters`, as `orderflow dlq list` takes them.
fn filter(query: Option<String>) -> Result<Filter, Problem> {
    let mut filter = Filter {
        limit: Some(100),
        ..Default::default()
    };
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.trim().to_string();
        if value.is_empty() {
            continue;
        }
        match key.as_ref() {
            "service" => filter.service = Some(value),
            "event_type" => filter.event_type = Some(value),
            "order_id" => {
                if let Some(why) = orderflow_api::IdKind::Order.error(&value) {
                    return Err(Problem::validation(format!("order_id: {why}")));
                }
                filter.order_id = Some(value)
            }
            "error" => filter.error = Some(value),
            "since" => {
                filter.since = Some(
                    parse_since(&value, chrono::Utc::now())
                        .map_err(|e| Problem::validation(format!("since: {e}")))?,
                )
            }
            "limit" => {
                let limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1_000).contains(n))
                    .ok_or_else(|| {
                        Problem::validation(format!("limit must be 1 to 1000, got {value:?}"))
                    })?;
                filter.limit = Some(limit);
            }
            "include_reviewed" => filter.include_reviewed = value == "true",
            other => {
                return Err(Problem::validation(format!(
                    "unknown filter {other:?}: service, event_type, order_id, error, since, limit, include_reviewed"
                )))
            }
        }
    }
    Ok(filter)
}

async fn list(
    State(source): State<Source>,
    Extension(caller): Extension<Principal>,
    RawQuery(query): RawQuery,
) -> Result<Json<orderflow_dlq::Listing>, Problem> {
    let letters = source.get(&caller)?;
    let filter = filter(query)?;
    letters.list(&filter).await.map(Json).map_err(problem)
}

fn dlq_id(service: String, partition: String, offset: String) -> Result<DlqId, Problem> {
    format!("{service}/{partition}/{offset}")
        .parse()
        .map_err(problem)
}

/// One dead letter with its payload decoded and how often it was replayed.
#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    letter: orderflow_dlq::DeadLetter,
    decoded: orderflow_dlq::Decoded,
    replays: u32,
}

async fn show(
    State(source): State<Source>,
    Extension(caller): Extension<Principal>,
    Path((service, partition, offset)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, Problem> {
    let letters = source.get(&caller)?;
    let id = dlq_id(service, partition, offset)?;
    let letter = letters.show(&id).await.map_err(problem)?;
    let decoded = letters.decode(&letter).await;
    let replays = letters
        .replays()
        .await
        .map_err(problem)?
        .get(&id.to_string())
        .copied()
        .unwrap_or(0);
    let shown = Shown {
        letter,
        decoded,
        replays,
    };
    Ok(Json(
        serde_json::to_value(shown).map_err(Problem::internal)?,
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// Replay it although it was replayed before.
    #[serde(default)]
    again: bool,
    /// Say what would happen; write nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Replays one dead letter: `{"outcome": "replayed", "topic", "partition",
/// "offset"}`, or `skipped` / `failed` with the reason.
async fn replay(
    State(source): State<Source>,
    Extension(caller): Extension<Principal>,
    Path((service, partition, offset)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<ReplayOutcome>, Problem> {
    let letters = source.get(&caller)?;
    let id = dlq_id(service, partition, offset)?;
    // No body is `{}`: replay it unless it was replayed before.
    let request: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Problem::new(
                ProblemType::MalformedBody,
                format!("the body is not {{\"again\": bool, \"dry_run\": bool}}: {e}"),
            )
        })?
    };
    let letter = letters.show(&id).await.map_err(problem)?;
    let summary = letters
        .replay(&[letter], request.dry_run, request.again, &|_| {})
        .await
        .map_err(problem)?;
    let outcome = summary
        .outcomes
        .into_iter()
        .next()
        .ok_or_else(|| Problem::internal("a replay of one dead letter has one outcome"))?;
    if let ReplayOutcome::Replayed { .. } = &outcome {
        tracing::info!(dead_letter = %id, operator = %caller.subject, "dead letter replayed");
    }
    Ok(Json(outcome))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
    use super::*;

    #[test]
    fn filters_read_as_the_cli_takes_them_and_refuse_the_rest() {
        let f = filter(Some(
            "service=inventory&since=1h&limit=5&order_id=0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b"
                .into(),
        ))
        .unwrap();
        assert_eq!(f.service.as_deref(), Some("inventory"));
        assert_eq!(f.limit, Some(5));
        assert!(f.since.is_some() && f.order_id.is_some());
        for bad in [
            "since=99999999999999999d",
            "limit=0",
            "limit=99999999999999999999999",
            "limit=-1",
            "order_id=..",
            "order_id=a%2Fb",
            "colour=red",
        ] {
            assert_eq!(filter(Some(bad.into())).unwrap_err().status, 422, "{bad}");
        }
    }

    proptest::proptest! {
        /// Any query string is a filter or a 422, never a panic.
        #[test]
        fn any_query_is_a_filter_or_refused(q in ".{0,80}", n in ".{0,30}") {
            let _ = filter(Some(q));
            for key in ["since", "limit", "order_id", "include_reviewed"] {
                let _ = filter(Some(format!("{key}={n}")));
            }
        }
    }
}
