//! The Stripe Event envelope. Pure.
//!
//! Only the fields needed to dedupe and dispatch are decoded; `data.object` stays raw JSON
//! until a handler for that type asks for its own shape. Unknown event types are normal
//! (Stripe adds types, and an endpoint may be subscribed to more than we handle).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::stripe::{is_prefixed_id, StripeSaid};

pub mod thin;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the body is not a JSON Stripe event: {0}")]
    NotAnEvent(String),
    #[error("the event id is not a Stripe event id")]
    InvalidId,
    /// `livemode` is not the secret key's mode: a test-mode event (signed with a test
    /// endpoint's secret, or listed with a test key) never changes live state, nor the reverse.
    #[error("the event's livemode is {event}, the secret key's mode is livemode {key}")]
    LivemodeMismatch { event: bool, key: bool },
}

impl EventError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAnEvent(_) => "event_malformed",
            Self::InvalidId => "event_id_invalid",
            Self::LivemodeMismatch { .. } => "livemode_mismatch",
        }
    }
}

/// Serialisable: a verified event travels to its entity's queue (`crate::queue::Work`).
#[derive(Debug, Serialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// Unix seconds when Stripe created the event: the ordering key for state transitions.
    pub created: i64,
    pub livemode: bool,
    #[serde(default)]
    pub api_version: Option<String>,
    pub data: EventData,
}
crate::json::decode_map!(Event {
    id: "id" required,
    event_type: "type" required,
    created: "created" required,
    livemode: "livemode" required,
    api_version: "api_version" default,
    data: "data" required,
});

#[derive(Debug, Serialize)]
pub struct EventData {
    pub object: Box<RawValue>,
}
crate::json::decode_map!(EventData {
    object: "object" required,
});

impl Event {
    /// Parses a verified body. Call only after the signature holds.
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let event: Event =
            serde_json::from_str(text(body)?).map_err(|e| EventError::NotAnEvent(describe(&e)))?;
        if !is_event_id(&event.id) {
            return Err(EventError::InvalidId);
        }
        if !event.data.object.get().trim_start().starts_with('{') {
            return Err(EventError::NotAnEvent(
                "data.object is not an object".into(),
            ));
        }
        Ok(event)
    }

    /// Refuses an event of the other mode than the secret key's (`Config::livemode`).
    pub fn check_mode(&self, key_livemode: bool) -> Result<(), EventError> {
        check_mode(self.livemode, key_livemode)
    }

    /// Decodes `data.object` into the shape a handler needs.
    pub fn object<'a, T: Deserialize<'a>>(&'a self) -> Result<T, EventError> {
        serde_json::from_str(self.data.object.get()).map_err(object_error)
    }
}

/// Not generic: one copy, not one per type decoded.
#[inline(never)]
fn object_error(error: serde_json::Error) -> EventError {
    EventError::NotAnEvent(format!("data.object: {}", describe(&error)))
}

/// serde_json's message without any excerpt of the input.
/// The body as text. Every JSON body is read with `from_str`, never `from_slice`: each reader
/// is a second copy of serde_json's parser in the wasm (about 10 KB).
fn text(body: &[u8]) -> Result<&str, EventError> {
    std::str::from_utf8(body).map_err(|e| {
        EventError::NotAnEvent(format!(
            "invalid JSON (not UTF-8) at byte {}",
            e.valid_up_to()
        ))
    })
}

fn describe(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Io => "unreadable".to_owned(),
        Category::Syntax => "invalid JSON".to_owned(),
        Category::Eof => "truncated JSON".to_owned(),
        // Data errors may quote a value from the body ("invalid type: string \"…\""): only
        // "missing field `x`" is kept verbatim, being about our schema, not the input.
        Category::Data => {
            let text = error.to_string();
            match text.split(" at line ").next() {
                Some(missing) if missing.starts_with("missing field") => missing.to_owned(),
                _ => "a field has an unexpected type or value".to_owned(),
            }
        }
    };
    format!("{what} at line {} column {}", error.line(), error.column())
}

/// `evt_` followed by Stripe's id alphabet, within 255 bytes: a hostile id must not make a huge
/// KV key (KV allows 512 bytes).
pub fn is_event_id(id: &str) -> bool {
    is_prefixed_id(id, "evt_")
}

