//! HTTP plumbing every orderflow service shares: RFC 9457 problem responses,
//! a JSON extractor whose rejections are problems too, health and readiness
//! endpoints, and serving a router until shutdown with every connection
//! bounded in number and time.

mod activity;
mod health;
mod json;
mod listeners;
mod path;
mod problem;
mod serve;

pub use health::{health_routes, Readiness};
pub use json::StrictJson;
pub use listeners::Listeners;
pub use path::{Path, Query};
pub use problem::{Problem, ProblemType};
pub use serve::{serve, serve_with, Limits, CLIENT_POOL_IDLE, MAX_BODY_BYTES};
