//! Whose order a placement is, decided from the caller's token: a customer
//! places orders as themselves, to the email their identity provider
//! vouches for; an operator places one for a customer they name. The
//! gateway and the order service both apply it, so a call that reaches the
//! service some other way is held to the same rule.

use orderflow_auth::Principal;
use orderflow_http::Problem;

use crate::PlaceOrder;

impl PlaceOrder {
    /// Fills in or checks `customer_id` and `customer_email` for `caller`:
    /// 403 when a customer names someone else (or another address), 422
    /// when an operator names no customer.
    pub fn on_behalf_of(&mut self, caller: &Principal) -> Result<(), Problem> {
        match (&self.customer_id, caller.is_operator()) {
            (Some(named), false) if *named != caller.subject => {
                return Err(Problem::forbidden(
                    "a customer places orders as themselves: leave customer_id out (it comes from the token)",
                ))
            }
            (None, false) => self.customer_id = Some(caller.subject.clone()),
            (None, true) => {
                return Err(Problem::validation(
                    "an operator placing an order names the customer in customer_id",
                ))
            }
            _ => {}
        }
        if caller.is_operator() {
            return Ok(());
        }
        // A customer's notifications go to the address their identity
        // provider vouches for, never to one a request names (orderflow
        // would mail anyone).
        if self.customer_email.is_some() && self.customer_email != caller.email {
            return Err(Problem::forbidden(
                "a customer's email comes from the token's email claim: leave customer_email out",
            ));
        }
        // A claim that is no address (the issuer's doing, not the
        // customer's) costs them their email, not their order.
        self.customer_email = caller.email.clone().filter(|email| {
            let why = crate::email_error(email);
            if let Some(why) = &why {
                tracing::warn!(customer_id = %caller.subject, "the token's email claim {why}: no email for this order");
            }
            why.is_none()
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use orderflow_auth::Role;

    use super::*;

    fn order(customer: Option<&str>, email: Option<&str>) -> PlaceOrder {
        let mut o: PlaceOrder = serde_json::from_value(serde_json::json!({
            "items": [{"sku": "SKU-001", "quantity": 1}],
            "payment": {"token": "tok_visa"},
            "shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "Berlin",
                                 "postal_code": "10115", "country": "DE"}
        }))
        .unwrap();
        o.customer_id = customer.map(Into::into);
        o.customer_email = email.map(Into::into);
        o
    }

    fn caller(subject: &str, role: Role, email: Option<&str>) -> Principal {
        Principal {
            subject: subject.into(),
            role,
            email: email.map(Into::into),
        }
    }

    #[test]
    fn a_customer_orders_as_themselves_to_their_own_address() {
        let ada = caller("c-ada", Role::Customer, Some("ada@example.com"));
        let mut o = order(None, None);
        o.on_behalf_of(&ada).unwrap();
        assert_eq!(o.customer_id.as_deref(), Some("c-ada"));
        assert_eq!(o.customer_email.as_deref(), Some("ada@example.com"));
        let mut o = order(Some("c-ada"), Some("ada@example.com"));
        assert!(o.on_behalf_of(&ada).is_ok());
        let refused = |mut o: PlaceOrder| o.on_behalf_of(&ada).unwrap_err().status;
        assert_eq!(refused(order(Some("c-bob"), None)), 403);
        assert_eq!(refused(order(None, Some("eve@example.com"))), 403);
        // A claim that is no address: the order goes ahead without email.
        let odd = caller("c-odd", Role::Customer, Some("not an address"));
        let mut o = order(None, None);
        o.on_behalf_of(&odd).unwrap();
        assert_eq!(o.customer_email, None);
    }

    #[test]
    fn an_operator_names_the_customer() {
        let op = caller("op", Role::Operator, None);
        assert_eq!(order(None, None).on_behalf_of(&op).unwrap_err().status, 422);
        let mut o = order(Some("c-bob"), Some("bob@example.com"));
        o.on_behalf_of(&op).unwrap();
        assert_eq!(o.customer_id.as_deref(), Some("c-bob"));
        assert_eq!(o.customer_email.as_deref(), Some("bob@example.com"));
    }
}