/// Declares [`EventKind`] from one list of variants and their Stripe type strings, so that a
/// type string is written once and [`EventKind::ALL`] cannot miss a variant.
macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident => $type:literal,)+) => {
        /// The event types this service acts on, parsed once from `event.type` (as mini-redis
        /// parses its `Command`). Every other verified type is recorded as ignored. Adding
        /// one: a variant here, its arm in `handlers::dispatch` (the compiler asks for it),
        /// and its fixture in `tools/fixtures/events/` (the trigger-fixtures test asks).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($(#[$doc])* $variant,)+
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)+];
            /// Every handled type string, in declaration order.
            pub const TYPES: &'static [&'static str] = &[$($type,)+];

            /// Stripe's `type` string.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $type,)+
                }
            }

            /// The kind of a `type` string; `None` for a type this service does not act on.
            pub fn parse(event_type: &str) -> Option<Self> {
                match event_type {
                    $($type => Some(EventKind::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

event_kinds! {
    VerificationSessionCreated => "identity.verification_session.created",
    VerificationSessionProcessing => "identity.verification_session.processing",
    VerificationSessionVerified => "identity.verification_session.verified",
    VerificationSessionRequiresInput => "identity.verification_session.requires_input",
    VerificationSessionCanceled => "identity.verification_session.canceled",
    VerificationSessionRedacted => "identity.verification_session.redacted",
    /// Setup mode saves a card; payment mode pays a declined charge (its recovery).
    CheckoutSessionCompleted => "checkout.session.completed",
    /// A session completed with a delayed payment method (`payment_status: unpaid`) was paid.
    CheckoutSessionAsyncPaymentSucceeded => "checkout.session.async_payment_succeeded",
    /// ... or its payment failed.
    CheckoutSessionAsyncPaymentFailed => "checkout.session.async_payment_failed",
    /// An open session expired (24 h after creation by default) without being completed.
    CheckoutSessionExpired => "checkout.session.expired",
    PaymentIntentSucceeded => "payment_intent.succeeded",
    PaymentIntentPaymentFailed => "payment_intent.payment_failed",
}

impl Event {
    /// What this event is to the service, or `None` when it is not acted on.
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::parse(&self.event_type)
    }
}

/// What handling an event came to, as stored under `event:{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A handler ran to completion.
    Handled,
    /// Verified, but of a type this service does not act on.
    Ignored,
    /// A handler stopped at a step (recorded so a redelivery can finish the work).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Handled => "handled",
            Self::Ignored => "ignored",
            Self::Failed => "failed",
        }
    }

    /// Final outcomes make a redelivery a no-op; a failed one is worked again.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Failed)
    }
}

/// An event (snapshot or thin) of the other mode than the secret key's is refused.
pub fn check_mode(event_livemode: bool, key_livemode: bool) -> Result<(), EventError> {
    if event_livemode == key_livemode {
        Ok(())
    } else {
        Err(EventError::LivemodeMismatch {
            event: event_livemode,
            key: key_livemode,
        })
    }
}

/// The value under `event:{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    pub version: u32,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created: i64,
    pub livemode: bool,
    pub outcome: Outcome,
    /// The step that failed, for `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// The error code at that step (as in the error responses), for `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For `Failed` at a Stripe call Stripe refused: its status, type, code, decline code,
    /// param, message and request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe_error: Option<StripeSaid>,
    /// For `Failed`: whether a retry can get past the failure (the delivery was answered 5xx
    /// and Stripe redelivers; catch-up works it again). `false` is failed for good (answered
    /// 200: Stripe refused the request): catch-up skips it, `POST /events/{id}/replay` redoes
    /// it once the cause is fixed. Absent in records written before it existed: retryable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// For `Ignored` when the type is handled: why nothing was done (e.g.
    /// `not_created_by_this_deployment`, see `crate::provenance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a thin event that names its snapshot twin: the twin's id, under which the change
    /// was deduped and handled (`event:{snapshot_event}` holds that outcome too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_event: Option<String>,
    /// Unix seconds when this worker recorded it.
    pub recorded_at: i64,
}
crate::json::decode_map!(EventRecord {
    version: "version" required,
    id: "id" required,
    event_type: "type" required,
    created: "created" required,
    livemode: "livemode" required,
    outcome: "outcome" required,
    failed_step: "failed_step" default,
    error: "error" default,
    stripe_error: "stripe_error" default,
    retryable: "retryable" default,
    reason: "reason" default,
    snapshot_event: "snapshot_event" default,
    recorded_at: "recorded_at" required,
});

