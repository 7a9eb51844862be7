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
use crate::dry::DryLog;
use crate::event_log::Entry;
use crate::record_index::{Batch, Row as ListRow, Table as ListTable};

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
    /// Rows KV has expire at `at` at the latest (a queue that keeps nothing after its work).
    fn expire_replicated(&self, at: i64) -> Result<(), StoreError>;
    /// The earliest expiry among the rows, and whether there is any row at all.
    fn outlook(&self) -> Result<Outlook, StoreError>;
}

/// What an entity's table holds, for its upkeep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outlook {
    pub rows: usize,
    pub next_expiry: Option<i64>,
}

/// What the Durable Object does with its storage (its alarm, or `deleteAll`), decided from
/// its table after a piece of work or when its alarm fires. Rows never wait for the next
/// piece of work to expire: the alarm is set at the earliest expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upkeep {
    /// Nothing is left: the object deletes all its storage (in its alarm, set for now).
    DeleteAll,
    /// Wake at this time (Unix seconds) to purge what expired then.
    AlarmAt(i64),
    /// Only rows kept for good (a user's, a customer's records): nothing to schedule.
    Keep,
}

/// The upkeep of `table` at `now`: expired rows go; an entity that keeps nothing after its
/// work (a public setup session, a payment or verification session of no user or customer,
/// whose records are all in KV once replicated) lets every replicated row expire by
/// `ephemeral_until`: not at once, since until KV's copies are visible everywhere (KV may
/// answer from a cache for up to 60 s) a redelivery must still find them here.
pub fn upkeep<T: Table>(
    table: &T,
    now: i64,
    ephemeral_until: Option<i64>,
) -> Result<Upkeep, StoreError> {
    table.purge_expired(now)?;
    if let Some(at) = ephemeral_until {
        table.expire_replicated(at)?;
    }
    let outlook = table.outlook()?;
    Ok(match outlook {
        Outlook { rows: 0, .. } => Upkeep::DeleteAll,
        Outlook {
            next_expiry: Some(at),
            ..
        } => Upkeep::AlarmAt(at),
        Outlook { .. } => Upkeep::Keep,
    })
}

/// Whether the entity's table keeps `key`: every record a handler reads to decide, and the
/// event record (so dedupe is exact within the queue). Not the notification outbox, which
/// the scheduled retries write from outside any queue.
pub fn kept_by_entity(key: &str) -> bool {
    !key.starts_with("notification:")
}

/// The list rows (`crate::record_index`) of the records an entity's table keeps, left by the
/// queue's KV writes for one request to the index once its work is done ([`Store::flush`]):
/// the replica's half of that (KV's adapter; `MemoryStore` in tests). The table's half is
/// [`EntityStore`] keeping each such record pending until the flush is done.
#[derive(Debug, Default)]
pub struct DeferredRows(RefCell<Batch>);

impl DeferredRows {
    /// Whether a write of `key` leaves its row here: an indexed record the entity's table
    /// keeps, never the outbox's (nothing would write a notification again).
    pub fn defers(key: &str) -> bool {
        kept_by_entity(key) && ListTable::of_key(key).is_some()
    }

    /// The row of `value` written under `key` (its last write wins); `false`: the value is
    /// not the key's record and has no row (the writer deletes the row at once).
    pub fn push(&self, key: &str, value: &str, ttl: Option<u64>, now: i64) -> bool {
        match ListRow::of_write(key, value, ttl, now) {
            Some((table, row)) => {
                self.0.borrow_mut().push(table, row);
                true
            }
            None => false,
        }
    }

    /// A record deleted after its row was gathered: no row for it goes.
    pub fn remove(&self, key: &str) {
        if let Some((table, id)) = ListTable::of_key(key) {
            self.0.borrow_mut().remove(table, id);
        }
    }

    /// What to send with `event`'s row; `None`: nothing at all.
    pub fn take(&self, event: Option<Entry>) -> Option<Batch> {
        let mut batch = self.0.take();
        batch.event = event;
        (!batch.is_empty()).then_some(batch)
    }

