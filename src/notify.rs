//! Notifications: an outbox record per notification in the store (`notification:{id}`), and a
//! JSON POST to `NOTIFY_URL` when one is configured.
//!
//! Ids are derived from what caused the notification (an event id or a PaymentIntent id and
//! the kind), so a redelivered event finds the record and does not notify twice once it is
//! delivered. Delivery is one attempt with a short timeout: a webhook must answer Stripe
//! quickly, and a failed delivery leaves the record undelivered for an operator (or a later
//! redelivery of the event) to pick up; it never fails the webhook.

use serde::{Deserialize, Serialize};

use crate::store::{keys, Store, StoreError};
use crate::stripe::{HttpRequest, Method, SendFailure, Transport};

pub const NOTIFICATION_RECORD_VERSION: u32 = 1;
/// One attempt, this long at most.
pub const DELIVERY_TIMEOUT_MS: u64 = 3_000;

/// Who the notification is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Recipient {
    /// An application user (Identity flows), by the app's own user id.
    User(String),
    /// A Stripe customer (billing flows).
    Customer(String),
}

/// The value under `notification:{id}`, and the JSON body POSTed to `NOTIFY_URL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub version: u32,
    pub id: String,
    /// What happened, e.g. `identity.verified`, `charge.recovery`.
    pub kind: String,
    pub recipient: Recipient,
    pub payload: serde_json::Map<String, serde_json::Value>,
    /// Unix seconds of the first write.
    pub created_at: i64,
    pub delivered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<i64>,
    #[serde(default)]
    pub attempts: u32,
    /// Why the last delivery failed: a status or the runtime's network message, no body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Notification {
    /// `source` is what caused it (an event or object id); with `kind` it makes the id.
    pub fn new(
        source: &str,
        kind: &str,
        recipient: Recipient,
        payload: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        Self {
            version: NOTIFICATION_RECORD_VERSION,
            id: format!("{source}.{kind}"),
            kind: kind.to_owned(),
            recipient,
            payload,
            created_at: 0,
            delivered: false,
            delivered_at: None,
            attempts: 0,
            last_error: None,
        }
    }
}

/// What the sink receives: the record without its delivery bookkeeping.
#[derive(Serialize)]
struct Outgoing<'a> {
    id: &'a str,
    kind: &'a str,
    recipient: &'a Recipient,
    payload: &'a serde_json::Map<String, serde_json::Value>,
    created_at: i64,
}

