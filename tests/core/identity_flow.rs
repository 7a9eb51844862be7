//! The Identity flow end to end in the core: session creation against a fake Stripe, signed
//! events through `webhook::receive`, records in `MemoryStore`, notifications to a fake sink.
//! The same flow runs under workerd against the stand-in in e2e/identity.test.mjs.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::helpers::event_json;
use pollster::block_on;
use serde_json::{json, Value};
use stripe_edge_webhooks::config::Config;
use stripe_edge_webhooks::error::AppError;
use stripe_edge_webhooks::event::Outcome;
use stripe_edge_webhooks::handlers::identity::{create_session, user_view, CreateSession};
use stripe_edge_webhooks::http::{HttpRequest, Method};
use stripe_edge_webhooks::services::{Services, Trace};
use stripe_edge_webhooks::signature::{sign, WebhookSecret, WebhookSecrets};
use stripe_edge_webhooks::store::{keys, MemoryStore, Store};
use stripe_edge_webhooks::testing::FakeTransport;
use stripe_edge_webhooks::webhook::{receive, Delivery, Receipt, WebhookError};

const SECRET: &str = "whsec_identity_flow";
const NOW: i64 = 1_790_000_000;
const SINK: &str = "https://sink.test/notify";

/// A fake Stripe that creates numbered sessions, and a sink that records notifications.
struct World {
    store: Rc<MemoryStore>,
    /// Makes the store fail right after the next Stripe call (a KV outage mid-request).
    break_store_after_stripe: Rc<Cell<bool>>,
    transport: FakeTransport,
    config: Config,
    sink: Rc<RefCell<Vec<Value>>>,
}

impl World {
    fn new(max_attempts: &str, notify_url: Option<&str>) -> Self {
        let sink = Rc::new(RefCell::new(Vec::new()));
        let sink_for_transport = sink.clone();
        let counter = RefCell::new(0);
        let store = Rc::new(MemoryStore::new());
        let break_store = Rc::new(Cell::new(false));
        let (store_for_transport, break_for_transport) = (store.clone(), break_store.clone());
        // Like Stripe: the same Idempotency-Key replays the first answer.
        let replays: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
        // The sessions made, by id: a retrieve answers one with a fresh url.
        let made: RefCell<HashMap<String, Value>> = RefCell::new(HashMap::new());
        let transport = FakeTransport::new(move |request: &HttpRequest| {
            if request.url.starts_with(SINK) {
                let body: Value = serde_json::from_str(request.body.as_deref().unwrap()).unwrap();
                sink_for_transport.borrow_mut().push(body);
                return Ok(FakeTransport::json(200, "{}"));
            }
            if request.method == Method::Get {
                let id = request.url.rsplit('/').next().unwrap();
                let mut session = made.borrow().get(id).cloned().unwrap();
                session["url"] = format!("https://verify.stripe.test/{id}/again").into();
                return Ok(FakeTransport::json(200, &session.to_string()));
            }
            assert_eq!(request.method, Method::Post);
            if break_for_transport.replace(false) {
                store_for_transport.set_failing(true);
            }
            let key = request.header("idempotency-key").unwrap().to_owned();
            if let Some(body) = replays.borrow().get(&key) {
                return Ok(FakeTransport::json(200, body));
            }
            assert!(
                request.url.ends_with("/v1/identity/verification_sessions"),
                "{}",
                request.url
            );
            let form =
                stripe_edge_webhooks::form::pairs(request.body.as_deref().unwrap().as_bytes());
            // Stripe keeps the metadata sent: the user and this deployment's marker.
            let metadata: serde_json::Map<String, Value> = form
                .iter()
                .filter_map(|(k, v)| {
                    let k = k.strip_prefix("metadata[")?.strip_suffix(']')?;
                    Some((k.to_owned(), Value::from(v.as_str())))
                })
                .collect();
            assert_eq!(metadata["created_by"], "stripe-edge-webhooks");
            *counter.borrow_mut() += 1;
            let n = *counter.borrow();
            let body = json!({
                    "id": format!("vs_{n}"), "object": "identity.verification_session",
                    "status": "requires_input", "created": NOW + n, "type": "document",
                    "url": format!("https://verify.stripe.test/{n}"),
                    "client_secret": format!("vs_{n}_secret_x"), "last_error": null,
                    "metadata": metadata
            })
            .to_string();
            replays.borrow_mut().insert(key, body.clone());
            made.borrow_mut()
                .insert(format!("vs_{n}"), serde_json::from_str(&body).unwrap());
            Ok(FakeTransport::json(200, &body))
        });
        let config = Config::from_lookup(|name| match name {
            "STRIPE_SECRET_KEY" => Some("sk_test_identity_flow".into()),
            "STRIPE_WEBHOOK_SECRET" => Some(SECRET.into()),
            "IDENTITY_MAX_ATTEMPTS" => Some(max_attempts.into()),
            "NOTIFY_URL" => notify_url.map(str::to_owned),
            "NOTIFY_SIGNING_SECRET" => Some("nsec_identity_flow".into()),
            _ => None,
        })
        .unwrap();
        Self {
            store,
            break_store_after_stripe: break_store,
            transport,
            config,
            sink,
        }
    }

