//! Every call to the API carries an OAuth 2.0 bearer token, checked by
//! libs/auth's [`Gate`] as every service checks it. Anyone may fetch the
//! OpenAPI document and the console's files; the health probes and the
//! metrics are on the operations port, apart from the API.

use std::sync::Arc;

use orderflow_auth::{Gate, Verifier};

pub use orderflow_auth::{require_operator, require_own, Bearer};

pub fn gate(verifier: Arc<Verifier>) -> Gate {
    Gate::new(verifier).with_public(is_public)
}

fn is_public(path: &str) -> bool {
    path == "/openapi.json" || crate::console::is_console(path)
}
