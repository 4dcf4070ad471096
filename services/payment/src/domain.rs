//! Payment decisions, free of I/O: a payment's life, what a reservation or
//! a failed shipment asks of the provider given what the payment already
//! says, and how the sandbox provider answers a card token.

/// A payment's life: PENDING (the charge is being asked for) → CHARGED,
/// DECLINED or FAILED (the provider was unreachable); a charge of a failed
/// shipment → REFUNDING → REFUNDED, or REFUND_FAILED (an operator must act).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Charged,
    Declined,
    Failed,
    Refunding,
    Refunded,
    RefundFailed,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Charged,
        Status::Declined,
        Status::Failed,
        Status::Refunding,
        Status::Refunded,
        Status::RefundFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Charged => "CHARGED",
            Status::Declined => "DECLINED",
            Status::Failed => "FAILED",
            Status::Refunding => "REFUNDING",
            Status::Refunded => "REFUNDED",
            Status::RefundFailed => "REFUND_FAILED",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// What a reservation asks of the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeStep {
    /// Ask the provider for the charge (again, after a crash: same key).
    Call,
    /// The charge was decided already; nothing to do.
    Decided,
}

/// `existing` is the payment found when recording the intent failed because
/// one was there (None: the intent was recorded just now).
pub fn charge_step(existing: Option<Status>) -> ChargeStep {
    match existing {
        None | Some(Status::Pending) => ChargeStep::Call,
        Some(_) => ChargeStep::Decided,
    }
}

/// What a failed shipment asks of the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStep {
    /// Record the intent (CHARGED → REFUNDING), then ask for the refund.
    Begin,
    /// The intent was recorded by an earlier attempt: ask again (same key).
    Resume,
    /// Never charged, or refunded (or refused) already: nothing to do.
    Nothing,
    /// Its shipment was created: the goods left, and a failed shipment for
    /// it is a contradiction (forged, or a carrier's error) an operator must
    /// look at. No refund.
    Shipped,
}

/// What a failed shipment asks, given the payment's status and whether the
/// order's shipment was created.
pub fn refund_step(status: Status, shipped: bool) -> RefundStep {
    match status {
        _ if shipped => RefundStep::Shipped,
        Status::Charged => RefundStep::Begin,
        Status::Refunding => RefundStep::Resume,
        _ => RefundStep::Nothing,
    }
}

/// The sandbox's card tokens, following the card-provider test-token convention.
pub const DECLINED_TOKEN: &str = "tok_chargeDeclined";
/// Times out on the first [`FLAKY_TIMEOUTS`] calls for an order, then succeeds.
pub const FLAKY_TOKEN: &str = "tok_flaky";
/// Always times out.
pub const UNAVAILABLE_TOKEN: &str = "tok_unavailable";
/// Charges, but the refund is refused.
pub const REFUND_DECLINED_TOKEN: &str = "tok_refundDeclined";
/// Charges, but a refund is never answered.
pub const REFUND_UNAVAILABLE_TOKEN: &str = "tok_refundUnavailable";
/// Charges, but the answer never reaches the caller (the provider did its
/// part; the network lost the reply).
pub const CHARGE_UNANSWERED_TOKEN: &str = "tok_chargeUnanswered";
/// Charges; refunds, but the refund's answer never reaches the caller.
pub const REFUND_UNANSWERED_TOKEN: &str = "tok_refundUnanswered";
/// Calls of a `tok_flaky` order that time out before one succeeds.
pub const FLAKY_TIMEOUTS: u32 = 3;

/// Whether the sandbox leaves the `call`-th call (from 1) under one
/// idempotency key with `token` unanswered.
pub fn sandbox_times_out(token: &str, call: u32) -> bool {
    match token {
        UNAVAILABLE_TOKEN => true,
        FLAKY_TOKEN => call <= FLAKY_TIMEOUTS,
        _ => false,
    }
}

