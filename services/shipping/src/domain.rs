//! Whether the carrier takes a shipment, free of I/O.

/// The carrier's answer to a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Booking {
    Accepted {
        shipment_id: String,
        tracking_id: String,
    },
    Refused {
        reason: String,
    },
}

pub struct Carrier {
    pub name: String,
    pub unserved_countries: Vec<String>,
}

impl Carrier {
    /// Books a shipment to `country` for `order_id`. Ids derive from the order,
    /// so booking the same order twice gives the same shipment.
    pub fn book(&self, order_id: &str, country: &str) -> Booking {
        if self
            .unserved_countries
            .iter()
            .any(|c| c.eq_ignore_ascii_case(country))
        {
            return Booking::Refused {
                reason: format!("{} does not deliver to {country}", self.name),
            };
        }
        let short: String = order_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .rev()
            .take(12)
            .collect();
        Booking::Accepted {
            shipment_id: format!("shp_{order_id}"),
            tracking_id: format!("TRK{}", short.to_uppercase()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn antarctica_is_not_served_and_everything_else_is() {
        let carrier = Carrier {
            name: "post".into(),
            unserved_countries: vec!["AQ".into()],
        };
        assert!(matches!(carrier.book("o-1", "AQ"), Booking::Refused { .. }));
        let Booking::Accepted { tracking_id, .. } = carrier.book("o-1", "DE") else {
            panic!("DE is served")
        };
        assert!(tracking_id.starts_with("TRK"));
        assert_eq!(carrier.book("o-1", "DE"), carrier.book("o-1", "DE"));
    }
}
