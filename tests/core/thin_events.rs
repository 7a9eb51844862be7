//! Thin events (`object: "v2.core.event"`) through `webhook::receive`: verified with the same
//! secrets, never acted on from their payload (the related object is read at the pinned
//! version), deduped by their own id and by their snapshot twin's, and a related object that
//! cannot be read is recorded with the step and answered so that Stripe redelivers.

use std::cell::Cell;
use std::rc::Rc;

use crate::helpers::{config_with, event_json, path};
use pollster::block_on;
use serde_json::{json, Value};
use stripe_edge_webhooks::config::Config;
use stripe_edge_webhooks::error::AppError;
use stripe_edge_webhooks::event::Outcome;
use stripe_edge_webhooks::http::Method;
use stripe_edge_webhooks::services::{Services, Trace};
use stripe_edge_webhooks::signature::{sign, WebhookSecret, WebhookSecrets};
use stripe_edge_webhooks::store::{keys, MemoryStore};
use stripe_edge_webhooks::testing::{FakeTransport, Scripted};
use stripe_edge_webhooks::webhook::{receive, Delivery, Receipt, WebhookError};

const NOW: i64 = 1_790_856_100;
const SNAPSHOT_SECRET: &str = "whsec_snapshot";
const THIN_SECRET: &str = "whsec_thin";

fn config() -> Config {
    config_with(&[("STRIPE_SECRET_KEY", "sk_test_thin")])
}

/// A thin `v1.checkout.session.completed` for `cs_other`, twin of `evt_snap` when named.
fn thin(id: &str, snapshot_event: Option<&str>) -> Value {
    let mut event = json!({
        "id": id, "object": "v2.core.event", "type": "v1.checkout.session.completed",
        "created": "2026-10-01T12:00:05.123Z", "livemode": false, "context": null,
        "reason": {"type": "request", "request": {"id": "req_1", "idempotency_key": "k1"}},
        "related_object": {"id": "cs_other", "type": "checkout.session",
                           "url": "/v1/checkout/sessions/cs_other"}
    });
    if let Some(twin) = snapshot_event {
        event["snapshot_event"] = twin.into();
    }
    event
}

/// The session as Stripe holds it: made by another integration, so it is recorded ignored
/// with that reason (the decision of the snapshot path, reached without a write at Stripe).
fn session() -> Value {
    json!({"id": "cs_other", "object": "checkout.session", "mode": "setup",
           "status": "complete", "metadata": {}})
}

/// Stripe answering the related object's retrieve with `status` (200: the session), and
/// counting those reads.
fn stripe(status: Rc<Cell<u16>>, reads: Rc<Cell<u32>>) -> FakeTransport {
    FakeTransport::new(move |request| {
        assert_eq!(
            (request.method, path(request)),
            (Method::Get, "/v1/checkout/sessions/cs_other"),
            "a thin event reads only its related object, with no expand"
        );
        assert_eq!(
            request.header("stripe-version"),
            Some(config().stripe_api_version.as_str())
        );
        reads.set(reads.get() + 1);
        match status.get() {
            200 => Ok(FakeTransport::json(200, &session().to_string())),
            code => Ok(FakeTransport::json(
                code,
                r#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such checkout.session"}}"#,
            )),
        }
    })
}

struct World {
    store: MemoryStore,
    config: Config,
    status: Rc<Cell<u16>>,
    reads: Rc<Cell<u32>>,
    transport: FakeTransport,
}

impl World {
    fn new() -> Self {
        let (status, reads) = (Rc::new(Cell::new(200)), Rc::new(Cell::new(0)));
        Self {
            store: MemoryStore::new(),
            config: config(),
            transport: stripe(status.clone(), reads.clone()),
            status,
            reads,
        }
    }

    /// Signed with `secret`; the worker holds both destinations' secrets in one list.
    fn deliver(&self, event: &Value, secret: &str) -> Result<Receipt, WebhookError> {
        let body = event.to_string();
        let header = sign(body.as_bytes(), &WebhookSecret::new(secret).unwrap(), NOW);
        let trace = Trace::new();
        let services =
            Services::new(&self.store, &self.transport, &self.config, NOW, &trace).for_webhook();
        let secrets = format!("{SNAPSHOT_SECRET},{THIN_SECRET}");
        block_on(receive(
            &services,
            &WebhookSecrets::from_comma_separated(&secrets).unwrap(),
            300,
            Delivery {
                body: body.as_bytes(),
                signature_header: Some(&header),
                now: NOW,
            },
        ))
    }