    fn create(&self, user: &str) -> Result<Value, AppError> {
        self.create_with(json!({"user_id": user}))
    }

    fn create_with(&self, body: Value) -> Result<Value, AppError> {
        let trace = Trace::new();
        let services = Services::new(&*self.store, &self.transport, &self.config, NOW, &trace);
        let request = CreateSession::from_json(body).unwrap();
        block_on(create_session(&request, &services)).map(|c| serde_json::to_value(c).unwrap())
    }

    fn deliver(&self, event: &Value) -> Result<Receipt, WebhookError> {
        let body = event.to_string();
        let header = sign(body.as_bytes(), &WebhookSecret::new(SECRET).unwrap(), NOW);
        let trace = Trace::new();
        let services =
            Services::new(&*self.store, &self.transport, &self.config, NOW, &trace).for_webhook();
        block_on(receive(
            &services,
            &WebhookSecrets::from_comma_separated(SECRET).unwrap(),
            300,
            Delivery {
                body: body.as_bytes(),
                signature_header: Some(&header),
                now: NOW,
            },
        ))
    }

    fn user(&self, user: &str) -> Value {
        block_on(user_view(
            &*self.store,
            user,
            self.config.identity_max_attempts,
        ))
        .unwrap()
        .unwrap()
    }
}

fn event(id: &str, kind: &str, created: i64, session: Value) -> Value {
    let kind = format!("identity.verification_session.{kind}");
    event_json(id, &kind, created, session)
}

/// A session this deployment created (its metadata carries the user and our marker), as
/// Stripe sends it in an event.
fn session(id: &str, user: Option<&str>, status: &str, code: Option<&str>) -> Value {
    let metadata = match user {
        Some(user) => json!({"user_id": user, "created_by": "stripe-edge-webhooks"}),
        None => json!({}),
    };
    let last_error = code.map(|c| json!({"code": c, "reason": format!("Reason: {c}")}));
    json!({"id": id, "object": "identity.verification_session", "status": status, "created": NOW,
           "type": "document", "last_error": last_error, "metadata": metadata})
}

