//! Where a page of a customer's order list begins, as the client holds it:
//! opaque text the API gave out, read back strictly.
#![deny(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use orderflow_api::IdKind;

/// Just below this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub placed_at: i64,
    pub order_id: String,
}

impl Cursor {
    /// Opaque to clients: hex of `placed_at:order_id`.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}:{}", self.placed_at, self.order_id))
    }

    /// A cursor this API gave out, or `None` (the client gets 422).
    pub fn decode(s: &str) -> Option<Self> {
        let text = String::from_utf8(hex::decode(s).ok()?).ok()?;
        let (placed_at, order_id) = text.split_once(':')?;
        if IdKind::Order.error(order_id).is_some() {
            return None;
        }
        Some(Self {
            placed_at: placed_at.parse().ok()?,
            order_id: order_id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_nothing_else_does() {
        let c = Cursor {
            placed_at: 1_700_000_000_000,
            order_id: "0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "zz",
            &hex::encode("12"),
            &hex::encode("x:0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b"),
            &hex::encode("12:../.."),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_cursor_or_refused(s in ".{0,120}", bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            let _ = Cursor::decode(&s);
            let _ = Cursor::decode(&hex::encode(bytes));
        }
    }
}
