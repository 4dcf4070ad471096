//! A Confluent-compatible schema registry for the dev stack and the tests: the
//! subset of the REST API that producers, consumers and operators use
//! (register, look up by id and by subject/version, compatibility checks and
//! compatibility levels), with compatibility decided by apache-avro's checker.
//! Schemas live in memory; a cluster uses a real registry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// Compatibility levels, as the Confluent registry names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "NONE" => Self::None,
            "BACKWARD" => Self::Backward,
            "BACKWARD_TRANSITIVE" => Self::BackwardTransitive,
            "FORWARD" => Self::Forward,
            "FORWARD_TRANSITIVE" => Self::ForwardTransitive,
            "FULL" => Self::Full,
            "FULL_TRANSITIVE" => Self::FullTransitive,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Why `new` may not follow `existing` (oldest first), or `None` if it may.
    fn violation(self, existing: &[Schema], new: &Schema) -> Option<String> {
        let (backward, forward, transitive) = match self {
            Self::None => return None,
            Self::Backward => (true, false, false),
            Self::BackwardTransitive => (true, false, true),
            Self::Forward => (false, true, false),
            Self::ForwardTransitive => (false, true, true),
            Self::Full => (true, true, false),
            Self::FullTransitive => (true, true, true),
        };
        let against: Vec<&Schema> = if transitive {
            existing.iter().collect()
        } else {
            existing.last().into_iter().collect()
        };
        for old in against {
            if backward {
                if let Err(e) = SchemaCompatibility::can_read(old, new) {
                    return Some(format!(
                        "the new schema cannot read data written with an earlier one: {e}"
                    ));
                }
            }
            if forward {
                if let Err(e) = SchemaCompatibility::can_read(new, old) {
                    return Some(format!(
                        "an earlier schema cannot read data written with the new one: {e}"
                    ));
                }
            }
        }
        None
    }
}

struct Version {
    id: u32,
}

#[derive(Default)]
struct Store {
    /// Global ids, starting at 1: (normalized text, original text, parsed).
    schemas: Vec<(String, String, Schema)>,
    subjects: BTreeMap<String, Vec<Version>>,
    subject_levels: BTreeMap<String, Compatibility>,
    level: Option<Compatibility>,
}

/// What a caller must present to a registry that wants credentials.
#[derive(Debug, Clone)]
pub enum Credential {
    /// HTTP basic auth: a managed registry's API key and secret.
    Basic {
        user: String,
        password: String,
    },
    Bearer(String),
}

impl Credential {
    fn header_value(&self) -> String {
        use base64::Engine;
        match self {
            Credential::Basic { user, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            Credential::Bearer(token) => format!("Bearer {token}"),
        }
    }
}

/// The registry's state; clones share it.
#[derive(Clone, Default)]
pub struct Registry(Arc<Mutex<Store>>);

/// The default level: what orderflow requires of every event schema change.
pub const DEFAULT_COMPATIBILITY: Compatibility = Compatibility::BackwardTransitive;

struct ApiError(StatusCode, i64, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error_code": self.1, "message": self.2 });
        (
            self.0,
            [(
                header::CONTENT_TYPE,
                "application/vnd.schemaregistry.v1+json",
            )],
            body.to_string(),
        )
            .into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: String,
}

fn parse(body: &SchemaBody) -> Result<Schema, ApiError> {
    if let Some(t) = &body.schema_type {
        if t != "AVRO" {
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                42201,
                format!("schema type {t} is not supported; only AVRO"),
            ));
        }
    }
    Schema::parse_str(&body.schema).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("invalid Avro schema: {e}"),
        )
    })
}

/// The form two schemas are compared in: the JSON with sorted keys. Not Avro's
/// Parsing Canonical Form, which drops defaults, and a default is exactly what
/// makes one version compatible and another not.
fn normalized(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| text.to_string())
}

fn subject_not_found(subject: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        40401,
        format!("subject {subject} not found"),
    )
}

impl Store {
    fn level_for(&self, subject: &str) -> Compatibility {
        self.subject_levels
            .get(subject)
            .copied()
            .or(self.level)
            .unwrap_or(DEFAULT_COMPATIBILITY)
    }

    fn subject_schemas(&self, subject: &str) -> Vec<Schema> {
        self.subjects
            .get(subject)
            .map(|vs| {
                vs.iter()
                    .map(|v| self.schemas[v.id as usize - 1].2.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn version(&self, subject: &str, version: &str) -> Result<(usize, u32), ApiError> {
        let versions = self
            .subjects
            .get(subject)
            .ok_or_else(|| subject_not_found(subject))?;
        let index = if version == "latest" {
            versions.len().checked_sub(1)
        } else {
            version
                .parse::<usize>()
                .ok()
                .and_then(|v| v.checked_sub(1))
                .filter(|i| *i < versions.len())
        };
        let index = index.ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                40402,
                format!("version {version} of subject {subject} not found"),
            )
        })?;
        Ok((index + 1, versions[index].id))
    }

    fn describe(&self, subject: &str, version: usize, id: u32) -> Value {
        json!({ "subject": subject, "version": version, "id": id, "schema": self.schemas[id as usize - 1].1 })
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry's REST API.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/subjects", get(list_subjects))
            .route("/subjects/{subject}", post(lookup))
            .route(
                "/subjects/{subject}/versions",
                get(list_versions).post(register),
            )
            .route("/subjects/{subject}/versions/{version}", get(get_version))
            .route("/schemas/ids/{id}", get(get_by_id))
            .route(
                "/compatibility/subjects/{subject}/versions/{version}",
                post(check),
            )
            .route("/config", get(get_config).put(put_config))
            .route(
                "/config/{subject}",
                get(get_subject_config).put(put_subject_config),
            )
            .with_state(self.clone())
    }

    /// The REST API for callers that present `credential` (as a managed
    /// registry wants an API key); anyone else gets 401, as from Confluent's.
    pub fn router_requiring(&self, credential: Credential) -> Router {
        let expected = Arc::new(credential.header_value());
        self.router().layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let expected = expected.clone();
                async move {
                    let presented = request
                        .headers()
                        .get(header::AUTHORIZATION)
                        .map(|v| v.as_bytes());
                    if presented == Some(expected.as_bytes()) {
                        next.run(request).await
                    } else {
                        ApiError(
                            StatusCode::UNAUTHORIZED,
                            401,
                            "Unauthorized: present the registry's credentials".into(),
                        )
                        .into_response()
                    }
                }
            },
        ))
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.0.lock().expect("registry lock")
    }
}