/// Records the notification (unless it was already delivered) and delivers it when `url` is
/// set. Returns the record as stored.
pub async fn send(
    store: &impl Store,
    transport: &impl Transport,
    url: Option<&str>,
    notification: Notification,
    now: i64,
) -> Result<Notification, StoreError> {
    let key = keys::notification(&notification.id);
    let existing = key.load_tolerant(store).await?;
    if let Some(done) = existing.as_ref().filter(|n| n.delivered) {
        return Ok(done.clone());
    }
    let mut record = Notification {
        created_at: existing.as_ref().map_or(now, |n| n.created_at),
        attempts: existing.as_ref().map_or(0, |n| n.attempts),
        ..notification
    };
    let Some(url) = url else {
        key.save(store, &record, None).await?;
        return Ok(record);
    };
    // The outbox record is written before the attempt, so a crash in between loses nothing.
    key.save(store, &record, None).await?;
    record.attempts += 1;
    let body = serde_json::to_string(&Outgoing {
        id: &record.id,
        kind: &record.kind,
        recipient: &record.recipient,
        payload: &record.payload,
        created_at: record.created_at,
    })
    .map_err(|e| StoreError::Corrupt {
        key: key.as_str().to_owned(),
        reason: e.to_string(),
    })?;
    let request = HttpRequest {
        method: Method::Post,
        url: url.to_owned(),
        headers: vec![
            ("content-type", "application/json".to_owned()),
            // Lets the receiver drop a repeat if our record of the delivery was lost.
            ("idempotency-key", record.id.clone()),
        ],
        body: Some(body),
    };
    match transport.send(&request, DELIVERY_TIMEOUT_MS).await {
        Ok(response) if (200..300).contains(&response.status) => {
            record.delivered = true;
            record.delivered_at = Some(now);
            record.last_error = None;
        }
        Ok(response) => record.last_error = Some(format!("the sink answered {}", response.status)),
        Err(SendFailure::Network(reason) | SendFailure::Unsendable(reason)) => {
            record.last_error = Some(reason)
        }
    }
    key.save(store, &record, None).await?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::testing::FakeTransport;
    use pollster::block_on;

    fn sample() -> Notification {
        let mut payload = serde_json::Map::new();
        payload.insert("status".into(), "verified".into());
        Notification::new(
            "evt_1",
            "identity.verified",
            Recipient::User("u_1".into()),
            payload,
        )
    }

    #[test]
    fn without_a_url_the_record_is_kept_undelivered() {
        let store = MemoryStore::new();
        let transport = FakeTransport::new(|_| panic!("no delivery without a url"));
        let record = block_on(send(&store, &transport, None, sample(), 100)).unwrap();
        assert_eq!((record.delivered, record.created_at), (false, 100));
        let stored = block_on(keys::notification("evt_1.identity.verified").load(&store))
            .unwrap()
            .unwrap();
        assert_eq!(stored, record);
    }

    #[test]
    fn a_delivery_posts_json_and_marks_the_record_once() {
        let store = MemoryStore::new();
        let transport = FakeTransport::new(|_| Ok(FakeTransport::json(204, "")));
        let record = block_on(send(
            &store,
            &transport,
            Some("https://sink.test/n"),
            sample(),
            100,
        ))
        .unwrap();
        assert!(record.delivered);
        let sent = transport.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].url, "https://sink.test/n");
        assert_eq!(
            sent[0].header("idempotency-key"),
            Some("evt_1.identity.verified")
        );
        let body: serde_json::Value = serde_json::from_str(sent[0].body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body["recipient"],
            serde_json::json!({"type": "user", "id": "u_1"})
        );
        assert_eq!(body["payload"]["status"], "verified");
        assert!(body.get("delivered").is_none());
        // The same notification again (a redelivered event) sends nothing.
        block_on(send(
            &store,
            &transport,
            Some("https://sink.test/n"),
            sample(),
            200,
        ))
        .unwrap();
        assert_eq!(transport.sent().len(), 1);
    }

    #[test]
    fn a_failed_delivery_is_recorded_and_retried_next_time() {
        let store = MemoryStore::new();
        let failing = FakeTransport::new(|_| Ok(FakeTransport::json(500, "{}")));
        let record = block_on(send(
            &store,
            &failing,
            Some("https://sink.test/n"),
            sample(),
            100,
        ))
        .unwrap();
        assert!(!record.delivered);
        assert_eq!(record.last_error.as_deref(), Some("the sink answered 500"));
        let down = FakeTransport::new(|_| Err(SendFailure::Network("connection refused".into())));
        let record = block_on(send(
            &store,
            &down,
            Some("https://sink.test/n"),
            sample(),
            150,
        ))
        .unwrap();
        assert_eq!(
            (record.attempts, record.last_error.as_deref()),
            (2, Some("connection refused"))
        );
        let ok = FakeTransport::new(|_| Ok(FakeTransport::json(200, "{}")));
        let record = block_on(send(
            &store,
            &ok,
            Some("https://sink.test/n"),
            sample(),
            300,
        ))
        .unwrap();
        assert_eq!(
            (
                record.delivered,
                record.created_at,
                record.delivered_at,
                record.attempts
            ),
            (true, 100, Some(300), 3)
        );
    }

    #[test]
    fn a_store_outage_is_an_error() {
        let store = MemoryStore::new();
        store.set_failing(true);
        let transport = FakeTransport::new(|_| panic!("nothing is sent when the outbox is down"));
        assert!(block_on(send(
            &store,
            &transport,
            Some("https://sink.test"),
            sample(),
            1
        ))
        .is_err());
    }
}
