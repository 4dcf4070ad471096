use super::*;

fn order(id: &str, status: &str, reason: Option<&str>, charges: u32, refunds: u32) -> OrderFacts {
    let notifications = expected_notifications(status, reason)
        .into_iter()
        .map(String::from)
        .collect();
    OrderFacts {
        order_id: id.into(),
        status: status.into(),
        reason: reason.map(String::from),
        lines: vec![("SKU-1".into(), 2)],
        placed_at_ms: 1_000,
        charges,
        refunds,
        notifications,
    }
}

fn names(violations: &[Violation]) -> Vec<&'static str> {
    violations.iter().map(|v| v.invariant.name()).collect()
}

#[test]
fn the_sagas_outcomes_as_they_should_be_break_nothing() {
    let orders = [
        order("o-1", "SHIPPED", None, 1, 0),
        order("o-2", "CANCELLED", Some("OUT_OF_STOCK"), 0, 0),
        order("o-3", "CANCELLED", Some("PAYMENT_DECLINED"), 0, 0),
        order("o-4", "CANCELLED", Some("PAYMENT_UNAVAILABLE"), 0, 0),
        order("o-5", "CANCELLED", Some("SHIPPING_FAILED"), 1, 1),
        order("o-6", "PAID", None, 1, 0),
    ];
    let stock = [StockFacts {
        sku: "SKU-1".into(),
        initial: 100,
        restocked: 10,
        available: 106,
        reserved: 2, // o-6's
        shipped: None,
    }];
    assert_eq!(check_orders(&orders, &stock), []);
    assert!(summary(&[]).values().all(|&n| n == 0));
    assert_eq!(summary(&[]).len(), Invariant::ALL.len());
}

#[test]
fn a_cancelled_order_that_keeps_its_charge_breaks_two_promises() {
    let o = order("o-1", "CANCELLED", Some("PAYMENT_UNAVAILABLE"), 1, 0);
    assert_eq!(
        names(&check_orders(&[o], &[])),
        [
            "charged_is_shipped_or_refunded",
            "cancelled_keeps_no_charge"
        ]
    );
    let refunded = order("o-2", "CANCELLED", Some("SHIPPING_FAILED"), 1, 1);
    assert_eq!(cancelled_keeps_no_charge(&refunded), None);
}

#[test]
fn shipped_without_a_charge_or_refunded_after_shipping_is_a_violation() {
    assert!(charged_is_shipped_or_refunded(&order("o", "SHIPPED", None, 0, 0)).is_some());
    assert!(charged_is_shipped_or_refunded(&order("o", "SHIPPED", None, 1, 1)).is_some());
    assert!(charged_is_shipped_or_refunded(&order("o", "SHIPPED", None, 1, 0)).is_none());
    // The refund an operator still owes.
    let pending = order("o", "REFUND_PENDING", None, 1, 0);
    assert!(charged_is_shipped_or_refunded(&pending).is_some());
    // In flight: not judged yet.
    assert!(charged_is_shipped_or_refunded(&order("o", "PAID", None, 1, 0)).is_none());
}

#[test]
fn twice_is_a_violation_once_is_not() {
    assert!(at_most_once(&order("o", "SHIPPED", None, 1, 0)).is_none());
    let twice = at_most_once(&order("o", "SHIPPED", None, 2, 0)).expect("charged twice");
    assert_eq!(twice.subject, "o");
    assert!(twice.to_string().contains("2 charges"), "{twice}");
    assert!(at_most_once(&order("o", "CANCELLED", Some("SHIPPING_FAILED"), 1, 2)).is_some());
}

#[test]
fn a_missing_or_repeated_notification_is_a_violation() {
    let mut o = order("o", "SHIPPED", None, 1, 0);
    assert!(one_notification_per_outcome(&o).is_none());
    o.notifications = vec!["shipped".into(), "payment_received".into()];
    assert!(
        one_notification_per_outcome(&o).is_none(),
        "order does not matter"
    );
    o.notifications.push("shipped".into());
    assert!(one_notification_per_outcome(&o).is_some(), "twice");
    o.notifications = vec!["payment_received".into()];
    assert!(one_notification_per_outcome(&o).is_some(), "lost");
    let mut in_flight = order("p", "PAID", None, 1, 0);
    in_flight.notifications = vec!["payment_received".into()];
    assert!(one_notification_per_outcome(&in_flight).is_none());
}

