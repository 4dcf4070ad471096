//! One order's events are applied by one transaction at a time, across every
//! replica. In one process the scheduler already runs one event per key at a
//! time; but an order's events come on several topics (its creation on
//! `orders`, its payment on `payments`), whose partitions two replicas may
//! own one each. Their transactions would then run side by side under READ
//! COMMITTED, each blind to what the other has not committed yet: the
//! notification service recorded an email as waiting for its address while
//! the other replica recorded the address and found nothing waiting, and
//! the email was never sent. On PostgreSQL every batch therefore takes a
//! transaction-scoped advisory lock per key first, in one global order (so
//! batches wait for each other and never deadlock); what it reads after that
//! includes everything an earlier transaction of the same order committed.
//! The parking steps outside a batch (parking a failed event, releasing
//! after a dead letter) take their key's lock first too. A failed event is
//! parked in a transaction of its own after its batch, so another replica
//! may apply a later event of the order in between; ordering across topics
//! is what the saga's handlers already tolerate (each decides from state).
//! SQLite has one writer and needs none of it.

use crate::sql::{self, Connection};

/// The advisory lock ids of `keys` for `consumer`'s group: a 64-bit FNV-1a
/// hash of both, sorted and without repeats. Two keys with the same id only
/// wait for each other.
pub fn lock_ids(consumer: &str, keys: &[&str]) -> Vec<i64> {
    let mut ids: Vec<i64> = keys.iter().map(|key| lock_id(consumer, key)).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn lock_id(consumer: &str, key: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = consumer.bytes().chain([0]).chain(key.bytes());
    let hash = bytes.fold(OFFSET, |hash, b| (hash ^ u64::from(b)).wrapping_mul(PRIME));
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Takes the locks of `keys`, held until the transaction ends (PostgreSQL
/// only). `unnest` yields the ids in array order, so they are taken in it.
pub async fn lock_keys(
    conn: &mut Connection,
    consumer: &str,
    keys: &[&str],
) -> Result<(), sqlx::Error> {
    let ids = lock_ids(consumer, keys);
    for chunk in ids.chunks(1_000) {
        let list = (1..=chunk.len())
            .map(|i| format!("${i}::bigint"))
            .collect::<Vec<_>>()
            .join(", ");
        let statement =
            format!("SELECT pg_advisory_xact_lock(id) FROM unnest(ARRAY[{list}]) AS t(id)");
        let mut query = sql::query(&statement);
        for id in chunk {
            query = query.bind(*id);
        }
        query.fetch_all(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sorted_without_repeats_and_differ_by_group_and_key() {
        let ids = lock_ids("orderflow-notification", &["o-2", "o-1", "o-2", "o-3"]);
        assert_eq!(ids.len(), 3);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert_eq!(
            ids,
            lock_ids("orderflow-notification", &["o-3", "o-1", "o-2"])
        );
        assert_ne!(
            lock_ids("orderflow-notification", &["o-1"]),
            lock_ids("orderflow-order", &["o-1"]),
            "each group has its own locks"
        );
        // Stable across builds and processes: replicas must agree.
        assert_eq!(
            lock_id("", ""),
            i64::from_ne_bytes(0xaf63_bd4c_8601_b7df_u64.to_ne_bytes())
        );
        assert!(lock_ids("g", &[]).is_empty());
    }
}