#[test]
fn create_fail_retry_verify_then_refuse() {
    let world = World::new("3", Some(SINK));
    let first = world.create("u_1").unwrap();
    assert_eq!(
        (first["id"].as_str(), first["attempts"].as_i64()),
        (Some("vs_1"), Some(1))
    );
    assert_eq!(first["client_secret"], "vs_1_secret_x");
    let idempotency_key = world.transport.sent()[0]
        .header("idempotency-key")
        .unwrap()
        .to_owned();
    assert_eq!(idempotency_key, "identity.u_1:1");

    let failed = world
        .deliver(&event(
            "evt_1",
            "requires_input",
            NOW + 10,
            session(
                "vs_1",
                Some("u_1"),
                "requires_input",
                Some("document_expired"),
            ),
        ))
        .unwrap();
    assert_eq!(failed.outcome, Outcome::Handled);
    let user = world.user("u_1");
    assert_eq!(user["status"], "requires_input");
    assert_eq!(user["last_error"]["code"], "document_expired");
    assert_eq!(
        (
            user["may_retry"].as_bool(),
            user["remaining_attempts"].as_i64()
        ),
        (Some(true), Some(2))
    );

    let second = world
        .create_with(json!({"user_id": "u_1", "new_session": true}))
        .unwrap();
    assert_eq!(
        (second["id"].as_str(), second["attempts"].as_i64()),
        (Some("vs_2"), Some(2))
    );
    assert_eq!(second["reopened"], false);
    world
        .deliver(&event(
            "evt_2",
            "verified",
            NOW + 20,
            session("vs_2", Some("u_1"), "verified", None),
        ))
        .unwrap();
    let user = world.user("u_1");
    assert_eq!(
        (user["status"].as_str(), user["verified_at"].as_i64()),
        (Some("verified"), Some(NOW + 20))
    );
    assert_eq!(user["latest_session"], "vs_2");

    match world.create("u_1") {
        Err(error) => assert_eq!((error.status(), error.code()), (409, "already_verified")),
        Ok(created) => panic!("created {created}"),
    }
    // A stale requires_input (older than verified) for the same session leaves the user verified.
    let stale = world
        .deliver(&event(
            "evt_3",
            "requires_input",
            NOW + 15,
            session(
                "vs_2",
                Some("u_1"),
                "requires_input",
                Some("selfie_face_mismatch"),
            ),
        ))
        .unwrap();
    assert!(!stale.duplicate);
    assert_eq!(world.user("u_1")["status"], "verified");

    let sink = world.sink.borrow();
    assert_eq!(sink.len(), 2, "{sink:?}");
    assert_eq!(sink[0]["kind"], "identity.requires_input");
    assert_eq!(sink[0]["recipient"], json!({"type": "user", "id": "u_1"}));
    assert_eq!(sink[0]["payload"]["code"], "document_expired");
    assert_eq!(sink[0]["payload"]["reason"], "Reason: document_expired");
    assert_eq!(sink[0]["payload"]["may_retry"], true);
    assert_eq!(sink[1]["kind"], "identity.verified");
    assert_eq!(sink[1]["payload"]["status"], "verified");
    // The recipient is not repeated in the payload.
    for sent in sink.iter() {
        assert!(sent["payload"].get("user_id").is_none(), "{sent}");
    }
    let stored = block_on(keys::notification("evt_2.identity.verified").load(&*world.store))
        .unwrap()
        .unwrap();
    assert!(stored.is_delivered());
}

#[test]
fn the_attempt_limit_refuses_a_fourth_session() {
    let world = World::new("3", None);
    for n in 1..=3 {
        world
            .create_with(json!({"user_id": "u_2", "new_session": true}))
            .unwrap();
        world
            .deliver(&event(
                &format!("evt_{n}"),
                "requires_input",
                NOW + 10 * n,
                session(
                    &format!("vs_{n}"),
                    Some("u_2"),
                    "requires_input",
                    Some("document_unverified_other"),
                ),
            ))
            .unwrap();
    }
    let user = world.user("u_2");
    assert_eq!(
        (user["attempts"].as_i64(), user["may_retry"].as_bool()),
        (Some(3), Some(false))
    );
    let error = world.create("u_2").unwrap_err();
    assert_eq!((error.status(), error.code()), (409, "attempts_exhausted"));
    // Without NOTIFY_URL the notifications wait in the outbox, undelivered.
    let outbox = block_on(keys::notification("evt_3.identity.requires_input").load(&*world.store))
        .unwrap()
        .unwrap();
    assert!(!outbox.is_delivered());
    assert_eq!(outbox.payload["may_retry"], false);
}

