//! Resource limits at the door: a token bucket per principal for placing
//! orders (429 with `Retry-After` and the IETF `RateLimit` headers), caps
//! on requests in progress at once — a small one for requests not yet
//! authenticated, then one per caller and one in all (429 and 503 past
//! them) — and the same per-caller caps on open order streams (each polls
//! the order service while it is open).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orderflow_auth::Principal;
use orderflow_http::{Problem, ProblemType};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A bucket of `burst` tokens refilled at `per_second`; a request takes one.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What a bucket said.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Allowed, with this many requests left now.
    Allowed { remaining: u32 },
    /// Refused: the next token comes after this long.
    Refused { retry_after: Duration },
}

#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    /// Takes a token from `bucket` at `now` (a new bucket starts full).
    pub fn take(&self, bucket: &mut Option<Bucket>, now: Instant) -> Verdict {
        let b = bucket.get_or_insert(Bucket {
            tokens: f64::from(self.burst),
            at: now,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * self.per_second;
        b.tokens = (b.tokens + refill).min(f64::from(self.burst));
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Verdict::Allowed {
                remaining: b.tokens.floor() as u32,
            }
        } else {
            Verdict::Refused {
                retry_after: Duration::from_secs_f64((1.0 - b.tokens) / self.per_second),
            }
        }
    }
}

/// One bucket per principal.
pub struct RateLimiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Option<Bucket>>>,
}

impl RateLimiter {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `principal`: the headers to send either way, or a 429.
    pub fn check(&self, principal: &str) -> Result<Vec<(&'static str, String)>, Problem> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate lock");
        if buckets.len() > 100_000 {
            // Principals gone quiet for a while hold full buckets: forget them.
            let horizon =
                Duration::from_secs_f64(f64::from(self.rate.burst) / self.rate.per_second);
            buckets.retain(|_, b| b.is_some_and(|b| now.saturating_duration_since(b.at) < horizon));
        }
        let verdict = self
            .rate
            .take(buckets.entry(principal.to_string()).or_default(), now);
        let policy = format!(
            "\"orders\";q={};w={}",
            self.rate.burst,
            (f64::from(self.rate.burst) / self.rate.per_second).ceil() as u64
        );
        match verdict {
            Verdict::Allowed { remaining } => Ok(vec![
                ("ratelimit-policy", policy),
                ("ratelimit", format!("\"orders\";r={remaining};t=0")),
            ]),
            Verdict::Refused { retry_after } => {
                let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                Err(Problem::new(
                    ProblemType::TooManyRequests,
                    format!(
                        "at most {} orders a second per caller ({} at once): try again in {seconds} s",
                        self.rate.per_second, self.rate.burst
                    ),
                )
                .with_header("retry-after", seconds.to_string())
                .with_header("ratelimit-policy", policy)
                .with_header("ratelimit", format!("\"orders\";r=0;t={seconds}")))
            }
        }
    }
}

/// Things a caller holds open (order streams; requests in progress): at
/// most `per_caller` for one principal (429) and `total` for the gateway
/// (503), so one caller cannot take every slot from the others.
pub struct Slots {
    /// What is held, for the refusals: "open order streams".
    what: &'static str,
    per_caller: usize,
    total: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One held slot; dropping it frees it.
pub struct Slot {
    slots: Arc<Slots>,
    principal: String,
}

impl Slots {
    pub fn new(what: &'static str, per_caller: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            what,
            per_caller,
            total,
            open: Mutex::new(HashMap::new()),
        })
    }

    pub fn open(self: &Arc<Self>, principal: &str) -> Result<Slot, Problem> {
        let mut open = self.open.lock().expect("slots lock");
        if open.values().sum::<usize>() >= self.total {
            return Err(Problem::new(
                ProblemType::Unavailable,
                format!(
                    "this gateway has {} {}, its most: try again later or another replica",
                    self.total, self.what
                ),
            )
            .with_header("retry-after", "5"));
        }
        let mine = open.entry(principal.to_string()).or_default();
        if *mine >= self.per_caller {
            return Err(Problem::new(
                ProblemType::TooManyRequests,
                format!(
                    "at most {} {} per caller: let one finish first",
                    self.per_caller, self.what
                ),
            )
            .with_header("retry-after", "1"));
        }
        *mine += 1;
        Ok(Slot {
            slots: self.clone(),
            principal: principal.to_string(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().expect("slots lock");
        if let Some(n) = open.get_mut(&self.principal) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.principal);
            }
        }
    }
}