    fn record(&self, id: &str) -> stripe_edge_webhooks::event::EventRecord {
        block_on(keys::event(id).load(&self.store))
            .unwrap()
            .unwrap()
    }
}

fn snapshot(id: &str) -> Value {
    event_json(id, "checkout.session.completed", NOW - 95, session())
}

#[test]
fn a_thin_event_is_handled_on_its_related_object_read_now_under_its_twin_s_id() {
    let world = World::new();
    let receipt = world
        .deliver(&thin("evt_thin1", Some("evt_snap1")), THIN_SECRET)
        .unwrap();
    assert_eq!(
        (
            receipt.event_id.as_str(),
            receipt.outcome,
            receipt.duplicate
        ),
        ("evt_thin1", Outcome::Ignored, false)
    );
    assert_eq!(world.reads.get(), 1, "one Stripe read per thin event");
    let twin = world.record("evt_snap1");
    assert_eq!(
        (
            twin.event_type.as_str(),
            twin.reason.as_deref(),
            twin.created
        ),
        (
            "checkout.session.completed",
            Some("not_created_by_this_deployment"),
            1_790_856_005
        )
    );
    let own = world.record("evt_thin1");
    assert_eq!(own.event_type, "v1.checkout.session.completed");
    assert_eq!(own.snapshot_event.as_deref(), Some("evt_snap1"));

    // The snapshot twin, from the other destination, and the thin one again: duplicates,
    // nothing read or done.
    assert!(
        world
            .deliver(&snapshot("evt_snap1"), SNAPSHOT_SECRET)
            .unwrap()
            .duplicate
    );
    assert!(
        world
            .deliver(&thin("evt_thin1", Some("evt_snap1")), THIN_SECRET)
            .unwrap()
            .duplicate
    );
    assert_eq!(world.reads.get(), 1);
}

#[test]
fn a_thin_event_after_its_snapshot_twin_reads_nothing_and_is_linked() {
    let world = World::new();
    assert!(
        !world
            .deliver(&snapshot("evt_snap2"), SNAPSHOT_SECRET)
            .unwrap()
            .duplicate
    );
    let receipt = world
        .deliver(&thin("evt_thin2", Some("evt_snap2")), THIN_SECRET)
        .unwrap();
    assert!(receipt.duplicate);
    assert_eq!(
        world.reads.get(),
        0,
        "the change was acted on once, by the snapshot"
    );
    assert_eq!(
        world.record("evt_thin2").snapshot_event.as_deref(),
        Some("evt_snap2")
    );
}

#[test]
fn a_thin_event_without_a_twin_is_deduped_by_its_own_id() {
    let world = World::new();
    world
        .deliver(&thin("evt_thin3", None), THIN_SECRET)
        .unwrap();
    assert!(
        world
            .deliver(&thin("evt_thin3", None), THIN_SECRET)
            .unwrap()
            .duplicate
    );
    assert_eq!(world.reads.get(), 1);
    let own = world.record("evt_thin3");
    assert_eq!(
        (own.event_type.as_str(), own.snapshot_event),
        ("checkout.session.completed", None)
    );
}

#[test]
fn a_related_object_that_cannot_be_read_is_recorded_with_its_step_and_retried() {
    for status in [404, 500] {
        let world = World::new();
        world.status.set(status);
        let error = world
            .deliver(&thin("evt_thin4", Some("evt_snap4")), THIN_SECRET)
            .unwrap_err();
        let error = AppError::from(error);
        assert_eq!(
            (error.status(), error.code(), error.is_retryable()),
            (503, "related_object_unreadable", true),
            "{status}"
        );
        let own = world.record("evt_thin4");
        assert_eq!(
            (own.outcome, own.failed_step.as_deref(), own.retryable),
            (Outcome::Failed, Some("read_related_object"), Some(true))
        );
        assert!(block_on(keys::event("evt_snap4").load(&world.store))
            .unwrap()
            .is_none());
        // Stripe redelivers; the object reads now.
        world.status.set(200);
        let receipt = world
            .deliver(&thin("evt_thin4", Some("evt_snap4")), THIN_SECRET)
            .unwrap();
        assert!(!receipt.duplicate);
        assert_eq!(world.record("evt_thin4").outcome, Outcome::Ignored);
    }
}

