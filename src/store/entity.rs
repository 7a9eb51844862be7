//! The store of work that runs in an entity's queue (its Durable Object, see `crate::entity`):
//! the entity's own table (the Durable Object's SQLite) is the record of truth, read first and
//! written first, and every write goes on to KV, which the read routes read.
//!
//! Why not KV alone: KV has no compare-and-set, and Cloudflare does not promise that a write
//! is visible even to a read at the location that made it ("usually immediately visible …
//! this is not guaranteed and therefore it is not advised to rely on this behaviour", How KV
//! works). One writer at a time is not enough if that writer may read a value older than its
//! own last write. The entity's table is strongly consistent and only its queue writes it.
//!
//! A write that reached the table but not KV (KV failing) stays marked pending and is copied
//! again before the entity's next piece of work, so KV never keeps a value the table has
//! replaced. Keys the entity does not own (the notification outbox, also written by the
//! scheduled retries) go to KV alone. Rows with a TTL carry their expiry and are purged once
//! past it, as KV would expire them.

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::{ListPage, Store, StoreError};

/// KV refuses TTLs under a minute.
const MIN_TTL_SECONDS: u64 = 60;

/// One row of an entity's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub value: String,
    /// Unix seconds; `None` keeps the row.
    pub expires_at: Option<i64>,
}

/// An entity's own storage: synchronous, as a SQLite-backed Durable Object's `sql.exec` is.
pub trait Table {
    fn read(&self, key: &str) -> Result<Option<Row>, StoreError>;
    /// Stores the row, marked pending until [`Table::replicated`].
    fn write(&self, key: &str, row: &Row) -> Result<(), StoreError>;
    fn remove(&self, key: &str) -> Result<(), StoreError>;
    /// KV has the row's current value.
    fn replicated(&self, key: &str) -> Result<(), StoreError>;
    /// Rows KV may not have yet.
    fn pending(&self) -> Result<Vec<(String, Row)>, StoreError>;
    /// Removes the rows whose expiry is at or before `now`.
    fn purge_expired(&self, now: i64) -> Result<(), StoreError>;
}

/// Whether the entity's table keeps `key`: every record a handler reads to decide, and the
/// event record (so dedupe is exact within the queue). Not the notification outbox, which
/// the scheduled retries write from outside any queue.
pub fn kept_by_entity(key: &str) -> bool {
    !key.starts_with("notification:")
}

/// The table first, KV after (see the module's doc). Without a table (work outside any
/// queue, the read routes) it is KV alone: one store type for the whole worker, so the
/// handlers are compiled once, not once per store.
pub struct EntityStore<'a, T, R> {
    table: Option<&'a T>,
    replica: R,
    /// Unix seconds, from the runtime's clock.
    now: i64,
}

impl<'a, T: Table, R: Store> EntityStore<'a, T, R> {
    pub fn new(table: &'a T, replica: R, now: i64) -> Self {
        Self {
            table: Some(table),
            replica,
            now,
        }
    }

    /// KV alone.
    pub fn replica_only(replica: R, now: i64) -> Self {
        Self {
            table: None,
            replica,
            now,
        }
    }

    /// The table, for a key it keeps.
    fn table_for(&self, key: &str) -> Option<&'a T> {
        self.table.filter(|_| kept_by_entity(key))
    }

    /// Before each piece of work: expired rows go, and rows KV missed are copied to it.
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        let Some(table) = self.table else {
            return Ok(());
        };
        table.purge_expired(self.now)?;
        for (key, row) in table.pending()? {
            self.replicate(table, &key, &row).await?;
        }
        Ok(())
    }

    async fn replicate(&self, table: &T, key: &str, row: &Row) -> Result<(), StoreError> {
        let ttl = row
            .expires_at
            .map(|at| (at - self.now).max(MIN_TTL_SECONDS as i64) as u64);
        self.replica.put(key, &row.value, ttl).await?;
        table.replicated(key)
    }
}

impl<T: Table, R: Store> Store for EntityStore<'_, T, R> {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(table) = self.table_for(key) {
            match table.read(key)? {
                Some(row) if row.expires_at.is_none_or(|at| at > self.now) => {
                    return Ok(Some(row.value))
                }
                Some(_) => return Ok(None),
                // Written before this entity had a queue, or by work outside it.
                None => {}
            }
        }
        self.replica.get(key).await
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), StoreError> {
        let Some(table) = self.table_for(key) else {
            return self.replica.put(key, value, ttl_seconds).await;
        };
        let row = Row {
            value: value.to_owned(),
            expires_at: ttl_seconds.map(|ttl| self.now + ttl.max(MIN_TTL_SECONDS) as i64),
        };
        table.write(key, &row)?;
        self.replicate(table, key, &row).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        if let Some(table) = self.table_for(key) {
            table.remove(key)?;
        }
        self.replica.delete(key).await
    }

    /// Listing is the read routes' business (over KV); work in a queue never lists.
    async fn list(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<ListPage, StoreError> {
        self.replica.list(prefix, limit, cursor).await
    }
}

