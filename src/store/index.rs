//! The worker's side of the index Durable Object (`routes::event_log`: `EventLog`, binding
//! `EVENT_LOG`, `idFromName("events")`): one request, its answer's body. The event index and
//! the list indexes (`crate::record_index`) are tables of that one object. Only built for
//! wasm32.

use worker::ObjectNamespace;

use crate::http;
use crate::stripe::fetch::{new_request, text_of};

use super::StoreError;

/// The Durable Object namespace binding in wrangler.toml.
pub const EVENT_LOG_BINDING: &str = "EVENT_LOG";
/// The one index's name.
const INDEX: &str = "events";
/// Never resolved: a stub's fetch goes to the Durable Object whatever the URL says.
const BASE_URL: &str = "https://event-log.invalid";

/// The index's namespace, and whether to log each request as a `[meter]` line.
pub struct IndexClient {
    namespace: ObjectNamespace,
    meter: bool,
}

fn unreachable(error: worker::Error) -> StoreError {
    StoreError::Unavailable(format!("the index did not answer: {error}"))
}

impl IndexClient {
    pub fn new(namespace: ObjectNamespace, meter: bool) -> Self {
        Self { namespace, meter }
    }

    /// `POST {path}` with `body`; the answer's body, or an error for any status but 200.
    pub async fn call(&self, path: &str, body: String) -> Result<String, StoreError> {
        if self.meter {
            worker::console_log!("[meter] do.request event_log");
        }
        let stub = self
            .namespace
            .id_from_name(INDEX)
            .and_then(|id| id.get_stub())
            .map_err(unreachable)?;
        let url = format!("{BASE_URL}{path}");
        let request =
            new_request(&url, http::Method::Post, None, Some(&body), None).map_err(unreachable)?;
        let response = stub
            .fetch_with_request(request)
            .await
            .map_err(unreachable)?;
        let status = response.status_code();
        let text = text_of(response).await.map_err(unreachable)?;
        if status != 200 {
            return Err(StoreError::Unavailable(format!(
                "the index refused {path} ({status})"
            )));
        }
        Ok(text)
    }
}
