//! The caller a valid token names.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A customer: the token's subject is the customer id.
    Customer,
    /// An operator: may set stock and prices, see payments, handle dead letters.
    Operator,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: for a customer, the customer id.
    pub subject: String,
    pub role: Role,
    /// The token's `email` claim, when it has one.
    pub email: Option<String>,
}

impl Principal {
    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }

    /// Whether this caller may see what belongs to `customer_id`.
    pub fn may_see(&self, customer_id: &str) -> bool {
        self.is_operator() || self.subject == customer_id
    }
}

/// The claims read after validation (issuer, audience and times are
/// checked by jsonwebtoken).
#[derive(Debug, Deserialize)]
pub(crate) struct Claims {
    pub sub: String,
    /// Seconds since the epoch (a NumericDate may have a fraction);
    /// required, and checked by jsonwebtoken.
    #[serde(default)]
    pub exp: f64,
    #[serde(default)]
    pub email: Option<String>,
    /// OAuth scopes, space-separated (`scope`), or a list (`scp`, Entra ID).
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub scp: Option<Value>,
    /// Roles as Auth0, Dex and many issuers put them…
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// …and as Keycloak does.
    #[serde(default)]
    pub realm_access: Option<RealmAccess>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RealmAccess {
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Claims {
    /// Whether the token grants `role`: as a scope, in `scp`, in `roles` or
    /// in Keycloak's `realm_access.roles`.
    pub fn grants(&self, role: &str) -> bool {
        let in_scope = self
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|s| s == role));
        let in_scp = match &self.scp {
            Some(Value::String(s)) => s.split(' ').any(|s| s == role),
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(role)),
            _ => false,
        };
        let in_roles = self.roles.iter().flatten().any(|r| r == role);
        let in_realm = self
            .realm_access
            .as_ref()
            .is_some_and(|r| r.roles.iter().any(|r| r == role));
        in_scope || in_scp || in_roles || in_realm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: Value) -> Claims {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_operator_role_is_found_where_issuers_put_it() {
        let role = "orderflow:operator";
        for c in [
            serde_json::json!({"sub": "o", "scope": "openid orderflow:operator"}),
            serde_json::json!({"sub": "o", "scp": ["orderflow:operator"]}),
            serde_json::json!({"sub": "o", "scp": "orderflow:operator profile"}),
            serde_json::json!({"sub": "o", "roles": ["orderflow:operator"]}),
            serde_json::json!({"sub": "o", "realm_access": {"roles": ["orderflow:operator"]}}),
        ] {
            assert!(claims(c.clone()).grants(role), "{c}");
        }
        for c in [
            serde_json::json!({"sub": "c-1"}),
            serde_json::json!({"sub": "c-1", "scope": "openid orderflow:operator-ish"}),
            serde_json::json!({"sub": "c-1", "roles": ["orderflow:customer"]}),
            serde_json::json!({"sub": "c-1", "scp": "openid profile"}),
            serde_json::json!({"sub": "c-1", "scp": ["openid", "profile"]}),
            serde_json::json!({"sub": "c-1", "realm_access": {"roles": ["orderflow:customer"]}}),
        ] {
            assert!(!claims(c.clone()).grants(role), "{c}");
        }
    }

    #[test]
    fn a_customer_sees_only_their_own() {
        let customer = Principal {
            subject: "c-1".into(),
            role: Role::Customer,
            email: None,
        };
        assert!(customer.may_see("c-1") && !customer.may_see("c-2"));
        let operator = Principal {
            role: Role::Operator,
            ..customer
        };
        assert!(operator.may_see("c-2"));
    }
}
