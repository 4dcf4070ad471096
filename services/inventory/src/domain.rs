//! Inventory decisions, free of I/O.

use std::collections::BTreeMap;

use orderflow_envelope::{Money, OrderItem, ReservedLine};

/// An order's lines with the same SKU merged, so a SKU listed twice is
/// reserved once for the sum (and in a stable order, which keeps lock order
/// stable across concurrent reservations).
pub fn merge_lines(items: &[OrderItem]) -> Vec<OrderItem> {
    let mut merged: BTreeMap<&str, i32> = BTreeMap::new();
    for item in items {
        *merged.entry(&item.sku).or_default() += item.quantity;
    }
    merged
        .into_iter()
        .map(|(sku, quantity)| OrderItem {
            sku: sku.to_string(),
            quantity,
        })
        .collect()
}

/// The order's total from the catalogue prices. All lines must share one
/// currency; a catalogue with mixed currencies cannot price one order.
pub fn total(lines: &[ReservedLine]) -> Result<Money, String> {
    let currency = lines
        .first()
        .map(|l| l.unit_price.currency.clone())
        .ok_or("an order has no lines")?;
    let mut amount: i64 = 0;
    for line in lines {
        if line.unit_price.currency != currency {
            return Err(format!(
                "lines are priced in {currency} and {}; one order cannot mix currencies",
                line.unit_price.currency
            ));
        }
        amount = line
            .unit_price
            .amount_minor
            .checked_mul(i64::from(line.quantity))
            .and_then(|l| amount.checked_add(l))
            .ok_or("order total overflows")?;
    }
    Ok(Money::new(amount, currency))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: i32, price: i64) -> ReservedLine {
        ReservedLine {
            sku: sku.into(),
            quantity,
            unit_price: Money::new(price, "EUR"),
        }
    }

    #[test]
    fn duplicate_skus_are_merged() {
        let items = vec![
            OrderItem {
                sku: "B".into(),
                quantity: 1,
            },
            OrderItem {
                sku: "A".into(),
                quantity: 2,
            },
            OrderItem {
                sku: "B".into(),
                quantity: 3,
            },
        ];
        assert_eq!(
            merge_lines(&items),
            vec![
                OrderItem {
                    sku: "A".into(),
                    quantity: 2
                },
                OrderItem {
                    sku: "B".into(),
                    quantity: 4
                }
            ]
        );
    }

    #[test]
    fn the_total_multiplies_catalogue_prices() {
        assert_eq!(
            total(&[line("A", 2, 1999), line("B", 1, 500)]),
            Ok(Money::new(4498, "EUR"))
        );
        let mut usd = line("C", 1, 100);
        usd.unit_price.currency = "USD".into();
        assert!(total(&[line("A", 1, 1), usd]).is_err());
    }
}
