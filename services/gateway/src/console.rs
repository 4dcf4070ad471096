//! The web console at `/console/`: three static files compiled into the
//! binary (no CDN, works offline) and a small settings document. The files
//! hold no data: everything the console shows it reads from the API with the
//! signed-in user's token, so they are served without one, as a login page is.
//! A browser that accepts gzip gets them gzipped (a third of their size),
//! compressed once per process.

use std::sync::LazyLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::gzip::{accepts_gzip, gzip};

const INDEX: &str = include_str!("../console/index.html");
const STYLE: &str = include_str!("../console/console.css");
const SCRIPT: &str = include_str!("../console/console.js");

static INDEX_GZ: LazyLock<Vec<u8>> = LazyLock::new(|| gzip(INDEX));
static STYLE_GZ: LazyLock<Vec<u8>> = LazyLock::new(|| gzip(STYLE));
static SCRIPT_GZ: LazyLock<Vec<u8>> = LazyLock::new(|| gzip(SCRIPT));

/// Only the gateway's own files and API: no inline script, no other origin,
/// not framed by another site.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `jaeger_url`: Jaeger's UI, for a link to an order's trace; `traces`:
/// whether `GET /v1/orders/{id}/trace` reads traces, for the waterfall.
pub fn routes(jaeger_url: String, traces: bool) -> Router {
    let settings = serde_json::json!({
        "jaeger_url": (!jaeger_url.is_empty()).then(|| jaeger_url.trim_end_matches('/').to_string()),
        "traces": traces,
    });
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route(
            "/console/",
            get(|h: HeaderMap| async move { asset(&h, "text/html; charset=utf-8", INDEX, &INDEX_GZ) }),
        )
        .route(
            "/console/console.css",
            get(|h: HeaderMap| async move { asset(&h, "text/css; charset=utf-8", STYLE, &STYLE_GZ) }),
        )
        .route(
            "/console/console.js",
            get(|h: HeaderMap| async move {
                asset(&h, "text/javascript; charset=utf-8", SCRIPT, &SCRIPT_GZ)
            }),
        )
        .route(
            "/console/config.json",
            get(move || {
                let settings = settings.clone();
                async move { Json(settings) }
            }),
        )
}

fn asset(
    request: &HeaderMap,
    content_type: &'static str,
    plain: &'static str,
    gzipped: &'static [u8],
) -> Response {
    let mut response = if accepts_gzip(request) {
        let mut r = (StatusCode::OK, gzipped).into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        (StatusCode::OK, plain).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // A new gateway brings new files: the browser asks each time (they are small).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Whether a path is the console's (served without a token).
pub fn is_console(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get_with(path: &str, accept_encoding: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(value) = accept_encoding {
            request = request.header(header::ACCEPT_ENCODING, value);
        }
        routes(String::new(), false)
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn body(response: Response) -> Vec<u8> {
        to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn a_browser_that_takes_gzip_gets_each_file_gzipped_and_the_same_file() {
        for (path, file) in [
            ("/console/", INDEX),
            ("/console/console.css", STYLE),
            ("/console/console.js", SCRIPT),
        ] {
            let r = get_with(path, Some("gzip, deflate, br, zstd")).await;
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip", "{path}");
            assert_eq!(r.headers()[header::VARY], "accept-encoding");
            assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
            let zipped = body(r).await;
            assert!(
                zipped.len() * 2 < file.len(),
                "{path}: {} bytes gzipped of {}",
                zipped.len(),
                file.len()
            );
            let mut text = String::new();
            flate2::read::GzDecoder::new(&zipped[..])
                .read_to_string(&mut text)
                .unwrap();
            assert_eq!(text, file, "{path}");
        }
    }

    #[tokio::test]
    async fn without_gzip_in_accept_encoding_the_file_is_sent_as_it_is() {
        for accept in [
            None,
            Some("identity"),
            Some("br"),
            Some("gzip;q=0, br"),
            Some("*;q=0"),
        ] {
            let r = get_with("/console/console.js", accept).await;
            assert_eq!(r.status(), StatusCode::OK);
            assert!(
                !r.headers().contains_key(header::CONTENT_ENCODING),
                "{accept:?}"
            );
            assert_eq!(r.headers()[header::VARY], "accept-encoding");
            assert_eq!(body(r).await, SCRIPT.as_bytes(), "{accept:?}");
        }
        for accept in ["GZIP", "br;q=1, gzip;q=0.5", "*", "x-gzip", "*;q=0, gzip"] {
            let r = get_with("/console/", Some(accept)).await;
            assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip", "{accept}");
        }
    }
}