#[test]
fn final_and_manual_review_codes_refuse_another_session() {
    for (code, refusal) in [
        ("under_supported_age", "not_retryable"),
        ("country_not_supported", "not_retryable"),
        ("consent_declined", "manual_review_required"),
    ] {
        let world = World::new("3", None);
        world.create("u_3").unwrap();
        world
            .deliver(&event(
                "evt_1",
                "requires_input",
                NOW + 10,
                session("vs_1", Some("u_3"), "requires_input", Some(code)),
            ))
            .unwrap();
        let error = world.create("u_3").unwrap_err();
        assert_eq!((error.status(), error.code()), (409, refusal), "{code}");
    }
}

#[test]
fn a_session_not_made_here_changes_no_user_and_is_recorded_ignored_with_the_reason() {
    let world = World::new("3", Some(SINK));
    world.create("victim").unwrap();
    let before = world.user("victim");
    // Another integration on the account (no marker), and another deployment of this
    // service (staging on the same test account): both name our user in their metadata.
    let foreign = |id: &str, marker: Option<&str>| {
        let mut s = session(id, Some("victim"), "verified", None);
        match marker {
            Some(marker) => s["metadata"]["created_by"] = marker.into(),
            None => drop(s["metadata"].as_object_mut().unwrap().remove("created_by")),
        }
        s
    };
    for (n, marker) in [None, Some("stripe-edge-webhooks-staging")]
        .into_iter()
        .enumerate()
    {
        let event_id = format!("evt_foreign{n}");
        let vs = format!("vs_other{n}");
        let receipt = world
            .deliver(&event(&event_id, "verified", NOW + 5, foreign(&vs, marker)))
            .unwrap();
        assert_eq!(receipt.outcome, Outcome::Ignored);
        let record = block_on(keys::event(&event_id).load(&*world.store))
            .unwrap()
            .unwrap();
        assert_eq!(
            record.reason.as_deref(),
            Some("not_created_by_this_deployment")
        );
        assert_eq!(
            block_on(keys::identity_session(&vs).load(&*world.store)).unwrap(),
            None
        );
    }
    assert_eq!(world.user("victim"), before);
    assert_eq!(world.user("victim")["status"], "requires_input");
    assert!(world.sink.borrow().is_empty());
}

#[test]
fn the_created_event_and_the_route_count_one_attempt() {
    let world = World::new("3", None);
    let created = world.create("u_4").unwrap();
    // Stripe's created event for the session the route made, delivered twice.
    for id in ["evt_c1", "evt_c1"] {
        world
            .deliver(&event(
                id,
                "created",
                NOW + 1,
                session(
                    created["id"].as_str().unwrap(),
                    Some("u_4"),
                    "requires_input",
                    None,
                ),
            ))
            .unwrap();
    }
    assert_eq!(world.user("u_4")["attempts"], 1);
}

#[test]
fn a_store_outage_is_a_5xx_and_the_redelivery_completes() {
    let world = World::new("3", None);
    world.create("u_5").unwrap();
    world.store.set_failing(true);
    let verified = event(
        "evt_v",
        "verified",
        NOW + 5,
        session("vs_1", Some("u_5"), "verified", None),
    );
    let error = AppError::from(world.deliver(&verified).unwrap_err());
    assert_eq!(error.status(), 503);
    world.store.set_failing(false);
    assert_eq!(world.deliver(&verified).unwrap().outcome, Outcome::Handled);
    assert_eq!(world.user("u_5")["status"], "verified");
}

