//! Workers KV behind the `Store` port, and the one place the list indexes are written: a
//! record of an indexed kind (`record_index::Table::of_key`: `charge:`, `identity:user:`,
//! `notification:`) written or deleted here has its index row written or deleted too, with the
//! same expiry. The row first, then KV: a write is done when both are, so a failed index
//! write fails the write before KV changes (an entity's queue copies it again before its next
//! piece of work; the outbox's next run writes a notification again). A delete removes the
//! record first, then its row. In an entity's queue ([`KvState::deferring`]) the rows of the
//! records its table keeps are instead sent together once the work is done ([`Store::flush`],
//! one request with the event's row): the table keeps each such record pending until that
//! request is done, so a row that failed is written again (with its record) by the next
//! catch-up, as a failed KV write is.
//! Only built for wasm32.
//!
//! The namespace's own JS methods called directly (`get`, `put`, `delete`, `list`): the
//! `worker` crate's KV builders pass their options through `serde_wasm_bindgen` and a `&str`
//! value through its generic `Serialize` path (float formatting and all), about 20 KB of the
//! wasm for four calls that need a string or two numbers.

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::Date;

use super::entity::DeferredRows;
use super::index::IndexClient;
use super::{ListPage, Store, StoreError};
use crate::event_log::Entry;
use crate::record_index::{Row, Table};

/// KV refuses TTLs under a minute.
const KV_MIN_TTL_SECONDS: u64 = 60;
/// KV returns at most this many keys per list call.
const KV_MAX_LIST_LIMIT: usize = 1000;

/// The namespace, and whether to log each operation as a `[meter]` line (`COST_METER`, a
/// local server's cost count: the operation and the key's prefix, never the key).
pub struct KvState {
    kv: Object,
    meter: bool,
    /// The list indexes (`None`: the `EVENT_LOG` binding is missing, and an indexed write fails).
    index: Option<IndexClient>,
    /// In an entity's queue ([`KvState::deferring`]): the list rows of the records its table
    /// keeps, sent with the event's row in one request by [`Store::flush`].
    deferred: Option<DeferredRows>,
}

/// The runtime's error, as the `worker` crate's `KvError` printed it.
fn unavailable(error: JsValue) -> StoreError {
    StoreError::Unavailable(format!("js error: {error:?}"))
}

fn get(target: &JsValue, name: &str) -> Result<JsValue, StoreError> {
    Reflect::get(target, &JsValue::from_str(name)).map_err(unavailable)
}

fn set(target: &Object, name: &str, value: JsValue) -> Result<(), StoreError> {
    Reflect::set(target, &JsValue::from_str(name), &value)
        .map(|_| ())
        .map_err(unavailable)
}

impl KvState {
    /// The binding `name` on `env`; the error (as the `worker` crate's `KvError` printed it)
    /// names a missing one.
    pub fn new(
        env: &JsValue,
        name: &str,
        meter: bool,
        index: Option<IndexClient>,
    ) -> Result<Self, String> {
        let kv =
            Reflect::get(env, &JsValue::from_str(name)).map_err(|e| format!("js error: {e:?}"))?;
        if kv.is_undefined() {
            return Err(format!("invalid kv store: {name}"));
        }
        Ok(Self {
            kv: kv.unchecked_into(),
            meter,
            index,
            deferred: None,
        })
    }

    /// For an entity's queue, over its table (`store::entity`): a write of a record the table
    /// keeps leaves its list row for [`Store::flush`] (one request for the whole piece of
    /// work); the table keeps the record pending until then, so a row that could not be
    /// written is written again by the next catch-up. Other keys (the outbox's) are written
    /// row first, as outside a queue.
    pub fn deferring(self) -> Self {
        Self {
            deferred: Some(DeferredRows::default()),
            ..self
        }
    }

