//! Receiving one webhook delivery: size cap, signature, envelope, dedupe, dispatch, record.
//! Pure apart from the ports in [`Services`], so the whole flow runs natively against
//! `MemoryStore` and a fake transport.

use crate::error::AppError;
use crate::event::thin::{Envelope, EventGenerationFailure, ThinEvent, ThinPlan};
use crate::event::{Event, EventError, EventRecord, Outcome, EVENT_RECORD_VERSION};
use crate::handlers::{self, Handled, StepError};
use crate::http::Transport;
use crate::notify::{Notification, OPS_EVENT_GENERATION_FAILURE};
use crate::services::Services;
use crate::signature::{self, SignatureError, WebhookSecrets};
use crate::store::{keys, Store, StoreError, EVENT_TTL_SECONDS};
use crate::stripe::StripeRequest;
use serde_json::value::RawValue;

/// Stripe's payloads are a few KB; 1 MiB is far above any real event and caps the HMAC work.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The secret key's mode could not be read (a missing or unknown key): 5xx until fixed.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A handler failed in a way a redelivery can get past: the delivery is answered 5xx.
    #[error(transparent)]
    Handler(#[from] StepError),
}

/// The delivery's failure as the route answers it: the webhook's own statuses come from the
/// one mapping in `error.rs`.
impl From<WebhookError> for AppError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::BodyTooLarge => Self::PayloadTooLarge,
            WebhookError::Signature(e) => Self::Signature(e),
            WebhookError::Event(e) => Self::Event(e),
            WebhookError::Store(e) => Self::Store(e),
            WebhookError::Config(e) => Self::Config(e),
            WebhookError::Handler(failure) => failure.error,
        }
    }
}

/// What the route answers with and logs (carried back from the entity's queue).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Receipt {
    pub event_id: String,
    pub event_type: String,
    pub outcome: Outcome,
    /// True when this id was already handled and nothing was done this time.
    pub duplicate: bool,
    /// The record this processing wrote (none for a duplicate or an event that leaves
    /// nothing): carried back from the queue for the event index (`routes::event_log`). The
    /// webhook's own answer body never includes it (`routes::webhook::received`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Box<EventRecord>>,
}
crate::json::decode_map!(Receipt {
    event_id: "event_id" required,
    event_type: "event_type" required,
    outcome: "outcome" required,
    duplicate: "duplicate" required,
    record: "record" default,
});

/// Everything `receive` needs besides the store.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub body: &'a [u8],
    pub signature_header: Option<&'a str>,
    /// Unix seconds, from the runtime's clock.
    pub now: i64,
}

pub async fn receive<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    secrets: &WebhookSecrets,
    tolerance_seconds: u64,
    delivery: Delivery<'_>,
) -> Result<Receipt, WebhookError> {
    match verified_event(secrets, tolerance_seconds, delivery)? {
        Verified::Snapshot(event) => process(services, event, delivery.now).await,
        Verified::Thin(thin) => match read_thin(services, &thin, delivery.now).await? {
            ThinNext::Done(receipt) => Ok(receipt),
            ThinNext::Handle(event) => {
                let receipt = process(services, event, delivery.now).await?;
                Ok(link_thin(services, &thin, receipt, delivery.now).await?)
            }
        },
    }
}

/// A verified delivery: a snapshot event (`object: "event"`), or a thin one
/// (`object: "v2.core.event"`), whose related object is not read yet.
#[derive(Debug)]
pub enum Verified {
    Snapshot(Event),
    Thin(ThinEvent),
}

/// The delivery's event, once its size, signature and envelope pass; nothing is stored. Both
/// kinds are signed alike, and the secrets of both destinations are in the one list: the
/// verified body's `object` tells them apart.
pub fn verified_event(
    secrets: &WebhookSecrets,
    tolerance_seconds: u64,
    delivery: Delivery<'_>,
) -> Result<Verified, WebhookError> {
    if delivery.body.len() > MAX_BODY_BYTES {
        return Err(WebhookError::BodyTooLarge);
    }
    signature::verify(
        delivery.body,
        delivery.signature_header,
        secrets,
        tolerance_seconds,
        delivery.now,
    )?;
    Ok(match Envelope::of(delivery.body) {
        Envelope::Snapshot => Verified::Snapshot(Event::parse(delivery.body)?),
        Envelope::Thin => Verified::Thin(ThinEvent::parse(delivery.body)?),
    })
}

