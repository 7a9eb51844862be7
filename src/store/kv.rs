//! Workers KV behind the `Store` port. Only built for wasm32.

use worker::kv::{KvError, KvStore};

use super::{ListPage, Store, StoreError};

/// KV refuses TTLs under a minute.
const KV_MIN_TTL_SECONDS: u64 = 60;
/// KV returns at most this many keys per list call.
const KV_MAX_LIST_LIMIT: usize = 1000;

/// The namespace, and whether to log each operation as a `[meter]` line (`COST_METER`, a
/// local server's cost count: the operation and the key's prefix, never the key).
pub struct KvState {
    kv: KvStore,
    meter: bool,
}

impl KvState {
    pub fn new(kv: KvStore, meter: bool) -> Self {
        Self { kv, meter }
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
        if let Some(ttl) = ttl_seconds {
            put = put.expiration_ttl(ttl.max(KV_MIN_TTL_SECONDS));
        }
        put.execute().await.map_err(unavailable)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.count("delete", key);
        self.kv.delete(key).await.map_err(unavailable)
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
