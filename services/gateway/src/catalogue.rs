//! Which SKUs exist, as far as the gateway has seen. Every order's SKUs are
//! checked against the catalogue before the order is accepted (unknown →
//! 422). SKUs are never removed from the catalogue (stock goes to 0 instead),
//! so a SKU seen once exists for good: the gateway remembers the ones it has
//! seen and asks inventory only about the others, which takes a call off
//! the path of nearly every order. Unknown SKUs are never remembered, so a
//! SKU added a moment ago is found at once.

use std::collections::HashSet;
use std::sync::RwLock;

/// SKUs remembered at most; past that, new ones are looked up every time.
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct KnownSkus {
    skus: RwLock<HashSet<String>>,
}

impl KnownSkus {
    pub fn contains(&self, sku: &str) -> bool {
        self.skus.read().expect("sku lock").contains(sku)
    }

    /// Inventory said `sku` exists.
    pub fn remember(&self, sku: &str) {
        let mut skus = self.skus.write().expect("sku lock");
        if skus.len() < CAPACITY {
            skus.insert(sku.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_skus_seen_to_exist_are_remembered() {
        let known = KnownSkus::default();
        assert!(!known.contains("SKU-001"));
        known.remember("SKU-001");
        assert!(known.contains("SKU-001"));
        assert!(!known.contains("SKU-002"));
    }
}