/// The step a thin event's record names when its related object could not be read.
pub const READ_RELATED_OBJECT: &str = "read_related_object";
/// ... or, for an event Stripe never generated, the alert (`GET /v2/core/events/{id}`).
pub const READ_EVENT: &str = "read_event";
/// The `reason` recorded with a `v2.core.health.event_generation_failure.resolved` event.
pub const EVENT_GENERATION_FAILURE: &str = "event_generation_failure";

/// What a thin event comes to before the queue.
#[derive(Debug)]
pub enum ThinNext {
    /// Nothing to handle: a duplicate (of itself or of its snapshot twin), or a type this
    /// service does not act on (recorded ignored).
    Done(Receipt),
    /// The snapshot event it stands for, on its related object as Stripe holds it now: to be
    /// processed as a delivered one is, then [`link_thin`].
    Handle(Event),
}

/// A verified thin event, up to the one Stripe read it costs: mode check, dedupe by its own
/// id and by its twin's, the related object read at the pinned version. A read that fails
/// (404, 5xx, a timeout) is recorded under the thin event's id with the step, and answered
/// so that Stripe redelivers.
pub async fn read_thin<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    thin: &ThinEvent,
    now: i64,
) -> Result<ThinNext, WebhookError> {
    thin.check_mode(services.config.livemode()?)?;
    let store = services.store;
    let twin = (thin.acts_as() != thin.id).then(|| thin.acts_as());
    for id in std::iter::once(thin.id.as_str()).chain(twin) {
        if let Some(done) = keys::event(id)
            .load_tolerant(store)
            .await?
            .filter(|r| r.outcome.is_final() || r.failed_for_good())
        {
            // The twin's outcome, and for a failure for good its step and Stripe's answer,
            // under the thin id: a replay of the twin, not this delivery, works it again.
            if id != thin.id {
                let record = EventRecord {
                    id: thin.id.clone(),
                    event_type: thin.event_type.clone(),
                    created: thin.created_seconds().unwrap_or_default(),
                    snapshot_event: thin.snapshot_event.clone(),
                    recorded_at: now,
                    ..done.clone()
                };
                keys::event(&thin.id)
                    .save(store, &record, Some(EVENT_TTL_SECONDS))
                    .await?;
            }
            return Ok(ThinNext::Done(thin_receipt(thin, done.outcome, true)));
        }
    }
    let (kind, request) = match thin.plan()? {
        ThinPlan::Read { kind, request } => (kind, request),
        ThinPlan::Ignore => {
            let record = save_thin(store, thin, Handled::from(Outcome::Ignored), None, now).await?;
            return Ok(ThinNext::Done(Receipt {
                record: Some(Box::new(record)),
                ..thin_receipt(thin, Outcome::Ignored, false)
            }));
        }
        ThinPlan::HealthAlert { request } => {
            let raw = read(services, thin, &request, READ_EVENT, now).await?;
            let failure = EventGenerationFailure::from_event(raw.get()).unwrap_or_default();
            // The operator hears of it: the log line's notes (`wrangler tail`), the record, and
            // an alert to OPS_NOTIFY_URL (once: its id is the event's).
            services.trace.note(failure.alert(&thin.id));
            // The alert is stored before the event is recorded done: a store failure between
            // them is answered 5xx, and the redelivery raises it (once: its id is the event's).
            let alert = Notification::ops_alert(
                &thin.id,
                OPS_EVENT_GENERATION_FAILURE,
                failure.alert_payload(&thin.id),
            );
            services.notify(alert).await?;
            let handled = Handled {
                outcome: Outcome::Handled,
                reason: Some(EVENT_GENERATION_FAILURE),
            };
            let record = save_thin(store, thin, handled, None, now).await?;
            return Ok(ThinNext::Done(Receipt {
                record: Some(Box::new(record)),
                ..thin_receipt(thin, Outcome::Handled, false)
            }));
        }
    };
    let object = read(services, thin, &request, READ_RELATED_OBJECT, now).await?;
    let pinned = services.config.stripe_api_version.as_str();
    let event = thin.clone().into_event(kind, object, pinned)?;
    // An expired setup session leaves nothing, told by a thin event as by a snapshot one
    // (`process`): no queue, no record of either id.
    if crate::billing::leaves_nothing(&event) {
        return Ok(ThinNext::Done(thin_receipt(thin, Outcome::Ignored, false)));
    }
    Ok(ThinNext::Handle(event))
}