    fn index(&self) -> Result<&IndexClient, StoreError> {
        self.index
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("binding EVENT_LOG is missing".into()))
    }

    /// The index row of an indexed record (none for other keys). A value that is not its
    /// key's record is not listed (`GET` of the record says why).
    async fn index_write(
        &self,
        key: &str,
        value: &str,
        ttl: Option<u64>,
    ) -> Result<(), StoreError> {
        if Table::of_key(key).is_none() {
            return Ok(());
        }
        let now = (Date::now().as_millis() / 1000) as i64;
        let (path, body) = match Row::of_write(key, value, ttl, now) {
            Some((table, row)) => (
                format!("/put/{}", table.name()),
                serde_json::to_string(&row).unwrap_or_default(),
            ),
            None => return self.index_delete(key).await,
        };
        self.index()?.call(&path, body).await.map(|_| ())
    }

    /// [`KvState::index_write`]'s row into the batch [`Store::flush`] sends.
    async fn defer_row(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
        let now = (Date::now().as_millis() / 1000) as i64;
        match &self.deferred {
            Some(rows) if rows.push(key, value, ttl, now) => Ok(()),
            _ => self.index_delete(key).await,
        }
    }

    async fn index_delete(&self, key: &str) -> Result<(), StoreError> {
        let Some((table, id)) = Table::of_key(key) else {
            return Ok(());
        };
        let path = format!("/delete/{}", table.name());
        self.index()?.call(&path, id.to_owned()).await.map(|_| ())
    }

    fn count(&self, operation: &str, key: &str) {
        if self.meter {
            let prefix = key.split(':').next().unwrap_or_default();
            worker::console_log!("[meter] kv.{operation} {prefix}");
        }
    }

    /// `kv.<method>(args…)`, awaited.
    async fn call(&self, method: &str, args: &Array) -> Result<JsValue, StoreError> {
        let function: Function = get(&self.kv, method)?.unchecked_into();
        let promise: Promise = function
            .apply(&self.kv, args)
            .map_err(unavailable)?
            .unchecked_into();
        JsFuture::from(promise).await.map_err(unavailable)
    }
}

impl Store for KvState {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.count("read", key);
        let args = Array::of2(&JsValue::from_str(key), &JsValue::from_str("text"));
        Ok(self.call("get", &args).await?.as_string())
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), StoreError> {
        self.count("write", key);
        let options = Object::new();
        let ttl = ttl_seconds.map(|ttl| ttl.max(KV_MIN_TTL_SECONDS));
        if let Some(ttl) = ttl {
            set(&options, "expirationTtl", JsValue::from_f64(ttl as f64))?;
        }
        let args = Array::of3(&JsValue::from_str(key), &JsValue::from_str(value), &options);
        if self.defers_row(key) {
            // A row the queue sends after the work: gathered once KV has the record (a put
            // that failed lists nothing), its record kept pending in the queue's table until
            // the batch went (`store::entity`), so a failed batch is sent again with it.
            self.call("put", &args).await?;
            return self.defer_row(key, value, ttl).await;
        }
        // Otherwise the row first: a record whose row could not be written is not written
        // either, so its writer's retry (the outbox's next run) writes both. The other way
        // round, a notification delivered in KV but not in its row would stay listed as
        // pending: nothing writes a finished notification again.
        self.index_write(key, value, ttl).await?;
        self.call("put", &args).await.map(|_| ())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.count("delete", key);
        let args = Array::of1(&JsValue::from_str(key));
        self.call("delete", &args).await?;
        if let Some(rows) = &self.deferred {
            rows.remove(key);
        }
        self.index_delete(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let reads = keys.iter().map(|key| self.get(key));
        futures_util::future::join_all(reads)
            .await
            .into_iter()
            .collect()
    }

    async fn list(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<ListPage, StoreError> {
        self.count("list", prefix);
        let options = Object::new();
        set(&options, "prefix", JsValue::from_str(prefix))?;
        let limit = limit.clamp(1, KV_MAX_LIST_LIMIT) as f64;
        set(&options, "limit", JsValue::from_f64(limit))?;
        if let Some(cursor) = cursor {
            set(&options, "cursor", JsValue::from_str(cursor))?;
        }
        let page = self.call("list", &Array::of1(&options)).await?;
        let keys: Array = get(&page, "keys")?.unchecked_into();
        // A loop, not `collect::<Result<_, _>>()` (its own adapter in the wasm).
        let mut names = Vec::with_capacity(keys.length() as usize);
        for key in keys.iter() {
            names.push(get(&key, "name")?.as_string().unwrap_or_default());
        }
        // KV may hand out a cursor on the last page too; only an incomplete list has a next one.
        let complete = get(&page, "list_complete")?.as_bool().unwrap_or(true);
        let cursor = if complete {
            None
        } else {
            get(&page, "cursor")?.as_string()
        };
        Ok(ListPage {
            keys: names,
            cursor,
        })
    }

    fn defers_row(&self, key: &str) -> bool {
        self.deferred.is_some() && DeferredRows::defers(key)
    }

    /// One `POST /batch` to the index with the deferred rows and `event`'s row (none when
    /// there is neither). Not deferring, or a batch of the event's row alone that failed:
    /// `false`, the event's row is left to its writer.
    async fn flush(&self, event: Option<Entry>) -> Result<bool, StoreError> {
        let Some(batch) = self.deferred.as_ref().and_then(|rows| rows.take(event)) else {
            return Ok(false);
        };
        let sent = match self.index() {
            Ok(index) => {
                DeferredRows::send(&batch, async |path, body| index.call(path, body).await).await
            }
            Err(error) => Err(error),
        };
        sent.or_else(|error| DeferredRows::failed(&batch, error))
    }
}