#[test]
fn invalid_creation_requests_are_400() {
    let world = World::new("3", None);
    for (body, code, field) in [
        (json!({"user_id": "a:b"}), "invalid_user_id", "user_id"),
        (json!({}), "invalid_user_id", "user_id"),
        (json!({"user_id": 42}), "invalid_user_id", "user_id"),
        (
            json!({"user_id": "u", "type": "selfie"}),
            "invalid_type",
            "type",
        ),
        (json!({"user_id": "u", "type": 1}), "invalid_type", "type"),
        (
            json!({"user_id": "u", "return_url": "http://example.com/back"}),
            "invalid_return_url",
            "return_url",
        ),
        (
            json!({"user_id": "u", "return_url": "http://127.0.0.1.evil.test/back"}),
            "invalid_return_url",
            "return_url",
        ),
        (
            json!({"user_id": "u", "return_url": "http://localhost@evil.test/back"}),
            "invalid_return_url",
            "return_url",
        ),
        (
            json!({"user_id": "u", "idempotency_key": "k".repeat(101)}),
            "invalid_idempotency_key",
            "idempotency_key",
        ),
        (
            json!({"user_id": "u", "idempotency_key": true}),
            "invalid_idempotency_key",
            "idempotency_key",
        ),
    ] {
        let trace = Trace::new();
        let services = Services::new(&*world.store, &world.transport, &world.config, NOW, &trace);
        let error = match CreateSession::from_json(body.clone()) {
            Ok(request) => block_on(create_session(&request, &services)).unwrap_err(),
            Err(error) => error,
        };
        assert_eq!(
            (error.status(), error.code(), error.field()),
            (400, code, Some(field)),
            "{body}"
        );
    }
    assert!(world.transport.sent().is_empty());
    assert!(block_on(world.store.get("identity:user:u"))
        .unwrap()
        .is_none());
}

#[test]
fn a_handled_type_with_an_object_of_the_wrong_shape_is_400_and_stores_nothing() {
    let world = World::new("3", Some(SINK));
    for object in [
        json!({"id": "vs_1"}),
        json!({"id": "vs_1/../x", "status": "verified"}),
        json!({"id": "vs_1", "status": 42}),
    ] {
        let error = world
            .deliver(&event("evt_bad", "verified", NOW, object.clone()))
            .unwrap_err();
        assert!(
            matches!(error, WebhookError::Event(_)),
            "{object}: {error:?}"
        );
        assert_eq!(AppError::from(error).status(), 400);
    }
    assert!(world.store.is_empty());
}

#[test]
fn a_creation_retried_after_its_created_event_reuses_the_session() {
    let world = World::new("3", None);
    // Stripe creates vs_1, then KV fails: the route answers 503 and stores nothing.
    world.break_store_after_stripe.set(true);
    let error = world.create("u_6").unwrap_err();
    assert_eq!(error.status(), 503);
    world.store.set_failing(false);
    // Stripe's created event for vs_1 arrives before the app retries.
    world
        .deliver(&event(
            "evt_c",
            "created",
            NOW + 1,
            session("vs_1", Some("u_6"), "requires_input", None),
        ))
        .unwrap();
    assert_eq!(world.user("u_6")["attempts"], 1);
    let retried = world.create("u_6").unwrap();
    assert_eq!(
        (retried["id"].as_str(), retried["attempts"].as_i64()),
        (Some("vs_1"), Some(1))
    );
    let keys: Vec<String> = world
        .transport
        .sent()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["identity.u_6:1", "identity.u_6:1"]);
    // The next creation is a new one.
    let next = world.create("u_6").unwrap();
    assert_eq!(
        (next["id"].as_str(), next["attempts"].as_i64()),
        (Some("vs_2"), Some(2))
    );
}

#[test]
fn a_caller_key_names_the_creation() {
    let world = World::new("3", None);
    let create = |key: &str| {
        let trace = Trace::new();
        let services = Services::new(&*world.store, &world.transport, &world.config, NOW, &trace);
        let request: CreateSession =
            CreateSession::from_json(json!({"user_id": "u_7", "idempotency_key": key})).unwrap();
        block_on(create_session(&request, &services)).unwrap()
    };
    let first = create("signup-1");
    let again = create("signup-1");
    assert_eq!((first.id.as_str(), again.id.as_str()), ("vs_1", "vs_1"));
    assert_eq!(again.attempts, 1);
    assert_eq!(
        world.transport.sent()[0].header("idempotency-key"),
        Some("identity.u_7:key:signup-1")
    );
}

