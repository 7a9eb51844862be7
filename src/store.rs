//! State: a small key-value port, the key schema, and an in-memory implementation for native
//! tests. The Workers KV adapter lives in `store/kv.rs` and is only built for wasm32.
//!
//! Values are JSON with a `version` field. Each key prefix has one constructor tied to the
//! type stored under it, so a key cannot be read back as the wrong shape.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::{de::DeserializeOwned, Serialize};

use crate::billing::CheckoutRecord;
use crate::event::EventRecord;
use crate::event_log::Entry;
use crate::identity::{SessionRecord, UserRecord};
use crate::notify::Notification;

pub mod entity;
pub mod error;
#[cfg(target_arch = "wasm32")]
pub mod index;
#[cfg(target_arch = "wasm32")]
pub mod kv;
#[cfg(target_arch = "wasm32")]
pub mod sql;

pub use error::StoreError;

/// How long `event:{id}` is kept: Stripe retries a delivery for up to three days (live mode; a
/// few hours in a sandbox), and a
/// month leaves room to investigate.
pub const EVENT_TTL_SECONDS: u64 = 30 * 24 * 60 * 60;

/// The port the core needs from KV. Futures are not `Send`: Workers runs one thread.
#[allow(async_fn_in_trait)]
pub trait Store {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// `ttl_seconds`: expire after that long (KV's minimum is 60); `None` keeps the value.
    async fn put(&self, key: &str, value: &str, ttl_seconds: Option<u64>)
        -> Result<(), StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Up to `limit` keys starting with `prefix`, in key order (KV's order: by key, never by
    /// time), after the page `cursor` ends. `limit` is at least 1; KV allows up to 1000.
    async fn list(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<ListPage, StoreError>;
    /// The values of several keys, in order. KV reads them concurrently; this default reads
    /// one after another.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }
    /// Whether a `put` of `key` leaves its list index row (`crate::record_index`) for
    /// [`Store::flush`] instead of writing it first: an entity's queue sends them all in one
    /// request once its work is done. Such a write is not done until the flush is.
    fn defers_row(&self, _key: &str) -> bool {
        false
    }
    /// Sends the rows left by `put`s ([`Store::defers_row`]) and `event` (the event index's
    /// row of the work's event) in one request; whether `event` went with them (`false`: its
    /// writer indexes it). This default leaves nothing and sends nothing.
    async fn flush(&self, _event: Option<Entry>) -> Result<bool, StoreError> {
        Ok(false)
    }
}

/// A borrowed store is a store (a native test's `EntityStore` over a `MemoryStore` it keeps).
impl<S: Store> Store for &S {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        (**self).get(key).await
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), StoreError> {
        (**self).put(key, value, ttl_seconds).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        (**self).delete(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<ListPage, StoreError> {
        (**self).list(prefix, limit, cursor).await
    }

    fn defers_row(&self, key: &str) -> bool {
        (**self).defers_row(key)
    }

    async fn flush(&self, event: Option<Entry>) -> Result<bool, StoreError> {
        (**self).flush(event).await
    }
}

/// One page of keys; `cursor` is `None` on the last page and otherwise opaque (pass it back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub keys: Vec<String>,
    pub cursor: Option<String>,
}

/// A key, the type of value stored under it, and how long a value is kept when a write
/// names no TTL of its own (`None`: kept until replaced or deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<T> {
    name: String,
    lifetime: Option<u64>,
    value: PhantomData<fn() -> T>,
}

impl<T> Key<T> {
    fn new(name: String) -> Self {
        Self {
            name,
            lifetime: None,
            value: PhantomData,
        }
    }

    /// A key whose values expire `seconds` after each write (KV's `expirationTtl`, and the
    /// entity table's expiry, purged by its alarm).
    fn kept_for(name: String, seconds: u64) -> Self {
        Self {
            lifetime: Some(seconds),
            ..Self::new(name)
        }
    }

    /// How long a write keeps the value when it names no TTL.
    pub fn lifetime(&self) -> Option<u64> {
        self.lifetime
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl<T: DeserializeOwned> Key<T> {
    pub fn load<'a>(&'a self, store: &'a impl Store) -> Loading<'a, T> {
        Loading {
            get: Box::pin(store.get(&self.name)),
            key: self,
            tolerant: false,
        }
    }

    /// A value read for this key some other way (`Store::get_many`).
    pub fn decode(&self, text: &str) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|e| corrupt(&self.name, e))
    }