pub const EVENT_RECORD_VERSION: u32 = 1;

impl EventRecord {
    /// Recorded `failed` with a failure no retry can get past: only a replay works it again.
    pub fn failed_for_good(&self) -> bool {
        self.outcome == Outcome::Failed && self.retryable == Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"id":"evt_1Abc","object":"event","type":"customer.created","created":1700000000,"livemode":false,"api_version":"2026-10-28.endive","data":{"object":{"id":"cus_1","object":"customer"}}}"#;

    #[test]
    fn every_event_kind_parses_back_from_its_type_string() {
        assert_eq!(EventKind::ALL.len(), EventKind::TYPES.len());
        for (kind, type_string) in EventKind::ALL.iter().zip(EventKind::TYPES) {
            assert_eq!(kind.as_str(), *type_string);
            assert_eq!(EventKind::parse(type_string), Some(*kind));
        }
        for other in [
            "customer.created",
            "identity.verification_session.other",
            "",
        ] {
            assert_eq!(EventKind::parse(other), None, "{other}");
        }
    }

    #[test]
    fn the_envelope_is_read_and_the_object_kept_raw() {
        let event = Event::parse(MINIMAL.as_bytes()).unwrap();
        assert_eq!(event.id, "evt_1Abc");
        assert_eq!(event.event_type, "customer.created");
        assert_eq!(event.created, 1_700_000_000);
        assert!(!event.livemode);
        assert_eq!(event.api_version.as_deref(), Some("2026-10-28.endive"));
        assert_eq!(
            event.data.object.get(),
            r#"{"id":"cus_1","object":"customer"}"#
        );
    }

    #[test]
    fn the_object_decodes_on_demand() {
        #[derive(Deserialize)]
        struct Customer<'a> {
            id: &'a str,
        }
        let event = Event::parse(MINIMAL.as_bytes()).unwrap();
        assert_eq!(event.object::<Customer>().unwrap().id, "cus_1");
    }

    #[test]
    fn a_null_api_version_and_unknown_fields_are_fine() {
        let body = MINIMAL.replace(r#""2026-10-28.endive""#, "null").replace(
            r#""object":"event""#,
            r#""object":"event","request":{"id":null},"pending_webhooks":1"#,
        );
        assert_eq!(Event::parse(body.as_bytes()).unwrap().api_version, None);
    }

    #[test]
    fn bodies_that_are_not_events_are_refused() {
        for body in [
            "",
            "not json",
            r#"{"id":"evt_1""#,
            "[]",
            r#"{"id":"evt_1"}"#,
            r#"{"id":"evt_1","type":"x","created":"yesterday","livemode":false,"data":{"object":{}}}"#,
            r#"{"id":"evt_1","type":"x","created":1,"livemode":false,"data":{"object":"str"}}"#,
            r#"{"id":"evt_1","type":"x","created":1,"livemode":false,"data":{}}"#,
        ] {
            assert!(
                matches!(
                    Event::parse(body.as_bytes()),
                    Err(EventError::NotAnEvent(_))
                ),
                "{body}"
            );
        }
        assert!(matches!(
            Event::parse(&[0xff, 0xfe, b'{']),
            Err(EventError::NotAnEvent(_))
        ));
    }

    #[test]
    fn event_ids_are_checked_before_they_become_keys() {
        for id in [
            "evt_",
            "cus_123",
            "evt_a/b",
            "evt_a:b",
            "EVT_1",
            &format!("evt_{}", "a".repeat(300)),
        ] {
            let body = MINIMAL.replace("evt_1Abc", id);
            assert_eq!(
                Event::parse(body.as_bytes()).unwrap_err(),
                EventError::InvalidId,
                "{id}"
            );
        }
    }

    #[test]
    fn error_messages_do_not_quote_the_body() {
        for body in [
            r#"{"id": "evt_1", "type": secret_value_here}"#,
            r#"{"id":"evt_1","type":"x","created":"secret_value_here","livemode":false,"data":{"object":{}}}"#,
        ] {
            let err = Event::parse(body.as_bytes()).unwrap_err();
            assert!(!err.to_string().contains("secret_value_here"), "{err}");
        }
        let err = Event::parse(br#"{"id":"evt_1"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
    }
}