#[test]
fn a_notification_is_not_lost_when_a_later_write_fails() {
    for failing in ["identity:user:", "identity:session:"] {
        let world = World::new("3", Some(SINK));
        world.create("u_8").unwrap();
        let verified = event(
            "evt_v8",
            "verified",
            NOW + 5,
            session("vs_1", Some("u_8"), "verified", None),
        );
        world.store.fail_writes_to(Some(failing));
        let error = AppError::from(world.deliver(&verified).unwrap_err());
        assert_eq!(error.status(), 503, "{failing}");
        world.store.fail_writes_to(None);
        assert_eq!(world.deliver(&verified).unwrap().outcome, Outcome::Handled);
        assert_eq!(world.user("u_8")["status"], "verified");
        let sent: Vec<Value> = world
            .sink
            .borrow()
            .iter()
            .filter(|n| n["kind"] == "identity.verified")
            .cloned()
            .collect();
        assert_eq!(
            sent.len(),
            1,
            "{failing}: exactly one verified notification, {sent:?}"
        );
    }
}

#[test]
fn a_creation_retried_after_a_record_write_failed_reuses_the_session() {
    let world = World::new("3", None);
    world.store.fail_writes_to(Some("identity:session:"));
    assert_eq!(world.create("u_9").unwrap_err().status(), 503);
    world.store.fail_writes_to(None);
    let retried = world.create("u_9").unwrap();
    assert_eq!(
        (retried["id"].as_str(), retried["attempts"].as_i64()),
        (Some("vs_1"), Some(1))
    );
}

#[test]
fn an_event_in_another_api_version_is_handled_on_the_object_read_at_the_pinned_one() {
    use stripe_edge_webhooks::config::DEFAULT_STRIPE_API_VERSION;
    use stripe_edge_webhooks::event::Event;
    use stripe_edge_webhooks::webhook::process;

    // Stripe's object now, at the pinned version: the check failed with document_expired.
    let at_pinned = session(
        "vs_1",
        Some("u_v"),
        "requires_input",
        Some("document_expired"),
    );
    let transport = FakeTransport::new(move |request: &HttpRequest| {
        assert_eq!(request.method, Method::Get);
        assert_eq!(
            request.header("stripe-version"),
            Some(DEFAULT_STRIPE_API_VERSION)
        );
        assert!(
            request
                .url
                .ends_with("/v1/identity/verification_sessions/vs_1"),
            "{}",
            request.url
        );
        Ok(FakeTransport::json(200, &at_pinned.to_string()))
    });
    let config = crate::helpers::config_with(&[("STRIPE_SECRET_KEY", "sk_test_versions")]);
    let store = MemoryStore::new();
    let deliver = |event: &Value| {
        let trace = Trace::new();
        let services = Services::new(&store, &transport, &config, NOW, &trace).for_webhook();
        let event = Event::parse(event.to_string().as_bytes()).unwrap();
        block_on(process(&services, event, NOW)).unwrap()
    };
    // The same event rendered in an older version: its payload says something else (here a
    // code that would stop the user for a manual review).
    let mut old = event(
        "evt_old",
        "requires_input",
        NOW + 10,
        session(
            "vs_1",
            Some("u_v"),
            "requires_input",
            Some("selfie_manipulated"),
        ),
    );
    old["api_version"] = "2020-08-27".into();
    assert_eq!(deliver(&old).outcome, Outcome::Handled);
    assert_eq!(
        transport.calls(),
        ["GET /v1/identity/verification_sessions/vs_1"]
    );
    let user = block_on(user_view(&store, "u_v", 3)).unwrap().unwrap();
    assert_eq!(
        (user["last_error"]["code"].as_str(), user["next"].as_str()),
        (Some("document_expired"), Some("retry"))
    );
    // At the pinned version the payload is used as it is: no call.
    let pinned = event(
        "evt_pinned",
        "processing",
        NOW + 20,
        session("vs_1", Some("u_v"), "processing", None),
    );
    assert_eq!(pinned["api_version"], DEFAULT_STRIPE_API_VERSION);
    deliver(&pinned);
    assert_eq!(transport.calls().len(), 1);
}