    /// Like [`Key::load`], but a value that does not decode counts as absent: the flow that
    /// reads it rewrites it (every effect being idempotent) instead of being blocked by it for
    /// Stripe's whole retry window. A failing store is still an error.
    pub fn load_tolerant<'a>(&'a self, store: &'a impl Store) -> Loading<'a, T> {
        Loading {
            tolerant: true,
            ..self.load(store)
        }
    }
}

/// The future of [`Key::load`] and [`Key::load_tolerant`]: the store's read, then the decoding.
/// A plain type rather than an `async fn`, so that each value type adds only its decoding to
/// the wasm, not a state machine of its own around the store's (one per type and per method).
pub struct Loading<'a, T> {
    get: Pin<Box<dyn Future<Output = Result<Option<String>, StoreError>> + 'a>>,
    key: &'a Key<T>,
    tolerant: bool,
}

impl<T: DeserializeOwned> Future for Loading<'_, T> {
    type Output = Result<Option<T>, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Poll::Ready(read) = self.get.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        Poll::Ready(match read {
            Ok(Some(text)) => decode_text(&self.key.name, &text, self.tolerant),
            Ok(None) => Ok(None),
            Err(error) => Err(error),
        })
    }
}

/// A stored text decoded as `T`; a value that does not decode is absent when `tolerant`.
fn decode_text<T: DeserializeOwned>(
    key: &str,
    text: &str,
    tolerant: bool,
) -> Result<Option<T>, StoreError> {
    match serde_json::from_str(text) {
        Ok(value) => Ok(Some(value)),
        Err(_) if tolerant => Ok(None),
        Err(error) => Err(corrupt(key, error)),
    }
}

impl<T: Serialize> Key<T> {
    /// The value is encoded here; the write is one future shared by every value type.
    pub fn save<'a, S: Store>(
        &'a self,
        store: &'a S,
        value: &T,
        ttl_seconds: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + 'a {
        let text = serde_json::to_string(value).map_err(|e| corrupt(&self.name, e));
        put_text(store, &self.name, text, ttl_seconds.or(self.lifetime))
    }
}

/// One copy for every value type, not one inlined in each type's encoding and decoding.
#[inline(never)]
fn corrupt(key: &str, error: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        reason: error.to_string(),
    }
}

async fn put_text<S: Store>(
    store: &S,
    key: &str,
    text: Result<String, StoreError>,
    ttl_seconds: Option<u64>,
) -> Result<(), StoreError> {
    store.put(key, &text?, ttl_seconds).await
}

/// How long a finished record is kept: a finished `checkout:` (completed or expired
/// session), a `charge:`, a delivered or dead `notification:` and its `outbox_dead:` entry.
/// Far beyond every retry and replay that could need them (Stripe keeps events 30 days), and
/// a finished setup session is never completed again past `billing::MAX_COMPLETION_AGE_SECONDS`.
pub const FINISHED_TTL_SECONDS: u64 = 90 * 24 * 60 * 60;

/// The key schema (docs/OPERATIONS.md, Retention: each kind's lifetime is stated here). Ids
/// are validated before they reach here.
pub mod keys {
    use super::*;

    /// The prefix of every `event:{id}` key, for listing them.
    pub const EVENT_PREFIX: &str = "event:";

    /// Kept 30 days, as long as Stripe keeps the event.
    pub fn event(event_id: &str) -> Key<EventRecord> {
        Key::kept_for(format!("{EVENT_PREFIX}{event_id}"), EVENT_TTL_SECONDS)
    }

    /// An open session's for 2 days (`CheckoutRecord::ttl_seconds`), a finished one's 90.
    pub fn checkout(session_id: &str) -> Key<CheckoutRecord> {
        Key::kept_for(format!("checkout:{session_id}"), FINISHED_TTL_SECONDS)
    }

    /// Kept: the user's verification state is the app's (one per user, replaced).
    pub fn identity_user(user_id: &str) -> Key<UserRecord> {
        Key::new(format!("identity:user:{user_id}"))
    }

