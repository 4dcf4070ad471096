//! Calls to the services behind the gateway, and relaying their answers.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use orderflow_http::{Problem, ProblemType};
use tracing::Instrument;

#[derive(Clone)]
pub struct Upstream {
    pub name: &'static str,
    base: reqwest::Url,
    http: reqwest::Client,
}

impl Upstream {
    pub fn new(name: &'static str, base: &str, timeout: Duration) -> Self {
        let base = reqwest::Url::parse(base).expect("validated by Config::validate");
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("reqwest client builds");
        Self { name, base, http }
    }

    /// The URL of `segments` under the service's base, each segment escaped.
    pub fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("http URLs have paths")
            .pop_if_empty()
            .extend(segments);
        url
    }

    pub fn request(&self, method: reqwest::Method, segments: &[&str]) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(segments))
    }

    /// Sends in a client span whose context goes along as `traceparent`, so
    /// the service's server span is its child.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut request = request.build()?;
        let span = tracing::info_span!(
            "HTTP client",
            otel.name = %format!("{} {}", request.method(), self.name),
            otel.kind = "client",
            http.request.method = %request.method(),
            url.full = %request.url(),
            server.address = self.name,
            http.response.status_code = tracing::field::Empty,
        );
        if let Some((traceparent, tracestate)) =
            orderflow_runtime::telemetry::trace::context_of(&span)
        {
            let headers = request.headers_mut();
            if let Ok(v) = traceparent.parse() {
                headers.insert("traceparent", v);
            }
            if let Some(Ok(v)) = tracestate.map(|s| s.parse()) {
                headers.insert("tracestate", v);
            }
        }
        let response = self.http.execute(request).instrument(span.clone()).await?;
        span.record("http.response.status_code", response.status().as_u16());
        Ok(response)
    }

    /// The service could not be reached: a 503 problem (whose details go to
    /// the log, not to the caller).
    pub fn unavailable(&self, e: reqwest::Error) -> Problem {
        Problem::new(
            ProblemType::Unavailable,
            format!("the {} service did not answer: {e}", self.name),
        )
    }

    /// The service answered an unexpected status.
    pub fn answered(&self, status: u16) -> Problem {
        Problem::new(
            ProblemType::Unavailable,
            format!("the {} service answered {status}", self.name),
        )
    }

    /// Sends and relays the answer (status, content type, location, body).
    pub async fn relay(&self, request: reqwest::RequestBuilder) -> Result<Response, Problem> {
        let response = self.send(request).await.map_err(|e| self.unavailable(e))?;
        let status =
            StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let is_problem = response
            .headers()
            .get(header::CONTENT_TYPE.as_str())
            .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
        if (status.is_client_error() || status.is_server_error()) && !is_problem {
            // Something other than an orderflow service answered (a proxy, a
            // crashed pod): never hand its body to the client as if it were ours.
            tracing::warn!(upstream = self.name, %status, "upstream error without a problem document");
            return Err(Problem::new(
                ProblemType::Unavailable,
                format!(
                    "the {} service answered {status} without a problem document",
                    self.name
                ),
            ));
        }
        let mut builder = Response::builder().status(status);
        for name in [header::CONTENT_TYPE, header::LOCATION] {
            if let Some(value) = response.headers().get(name.as_str()) {
                builder = builder.header(name, value.as_bytes());
            }
        }
        let body = response.bytes().await.map_err(|e| self.unavailable(e))?;
        builder.body(Body::from(body)).map_err(Problem::internal)
    }
}