#[test]
fn a_retry_reopens_the_failed_session_and_counts_when_the_user_submits() {
    let world = World::new("2", Some(SINK));
    world.create("u_r").unwrap();
    let submit = |n: i64| {
        world
            .deliver(&event(
                &format!("evt_p{n}"),
                "processing",
                NOW + 10 * n,
                session("vs_1", Some("u_r"), "processing", None),
            ))
            .unwrap();
        world
            .deliver(&event(
                &format!("evt_f{n}"),
                "requires_input",
                NOW + 10 * n + 5,
                session(
                    "vs_1",
                    Some("u_r"),
                    "requires_input",
                    Some("document_expired"),
                ),
            ))
            .unwrap();
    };
    submit(1);
    let notice = world.sink.borrow().last().unwrap()["payload"].clone();
    assert_eq!(notice["retry_with"], "reopen_session");
    let view = world.user("u_r");
    assert_eq!(view["retry_with"], "reopen_session");
    assert!(view["explanation"]
        .as_str()
        .unwrap()
        .contains("re-opens it"));

    // The retry re-opens vs_1 (a fresh url from Stripe), and counts nothing yet: twice.
    for _ in 0..2 {
        let again = world.create("u_r").unwrap();
        assert_eq!(
            (again["id"].as_str(), again["reopened"].as_bool()),
            (Some("vs_1"), Some(true))
        );
        assert_eq!(again["url"], "https://verify.stripe.test/vs_1/again");
        assert_eq!(
            (
                again["attempts"].as_i64(),
                again["remaining_attempts"].as_i64()
            ),
            (Some(1), Some(1))
        );
    }
    let posts = world
        .transport
        .sent()
        .iter()
        .filter(|r| r.method == Method::Post && !r.url.starts_with(SINK))
        .count();
    assert_eq!(posts, 1, "no new session at Stripe");

    // The user submits it again: now it counts, and the limit of 2 is reached.
    submit(2);
    let view = world.user("u_r");
    assert_eq!(
        (view["attempts"].as_i64(), view["may_retry"].as_bool()),
        (Some(2), Some(false))
    );
    let error = world.create("u_r").unwrap_err();
    assert_eq!((error.status(), error.code()), (409, "attempts_exhausted"));
}

#[test]
fn new_session_forces_a_new_session_and_must_be_a_boolean() {
    let world = World::new("3", None);
    world.create("u_n").unwrap();
    world
        .deliver(&event(
            "evt_f",
            "requires_input",
            NOW + 10,
            session(
                "vs_1",
                Some("u_n"),
                "requires_input",
                Some("document_expired"),
            ),
        ))
        .unwrap();
    let fresh = world
        .create_with(json!({"user_id": "u_n", "new_session": true}))
        .unwrap();
    assert_eq!(
        (
            fresh["id"].as_str(),
            fresh["reopened"].as_bool(),
            fresh["attempts"].as_i64()
        ),
        (Some("vs_2"), Some(false), Some(2))
    );
    let error =
        CreateSession::from_json(json!({"user_id": "u_n", "new_session": "yes"})).unwrap_err();
    assert_eq!(
        (error.status(), error.code(), error.field()),
        (400, "invalid_new_session", Some("new_session"))
    );
}

#[test]
fn an_event_naming_another_user_than_the_one_recorded_changes_neither() {
    let world = World::new("3", Some(SINK));
    world.create("u_owner").unwrap();
    let before = world.user("u_owner");
    // vs_1's metadata re-pointed at Stripe (an update by anyone with a key) to another user.
    let receipt = world
        .deliver(&event(
            "evt_moved",
            "verified",
            NOW + 5,
            session("vs_1", Some("u_other"), "verified", None),
        ))
        .unwrap();
    assert_eq!(receipt.outcome, Outcome::Ignored);
    let record = block_on(keys::event("evt_moved").load(&*world.store))
        .unwrap()
        .unwrap();
    assert_eq!(
        record.reason.as_deref(),
        Some("session_recorded_for_another_user")
    );
    assert_eq!(world.user("u_owner"), before);
    assert!(block_on(keys::identity_user("u_other").load(&*world.store))
        .unwrap()
        .is_none());
    assert!(world.sink.borrow().is_empty());
}