/// Whether the sandbox charges `token` and then leaves the call unanswered.
pub fn sandbox_loses_answer(token: &str) -> bool {
    token == CHARGE_UNANSWERED_TOKEN
}

/// Whether the sandbox refunds a charge made to `token` and then leaves the
/// call unanswered.
pub fn sandbox_loses_refund_answer(token: &str) -> bool {
    token == REFUND_UNANSWERED_TOKEN
}

/// Whether the sandbox leaves a refund of a charge made to `token` unanswered.
pub fn sandbox_refund_times_out(token: &str) -> bool {
    token == REFUND_UNAVAILABLE_TOKEN
}

/// Whether the sandbox declines a charge to `token`.
pub fn sandbox_declines(token: &str) -> bool {
    token == DECLINED_TOKEN
}

/// Whether the sandbox refuses to refund a charge made to `token`.
pub fn sandbox_refuses_refund(token: &str) -> bool {
    token == REFUND_DECLINED_TOKEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_is_asked_for_until_it_is_decided() {
        assert_eq!(charge_step(None), ChargeStep::Call);
        assert_eq!(charge_step(Some(Status::Pending)), ChargeStep::Call);
        for decided in Status::ALL.into_iter().filter(|s| *s != Status::Pending) {
            assert_eq!(
                charge_step(Some(decided)),
                ChargeStep::Decided,
                "{decided:?}"
            );
        }
    }

    #[test]
    fn only_a_charge_is_refunded_and_a_refund_under_way_is_asked_again() {
        assert_eq!(refund_step(Status::Charged, false), RefundStep::Begin);
        assert_eq!(refund_step(Status::Refunding, false), RefundStep::Resume);
        for s in Status::ALL {
            assert_eq!(
                refund_step(s, true),
                RefundStep::Shipped,
                "{s:?}: its goods left"
            );
        }
        for other in [
            Status::Pending,
            Status::Declined,
            Status::Failed,
            Status::Refunded,
            Status::RefundFailed,
        ] {
            assert_eq!(refund_step(other, false), RefundStep::Nothing, "{other:?}");
        }
    }

    #[test]
    fn statuses_read_back_by_name() {
        for s in Status::ALL {
            assert_eq!(Status::from_name(s.as_str()), Some(s));
        }
        assert_eq!(Status::from_name("charged"), None);
        let names: std::collections::HashSet<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), Status::ALL.len());
        assert_eq!(Status::RefundFailed.as_str(), "REFUND_FAILED");
    }

    #[test]
    fn the_sandbox_answers_tokens_as_documented() {
        assert!(sandbox_times_out("tok_unavailable", 1));
        assert!(sandbox_times_out("tok_unavailable", 100));
        assert!(sandbox_times_out("tok_flaky", 1));
        assert!(sandbox_times_out("tok_flaky", 3));
        assert!(!sandbox_times_out("tok_flaky", 4));
        assert!(!sandbox_times_out("tok_visa", 1));
        assert!(sandbox_loses_answer("tok_chargeUnanswered"));
        assert!(!sandbox_loses_answer("tok_visa"));
        assert!(
            !sandbox_times_out("tok_chargeUnanswered", 1),
            "it charges first"
        );
        assert!(sandbox_loses_refund_answer("tok_refundUnanswered"));
        assert!(!sandbox_loses_refund_answer("tok_refundUnavailable"));
        assert!(
            !sandbox_refund_times_out("tok_refundUnanswered"),
            "it refunds first"
        );
        assert!(sandbox_declines("tok_chargeDeclined"));
        assert!(!sandbox_declines("tok_visa"));
        assert!(sandbox_refund_times_out("tok_refundUnavailable"));
        assert!(!sandbox_refund_times_out("tok_refundDeclined"));
        assert!(
            !sandbox_times_out("tok_refundUnavailable", 1),
            "its charge is answered"
        );
        assert!(sandbox_refuses_refund("tok_refundDeclined"));
        assert!(!sandbox_refuses_refund("tok_visa"));
    }
}