/// An in-memory [`Table`] for native tests.
#[derive(Debug, Default)]
pub struct MemoryTable {
    rows: RefCell<BTreeMap<String, (Row, bool)>>,
}

impl MemoryTable {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Table for MemoryTable {
    fn read(&self, key: &str) -> Result<Option<Row>, StoreError> {
        Ok(self.rows.borrow().get(key).map(|(row, _)| row.clone()))
    }

    fn write(&self, key: &str, row: &Row) -> Result<(), StoreError> {
        self.rows
            .borrow_mut()
            .insert(key.to_owned(), (row.clone(), true));
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.rows.borrow_mut().remove(key);
        Ok(())
    }

    fn replicated(&self, key: &str) -> Result<(), StoreError> {
        if let Some((_, pending)) = self.rows.borrow_mut().get_mut(key) {
            *pending = false;
        }
        Ok(())
    }

    fn pending(&self) -> Result<Vec<(String, Row)>, StoreError> {
        Ok(self
            .rows
            .borrow()
            .iter()
            .filter(|(_, (_, pending))| *pending)
            .map(|(key, (row, _))| (key.clone(), row.clone()))
            .collect())
    }

    fn purge_expired(&self, now: i64) -> Result<(), StoreError> {
        self.rows
            .borrow_mut()
            .retain(|_, (row, _)| row.expires_at.is_none_or(|at| at > now));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use pollster::block_on;

    #[test]
    fn the_table_is_read_first_and_every_write_reaches_kv() {
        let table = MemoryTable::new();
        let kv = MemoryStore::new();
        let store = EntityStore::new(&table, &kv, 1_000);
        block_on(store.put("identity:user:u", "new", None)).unwrap();
        assert_eq!(
            block_on(kv.get("identity:user:u")).unwrap().as_deref(),
            Some("new")
        );
        // KV behind (a stale read): the entity still reads its own last write.
        block_on(kv.put("identity:user:u", "stale", None)).unwrap();
        assert_eq!(
            block_on(store.get("identity:user:u")).unwrap().as_deref(),
            Some("new")
        );
        // A record written before the queue existed is read from KV.
        block_on(kv.put("customer:cus_1", "old", None)).unwrap();
        assert_eq!(
            block_on(store.get("customer:cus_1")).unwrap().as_deref(),
            Some("old")
        );
        assert!(table.pending().unwrap().is_empty());
    }

    #[test]
    fn the_outbox_is_kvs_alone() {
        let table = MemoryTable::new();
        let kv = MemoryStore::new();
        let store = EntityStore::new(&table, &kv, 1_000);
        block_on(store.put("notification:n1", "v", None)).unwrap();
        assert_eq!(table.read("notification:n1").unwrap(), None);
        // Written by the scheduled retry from outside: the queue sees it.
        block_on(kv.put("notification:n1", "delivered", None)).unwrap();
        assert_eq!(
            block_on(store.get("notification:n1")).unwrap().as_deref(),
            Some("delivered")
        );
    }

    #[test]
    fn a_write_kv_missed_is_copied_before_the_next_work() {
        let table = MemoryTable::new();
        let kv = MemoryStore::new();
        let store = EntityStore::new(&table, &kv, 1_000);
        kv.set_failing(true);
        assert!(block_on(store.put("charge:pi_1", "paid", None)).is_err());
        kv.set_failing(false);
        // The truth has it; KV not yet.
        assert_eq!(
            block_on(store.get("charge:pi_1")).unwrap().as_deref(),
            Some("paid")
        );
        assert_eq!(block_on(kv.get("charge:pi_1")).unwrap(), None);
        block_on(store.catch_up()).unwrap();
        assert_eq!(
            block_on(kv.get("charge:pi_1")).unwrap().as_deref(),
            Some("paid")
        );
        assert!(table.pending().unwrap().is_empty());
    }

    #[test]
    fn rows_with_a_ttl_expire_in_the_table_as_in_kv() {
        let table = MemoryTable::new();
        let kv = MemoryStore::new();
        block_on(EntityStore::new(&table, &kv, 1_000).put("event:evt_1", "v", Some(100))).unwrap();
        assert_eq!(kv.ttl("event:evt_1"), Some(100));
        assert_eq!(
            table.read("event:evt_1").unwrap().unwrap().expires_at,
            Some(1_100)
        );
        // Copied late: KV gets what is left of the TTL.
        table
            .write("event:evt_1", &table.read("event:evt_1").unwrap().unwrap())
            .unwrap();
        block_on(EntityStore::new(&table, &kv, 1_020).catch_up()).unwrap();
        assert_eq!(kv.ttl("event:evt_1"), Some(80));
        let later = EntityStore::new(&table, &kv, 1_100);
        block_on(kv.delete("event:evt_1")).unwrap();
        assert_eq!(block_on(later.get("event:evt_1")).unwrap(), None);
        block_on(later.catch_up()).unwrap();
        assert_eq!(table.read("event:evt_1").unwrap(), None);
    }
}
