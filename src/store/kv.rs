//! Workers KV behind the `Store` port. Only built for wasm32.

use worker::kv::{KvError, KvStore};

use super::{Store, StoreError};

/// KV refuses TTLs under a minute.
const KV_MIN_TTL_SECONDS: u64 = 60;

pub struct KvState(pub KvStore);

fn unavailable(error: KvError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

impl Store for KvState {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.0.get(key).text().await.map_err(unavailable)
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut put = self.0.put(key, value).map_err(unavailable)?;
        if let Some(ttl) = ttl_seconds {
            put = put.expiration_ttl(ttl.max(KV_MIN_TTL_SECONDS));
        }
        put.execute().await.map_err(unavailable)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).await.map_err(unavailable)
    }
}
