//! The grammar of every identifier a path or query names: order ids, SKUs
//! and customer ids. Each is short ASCII from a small alphabet, so it can
//! never be a dot segment (`.`, `..`), a separator (`/`, `?`, `#`, `%`), a
//! control character or whitespace: whatever a service builds from it (an
//! upstream URL, a log line, a SQL parameter) means what it says. Gateway
//! and services check the same grammar; anything else is 422.
#![deny(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::validate::MAX_ID_LEN;

/// What an identifier is, and so which alphabet it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// A UUID as the order service makes it: 36 lowercase hex digits and
    /// hyphens (8-4-4-4-12).
    Order,
    /// A letter or digit, then up to 63 letters, digits, `.`, `_` or `-`.
    Sku,
    /// A token's subject: a letter or digit, then up to 63 letters, digits
    /// or one of `. _ - : @ | + = ~` (Auth0's `auth0|…`, Dex's base64,
    /// an email as subject).
    Customer,
}

impl IdKind {
    fn name(self) -> &'static str {
        match self {
            IdKind::Order => "an order id",
            IdKind::Sku => "a SKU",
            IdKind::Customer => "a customer id",
        }
    }

    fn rule(self) -> &'static str {
        match self {
            IdKind::Order => "a UUID like 0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b",
            IdKind::Sku => "a letter or digit, then up to 63 letters, digits, '.', '_' or '-'",
            IdKind::Customer => {
                "a letter or digit, then up to 63 letters, digits or any of . _ - : @ | + = ~"
            }
        }
    }

    fn allows(self, position: usize, c: u8) -> bool {
        match self {
            IdKind::Order => match position {
                8 | 13 | 18 | 23 => c == b'-',
                _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
            },
            IdKind::Sku => c.is_ascii_alphanumeric() || (position > 0 && b"._-".contains(&c)),
            IdKind::Customer => {
                c.is_ascii_alphanumeric() || (position > 0 && b"._-:@|+=~".contains(&c))
            }
        }
    }

    fn lengths(self) -> std::ops::RangeInclusive<usize> {
        match self {
            IdKind::Order => 36..=36,
            IdKind::Sku | IdKind::Customer => 1..=MAX_ID_LEN,
        }
    }

    /// Why `value` is not an identifier of this kind, if it is not. The
    /// message quotes at most the first 16 characters, escaped.
    pub fn error(self, value: &str) -> Option<String> {
        let fits = self.lengths().contains(&value.len())
            && value.bytes().enumerate().all(|(i, c)| self.allows(i, c));
        if fits {
            return None;
        }
        let shown: String = value.chars().take(16).collect();
        Some(format!(
            "{shown:?} is not {}: use {}",
            self.name(),
            self.rule()
        ))
    }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const KIND: IdKind = $kind;

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(value: String) -> Result<Self, String> {
                match Self::KIND.error(&value) {
                    None => Ok(Self(value)),
                    Some(why) => Err(why),
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                Self::try_from(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identifier!(
    /// An order id (a path parameter or filter), checked.
    OrderId,
    IdKind::Order
);
identifier!(
    /// A SKU, checked.
    Sku,
    IdKind::Sku
);
identifier!(
    /// A customer id, checked.
    CustomerId,
    IdKind::Customer
);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_in_use_pass() {
        for (kind, ok) in [
            (IdKind::Order, "0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b"),
            (IdKind::Sku, "SKU-001"),
            (IdKind::Sku, "a.b_c-9"),
            (IdKind::Sku, "x"),
            (IdKind::Customer, "c-42"),
            (IdKind::Customer, "auth0|5f7c8ec7c33c6c004bbafe82"),
            (IdKind::Customer, "ada@example.com"),
            (IdKind::Customer, "CgNib2ISBWxvY2Fs+="),
            (IdKind::Customer, "d~e:f"),
        ] {
            assert_eq!(kind.error(ok), None, "{kind:?} {ok}");
        }
        assert_eq!(IdKind::Sku.error(&"S".repeat(MAX_ID_LEN)), None);
    }

    #[test]
    fn dots_separators_controls_and_the_overlong_are_refused() {
        let overlong = "S".repeat(MAX_ID_LEN + 1);
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-x",
            "a/b",
            "a%2Fb",
            "%2E%2E",
            "a b",
            "SKU-001\t",
            "a\nb",
            "a\0b",
            "a?b",
            "a#b",
            "a\\b",
            "ä",
            "SKU-\u{202e}1",
            &overlong,
        ] {
            for kind in [IdKind::Order, IdKind::Sku, IdKind::Customer] {
                assert!(kind.error(bad).is_some(), "{kind:?} {bad:?}");
            }
        }
        for bad in [
            "0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7", // short
            "0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7bb",
            "0190B7A2-6F3C-7D4E-9A1B-2C3D4E5F6A7B", // not as the service writes it
            "0190b7a2x6f3c-7d4e-9a1b-2c3d4e5f6a7b",
            "0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7g",
            "does-not-exist",
        ] {
            assert!(IdKind::Order.error(bad).is_some(), "{bad}");
        }
        assert!(IdKind::Sku.error("a@b").is_some() && IdKind::Customer.error("a@b").is_none());
        assert!(IdKind::Sku.error("a|b").is_some() && IdKind::Sku.error("a:b").is_some());
    }

    #[test]
    fn a_refusal_quotes_little_and_escapes_it() {
        let why = IdKind::Sku
            .error(&format!("\n{}", "A".repeat(100)))
            .unwrap();
        assert!(
            why.starts_with("\"\\nAAAAAAAAAAAAAAA\" is not a SKU"),
            "{why}"
        );
        assert!(why.len() < 120, "{why}");
    }

    #[test]
    fn checked_ids_read_from_json_and_paths() {
        let sku: Sku = serde_json::from_str("\"SKU-001\"").unwrap();
        assert_eq!(sku.as_str(), "SKU-001");
        assert_eq!(sku.to_string(), "SKU-001");
        assert!(serde_json::from_str::<Sku>("\"..\"").is_err());
        assert!("..".parse::<CustomerId>().is_err());
        assert_eq!(String::from("c-1".parse::<CustomerId>().unwrap()), "c-1");
    }

    proptest! {
        /// Whatever a caller sends, the check answers and never panics; what
        /// passes is short printable ASCII with no dot-only segment.
        #[test]
        fn any_string_is_judged_without_panic(s in any::<String>()) {
            for kind in [IdKind::Order, IdKind::Sku, IdKind::Customer] {
                if kind.error(&s).is_none() {
                    prop_assert!(s.len() <= MAX_ID_LEN && s.is_ascii());
                    prop_assert!(s.bytes().all(|c| c.is_ascii_graphic() && !b"/%?#\\".contains(&c)));
                    prop_assert!(!s.starts_with('.'));
                }
            }
        }
    }
}