#[test]
fn an_order_in_flight_past_its_limit_is_a_violation() {
    let o = order("o", "RESERVED", None, 0, 0);
    assert!(
        terminal_by_deadline(&o, 1_000 + 60_000, 60_000).is_none(),
        "at the limit"
    );
    let late = terminal_by_deadline(&o, 1_000 + 60_001, 60_000).expect("late");
    assert!(late.detail.contains("RESERVED"), "{late}");
    let done = order("o", "SHIPPED", None, 1, 0);
    assert!(terminal_by_deadline(&done, i64::MAX, 60_000).is_none());
    assert!(
        terminal_by_deadline(&o, i64::MIN, 0).is_none(),
        "no overflow"
    );
}

#[test]
fn stock_that_does_not_add_up_is_a_violation() {
    let orders = [order("o-1", "SHIPPED", None, 1, 0)];
    let good = StockFacts {
        sku: "SKU-1".into(),
        initial: 10,
        restocked: 0,
        available: 8,
        reserved: 0,
        shipped: Some(2),
    };
    assert!(stock_conserved(std::slice::from_ref(&good), &orders).is_empty());
    let shipped_twice = StockFacts {
        available: 6,
        ..good.clone()
    };
    assert_eq!(
        names(&stock_conserved(&[shipped_twice], &orders)),
        ["stock_conserved"]
    );
    let reserved_for_nobody = StockFacts {
        available: 6,
        reserved: 2,
        ..good.clone()
    };
    let v = stock_conserved(&[reserved_for_nobody], &orders);
    assert!(v[0].detail.contains("orders in flight hold 0"), "{}", v[0]);
    let oversold = StockFacts {
        available: -1,
        restocked: -1,
        ..good.clone()
    };
    assert!(stock_conserved(&[oversold], &orders)[0]
        .detail
        .contains("negative"));
    // Conserved, but inventory counts a shipment no order made.
    let miscounted = StockFacts {
        available: 9,
        restocked: 1,
        shipped: Some(3),
        ..good
    };
    let v = stock_conserved(&[miscounted], &orders);
    assert_eq!(v[0].detail, "inventory shipped 3, shipped orders took 2");
}

#[test]
fn the_log_and_the_stores_must_tell_the_same_story() {
    let log = Account {
        status: Some(("SHIPPED".into(), None)),
        payment: true,
        charges: 1,
        refunds: 0,
        shipment: Some("CREATED".into()),
        notifications: vec!["payment_received".into(), "shipped".into()],
    };
    assert_eq!(log_and_stores_agree("o-1", &log, &log.clone()), None);
    let charged_twice = Account {
        charges: 2,
        shipment: None,
        ..log.clone()
    };
    let v = log_and_stores_agree("o-1", &log, &charged_twice).expect("a violation");
    assert_eq!(v.invariant, Invariant::LogAndStoresAgree);
    assert_eq!(v.subject, "o-1");
    assert_eq!(v.detail, "charges, shipment differ");
    assert_eq!(
        charged_twice.to_string(),
        "SHIPPED; payment recorded, 2 charges, 0 refunds; shipment none; notified payment_received, shipped"
    );
    assert!(Account::default().to_string().starts_with("no order;"));
}

#[test]
fn a_parked_order_at_rest_is_a_violation() {
    let parked = vec![
        ("inventory".to_string(), vec![]),
        ("payment".to_string(), vec!["o-9".to_string()]),
    ];
    let v = nothing_parked_at_rest(&parked);
    assert_eq!(names(&v), ["nothing_parked_at_rest"]);
    assert_eq!(v[0].subject, "payment");
    assert!(v[0].detail.contains("o-9"));
}
