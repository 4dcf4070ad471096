//! Calls to the services behind the gateway, and relaying their answers.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use orderflow_http::{Problem, ProblemType};
use tracing::Instrument;

use crate::auth::Bearer;

/// Whether a URL keeps `segment` as it is once percent-encoded.
fn keeps(segment: &str) -> bool {
    !segment.is_empty()
        && !segment.bytes().all(|c| c == b'.')
        && !segment.chars().any(char::is_control)
}

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
            .pool_idle_timeout(orderflow_http::CLIENT_POOL_IDLE)
            .build()
            .expect("reqwest client builds");
        Self { name, base, http }
    }

    /// The URL of `segments` under the service's base, each segment
    /// percent-encoded. A segment that a URL would not keep as it is (empty,
    /// `.` or `..`, which URLs resolve away, or with a control character,
    /// which they strip) is refused: the path parameters' grammar keeps such
    /// segments from getting this far, and this keeps them from ever
    /// reaching a service as some other path.
    pub fn url(&self, segments: &[&str]) -> Result<reqwest::Url, Problem> {
        if let Some(bad) = segments.iter().find(|s| !keeps(s)) {
            return Err(Problem::validation(format!(
                "{bad:?} cannot be part of a path"
            )));
        }
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Problem::internal("the service's URL cannot have a path"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// A request on the caller's behalf: their token goes along, and the
    /// service checks it again.
    pub fn request(
        &self,
        caller: &Bearer,
        method: reqwest::Method,
        segments: &[&str],
    ) -> Result<reqwest::RequestBuilder, Problem> {
        Ok(self
            .http
            .request(method, self.url(segments)?)
            .bearer_auth(caller.token()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped_and_dot_segments_refused() {
        let u = Upstream::new(
            "inventory",
            "http://inventory:8080/",
            Duration::from_secs(1),
        );
        let url = |s: &str| u.url(&["v1", "inventory", s]).map(|u| u.to_string());
        assert_eq!(
            url("SKU-1").unwrap(),
            "http://inventory:8080/v1/inventory/SKU-1"
        );
        assert_eq!(
            url("a/b?c#d%").unwrap(),
            "http://inventory:8080/v1/inventory/a%2Fb%3Fc%23d%25"
        );
        for bad in ["", ".", "..", "...", "SKU-1\t", "a\nb", "a\0b", "a\u{85}b"] {
            assert!(url(bad).is_err(), "{bad:?}");
        }
    }
}
