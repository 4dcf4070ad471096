//! What the JSON shape of a request cannot check: non-empty fields, sane
//! quantities, codes of the right form. Every failure is listed, so a
//! client fixes them all at once.

use orderflow_http::Problem;
use sha2::{Digest, Sha256};

use crate::{IdKind, PlaceOrder, SetStock};

/// Most units of one SKU a single order line may ask for.
pub const MAX_QUANTITY: i64 = 1_000;
/// Most units an order may ask for, over all its lines.
pub const MAX_UNITS_PER_ORDER: i64 = 1_000;
/// Most lines an order may have.
pub const MAX_LINES: usize = 100;
/// The longest id (customer, SKU, payment token, order): 64 characters.
pub const MAX_ID_LEN: usize = 64;
/// The longest name, address line or city: 200 characters.
pub const MAX_TEXT_LEN: usize = 200;
/// The longest postal code.
pub const MAX_POSTAL_CODE_LEN: usize = 16;
/// The highest unit price, in minor units (1,000,000.00 in a two-decimal
/// currency). With [`MAX_UNITS_PER_ORDER`] it bounds every order's total far
/// below `i64::MAX`: a total can never overflow.
pub const MAX_UNIT_PRICE_MINOR: i64 = 100_000_000;

/// The longest email address (RFC 5321's path limit less its brackets).
pub const MAX_EMAIL_LEN: usize = 254;

/// What is wrong with `email` as the address notifications are mailed to, if
/// anything: one `@` between a local part and a dotted domain, printable
/// ASCII without spaces, brackets, quotes or separators (so it can be put in
/// a mail header as it is), at most [`MAX_EMAIL_LEN`] characters.
pub fn email_error(email: &str) -> Option<String> {
    let shape = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    });
    let plain = email
        .chars()
        .all(|c| c.is_ascii_graphic() && !"<>()[],;:\"\\".contains(c));
    let len = email.chars().count();
    if len > MAX_EMAIL_LEN {
        Some(format!(
            "may have at most {MAX_EMAIL_LEN} characters, got {len}"
        ))
    } else if !(shape && plain) {
        Some("must be an address like ada@example.com".to_string())
    } else {
        None
    }
}

/// Pushes an error when `value` is empty or longer than `max` characters.
fn bounded(errors: &mut Vec<String>, field: &str, value: &str, max: usize) {
    let len = value.chars().count();
    if value.trim().is_empty() {
        errors.push(format!("{field} must not be empty"));
    } else if len > max {
        errors.push(format!(
            "{field} may have at most {max} characters, got {len}"
        ));
    }
}

/// Pushes an error when `value` is not an identifier of `kind`.
fn identifier(errors: &mut Vec<String>, field: &str, value: &str, kind: IdKind) {
    if let Some(why) = kind.error(value) {
        errors.push(format!("{field}: {why}"));
    }
}

impl PlaceOrder {
    /// Checks what the JSON shape cannot: non-empty fields, sane quantities.
    pub fn validate(&self) -> Result<(), Problem> {
        let mut errors = Vec::new();
        match &self.customer_id {
            Some(customer_id) => {
                identifier(&mut errors, "customer_id", customer_id, IdKind::Customer)
            }
            None => errors.push("customer_id is missing".to_string()),
        }
        if self.items.is_empty() {
            errors.push("items must name at least one SKU".to_string());
        }
        if self.items.len() > MAX_LINES {
            errors.push(format!("items may have at most {MAX_LINES} lines"));
        }
        for (i, line) in self.items.iter().enumerate() {
            identifier(
                &mut errors,
                &format!("items[{i}].sku"),
                &line.sku,
                IdKind::Sku,
            );
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                errors.push(format!(
                    "items[{i}].quantity must be between 1 and {MAX_QUANTITY}, got {}",
                    line.quantity
                ));
            }
        }
        let units: i64 = self
            .items
            .iter()
            .map(|l| l.quantity.clamp(0, MAX_QUANTITY))
            .sum();
        if units > MAX_UNITS_PER_ORDER {
            errors.push(format!(
                "an order may ask for at most {MAX_UNITS_PER_ORDER} units in all, got {units}"
            ));
        }
        bounded(
            &mut errors,
            "payment.token",
            &self.payment.token,
            MAX_ID_LEN,
        );
        let a = &self.shipping_address;
        for (field, value, max) in [
            ("name", &a.name, MAX_TEXT_LEN),
            ("line1", &a.line1, MAX_TEXT_LEN),
            ("city", &a.city, MAX_TEXT_LEN),
            ("postal_code", &a.postal_code, MAX_POSTAL_CODE_LEN),
        ] {
            bounded(
                &mut errors,
                &format!("shipping_address.{field}"),
                value,
                max,
            );
        }
        if a.country.len() != 2 || !a.country.chars().all(|c| c.is_ascii_uppercase()) {
            errors.push(format!(
                "shipping_address.country must be an ISO 3166-1 alpha-2 code like DE, got {:?}",
                a.country.chars().take(8).collect::<String>()
            ));
        }
        if let Some(why) = self.customer_email.as_deref().and_then(email_error) {
            errors.push(format!("customer_email {why}"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(errors.join("; ")))
        }
    }

