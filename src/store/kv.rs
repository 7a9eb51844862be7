//! Workers KV behind the `Store` port, and the one place the list indexes are written: a
//! record of an indexed kind (`record_index::Table::of_key`: `charge:`, `identity:user:`,
//! `notification:`) written or deleted here has its index row written or deleted too, with the
//! same expiry. KV first, then the index: a write is done when both are, so a failed index
//! write fails the write (an entity's queue copies it again before its next piece of work).
//! Only built for wasm32.

use worker::kv::{KvError, KvStore};
use worker::Date;

use super::index::IndexClient;
use super::{ListPage, Store, StoreError};
use crate::record_index::{Row, Table};

/// KV refuses TTLs under a minute.
const KV_MIN_TTL_SECONDS: u64 = 60;
/// KV returns at most this many keys per list call.
const KV_MAX_LIST_LIMIT: usize = 1000;

/// The namespace, and whether to log each operation as a `[meter]` line (`COST_METER`, a
/// local server's cost count: the operation and the key's prefix, never the key).
pub struct KvState {
    kv: KvStore,
    meter: bool,
    /// The list indexes (`None`: the `EVENT_LOG` binding is missing, and an indexed write fails).
    index: Option<IndexClient>,
}

impl KvState {
    pub fn new(kv: KvStore, meter: bool, index: Option<IndexClient>) -> Self {
        Self { kv, meter, index }
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
}

fn unavailable(error: KvError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

impl Store for KvState {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.count("read", key);
        self.kv.get(key).text().await.map_err(unavailable)
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), StoreError> {
        self.count("write", key);
        let mut put = self.kv.put(key, value).map_err(unavailable)?;
        let ttl = ttl_seconds.map(|ttl| ttl.max(KV_MIN_TTL_SECONDS));
        if let Some(ttl) = ttl {
            put = put.expiration_ttl(ttl);
        }
        put.execute().await.map_err(unavailable)?;
        self.index_write(key, value, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.count("delete", key);
        self.kv.delete(key).await.map_err(unavailable)?;
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
        let mut list = self
            .kv
            .list()
            .prefix(prefix.to_owned())
            .limit(limit.clamp(1, KV_MAX_LIST_LIMIT) as u64);
        if let Some(cursor) = cursor {
            list = list.cursor(cursor.to_owned());
        }
        let page = list.execute().await.map_err(unavailable)?;
        Ok(ListPage {
            keys: page.keys.into_iter().map(|key| key.name).collect(),
            // KV may hand out a cursor on the last page too; only an incomplete list has a next one.
            cursor: if page.list_complete {
                None
            } else {
                page.cursor
            },
        })
    }
}