/// The one Stripe read a thin event costs; one that fails (404, 5xx, a timeout) is recorded
/// under the thin event's id with `step`, and answered so that Stripe redelivers.
async fn read<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    thin: &ThinEvent,
    request: &StripeRequest,
    step: &'static str,
    now: i64,
) -> Result<Box<RawValue>, WebhookError> {
    let error = match services.stripe(request).await {
        Ok(raw) => return Ok(raw),
        Err(AppError::Stripe(e)) => AppError::RelatedObjectUnreadable(e),
        Err(other) => other,
    };
    let failure = StepError { step, error };
    let failed = Handled::from(Outcome::Failed);
    save_thin(services.store, thin, failed, Some(&failure), now).await?;
    Err(failure.into())
}

/// After the snapshot event a thin one stood for was processed: when it was processed under
/// the twin's id, the thin id is recorded too, linked to the twin (`snapshot_event`), so a
/// redelivery of either is a duplicate and `GET /events/{id}` finds both. The receipt names
/// the thin event.
pub async fn link_thin<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    thin: &ThinEvent,
    processed: Receipt,
    now: i64,
) -> Result<Receipt, WebhookError> {
    if thin.acts_as() != thin.id {
        save_thin(services.store, thin, processed.outcome.into(), None, now).await?;
    }
    Ok(thin_receipt(thin, processed.outcome, processed.duplicate))
}

fn thin_receipt(thin: &ThinEvent, outcome: Outcome, duplicate: bool) -> Receipt {
    Receipt {
        event_id: thin.id.clone(),
        event_type: thin.event_type.clone(),
        outcome,
        duplicate,
        record: None,
    }
}

/// The record under the thin event's own id (returned: a receipt carries it to the index).
async fn save_thin<S: Store>(
    store: &S,
    thin: &ThinEvent,
    handled: Handled,
    failure: Option<&StepError>,
    now: i64,
) -> Result<EventRecord, StoreError> {
    let record = EventRecord {
        version: EVENT_RECORD_VERSION,
        id: thin.id.clone(),
        event_type: thin.event_type.clone(),
        created: thin.created_seconds().unwrap_or_default(),
        livemode: thin.livemode,
        outcome: handled.outcome,
        failed_step: failure.map(|f| f.step.to_owned()),
        error: failure.map(|f| f.error.code().to_owned()),
        stripe_error: failure.and_then(|f| f.error.stripe_said()),
        retryable: failure.map(StepError::is_retryable),
        reason: handled.reason.map(str::to_owned),
        snapshot_event: thin.snapshot_event.clone(),
        recorded_at: now,
    };
    keys::event(&thin.id)
        .save(store, &record, Some(EVENT_TTL_SECONDS))
        .await?;
    Ok(record)
}

/// A verified event, however it arrived (a delivery, a catch-up from Stripe's Events API, a
/// replay): mode check, dedupe by id, dispatch, record. The one path, so every arrival gets
/// the same checks, the same dedupe and the same idempotency keys. An event of the other mode
/// than the secret key's is refused before anything is read or stored.
pub async fn process<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    event: Event,
    now: i64,
) -> Result<Receipt, WebhookError> {
    event.check_mode(services.config.livemode()?)?;
    if crate::billing::leaves_nothing(&event) {
        return Ok(Receipt {
            event_id: event.id,
            event_type: event.event_type,
            outcome: Outcome::Ignored,
            duplicate: false,
            record: None,
        });
    }
    let store = services.store;

    let key = keys::event(&event.id);
    // An unreadable record must not block the event for Stripe's whole retry window: it is
    // handled again (every effect is idempotent) and the record rewritten.
    let previous = key.load_tolerant(store).await?;
    if let Some(record) = previous.filter(|r| r.outcome.is_final()) {
        return Ok(Receipt {
            event_id: event.id,
            event_type: event.event_type,
            outcome: record.outcome,
            duplicate: true,
            record: None,
        });
    }

    let (handled, failure) = match handlers::dispatch(&event, services).await {
        Ok(handled) => (handled, None),
        // A verified event of a type we handle whose object is not the shape Stripe documents:
        // refused like any malformed body (400), and nothing stored.
        Err(StepError {
            error: AppError::Event(malformed),
            ..
        }) => return Err(malformed.into()),
        Err(failure) => (Outcome::Failed.into(), Some(failure)),
    };
    let outcome = handled.outcome;
    let record = record_of(&event, handled, failure.as_ref(), now);
    let saved = key.save(store, &record, Some(EVENT_TTL_SECONDS)).await;
    // Stripe redelivers after a 5xx; the failed record (when it could be written) says where
    // this attempt stopped, and is worked again on redelivery.
    let failure = match failure {
        Some(failure) if failure.is_retryable() => return Err(failure.into()),
        other => other,
    };
    saved?;
    // A retry would fail the same way (Stripe refused the request): 200 so Stripe stops, with
    // the failure on record, in the log, and raised to the operator (once).
    if let Some(failure) = failure {
        services.trace.note(format!(
            "event {} failed for good: {}",
            event.id,
            failure.summary()
        ));
        services
            .notify(Notification::event_failed_for_good(&record))
            .await?;
    }
    Ok(Receipt {
        event_id: event.id,
        event_type: event.event_type,
        outcome,
        duplicate: false,
        record: Some(Box::new(record)),
    })
}