async fn list_subjects(State(r): State<Registry>) -> ApiResult {
    Ok(Json(json!(r.store().subjects.keys().collect::<Vec<_>>())))
}

async fn list_versions(State(r): State<Registry>, Path(subject): Path<String>) -> ApiResult {
    let store = r.store();
    let versions = store
        .subjects
        .get(&subject)
        .ok_or_else(|| subject_not_found(&subject))?;
    Ok(Json(json!((1..=versions.len()).collect::<Vec<_>>())))
}

async fn register(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Json(body): Json<SchemaBody>,
) -> ApiResult {
    let schema = parse(&body)?;
    let canonical = normalized(&body.schema);
    let mut store = r.store();
    let existing = store.subject_schemas(&subject);
    if let Some(versions) = store.subjects.get(&subject) {
        if let Some(v) = versions
            .iter()
            .find(|v| store.schemas[v.id as usize - 1].0 == canonical)
        {
            return Ok(Json(json!({ "id": v.id })));
        }
    }
    if let Some(why) = store.level_for(&subject).violation(&existing, &schema) {
        return Err(ApiError(
            StatusCode::CONFLICT,
            409,
            format!(
                "schema for subject {subject} is incompatible ({}): {why}",
                store.level_for(&subject).name()
            ),
        ));
    }
    let id = match store.schemas.iter().position(|(c, _, _)| *c == canonical) {
        Some(i) => i as u32 + 1,
        None => {
            store.schemas.push((canonical, body.schema.clone(), schema));
            store.schemas.len() as u32
        }
    };
    store
        .subjects
        .entry(subject.clone())
        .or_default()
        .push(Version { id });
    tracing::info!(subject, id, "schema registered");
    Ok(Json(json!({ "id": id })))
}

async fn lookup(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Json(body): Json<SchemaBody>,
) -> ApiResult {
    parse(&body)?;
    let canonical = normalized(&body.schema);
    let store = r.store();
    let versions = store
        .subjects
        .get(&subject)
        .ok_or_else(|| subject_not_found(&subject))?;
    let found = versions
        .iter()
        .enumerate()
        .find(|(_, v)| store.schemas[v.id as usize - 1].0 == canonical);
    match found {
        Some((i, v)) => Ok(Json(store.describe(&subject, i + 1, v.id))),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            40403,
            "schema not found".into(),
        )),
    }
}

async fn get_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let store = r.store();
    let (version, id) = store.version(&subject, &version)?;
    Ok(Json(store.describe(&subject, version, id)))
}

async fn get_by_id(State(r): State<Registry>, Path(id): Path<u32>) -> ApiResult {
    let store = r.store();
    match id
        .checked_sub(1)
        .and_then(|i| store.schemas.get(i as usize))
    {
        Some((_, text, _)) => Ok(Json(json!({ "schema": text }))),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            40403,
            format!("schema {id} not found"),
        )),
    }
}

async fn check(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Json(body): Json<SchemaBody>,
) -> ApiResult {
    let schema = parse(&body)?;
    let store = r.store();
    let level = store.level_for(&subject);
    let existing = store.subject_schemas(&subject);
    // "latest" checks against the history the level asks for; a number against that version.
    let against = if version == "latest" {
        existing
    } else {
        let (v, _) = store.version(&subject, &version)?;
        vec![existing[v - 1].clone()]
    };
    let violation = level.violation(&against, &schema);
    Ok(Json(
        json!({ "is_compatible": violation.is_none(), "messages": violation.into_iter().collect::<Vec<_>>() }),
    ))
}

async fn get_config(State(r): State<Registry>) -> ApiResult {
    Ok(Json(
        json!({ "compatibilityLevel": r.store().level.unwrap_or(DEFAULT_COMPATIBILITY).name() }),
    ))
}

fn level(body: &ConfigBody) -> Result<Compatibility, ApiError> {
    Compatibility::parse(&body.compatibility).ok_or_else(|| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
            format!("invalid compatibility level {}", body.compatibility),
        )
    })
}

async fn put_config(State(r): State<Registry>, Json(body): Json<ConfigBody>) -> ApiResult {
    let level = level(&body)?;
    r.store().level = Some(level);
    Ok(Json(json!({ "compatibility": level.name() })))
}

async fn get_subject_config(State(r): State<Registry>, Path(subject): Path<String>) -> ApiResult {
    Ok(Json(
        json!({ "compatibilityLevel": r.store().level_for(&subject).name() }),
    ))
}

async fn put_subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Json(body): Json<ConfigBody>,
) -> ApiResult {
    let level = level(&body)?;
    r.store().subject_levels.insert(subject, level);
    Ok(Json(json!({ "compatibility": level.name() })))
}