#[test]
fn a_read_that_times_out_is_retried_too() {
    let world = World {
        transport: FakeTransport::scripted(vec![Scripted::Hang, Scripted::Hang]),
        ..World::new()
    };
    let error = AppError::from(
        world
            .deliver(&thin("evt_thin5", None), THIN_SECRET)
            .unwrap_err(),
    );
    assert_eq!((error.status(), error.is_retryable()), (503, true));
    assert_eq!(
        world.record("evt_thin5").failed_step.as_deref(),
        Some("read_related_object")
    );
}

#[test]
fn a_thin_type_not_acted_on_is_recorded_ignored_without_a_read() {
    let world = World::new();
    let mut ping = thin("evt_ping", None);
    ping["type"] = "v2.core.event_destination.ping".into();
    ping["related_object"] = json!({"id": "ed_1", "type": "event_destination", "url": "/v2/core/event_destinations/ed_1"});
    let receipt = world.deliver(&ping, THIN_SECRET).unwrap();
    assert_eq!(receipt.outcome, Outcome::Ignored);
    assert_eq!(world.reads.get(), 0);
}

#[test]
fn a_thin_event_is_refused_like_a_snapshot_one_and_nothing_is_stored() {
    let world = World::new();
    // Another mode than the key's.
    let mut live = thin("evt_live", None);
    live["livemode"] = true.into();
    let error = AppError::from(world.deliver(&live, THIN_SECRET).unwrap_err());
    assert_eq!((error.status(), error.code()), (400, "livemode_mismatch"));
    // A related object that is not the type's own.
    let mut elsewhere = thin("evt_else", None);
    elsewhere["related_object"]["url"] =
        "https://attacker.example/v1/checkout/sessions/cs_other".into();
    let error = AppError::from(world.deliver(&elsewhere, THIN_SECRET).unwrap_err());
    assert_eq!((error.status(), error.code()), (400, "event_malformed"));
    // Signed with a secret the worker does not hold.
    let error = AppError::from(
        world
            .deliver(&thin("evt_x", None), "whsec_other")
            .unwrap_err(),
    );
    assert_eq!(error.status(), 400);
    assert!(world.store.is_empty());
    assert_eq!(world.reads.get(), 0);
}