/// The value stored under `event:{id}`: the outcome and, for a failure, its step and code.
fn record_of(
    event: &Event,
    handled: Handled,
    failure: Option<&StepError>,
    now: i64,
) -> EventRecord {
    EventRecord {
        version: EVENT_RECORD_VERSION,
        id: event.id.clone(),
        event_type: event.event_type.clone(),
        created: event.created,
        livemode: event.livemode,
        outcome: handled.outcome,
        reason: handled.reason.map(str::to_owned),
        failed_step: failure.map(|f| f.step.to_owned()),
        error: failure.map(|f| f.error.code().to_owned()),
        stripe_error: failure.and_then(|f| f.error.stripe_said()),
        retryable: failure.map(StepError::is_retryable),
        snapshot_event: None,
        recorded_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::services::Trace;
    use crate::signature::{sign, WebhookSecret};
    use crate::store::MemoryStore;
    use crate::testing::FakeTransport;
    use pollster::block_on;

    const NOW: i64 = 1_700_000_000;
    const SECRET: &str = "whsec_test";

    fn event_body(id: &str) -> String {
        format!(
            r#"{{"id":"{id}","object":"event","type":"customer.created","created":{NOW},"livemode":false,"data":{{"object":{{"id":"vs_1"}}}}}}"#
        )
    }

    fn deliver(
        store: &MemoryStore,
        body: &[u8],
        header: Option<&str>,
    ) -> Result<Receipt, WebhookError> {
        let secrets = WebhookSecrets::from_comma_separated(SECRET).unwrap();
        let config = Config::from_lookup(|name| {
            (name == crate::config::STRIPE_SECRET_KEY).then(|| "sk_test_webhook".to_owned())
        })
        .unwrap();
        let transport = FakeTransport::unreachable();
        let trace = Trace::new();
        let services = Services::new(store, &transport, &config, NOW, &trace);
        block_on(receive(
            &services,
            &secrets,
            300,
            Delivery {
                body,
                signature_header: header,
                now: NOW,
            },
        ))
    }

    fn signed(body: &str) -> String {
        sign(body.as_bytes(), &WebhookSecret::new(SECRET).unwrap(), NOW)
    }

    #[test]
    fn a_verified_event_is_recorded_with_its_outcome_and_ttl() {
        let store = MemoryStore::new();
        let body = event_body("evt_1");
        let receipt = deliver(&store, body.as_bytes(), Some(&signed(&body))).unwrap();
        assert_eq!(receipt.outcome, Outcome::Ignored);
        assert!(!receipt.duplicate);
        let record = block_on(keys::event("evt_1").load(&store))
            .unwrap()
            .unwrap();
        assert_eq!(record.event_type, "customer.created");
        assert_eq!(
            (record.created, record.recorded_at, record.version),
            (NOW, NOW, 1)
        );
        assert_eq!(store.ttl("event:evt_1"), Some(EVENT_TTL_SECONDS));
    }

    #[test]
    fn a_second_delivery_of_the_same_id_changes_nothing() {
        let store = MemoryStore::new();
        let body = event_body("evt_1");
        deliver(&store, body.as_bytes(), Some(&signed(&body))).unwrap();
        let before = block_on(store.get("event:evt_1")).unwrap();
        let again = deliver(&store, body.as_bytes(), Some(&signed(&body))).unwrap();
        assert!(again.duplicate);
        assert_eq!(block_on(store.get("event:evt_1")).unwrap(), before);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn the_receipt_carries_the_record_written_for_the_index_and_a_duplicate_carries_none() {
        let store = MemoryStore::new();
        let body = event_body("evt_1");
        let first = deliver(&store, body.as_bytes(), Some(&signed(&body))).unwrap();
        let stored = block_on(keys::event("evt_1").load(&store)).unwrap();
        assert_eq!(first.record.as_deref(), stored.as_ref());
        // It crosses the queue's binding with the receipt.
        let text = serde_json::to_string(&first).unwrap();
        assert_eq!(serde_json::from_str::<Receipt>(&text).unwrap(), first);
        let again = deliver(&store, body.as_bytes(), Some(&signed(&body))).unwrap();
        assert_eq!(again.record, None);
        assert!(!serde_json::to_string(&again).unwrap().contains("record"));
    }

    #[test]
    fn a_failed_record_is_worked_again() {
        let store = MemoryStore::new();
        let body = event_body("evt_1");
        let failed = EventRecord {
            version: 1,
            id: "evt_1".into(),
            event_type: "x".into(),
            created: NOW,
            livemode: false,
            outcome: Outcome::Failed,
            failed_step: Some("attach".into()),
            error: Some("stripe_unavailable".into()),
            stripe_error: None,
            retryable: Some(true),
            reason: None,
            snapshot_event: None,
            recorded_at: NOW - 10,
        };
        block_on(keys::event("evt_1").save(&store, &failed, None)).unwrap();
        let receipt = deliver(&store, body.as_bytes(), Some(&signed(&body))).unwrap();
        assert!(!receipt.duplicate);
        let record = block_on(keys::event("evt_1").load(&store))
            .unwrap()
            .unwrap();
        assert_eq!(
            (record.outcome, record.failed_step, record.error),
            (Outcome::Ignored, None, None)
        );
    }

    #[test]
    fn a_corrupt_record_is_overwritten_not_fatal() {
        let store = MemoryStore::new();
        block_on(store.put("event:evt_1", "{not json", None)).unwrap();
        let body = event_body("evt_1");
        assert!(
            !deliver(&store, body.as_bytes(), Some(&signed(&body)))
                .unwrap()
                .duplicate
        );
        assert!(block_on(keys::event("evt_1").load(&store))
            .unwrap()
            .is_some());
    }

    #[test]
    fn nothing_is_stored_for_a_refused_delivery() {
        let store = MemoryStore::new();
        let body = event_body("evt_1");
        let tampered = body.replace("vs_1", "vs_2");
        assert!(matches!(
            deliver(&store, tampered.as_bytes(), Some(&signed(&body))),
            Err(WebhookError::Signature(SignatureError::NoMatchingSignature))
        ));
        let not_event = r#"{"hello":"world"}"#;
        assert!(matches!(
            deliver(&store, not_event.as_bytes(), Some(&signed(not_event))),
            Err(WebhookError::Event(_))
        ));
        assert!(store.is_empty());
    }

    #[test]
    fn an_event_of_the_other_mode_is_refused_and_nothing_is_stored() {
        let store = MemoryStore::new();
        let body = event_body("evt_1").replace(r#""livemode":false"#, r#""livemode":true"#);
        let error = deliver(&store, body.as_bytes(), Some(&signed(&body))).unwrap_err();
        assert!(matches!(
            error,
            WebhookError::Event(EventError::LivemodeMismatch {
                event: true,
                key: false
            })
        ));
        let error = AppError::from(error);
        assert_eq!((error.status(), error.code()), (400, "livemode_mismatch"));
        assert!(store.is_empty());
    }

    #[test]
    fn bodies_over_the_cap_are_refused_before_verification() {
        let store = MemoryStore::new();
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert!(matches!(
            deliver(&store, &big, None),
            Err(WebhookError::BodyTooLarge)
        ));
    }

    #[test]
    fn a_store_outage_is_reported_as_such() {
        let store = MemoryStore::new();
        store.set_failing(true);
        let body = event_body("evt_1");
        assert!(matches!(
            deliver(&store, body.as_bytes(), Some(&signed(&body))),
            Err(WebhookError::Store(StoreError::Unavailable(_)))
        ));
    }
}