    /// Whose order it is (validated present before it is placed).
    pub fn customer(&self) -> &str {
        self.customer_id.as_deref().unwrap_or_default()
    }

    /// A fingerprint of the request, to tell an `Idempotency-Key` replay from a
    /// reuse of the key with another body.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a request serializes");
        hex::encode(Sha256::digest(canonical))
    }
}

impl SetStock {
    pub fn validate(&self) -> Result<(), Problem> {
        let mut errors = Vec::new();
        if self.available < 0 {
            errors.push(format!(
                "available must not be negative, got {}",
                self.available
            ));
        }
        if self.unit_price.amount_minor < 1 {
            // Payment providers refuse zero charges; orderflow sells nothing for free.
            errors.push("unit_price.amount_minor must be at least 1".to_string());
        }
        if self.unit_price.amount_minor > MAX_UNIT_PRICE_MINOR {
            errors.push(format!(
                "unit_price.amount_minor may be at most {MAX_UNIT_PRICE_MINOR}, got {}",
                self.unit_price.amount_minor
            ));
        }
        let c = &self.unit_price.currency;
        if c.len() != 3 || !c.chars().all(|c| c.is_ascii_uppercase()) {
            errors.push(format!(
                "unit_price.currency must be an ISO 4217 code like EUR, got {c:?}"
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(errors.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OrderLine;

    fn order() -> PlaceOrder {
        serde_json::from_str(
            r#"{"customer_id": "c-42", "items": [{"sku": "SKU-001", "quantity": 2}],
                "payment": {"token": "tok_visa"},
                "shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "Berlin",
                                     "postal_code": "10115", "country": "DE"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_customer_is_the_one_named_in_the_request() {
        let mut request = order();
        assert_eq!(request.customer(), "c-42");
        request.customer_id = None;
        assert_eq!(
            request.customer(),
            "",
            "no customer yet: the gateway fills it from the token"
        );
    }

    #[test]
    fn no_order_total_can_overflow() {
        assert!(
            MAX_UNIT_PRICE_MINOR
                .checked_mul(MAX_UNITS_PER_ORDER)
                .is_some_and(|t| t < i64::MAX / 1_000),
            "the bounds keep every total far from overflowing"
        );
    }

    #[test]
    fn every_text_has_a_most_length() {
        let mut o = order();
        o.customer_id = Some("c".repeat(64));
        o.items[0].sku = "S".repeat(64);
        o.payment.token = "t".repeat(64);
        o.shipping_address.line1 = "l".repeat(200);
        o.shipping_address.postal_code = "1".repeat(16);
        assert_eq!(o.validate(), Ok(()));
        o.customer_id = Some("c".repeat(65));
        o.items[0].sku = "S".repeat(65);
        o.payment.token = "t".repeat(65);
        o.shipping_address.name = "n".repeat(201);
        o.shipping_address.line1 = "l".repeat(201);
        o.shipping_address.city = "c".repeat(201);
        o.shipping_address.postal_code = "1".repeat(17);
        let detail = o.validate().unwrap_err().detail.unwrap();
        assert_eq!(detail.matches("at most").count(), 5, "{detail}");
        assert!(detail.contains("customer_id: \"cccccccccccccccc\" is not a customer id"));
        assert!(detail.contains("items[0].sku: \"SSSSSSSSSSSSSSSS\" is not a SKU"));
        o.customer_id = None;
        assert!(o
            .validate()
            .unwrap_err()
            .detail
            .unwrap()
            .contains("customer_id is missing"));
    }

    #[test]
    fn skus_and_customers_follow_the_id_grammar() {
        for bad in ["..", ".", "SKU-001\t", "a/b", "ä"] {
            let mut o = order();
            o.items[0].sku = bad.into();
            o.customer_id = Some(bad.into());
            let detail = o.validate().unwrap_err().detail.unwrap();
            assert!(
                detail.contains("items[0].sku") && detail.contains("customer_id"),
                "{detail}"
            );
        }
    }

    #[test]
    fn an_order_asks_for_a_thousand_units_at_most() {
        let mut o = order();
        o.items = vec![
            OrderLine {
                sku: "A".into(),
                quantity: 600,
            },
            OrderLine {
                sku: "B".into(),
                quantity: 400,
            },
        ];
        assert_eq!(o.validate(), Ok(()));
        o.items[1].quantity = 401;
        assert!(o
            .validate()
            .unwrap_err()
            .detail
            .unwrap()
            .contains("at most 1000 units in all, got 1001"));
    }

    #[test]
    fn the_documented_example_is_valid() {
        assert_eq!(order().validate(), Ok(()));
    }

    #[test]
    fn bad_quantities_and_empty_orders_are_rejected_with_every_reason() {
        let mut o = order();
        o.items.push(OrderLine {
            sku: "SKU-002".into(),
            quantity: 0,
        });
        o.items.push(OrderLine {
            sku: "SKU-003".into(),
            quantity: -1,
        });
        let detail = o.validate().unwrap_err().detail.unwrap();
        assert!(
            detail.contains("items[1].quantity") && detail.contains("items[2].quantity"),
            "{detail}"
        );
        o.items.clear();
        assert!(o
            .validate()
            .unwrap_err()
            .detail
            .unwrap()
            .contains("at least one"));
    }

    #[test]
    fn an_order_may_have_up_to_a_hundred_lines() {
        let mut o = order();
        o.items = vec![o.items[0].clone(); MAX_LINES];
        assert_eq!(o.validate(), Ok(()));
        o.items.push(o.items[0].clone());
        let detail = o.validate().unwrap_err().detail.unwrap();
        assert_eq!(detail, "items may have at most 100 lines");
    }

    #[test]
    fn a_line_may_ask_for_one_to_a_thousand_units() {
        let mut o = order();
        for (quantity, valid) in [(1, true), (1000, true), (0, false), (1001, false)] {
            o.items[0].quantity = quantity;
            assert_eq!(o.validate().is_ok(), valid, "{quantity}");
        }
    }

    #[test]
    fn a_country_is_two_capital_letters() {
        let mut o = order();
        for (country, valid) in [
            ("DE", true),
            ("AQ", true),
            ("DEU", false),
            ("de", false),
            ("D", false),
            ("D1", false),
        ] {
            o.shipping_address.country = country.into();
            assert_eq!(o.validate().is_ok(), valid, "{country}");
        }
        o.shipping_address.country = "Germany".into();
        assert!(o
            .validate()
            .unwrap_err()
            .detail
            .unwrap()
            .contains("ISO 3166-1 alpha-2"));
    }

    fn stock(available: i64, amount_minor: i64, currency: &str) -> SetStock {
        SetStock {
            available,
            unit_price: crate::MoneyView {
                amount_minor,
                currency: currency.into(),
            },
        }
    }

    #[test]
    fn stock_is_never_negative_and_nothing_is_free() {
        assert_eq!(stock(0, 1, "EUR").validate(), Ok(()));
        assert_eq!(stock(25, 1250, "EUR").validate(), Ok(()));
        assert_eq!(stock(1, MAX_UNIT_PRICE_MINOR, "EUR").validate(), Ok(()));
        assert!(stock(1, MAX_UNIT_PRICE_MINOR + 1, "EUR")
            .validate()
            .is_err());
        assert!(stock(1, i64::MAX, "EUR").validate().is_err());
        let detail = |s: SetStock| s.validate().unwrap_err().detail.unwrap();
        assert_eq!(
            detail(stock(-1, 1, "EUR")),
            "available must not be negative, got -1"
        );
        assert_eq!(
            detail(stock(1, 0, "EUR")),
            "unit_price.amount_minor must be at least 1"
        );
        assert!(stock(1, -5, "EUR").validate().is_err());
        for currency in ["eur", "EURO", "EU", "E1R"] {
            assert!(
                detail(stock(1, 1, currency)).contains("ISO 4217"),
                "{currency}"
            );
        }
        // Every reason at once.
        assert_eq!(detail(stock(-1, 0, "x")).split("; ").count(), 3);
    }

    #[test]
    fn unknown_fields_do_not_parse() {
        let err = serde_json::from_str::<PlaceOrder>(
            r#"{"customer_id": "c", "items": [], "payment": {"token": "t"}, "coupon": "FREE",
                "shipping_address": {"name": "A", "line1": "1", "city": "B", "postal_code": "1", "country": "DE"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `coupon`"), "{err}");
    }

    #[test]
    fn the_fingerprint_tells_bodies_apart() {
        let mut other = order();
        other.items[0].quantity = 3;
        assert_eq!(order().fingerprint(), order().fingerprint());
        assert_ne!(order().fingerprint(), other.fingerprint());
    }

    #[test]
    fn an_email_address_is_one_at_between_a_local_part_and_a_dotted_domain() {
        for good in ["ada@example.com", "a.b+orders@mail.example.co.uk", "x@y.z"] {
            assert_eq!(email_error(good), None, "{good}");
        }
        let max = format!("{}@example.com", "a".repeat(MAX_EMAIL_LEN - 12));
        assert_eq!(max.len(), MAX_EMAIL_LEN);
        assert_eq!(email_error(&max), None, "exactly the longest");
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@.example.com",
            "ada@example.com.",
            "ada@b@example.com",
            "ada lovelace@example.com",
            "ada@example.com\r\nBcc: eve@example.com",
            "Ada <ada@example.com>",
            "ada,eve@example.com",
            "ada;eve@example.com",
            "\"ada\"@example.com",
            "ada(x)@example.com",
            "ada[x]@example.com",
            "ada:x@example.com",
            "ada\\x@example.com",
            "adä@example.com",
        ] {
            assert_eq!(
                email_error(bad).as_deref(),
                Some("must be an address like ada@example.com"),
                "{bad:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(MAX_EMAIL_LEN - 11));
        assert_eq!(
            email_error(&long),
            Some(format!(
                "may have at most {MAX_EMAIL_LEN} characters, got {}",
                MAX_EMAIL_LEN + 1
            ))
        );
    }

    #[test]
    fn an_order_with_a_bad_email_is_refused_and_one_without_is_not() {
        let mut o = order();
        o.customer_email = None;
        assert!(o.validate().is_ok());
        o.customer_email = Some("ada@example.com".into());
        assert!(o.validate().is_ok());
        o.customer_email = Some("ada".into());
        let detail = o.validate().unwrap_err().detail.unwrap();
        assert!(
            detail.contains("customer_email must be an address like ada@example.com"),
            "{detail}"
        );
    }

    proptest::proptest! {
        /// Any body either does not parse (400) or is judged valid or not
        /// (422), never a panic: arbitrary bytes, and real orders with
        /// arbitrary text in every field.
        #[test]
        fn any_body_is_parsed_and_judged_without_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            text in proptest::collection::vec(".{0,80}", 8),
            quantity in proptest::num::i64::ANY,
        ) {
            if let Ok(o) = serde_json::from_slice::<PlaceOrder>(&bytes) {
                let _ = o.validate();
            }
            let mut o = order();
            o.customer_id = Some(text[0].clone());
            o.items[0].sku = text[1].clone();
            o.items[0].quantity = quantity;
            o.payment.token = text[2].clone();
            o.customer_email = Some(text[3].clone());
            o.shipping_address.name = text[4].clone();
            o.shipping_address.postal_code = text[5].clone();
            o.shipping_address.country = text[6].clone();
            o.shipping_address.city = text[7].clone();
            let _ = o.validate();
        }
    }
}
