//! Notifications, the pure part: the outbox record kept under `notification:{id}`, the JSON
//! POST to `NOTIFY_URL` it becomes, and what an attempt's answer does to it. Loading, saving
//! and sending are I/O and live in `Services::notify` (`services.rs`).
//!
//! Ids are derived from what caused the notification (an event id or a PaymentIntent id and
//! the kind), so a redelivered event finds the record and does not notify twice once it is
//! delivered. Delivery is one attempt with a short timeout: a webhook must answer Stripe
//! quickly, and a failed delivery leaves the record undelivered for an operator (or a later
//! redelivery of the event) to pick up; it never fails the webhook.

use serde::{Deserialize, Serialize};

use crate::http::{HttpRequest, HttpResponse, Method, SendFailure};

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

impl Notification {
    /// This notification as first written, or as it continues a stored, undelivered one:
    /// the first write time and the attempt count are kept.
    pub fn resume(self, existing: Option<&Notification>, now: i64) -> Self {
        Notification {
            created_at: existing.map_or(now, |n| n.created_at),
            attempts: existing.map_or(0, |n| n.attempts),
            ..self
        }
    }

    /// The POST to the sink. The `Idempotency-Key` lets the receiver drop a repeat if our
    /// record of the delivery was lost.
    pub fn request(&self, url: &str) -> Result<HttpRequest, serde_json::Error> {
        let body = serde_json::to_string(&Outgoing {
            id: &self.id,
            kind: &self.kind,
            recipient: &self.recipient,
            payload: &self.payload,
            created_at: self.created_at,
        })?;
        Ok(HttpRequest {
            method: Method::Post,
            url: url.to_owned(),
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("idempotency-key", self.id.clone()),
            ],
            body: Some(body),
        })
    }

    /// Books one attempt and its answer: delivered on a 2xx, otherwise why not (a status or
    /// the runtime's network message, never a body).
    pub fn record_attempt(&mut self, answer: Result<&HttpResponse, &SendFailure>, now: i64) {
        self.attempts += 1;
        match answer {
            Ok(response) if (200..300).contains(&response.status) => {
                self.delivered = true;
                self.delivered_at = Some(now);
                self.last_error = None;
            }
            Ok(response) => {
                self.last_error = Some(format!("the sink answered {}", response.status))
            }
            Err(SendFailure::Network(reason) | SendFailure::Unsendable(reason)) => {
                self.last_error = Some(reason.clone())
            }
        }
    }
}