    /// Kept with its user's record, which lists it.
    pub fn identity_session(session_id: &str) -> Key<SessionRecord> {
        Key::new(format!("identity:session:{session_id}"))
    }

    /// Kept: the card the app charges (one per customer, replaced; the public's new customers
    /// are bounded by the setup ceiling).
    pub fn customer(customer_id: &str) -> Key<crate::billing::CustomerRecord> {
        Key::new(format!("customer:{customer_id}"))
    }

    /// Kept, as its key (`charge_key:`) is: a repeat of the key, however late, is answered
    /// from it, and a record rebuilt from the PaymentIntent alone would not know that its
    /// recovery was paid (a second recovery link could be paid too).
    pub fn charge(payment_intent_id: &str) -> Key<crate::billing::ChargeRecord> {
        Key::new(format!("charge:{payment_intent_id}"))
    }

    /// The payment method a caller-keyed `POST /charges` was first sent with, and the
    /// PaymentIntent it made. Kept: past it, a repeat would be a new charge.
    pub fn charge_key(caller_key: &str) -> Key<crate::billing::ChargeKeyRecord> {
        Key::new(format!("charge_key:{caller_key}"))
    }

    /// Kept while pending; 90 days once delivered or dead (`Notification::ttl_seconds`).
    pub fn notification(id: &str) -> Key<Notification> {
        Key::new(format!("notification:{id}"))
    }

    /// Event catch-up's cursor and last run (one key, written at most once per run).
    pub fn catchup_state() -> Key<crate::catchup::CatchupState> {
        Key::new("catchup:state".to_owned())
    }

    /// The thin catch-up's cursor (`GET /v2/core/events`), apart from the v1 one.
    pub fn catchup_thin_state() -> Key<crate::catchup::thin::ThinCatchupState> {
        Key::new("catchup:thin_state".to_owned())
    }

    /// An entry of one of the outbox's indexes, named by `notify::due_index_name` or
    /// `notify::dead_index_name`: the name is all it says (its value is `null`).
    pub fn outbox_entry(name: &str) -> Key<()> {
        Key::new(name.to_owned())
    }

    /// `notify::DUE_HINT_KEY`: when it was written (unix seconds).
    pub fn outbox_hint() -> Key<i64> {
        Key::new(crate::notify::DUE_HINT_KEY.to_owned())
    }
}

/// An in-memory store for native tests; it records TTLs and can be told to fail.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: RefCell<BTreeMap<String, (String, Option<u64>)>>,
    failing: RefCell<bool>,
    failing_writes: RefCell<Option<String>>,
    /// As an entity queue's KV ([`MemoryStore::deferring`]): the rows its writes left.
    deferred: Option<entity::DeferredRows>,
    /// The batches [`Store::flush`] sent, in order.
    flushed: RefCell<Vec<crate::record_index::Batch>>,
    failing_index: RefCell<bool>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// As the queue's KV adapter is (`store::kv`): writes of indexed records the entity's
    /// table keeps leave their rows for [`Store::flush`].
    pub fn deferring() -> Self {
        Self {
            deferred: Some(entity::DeferredRows::default()),
            ..Self::default()
        }
    }

    /// From now on a flush's request to the index fails (or recovers with `false`).
    pub fn set_index_failing(&self, failing: bool) {
        *self.failing_index.borrow_mut() = failing;
    }

    /// The batches flushed so far.
    pub fn flushed(&self) -> Vec<crate::record_index::Batch> {
        self.flushed.borrow().clone()
    }

    /// From now on every call fails as if KV were down (or recovers with `false`).
    pub fn set_failing(&self, failing: bool) {
        *self.failing.borrow_mut() = failing;
    }

    /// From now on writes to keys starting with `prefix` fail (a KV write failing in the
    /// middle of a flow); `None` recovers.
    pub fn fail_writes_to(&self, prefix: Option<&str>) {
        *self.failing_writes.borrow_mut() = prefix.map(str::to_owned);
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }

    pub fn ttl(&self, key: &str) -> Option<u64> {
        self.entries.borrow().get(key).and_then(|(_, ttl)| *ttl)
    }

    fn check(&self) -> Result<(), StoreError> {
        if *self.failing.borrow() {
            Err(StoreError::Unavailable("injected failure".into()))
        } else {
            Ok(())
        }
    }
}

impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.check()?;
        Ok(self
            .entries
            .borrow()
            .get(key)
            .map(|(value, _)| value.clone()))
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), StoreError> {
        self.check()?;
        if let Some(prefix) = self.failing_writes.borrow().as_deref() {
            if key.starts_with(prefix) {
                return Err(StoreError::Unavailable(format!(
                    "injected write failure: {key}"
                )));
            }
        }
        if let Some(rows) = self.deferred.as_ref().filter(|_| self.defers_row(key)) {
            // The clock is the caller's: a test's rows carry the TTL's seconds from 0.
            rows.push(key, value, ttl_seconds, 0);
        }
        self.entries
            .borrow_mut()
            .insert(key.to_owned(), (value.to_owned(), ttl_seconds));
        Ok(())
    }

    fn defers_row(&self, key: &str) -> bool {
        self.deferred.is_some() && entity::DeferredRows::defers(key)
    }

    async fn flush(&self, event: Option<Entry>) -> Result<bool, StoreError> {
        let Some(batch) = self.deferred.as_ref().and_then(|rows| rows.take(event)) else {
            return Ok(false);
        };
        if *self.failing_index.borrow() {
            let error = StoreError::Unavailable("injected index failure".into());
            return entity::DeferredRows::failed(&batch, error);
        }
        let sent = batch.event.is_some();
        self.flushed.borrow_mut().push(batch);
        Ok(sent)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check()?;
        self.entries.borrow_mut().remove(key);
        if let Some(rows) = &self.deferred {
            rows.remove(key);
        }
        Ok(())
    }

    /// Like KV: key order; the cursor is the last key of the previous page.
    async fn list(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<ListPage, StoreError> {
        use std::ops::Bound;
        self.check()?;
        let entries = self.entries.borrow();
        let start = match cursor {
            Some(after) => Bound::Excluded(after.to_owned()),
            None => Bound::Included(prefix.to_owned()),
        };
        let mut matching = entries
            .range::<String, _>((start, Bound::Unbounded))
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(prefix));
        let keys: Vec<String> = matching.by_ref().take(limit.max(1)).cloned().collect();
        let cursor = match matching.next() {
            Some(_) => keys.last().cloned(),
            None => None,
        };
        Ok(ListPage { keys, cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pollster::block_on;

    #[test]
    fn a_key_saves_with_its_lifetime_and_loads_back_absent_corrupt_or_failing_as_it_should() {
        let store = MemoryStore::new();
        let key = Key::<i64>::kept_for("hint".to_owned(), 120);
        assert_eq!(block_on(key.load(&store)).unwrap(), None);
        assert_eq!(block_on(key.load_tolerant(&store)).unwrap(), None);

        block_on(key.save(&store, &42, None)).unwrap();
        assert_eq!(block_on(store.get("hint")).unwrap().as_deref(), Some("42"));
        assert_eq!(store.ttl("hint"), Some(120));
        block_on(key.save(&store, &43, Some(60))).unwrap();
        assert_eq!(store.ttl("hint"), Some(60));
        assert_eq!(block_on(key.load(&store)).unwrap(), Some(43));
        assert_eq!(block_on(key.load_tolerant(&store)).unwrap(), Some(43));

        block_on(store.put("hint", "\"forty-two\"", None)).unwrap();
        let corrupt = block_on(key.load(&store)).unwrap_err();
        assert!(
            matches!(&corrupt, StoreError::Corrupt { key, .. } if key == "hint"),
            "{corrupt:?}"
        );
        assert_eq!(block_on(key.load_tolerant(&store)).unwrap(), None);

        store.set_failing(true);
        let failing = block_on(key.load_tolerant(&store));
        assert!(
            matches!(failing, Err(StoreError::Unavailable(_))),
            "{failing:?}"
        );
        let failing = block_on(key.save(&store, &1, None));
        assert!(
            matches!(failing, Err(StoreError::Unavailable(_))),
            "{failing:?}"
        );
    }
}
