//! Tokens already verified. A caller sends the same token with every call
//! (and the gateway forwards it to the service, which checks it again), and
//! an ES256 signature check is most of a placement's CPU at the order
//! service (its `p256` arithmetic was a quarter of the order service's
//! samples in a `perf` profile of a burst). A token verified once is taken
//! at its hash until it would stop being accepted anyway (`exp` plus the
//! leeway) and at most [`MAX_HOLD`]: so a signing key the issuer withdraws
//! stops working here within a minute, as a token already issued with it
//! keeps working until its `exp` whatever is cached — bearer tokens are not
//! revoked one by one, which is why access tokens are short-lived. Refusals
//! are not kept: each is checked again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::Principal;

/// How long a verified token is taken without a second check, at most.
pub const MAX_HOLD: Duration = Duration::from_secs(60);
/// Tokens kept at once, at most (a few MB).
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub(crate) struct Verified {
    entries: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl Verified {
    pub(crate) fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The caller of a token verified before and still to be taken.
    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<Principal> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(principal, _)| principal.clone())
    }

    /// Keeps a verified token's caller until `accepted_for` from now (what
    /// is left of its validity), [`MAX_HOLD`] at most.
    pub(crate) fn put(&self, key: [u8; 32], principal: Principal, accepted_for: Duration) {
        let now = Instant::now();
        let until = now + accepted_for.min(MAX_HOLD);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, until)| now < *until);
            if entries.len() >= MAX_ENTRIES {
                // Ten thousand callers within a minute: start again.
                entries.clear();
            }
        }
        entries.insert(key, (principal, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn caller(subject: &str) -> Principal {
        Principal {
            subject: subject.into(),
            role: Role::Customer,
            email: None,
        }
    }

    #[test]
    fn a_token_is_taken_until_its_time_and_never_past_the_hold() {
        let v = Verified::default();
        let (a, b) = (Verified::key("token-a"), Verified::key("token-b"));
        assert_ne!(a, b);
        v.put(a, caller("c-a"), Duration::from_secs(3_600));
        v.put(b, caller("c-b"), Duration::ZERO);
        assert_eq!(v.get(&a).map(|p| p.subject), Some("c-a".into()));
        assert_eq!(v.get(&b), None, "no time left: checked again");
        let held = v.entries.lock().unwrap()[&a].1;
        assert!(held <= Instant::now() + MAX_HOLD);
    }

    #[test]
    fn it_holds_ten_thousand_at_most() {
        let v = Verified::default();
        for i in 0..MAX_ENTRIES + 5 {
            v.put(Verified::key(&i.to_string()), caller("c"), MAX_HOLD);
        }
        assert!(v.entries.lock().unwrap().len() <= MAX_ENTRIES);
        assert!(v
            .get(&Verified::key(&(MAX_ENTRIES + 4).to_string()))
            .is_some());
    }
}