    /// Sends `batch` through `call` (a request to the index: path, body); whether the event's
    /// row went. A batch the index refused (during a deploy an index of the previous version
    /// has no `POST /batch`; or a passing failure) is sent again row by row, as outside a
    /// queue (rows are upserts: sending one twice is harmless); the event's row failing then
    /// is not an error.
    pub async fn send(
        batch: &Batch,
        call: impl AsyncFn(&str, String) -> Result<String, StoreError>,
    ) -> Result<bool, StoreError> {
        let json = |result: serde_json::Result<String>| {
            result.map_err(|_| StoreError::Unavailable("an index batch does not serialise".into()))
        };
        if call("/batch", json(serde_json::to_string(batch))?)
            .await
            .is_ok()
        {
            return Ok(batch.event.is_some());
        }
        for row in &batch.rows {
            let path = format!("/put/{}", row.table);
            call(&path, json(serde_json::to_string(&row.row))?).await?;
        }
        Ok(match &batch.event {
            Some(entry) => call("/put", json(serde_json::to_string(entry))?)
                .await
                .is_ok(),
            None => false,
        })
    }

    /// What a send of `batch` that failed comes to: the event's row alone is left to its
    /// writer (`false`; it never fails the work, as before); list rows fail the flush, so the
    /// work fails as a failed write would, and its records stay pending.
    pub fn failed(batch: &Batch, error: StoreError) -> Result<bool, StoreError> {
        if batch.rows.is_empty() {
            Ok(false)
        } else {
            Err(error)
        }
    }
}

/// The table first, KV after (see the module's doc). Without a table (work outside any
/// queue, the read routes) it is KV alone: one store type for the whole worker, so the
/// handlers are compiled once, not once per store.
pub struct EntityStore<'a, T, R> {
    table: Option<&'a T>,
    replica: R,
    /// Unix seconds, from the runtime's clock.
    now: i64,
    /// A replay's preview: writes go to the log, never to the table or KV.
    dry: Option<&'a DryLog>,
    /// Keys whose KV write left its list row for [`Store::flush`]: still pending in the table
    /// until the flush is done, so a failed one is copied again before the next work.
    awaiting_flush: RefCell<Vec<String>>,
}

impl<'a, T: Table, R: Store> EntityStore<'a, T, R> {
    pub fn new(table: &'a T, replica: R, now: i64) -> Self {
        Self {
            table: Some(table),
            replica,
            now,
            dry: None,
            awaiting_flush: RefCell::new(Vec::new()),
        }
    }

    /// KV alone.
    pub fn replica_only(replica: R, now: i64) -> Self {
        Self {
            table: None,
            replica,
            now,
            dry: None,
            awaiting_flush: RefCell::new(Vec::new()),
        }
    }