#[test]
fn an_event_stripe_never_generated_is_read_recorded_and_raised_to_the_operator() {
    let health = json!({
        "id": "evt_test_65Health1", "object": "v2.core.event",
        "type": "v2.core.health.event_generation_failure.resolved",
        "created": "2026-10-01T12:00:05.123Z", "livemode": false
    });
    let retrieved = json!({"id": "evt_test_65Health1", "object": "v2.core.event", "data": {
        "alert_id": "halert_61R", "grouping_key": "_grouping_s8P",
        "impact": {"event_type": "checkout.session.completed", "related_object_id": "cs_lost"},
        "resolved_at": "2026-10-01T11:59:00.000Z", "summary": "Stripe failed to generate an event"
    }});
    let transport = FakeTransport::new(move |request| {
        if request.url == "https://ops.test/alerts" {
            return Ok(FakeTransport::json(200, "{}"));
        }
        assert_eq!(path(request), "/v2/core/events/evt_test_65Health1");
        Ok(FakeTransport::json(200, &retrieved.to_string()))
    });
    let world = World {
        transport,
        config: config_with(&[
            ("STRIPE_SECRET_KEY", "sk_test_thin"),
            ("OPS_NOTIFY_URL", "https://ops.test/alerts"),
            ("NOTIFY_SIGNING_SECRET", "nsec_ops"),
        ]),
        ..World::new()
    };
    let body = health.to_string();
    let header = sign(
        body.as_bytes(),
        &WebhookSecret::new(THIN_SECRET).unwrap(),
        NOW,
    );
    let trace = Trace::new();
    let services =
        Services::new(&world.store, &world.transport, &world.config, NOW, &trace).for_webhook();
    let secrets = WebhookSecrets::from_comma_separated(THIN_SECRET).unwrap();
    let delivery = Delivery {
        body: body.as_bytes(),
        signature_header: Some(&header),
        now: NOW,
    };
    let receipt = block_on(receive(&services, &secrets, 300, delivery)).unwrap();
    assert_eq!(
        (receipt.outcome, receipt.duplicate),
        (Outcome::Handled, false)
    );
    let record = world.record("evt_test_65Health1");
    assert_eq!(record.reason.as_deref(), Some("event_generation_failure"));
    let notes = trace.snapshot().notes;
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("ALERT event_generation_failure")
                && n.contains("cs_lost")
                && n.contains("checkout.session.completed")),
        "{notes:?}"
    );
    // Stripe's redelivery is a duplicate: read once, raised once.
    let trace = Trace::new();
    let services =
        Services::new(&world.store, &world.transport, &world.config, NOW, &trace).for_webhook();
    assert!(
        block_on(receive(&services, &secrets, 300, delivery))
            .unwrap()
            .duplicate
    );
    assert!(trace.snapshot().notes.is_empty());
    // One read, and one signed alert to OPS_NOTIFY_URL, however often Stripe redelivers.
    let sent = world.transport.sent();
    assert_eq!(sent.len(), 2);
    let alert: Value = serde_json::from_str(sent[1].body.as_deref().unwrap()).unwrap();
    assert_eq!(
        (&alert["kind"], &alert["recipient"]["type"]),
        (&json!("ops.event_generation_failure"), &json!("operator"))
    );
    assert_eq!(
        (
            &alert["payload"]["object_id"],
            &alert["payload"]["missing_event_type"]
        ),
        (&json!("cs_lost"), &json!("checkout.session.completed"))
    );
    assert!(sent[1].header("notify-signature").is_some());
}

#[test]
fn an_expired_setup_session_told_by_a_thin_event_leaves_nothing_either() {
    let world = World::new();
    let mut expired = thin("evt_thin_expired", Some("evt_snap_expired"));
    expired["type"] = "v1.checkout.session.expired".into();
    let receipt = world.deliver(&expired, THIN_SECRET).unwrap();
    assert_eq!(
        (receipt.outcome, receipt.duplicate),
        (Outcome::Ignored, false)
    );
    assert_eq!(world.reads.get(), 1, "its mode is read from Stripe");
    assert!(
        world.store.is_empty(),
        "no record of it, as for its snapshot twin"
    );
}

#[test]
fn a_twin_failed_for_good_is_not_worked_again_by_its_thin_event_which_carries_its_failure() {
    let world = World::new();
    let failed = stripe_edge_webhooks::event::EventRecord {
        version: stripe_edge_webhooks::event::EVENT_RECORD_VERSION,
        id: "evt_snap".into(),
        event_type: "checkout.session.completed".into(),
        created: NOW - 95,
        livemode: false,
        outcome: Outcome::Failed,
        failed_step: Some("retrieve_setup_intent".into()),
        error: Some("stripe_invalid_request".into()),
        stripe_error: None,
        retryable: Some(false),
        reason: None,
        snapshot_event: None,
        recorded_at: NOW - 90,
    };
    block_on(keys::event("evt_snap").save(&world.store, &failed, None)).unwrap();
    let receipt = world
        .deliver(&thin("evt_thin_1", Some("evt_snap")), THIN_SECRET)
        .unwrap();
    assert_eq!(
        (receipt.outcome, receipt.duplicate),
        (Outcome::Failed, true)
    );
    assert_eq!(
        world.reads.get(),
        0,
        "its object is not read: a replay of the twin works it"
    );
    let thin_record = world.record("evt_thin_1");
    assert!(thin_record.failed_for_good());
    assert_eq!(
        (
            thin_record.failed_step.as_deref(),
            thin_record.snapshot_event.as_deref()
        ),
        (Some("retrieve_setup_intent"), Some("evt_snap"))
    );
}
