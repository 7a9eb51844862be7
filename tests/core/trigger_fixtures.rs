//! The event fixtures of `tools/trigger.mjs` (and the event list `tools/register-webhook.mjs`
//! subscribes to) match what the service handles: one fixture per handled type, no other,
//! and each one decodes as the `data.object` of an event of its type.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use stripe_edge_webhooks::event::Event;
use stripe_edge_webhooks::handlers::HANDLED_EVENT_TYPES;
use stripe_edge_webhooks::objects::{CheckoutSession, PaymentIntent, VerificationSession};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/fixtures/events")
}

/// Event type → fixture file, from the directory (the registration tool reads it the same way).
fn fixture_types() -> BTreeSet<String> {
    fs::read_dir(fixtures_dir())
        .expect("tools/fixtures/events exists")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .map(|name| {
            name.strip_suffix(".json")
                .unwrap_or_else(|| panic!("{name}: only <event type>.json files belong here"))
                .to_owned()
        })
        .collect()
}

fn fixture(event_type: &str) -> Value {
    let path = fixtures_dir().join(format!("{event_type}.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `object` value and id prefix Stripe uses for the objects of an event type.
fn expected_object(event_type: &str) -> (&'static str, &'static str) {
    if event_type.starts_with("identity.verification_session.") {
        ("identity.verification_session", "vs_")
    } else if event_type.starts_with("checkout.session.") {
        ("checkout.session", "cs_")
    } else if event_type.starts_with("payment_intent.") {
        ("payment_intent", "pi_")
    } else {
        panic!("{event_type}: add its object shape to this test and a fixture for it")
    }
}

#[test]
fn every_handled_event_type_has_a_fixture_and_no_fixture_is_for_another_type() {
    let handled: BTreeSet<String> = HANDLED_EVENT_TYPES.iter().map(|t| t.to_string()).collect();
    let fixtures = fixture_types();
    let missing: Vec<_> = handled.difference(&fixtures).collect();
    assert!(
        missing.is_empty(),
        "handled event types without tools/fixtures/events/<type>.json: {missing:?}"
    );
    let extra: Vec<_> = fixtures.difference(&handled).collect();
    assert!(
        extra.is_empty(),
        "fixtures for types the service does not handle (register-webhook would subscribe to \
         them): {extra:?}"
    );
}

#[test]
fn each_fixture_is_the_data_object_of_an_event_of_its_type() {
    for event_type in HANDLED_EVENT_TYPES {
        let object = fixture(event_type);
        let (object_name, id_prefix) = expected_object(event_type);
        assert_eq!(object["object"], object_name, "{event_type}");
        let id = object["id"].as_str().unwrap_or_default();
        assert!(id.starts_with(id_prefix), "{event_type}: id {id}");
        assert_eq!(object["livemode"], false, "{event_type}");

        let envelope = json!({
            "id": "evt_fixture_check",
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": 1795000000,
            "data": { "object": object },
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": event_type,
        });
        let event = Event::parse(envelope.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{event_type}: {e}"));
        assert_eq!(event.event_type, *event_type);
        let decoded = match object_name {
            "identity.verification_session" => event.object::<VerificationSession>().map(|_| ()),
            "checkout.session" => event.object::<CheckoutSession>().map(|_| ()),
            _ => event.object::<PaymentIntent>().map(|_| ()),
        };
        decoded.unwrap_or_else(|e| panic!("{event_type}: {e}"));
    }
}

#[test]
fn fixtures_carry_the_fields_their_event_is_about() {
    let identity_status = [
        ("identity.verification_session.created", "requires_input"),
        ("identity.verification_session.processing", "processing"),
        ("identity.verification_session.verified", "verified"),
        (
            "identity.verification_session.requires_input",
            "requires_input",
        ),
        ("identity.verification_session.canceled", "canceled"),
    ];
    for (event_type, status) in identity_status {
        let object = fixture(event_type);
        assert_eq!(object["status"], status, "{event_type}");
        assert_eq!(object["type"], "document", "{event_type}");
        assert!(object["metadata"]["user_id"].is_string(), "{event_type}");
    }
    let requires_input = fixture("identity.verification_session.requires_input");
    assert!(requires_input["last_error"]["code"].is_string());
    assert!(requires_input["last_error"]["reason"].is_string());
    assert!(fixture("identity.verification_session.verified")["last_error"].is_null());
    // Stripe erases metadata when it redacts a session.
    let redacted = fixture("identity.verification_session.redacted");
    assert_eq!(redacted["redaction"]["status"], "redacted");
    assert_eq!(redacted["metadata"], json!({}));

    let checkout = fixture("checkout.session.completed");
    assert_eq!(checkout["status"], "complete");
    assert!(checkout["customer_details"]["email"].is_string());
    assert!(["setup", "payment"].contains(&checkout["mode"].as_str().unwrap()));

    assert_eq!(fixture("payment_intent.succeeded")["status"], "succeeded");
    let failed = fixture("payment_intent.payment_failed");
    assert_eq!(failed["status"], "requires_payment_method");
    let error = &failed["last_payment_error"];
    assert_eq!(error["type"], "card_error");
    for field in ["code", "decline_code", "message"] {
        assert!(error[field].is_string(), "last_payment_error.{field}");
    }
}