    /// The same store, writing nothing: its writes go to `log` and are read back from it.
    pub fn dry(self, log: &'a DryLog) -> Self {
        Self {
            dry: Some(log),
            ..self
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
        if let Err(error) = self.replica.put(key, &row.value, ttl).await {
            // An earlier copy of this key waiting for the flush is no longer the table's
            // value: marked replicated by key at the flush, this one would never be copied.
            self.awaiting_flush
                .borrow_mut()
                .retain(|waiting| waiting != key);
            return Err(error);
        }
        if self.replica.defers_row(key) {
            self.awaiting_flush.borrow_mut().push(key.to_owned());
            return Ok(());
        }
        table.replicated(key)
    }
}

impl<T: Table, R: Store> Store for EntityStore<'_, T, R> {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(written) = self.dry.and_then(|log| log.written(key)) {
            return Ok(written);
        }
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
        if let Some(log) = self.dry {
            log.write(key, Some(value));
            return Ok(());
        }
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
        if let Some(log) = self.dry {
            log.write(key, None);
            return Ok(());
        }
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

    fn defers_row(&self, key: &str) -> bool {
        self.replica.defers_row(key)
    }

    /// The replica's flush; then the rows it carried are replicated in the table (until
    /// then they stayed pending: a flush that failed leaves them for the next catch-up). A
    /// dry store sends nothing.
    async fn flush(&self, event: Option<Entry>) -> Result<bool, StoreError> {
        if self.dry.is_some() {
            // A preview wrote nothing, so it has nothing to index.
            return Ok(false);
        }
        let sent = self.replica.flush(event).await?;
        let keys = self.awaiting_flush.take();
        if let Some(table) = self.table {
            for key in keys {
                table.replicated(&key)?;
            }
        }
        Ok(sent)
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

    /// The keys of the rows still to be copied to KV, in key order.
    pub fn pending_keys(&self) -> Vec<String> {
        let rows = self.rows.borrow();
        rows.iter()
            .filter(|(_, (_, pending))| *pending)
            .map(|(key, _)| key.clone())
            .collect()
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

    fn expire_replicated(&self, at: i64) -> Result<(), StoreError> {
        for (row, pending) in self.rows.borrow_mut().values_mut() {
            if !*pending && row.expires_at.is_none_or(|e| e > at) {
                row.expires_at = Some(at);
            }
        }
        Ok(())
    }

    fn outlook(&self) -> Result<Outlook, StoreError> {
        let rows = self.rows.borrow();
        Ok(Outlook {
            rows: rows.len(),
            next_expiry: rows.values().filter_map(|(row, _)| row.expires_at).min(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use pollster::block_on;

    #[test]
    fn a_queue_defers_the_rows_of_the_records_its_table_keeps_and_only_those() {
        assert!(DeferredRows::defers("identity:user:ann"));
        assert!(DeferredRows::defers("charge:pi_1"));
        // The outbox's rows are written first, as outside a queue; other keys have none.
        assert!(!DeferredRows::defers("notification:n1"));
        assert!(!DeferredRows::defers("event:evt_1"));
        let rows = DeferredRows::default();
        assert_eq!(rows.take(None), None);
        assert!(!rows.push("identity:user:ann", "not a record", None, 1_000));
        let user = serde_json::to_string(&crate::identity::UserRecord::new("ann")).unwrap();
        assert!(rows.push("identity:user:ann", &user, Some(100), 1_000));
        let batch = rows.take(None).unwrap();
        assert_eq!(batch.rows[0].row.expires_at, Some(1_100));
        assert_eq!(rows.take(None), None, "taken once");
        // A failed send: list rows fail the flush; the event's row alone is its writer's.
        let error = StoreError::Unavailable("down".into());
        assert_eq!(
            DeferredRows::failed(&batch, error.clone()),
            Err(error.clone())
        );
        assert_eq!(DeferredRows::failed(&Batch::default(), error), Ok(false));
    }

    #[test]
    fn a_later_write_kv_refused_stays_pending_after_an_earlier_copy_of_it_was_flushed() {
        let table = MemoryTable::new();
        let kv = MemoryStore::deferring();
        let store = EntityStore::new(&table, &kv, 1_000);
        let key = "identity:user:ann";
        let v1 = serde_json::to_string(&crate::identity::UserRecord::new("ann")).unwrap();
        let mut second = crate::identity::UserRecord::new("ann");
        second.status = "verified".into();
        let v2 = serde_json::to_string(&second).unwrap();
        // From earlier work: pending in the table; this work's catch-up copies it to KV.
        let row = |value: &str| Row {
            value: value.to_owned(),
            expires_at: None,
        };
        table.write(key, &row(&v1)).unwrap();
        block_on(store.catch_up()).unwrap();
        // The work writes it again, and KV refuses that write (one write per key per second).
        kv.fail_writes_to(Some("identity:user:"));
        assert!(block_on(store.put(key, &v2, None)).is_err());
        kv.fail_writes_to(None);
        block_on(store.flush(None)).unwrap();
        assert_eq!(block_on(kv.get(key)).unwrap(), Some(v1));
        assert_eq!(table.read(key).unwrap().map(|r| r.value), Some(v2));
        assert_eq!(
            table.pending_keys(),
            [key],
            "the next catch-up copies the table's value to KV"
        );
    }

    #[test]
    fn a_record_deleted_after_its_row_was_gathered_sends_no_row() {
        let rows = DeferredRows::default();
        let user = serde_json::to_string(&crate::identity::UserRecord::new("ann")).unwrap();
        assert!(rows.push("identity:user:ann", &user, None, 1_000));
        assert!(rows.push(
            "identity:user:bob",
            &user.replace("ann", "bob"),
            None,
            1_000
        ));
        rows.remove("identity:user:ann");
        let batch = rows.take(None).unwrap();
        let ids: Vec<&str> = batch.rows.iter().map(|r| r.row.id.as_str()).collect();
        assert_eq!(ids, ["bob"]);
    }

    #[test]
    fn a_batch_an_older_index_refuses_goes_row_by_row() {
        let rows = DeferredRows::default();
        let user = serde_json::to_string(&crate::identity::UserRecord::new("ann")).unwrap();
        assert!(rows.push("identity:user:ann", &user, None, 1_000));
        let batch = rows.take(None).unwrap();
        // An index without `/batch` (the previous version, during a deploy): 404.
        let paths = RefCell::new(Vec::new());
        let older = async |path: &str, _body: String| {
            paths.borrow_mut().push(path.to_owned());
            match path {
                "/batch" => Err(StoreError::Unavailable("refused /batch (404)".into())),
                _ => Ok(String::new()),
            }
        };
        assert_eq!(block_on(DeferredRows::send(&batch, older)), Ok(false));
        assert_eq!(*paths.borrow(), ["/batch", "/put/users"]);
        // The current index takes it in one request.
        paths.borrow_mut().clear();
        let current = async |path: &str, _body: String| {
            paths.borrow_mut().push(path.to_owned());
            Ok(String::new())
        };
        assert_eq!(block_on(DeferredRows::send(&batch, current)), Ok(false));
        assert_eq!(*paths.borrow(), ["/batch"]);
        // Down altogether: the rows' failure is the flush's.
        let down = async |_: &str, _: String| Err(StoreError::Unavailable("down".into()));
        assert!(block_on(DeferredRows::send(&batch, down)).is_err());
    }

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
    fn a_dry_store_writes_nothing_and_reads_its_own_writes_back() {
        let table = MemoryTable::new();
        let kv = MemoryStore::new();
        block_on(kv.put("charge:pi_1", "stored", None)).unwrap();
        let log = DryLog::default();
        let store = EntityStore::new(&table, &kv, 1_000).dry(&log);
        assert_eq!(
            block_on(store.get("charge:pi_1")).unwrap().as_deref(),
            Some("stored")
        );
        block_on(store.put("charge:pi_1", "paid", None)).unwrap();
        block_on(store.delete("identity:user:u")).unwrap();
        assert_eq!(
            block_on(store.get("charge:pi_1")).unwrap().as_deref(),
            Some("paid")
        );
        assert_eq!(
            block_on(kv.get("charge:pi_1")).unwrap().as_deref(),
            Some("stored")
        );
        assert_eq!(table.read("charge:pi_1").unwrap(), None);
        assert_eq!(log.writes(), ["put charge:pi_1", "delete identity:user:u"]);
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
    fn the_alarm_is_set_at_the_earliest_expiry_and_an_empty_table_is_deleted() {
        let table = MemoryTable::new();
        let kv = MemoryStore::new();
        let store = EntityStore::new(&table, &kv, 1_000);
        block_on(store.put("event:evt_1", "v", Some(500))).unwrap();
        block_on(store.put("checkout:cs_1", "v", Some(100))).unwrap();
        block_on(store.put("customer:cus_1", "v", None)).unwrap();
        assert_eq!(upkeep(&table, 1_000, None), Ok(Upkeep::AlarmAt(1_100)));
        // The alarm at 1,100: the checkout row goes, the next wake is the event's expiry.
        assert_eq!(upkeep(&table, 1_100, None), Ok(Upkeep::AlarmAt(1_500)));
        assert_eq!(table.read("checkout:cs_1").unwrap(), None);
        // Then only the customer's record is left, kept for good.
        assert_eq!(upkeep(&table, 1_500, None), Ok(Upkeep::Keep));
        block_on(store.delete("customer:cus_1")).unwrap();
        assert_eq!(upkeep(&table, 1_600, None), Ok(Upkeep::DeleteAll));
    }

    #[test]
    fn a_queue_that_keeps_nothing_deletes_its_storage_once_kv_has_every_row() {
        let table = MemoryTable::new();
        let kv = MemoryStore::new();
        let store = EntityStore::new(&table, &kv, 1_000);
        block_on(store.put("customer:cus_1", "v", None)).unwrap();
        kv.set_failing(true);
        assert!(block_on(store.put("checkout:cs_1", "v", None)).is_err());
        kv.set_failing(false);
        // The rows KV has are kept a grace period (a redelivery meanwhile must find them
        // here, not in a KV cache that may not see them yet), then go.
        assert_eq!(
            upkeep(&table, 1_000, Some(1_120)),
            Ok(Upkeep::AlarmAt(1_120))
        );
        assert!(table.read("customer:cus_1").unwrap().is_some());
        // A row KV does not have yet stays, so the next work copies it.
        assert_eq!(upkeep(&table, 1_120, None), Ok(Upkeep::Keep));
        assert_eq!(table.read("customer:cus_1").unwrap(), None);
        block_on(store.catch_up()).unwrap();
        assert_eq!(
            upkeep(&table, 1_120, Some(1_240)),
            Ok(Upkeep::AlarmAt(1_240))
        );
        assert_eq!(upkeep(&table, 1_240, None), Ok(Upkeep::DeleteAll));
        assert_eq!(
            block_on(kv.get("checkout:cs_1")).unwrap().as_deref(),
            Some("v")
        );
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
