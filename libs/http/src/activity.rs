//! Whether a connection is doing anything: requests in progress (until
//! their bodies are sent, so a long stream counts), and when the last one
//! ended.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use http_body_util::BodyExt;
use tokio::time::Instant;
use tower::ServiceExt;

#[derive(Clone)]
pub(crate) struct Activity(Arc<State>);

struct State {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

/// One request in progress; dropped with its response body.
struct Busy(Activity);

impl Drop for Busy {
    fn drop(&mut self) {
        let state = &self.0 .0;
        *state.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self(Arc::new(State {
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }))
    }

    fn begin(&self) -> Busy {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// `router`, counting each request as in progress until its response
    /// body is done.
    pub(crate) fn track(
        &self,
        router: Router,
    ) -> impl tower::Service<
        Request<hyper::body::Incoming>,
        Response = Response,
        Error = Infallible,
        Future = impl Send,
    > + Clone {
        let activity = self.clone();
        tower::service_fn(move |request: Request<hyper::body::Incoming>| {
            let busy = activity.begin();
            let router = router.clone();
            async move {
                let response = router.oneshot(request.map(Body::new)).await?;
                Ok(response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _ = &busy;
                        frame
                    }))
                }))
            }
        })
    }

    /// Resolves once no request has been in progress for `limit`.
    pub(crate) async fn idle_for(&self, limit: Duration) {
        loop {
            let wait = if self.0.in_flight.load(Ordering::Acquire) > 0 {
                limit
            } else {
                let last = *self.0.last.lock().unwrap_or_else(|e| e.into_inner());
                limit.saturating_sub(last.elapsed())
            };
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }
}
