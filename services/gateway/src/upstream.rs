//! Calls to the services behind the gateway, and relaying their answers.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use orderflow_http::{Problem, ProblemType};

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

    /// The service could not be reached: 503 problem, naming which.
    pub fn unavailable(&self, e: reqwest::Error) -> Problem {
        tracing::warn!(upstream = self.name, error = %e, "upstream call failed");
        Problem::new(
            ProblemType::Unavailable,
            format!("the {} service did not answer: {e}", self.name),
        )
    }

    /// Sends and relays the answer (status, content type, location, body).
    pub async fn relay(&self, request: reqwest::RequestBuilder) -> Result<Response, Problem> {
        let response = request.send().await.map_err(|e| self.unavailable(e))?;
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