/// A request's place among those not yet known to be anyone's: taken as
/// it arrives, given back once its token is verified (or with the answer,
/// for the public paths and refusals).
#[derive(Clone)]
pub struct Admission(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl Admission {
    fn release(&self) {
        self.0.lock().expect("admission lock").take();
    }
}

/// Requests not yet authenticated, at most so many at once: past it, 503 at
/// once rather than a queue that grows until everything times out.
pub async fn admit_anonymous(
    State(slots): State<Arc<Semaphore>>,
    mut request: Request,
    next: Next,
) -> Response {
    match slots.try_acquire_owned() {
        Ok(permit) => {
            // Held here until the answer, unless the caller's share takes
            // over from it first.
            let admission = Admission(Arc::new(Mutex::new(Some(permit))));
            request.extensions_mut().insert(admission.clone());
            let response = next.run(request).await;
            drop(admission);
            response
        }
        Err(_) => Problem::new(
            ProblemType::Unavailable,
            "the gateway has as many requests in progress as it takes",
        )
        .with_header("retry-after", "1")
        .into_response(),
    }
}

/// After authentication: the caller's own share of requests in progress
/// (a slow body or a slow upstream holds only theirs), and their place
/// among the anonymous given back.
pub async fn admit_caller(
    State(slots): State<Arc<Slots>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(caller) = request.extensions().get::<Principal>() else {
        return next.run(request).await;
    };
    let slot = match slots.open(&caller.subject) {
        Ok(slot) => slot,
        Err(refused) => return refused.into_response(),
    };
    if let Some(admission) = request.extensions().get::<Admission>() {
        admission.release();
    }
    let response = next.run(request).await;
    drop(slot);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let rate = Rate {
            per_second: 2.0,
            burst: 3,
        };
        let t0 = Instant::now();
        let mut b = None;
        let verdicts: Vec<Verdict> = (0..4).map(|_| rate.take(&mut b, t0)).collect();
        assert_eq!(
            verdicts,
            vec![
                Verdict::Allowed { remaining: 2 },
                Verdict::Allowed { remaining: 1 },
                Verdict::Allowed { remaining: 0 },
                Verdict::Refused {
                    retry_after: Duration::from_millis(500)
                },
            ]
        );
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(rate.take(&mut b, t1), Verdict::Allowed { remaining: 0 });
        assert!(matches!(rate.take(&mut b, t1), Verdict::Refused { .. }));
        // A long pause refills up to the burst, no more.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(rate.take(&mut b, t2), Verdict::Allowed { remaining: 2 });
    }

    #[test]
    fn each_principal_has_a_bucket_of_its_own() {
        let limiter = RateLimiter::new(Rate {
            per_second: 1.0,
            burst: 1,
        });
        assert!(limiter.check("c-1").is_ok());
        let refused = limiter.check("c-1").unwrap_err();
        assert_eq!(refused.status, 429);
        assert!(refused
            .headers
            .iter()
            .any(|(k, v)| *k == "retry-after" && v == "1"));
        assert!(limiter.check("c-2").is_ok(), "another caller is not slowed");
    }

    #[test]
    fn open_streams_are_capped_per_caller_and_in_all_and_freed_when_closed() {
        let slots = Slots::new("open order streams", 2, 3);
        let a1 = slots.open("a").unwrap();
        let _a2 = slots.open("a").unwrap();
        assert_eq!(slots.open("a").err().map(|p| p.status), Some(429));
        let _b1 = slots.open("b").unwrap();
        assert_eq!(slots.open("c").err().map(|p| p.status), Some(503));
        drop(a1);
        assert!(slots.open("c").is_ok(), "a closed stream frees its slot");
    }

    #[test]
    fn a_caller_closing_one_of_two_streams_still_has_one_open() {
        let slots = Slots::new("open order streams", 2, 10);
        let a1 = slots.open("a").unwrap();
        let _a2 = slots.open("a").unwrap();
        drop(a1);
        let _a3 = slots.open("a").unwrap();
        assert_eq!(
            slots.open("a").err().map(|p| p.status),
            Some(429),
            "two open again: the cap holds"
        );
    }

    #[test]
    fn the_ratelimit_headers_tell_the_policy_what_is_left_and_when_to_come_back() {
        let limiter = RateLimiter::new(Rate {
            per_second: 0.5,
            burst: 2,
        });
        let policy = ("ratelimit-policy", "\"orders\";q=2;w=4".to_string());
        assert_eq!(
            limiter.check("c").unwrap(),
            vec![
                policy.clone(),
                ("ratelimit", "\"orders\";r=1;t=0".to_string())
            ]
        );
        assert_eq!(
            limiter.check("c").unwrap()[1],
            ("ratelimit", "\"orders\";r=0;t=0".to_string())
        );
        let refused = limiter.check("c").unwrap_err();
        assert_eq!(refused.status, 429);
        // The next token comes in two seconds at half a token a second.
        assert_eq!(
            refused.headers,
            vec![
                ("retry-after", "2".to_string()),
                policy,
                ("ratelimit", "\"orders\";r=0;t=2".to_string()),
            ]
        );
        let detail = refused.detail.unwrap_or_default();
        assert!(
            detail.contains("at most 0.5 orders a second per caller (2 at once)"),
            "{detail}"
        );
    }

    #[test]
    fn callers_gone_quiet_are_forgotten_past_a_hundred_thousand() {
        // A bucket refills in two seconds: a caller quiet for longer is forgotten.
        let limiter = RateLimiter::new(Rate {
            per_second: 0.5,
            burst: 1,
        });
        for i in 0..100_000 {
            limiter.check(&format!("c-{i}")).unwrap();
        }
        std::thread::sleep(Duration::from_millis(2_100));
        limiter.check("c-a-second-ago").unwrap();
        assert_eq!(limiter.buckets.lock().unwrap().len(), 100_001);
        std::thread::sleep(Duration::from_millis(1_000));
        limiter.check("c-now").unwrap();
        let buckets = limiter.buckets.lock().unwrap();
        let mut left: Vec<&str> = buckets.keys().map(String::as_str).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            ["c-a-second-ago", "c-now"],
            "the callers quiet for over two seconds went; the others stay"
        );
    }

    /// `GET /` of `app`.
    async fn get(app: axum::Router) -> Response {
        use tower::ServiceExt;
        let request = Request::builder().uri("/").body(axum::body::Body::empty());
        app.oneshot(request.unwrap()).await.unwrap()
    }

    async fn status_with_slots(slots: usize) -> (u16, Option<String>) {
        let app = axum::Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(Semaphore::new(slots)),
                admit_anonymous,
            ));
        let response = get(app).await;
        let retry = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (response.status().as_u16(), retry)
    }

    #[tokio::test]
    async fn past_the_requests_in_progress_cap_a_request_gets_503_at_once() {
        assert_eq!(status_with_slots(1).await, (200, None));
        assert_eq!(status_with_slots(0).await, (503, Some("1".into())));
    }

    /// A router as the gateway layers it: the anonymous bucket, then (in
    /// place of the token check) `caller` as the principal, then the
    /// caller's share. The handler answers how many anonymous places were
    /// free while it ran.
    fn layered(
        anonymous: Arc<Semaphore>,
        shares: Arc<Slots>,
        caller: Option<&str>,
    ) -> axum::Router {
        let caller = caller.map(|subject| Principal {
            subject: subject.into(),
            role: orderflow_auth::Role::Customer,
            email: None,
        });
        let free = anonymous.clone();
        axum::Router::new()
            .route(
                "/",
                axum::routing::get(move || async move { free.available_permits().to_string() }),
            )
            .layer(axum::middleware::from_fn_with_state(shares, admit_caller))
            .layer(axum::middleware::from_fn(
                move |mut request: Request, next: Next| {
                    let caller = caller.clone();
                    async move {
                        if let Some(caller) = caller {
                            request.extensions_mut().insert(caller);
                        }
                        next.run(request).await
                    }
                },
            ))
            .layer(axum::middleware::from_fn_with_state(
                anonymous,
                admit_anonymous,
            ))
    }

    async fn call(app: axum::Router) -> (u16, String) {
        let response = get(app).await;
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_caller_gives_back_their_anonymous_place_and_holds_only_their_share() {
        let anonymous = Arc::new(Semaphore::new(1));
        let shares = Slots::new("requests in progress", 1, 10);
        // Authenticated: the anonymous place is free again while it runs.
        assert_eq!(
            call(layered(anonymous.clone(), shares.clone(), Some("c-1"))).await,
            (200, "1".into())
        );
        // Not authenticated (a public path): it keeps its place.
        assert_eq!(
            call(layered(anonymous.clone(), shares.clone(), None)).await,
            (200, "0".into())
        );
        // c-1 with a request already in progress is refused; c-2 is not.
        let held = shares.open("c-1").unwrap();
        let (status, _) = call(layered(anonymous.clone(), shares.clone(), Some("c-1"))).await;
        assert_eq!(status, 429);
        assert_eq!(
            call(layered(anonymous.clone(), shares.clone(), Some("c-2")))
                .await
                .0,
            200
        );
        drop(held);
        assert_eq!(
            call(layered(anonymous, shares.clone(), Some("c-1")))
                .await
                .0,
            200
        );
        assert!(
            shares.open.lock().unwrap().is_empty(),
            "every share given back"
        );
    }
}
