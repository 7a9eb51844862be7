//! Billing flows end to end through the handlers: setup completion from the webhook and the
//! success page, charges with their recovery, and the follow-up events, against `MemoryStore`
//! and a scripted Stripe.

use crate::helpers::{config_with, event_json, path};
use pollster::block_on;
use stripe_edge_webhooks::billing::{self, *};
use stripe_edge_webhooks::config::Config;
use stripe_edge_webhooks::console::Preview;
use stripe_edge_webhooks::dry::DryLog;
use stripe_edge_webhooks::error::AppError;
use stripe_edge_webhooks::event::EventKind;
use stripe_edge_webhooks::event::{Event, Outcome};
use stripe_edge_webhooks::handlers::charges::*;
use stripe_edge_webhooks::handlers::dry_run;
use stripe_edge_webhooks::handlers::setup::*;
use stripe_edge_webhooks::handlers::{dispatch, StepError};
use stripe_edge_webhooks::http::Transport;
use stripe_edge_webhooks::http::{HttpRequest, HttpResponse, Method, SendFailure};
use stripe_edge_webhooks::notify::Recipient;
use stripe_edge_webhooks::pages::{success_error_page, Money, SuccessView};
use stripe_edge_webhooks::services::Services;
use stripe_edge_webhooks::services::Trace;
use stripe_edge_webhooks::store::entity::{EntityStore, MemoryTable};
use stripe_edge_webhooks::store::{keys, Store, FINISHED_TTL_SECONDS};
use stripe_edge_webhooks::store::{MemoryStore, StoreError};
use stripe_edge_webhooks::testing::FakeTransport;

const NOW: i64 = 1_700_000_000;

/// What `dispatch` comes to for an event.
async fn handle<S: Store>(
    event: &Event,
    services: &Services<'_, S, FakeTransport>,
) -> Result<Outcome, StepError> {
    dispatch(event, services).await.map(|h| h.outcome)
}

fn config() -> Config {
    config_with(&[
        ("STRIPE_SECRET_KEY", "sk_test_h"),
        // Where a recovery session made by an event (no request to take an origin from)
        // returns.
        ("APP_BASE_URL", "https://app.test"),
    ])
}

/// Stripe as in [`stripe`], except that a request whose path `at` accepts is answered
/// `status` with `body`.
fn stripe_failing(at: fn(&str) -> bool, status: u16, body: &'static str) -> FakeTransport {
    FakeTransport::new(move |request| {
        if at(path(request)) {
            Ok(FakeTransport::json(status, body))
        } else {
            stripe(request)
        }
    })
}

/// `charge:pi_1` as stored, from any store.
fn stored_charge(store: &impl Store) -> ChargeRecord {
    block_on(keys::charge("pi_1").load(store)).unwrap().unwrap()
}

/// `checkout.session.completed` for the setup session `cs_1`, which had no customer.
fn setup_completed(event_id: &str) -> Event {
    event(
        event_id,
        EventKind::CheckoutSessionCompleted.as_str(),
        NOW,
        completed("cs_1", None, "seti_1"),
    )
}

/// Stripe as the handlers need it. A session `cs_cust` had a customer, `cs_1` none;
/// the card `pm_decline` is declined off-session.
fn stripe(request: &HttpRequest) -> Result<HttpResponse, SendFailure> {
    let body = request.body.as_deref().unwrap_or("");
    let ok = |json: serde_json::Value| Ok(FakeTransport::json(200, &json.to_string()));
    let si = |customer: Option<&str>| serde_json::json!({"id": "seti_1", "object": "setup_intent", "status": "succeeded", "customer": customer, "payment_method": "pm_1"});
    match (request.method, path(request)) {
        (Method::Get, "/v1/setup_intents/seti_1?expand[]=payment_method") => ok(si(None)),
        (Method::Get, "/v1/payment_intents/pi_new?expand[]=payment_method") => ok(serde_json::json!({
            "id": "pi_new", "object": "payment_intent", "status": "succeeded", "amount": 1099,
            "currency": "usd", "customer": "cus_new",
            "payment_method": {"id": "pm_new", "object": "payment_method", "type": "card",
                "customer": "cus_new", "card": {"brand": "mastercard", "last4": "4444"}}
        })),
        (Method::Get, "/v1/setup_intents/seti_c?expand[]=payment_method") => ok(serde_json::json!({"id": "seti_c", "status": "succeeded", "customer": "cus_given", "payment_method": "pm_1"})),
        (Method::Get, "/v1/checkout/sessions/cs_1?expand[]=setup_intent.payment_method&expand[]=payment_intent.payment_method") => ok(serde_json::json!({
            "id": "cs_1", "object": "checkout.session", "mode": "setup", "status": "complete", "created": NOW - 60,
            "customer": null, "customer_details": {"email": "a@example.com"}, "setup_intent": si(None),
            "metadata": {"created_by": "stripe-edge-webhooks"}
        })),
        (Method::Get, "/v1/checkout/sessions/cs_open?expand[]=setup_intent.payment_method&expand[]=payment_intent.payment_method") => ok(serde_json::json!({
            "id": "cs_open", "mode": "setup", "status": "open", "setup_intent": null,
            "url": "https://checkout.test/c/pay/cs_open",
            "metadata": {"created_by": "stripe-edge-webhooks"}
        })),
        (Method::Get, "/v1/checkout/sessions/cs_expired?expand[]=setup_intent.payment_method&expand[]=payment_intent.payment_method") => ok(serde_json::json!({
            "id": "cs_expired", "mode": "payment", "status": "expired", "url": null,
            "amount_total": 2500, "currency": "eur",
            "metadata": {"created_by": "stripe-edge-webhooks", "payment_intent": "pi_1"}
        })),
        (Method::Get, "/v1/checkout/sessions/cs_paid?expand[]=setup_intent.payment_method&expand[]=payment_intent.payment_method") => ok(serde_json::json!({
            "id": "cs_paid", "mode": "payment", "status": "complete", "payment_status": "paid",
            "payment_intent": "pi_new", "customer": "cus_new", "amount_total": 1099, "currency": "usd",
            "metadata": {"payment_intent": "pi_1", "created_by": "stripe-edge-webhooks"}
        })),
        (Method::Get, p) if p.starts_with("/v1/checkout/sessions/") => Ok(FakeTransport::json(
            404,
            r#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such checkout.session"}}"#,
        )),
        (Method::Post, "/v1/customers") => ok(serde_json::json!({"id": "cus_new", "object": "customer"})),
        (Method::Post, "/v1/payment_methods/pm_1/attach") => ok(serde_json::json!({
            "id": "pm_1", "customer": "cus_new", "card": {"brand": "visa", "last4": "4242"}
        })),
        (Method::Post, "/v1/payment_intents") if body.contains("payment_method=pm_decline") => {
            Ok(FakeTransport::json(402, &serde_json::json!({"error": {
                "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.",
                "payment_intent": {"id": "pi_1", "status": "requires_payment_method", "amount": 1099,
                    "currency": "usd", "customer": "cus_new", "payment_method": "pm_decline"}
            }}).to_string()))
        }
        (Method::Post, "/v1/payment_intents") => ok(serde_json::json!({
            "id": "pi_ok", "status": "succeeded", "amount": 1099, "currency": "usd",
            "customer": "cus_new", "payment_method": "pm_1"
        })),
        (Method::Post, "/v1/checkout/sessions")
            if request.header("idempotency-key") == Some("pi_1:recovery.2") =>
        {
            ok(serde_json::json!({
                "id": "cs_r2", "mode": "payment", "status": "open", "url": "https://checkout.test/cs_r2",
                "customer": "cus_new", "metadata": {"payment_intent": "pi_1", "created_by": "stripe-edge-webhooks"}
            }))
        }
        (Method::Post, "/v1/checkout/sessions") => ok(serde_json::json!({
            "id": "cs_r", "mode": "payment", "status": "open", "url": "https://checkout.test/cs_r",
            "customer": "cus_new", "metadata": {"payment_intent": "pi_1", "created_by": "stripe-edge-webhooks"}
        })),
        (method, p) => panic!("unexpected {} {p}", method.as_str()),
    }
}

fn event(id: &str, kind: &str, created: i64, object: serde_json::Value) -> Event {
    let body = event_json(id, kind, created, object);
    Event::parse(body.to_string().as_bytes()).unwrap()
}

/// A completed setup session; one naming a customer was bound to it by the app.
fn completed(id: &str, customer: Option<&str>, setup_intent: &str) -> serde_json::Value {
    let mut metadata = serde_json::json!({"created_by": "stripe-edge-webhooks"});
    if customer.is_some() {
        metadata["bound_by"] = "app".into();
    }
    serde_json::json!({
        "id": id, "object": "checkout.session", "mode": "setup", "status": "complete",
        "created": NOW - 60, "customer": customer, "customer_details": {"email": "a@example.com"},
        "setup_intent": setup_intent, "metadata": metadata
    })
}

fn run<R>(
    store: &MemoryStore,
    transport: &FakeTransport,
    f: impl FnOnce(&Services<'_, MemoryStore, FakeTransport>) -> R,
) -> R {
    let config = config();
    let trace = Trace::new();
    let services = Services::new(store, transport, &config, NOW, &trace).for_webhook();
    f(&services)
}

fn writes(transport: &FakeTransport) -> Vec<(String, Option<String>, Option<String>)> {
    transport
        .sent()
        .into_iter()
        .filter(|r| r.method == Method::Post)
        .map(|r| {
            (
                path(&r).to_owned(),
                r.header("idempotency-key").map(str::to_owned),
                r.body.clone(),
            )
        })
        .collect()
}

#[test]
fn the_webhook_creates_a_customer_attaches_and_records_once() {
    let store = MemoryStore::new();
    let transport = FakeTransport::new(stripe);
    let e = setup_completed("evt_1");
    let outcome = run(&store, &transport, |s| block_on(handle(&e, s))).unwrap();
    assert_eq!(outcome, Outcome::Handled);
    assert_eq!(
        transport.calls(),
        [
            "GET /v1/setup_intents/seti_1",
            "POST /v1/customers",
            "POST /v1/payment_methods/pm_1/attach"
        ]
    );
    let w = writes(&transport);
    assert_eq!(w[0].1.as_deref(), Some("checkout.cs_1:customer"));
    assert_eq!(
        w[0].2.as_deref(),
        Some("email=a%40example.com&metadata[checkout_session]=cs_1&metadata[created_by]=stripe-edge-webhooks")
    );
    assert_eq!(w[1].1.as_deref(), Some("checkout.cs_1:attach"));
    assert_eq!(w[1].2.as_deref(), Some("customer=cus_new"));
    let customer = block_on(keys::customer("cus_new").load(&store))
        .unwrap()
        .unwrap();
    assert_eq!(customer.default_payment_method.as_deref(), Some("pm_1"));
    assert_eq!(
        (
            customer.card_brand.as_deref(),
            customer.card_last4.as_deref()
        ),
        (Some("visa"), Some("4242"))
    );
    let checkout = block_on(keys::checkout("cs_1").load(&store))
        .unwrap()
        .unwrap();
    assert!(checkout.is_completed_setup());
    assert_eq!(checkout.customer.as_deref(), Some("cus_new"));

    // Another delivery of the completion (a new event id, so not deduped by id): no call.
    let again = setup_completed("evt_2");
    run(&store, &transport, |s| block_on(handle(&again, s))).unwrap();
    assert_eq!(transport.calls().len(), 3);
}

#[test]
fn a_session_with_a_customer_needs_no_write_at_stripe() {
    let store = MemoryStore::new();
    let transport = FakeTransport::new(stripe);
    let e = event(
        "evt_1",
        EventKind::CheckoutSessionCompleted.as_str(),
        NOW,
        completed("cs_c", Some("cus_given"), "seti_c"),
    );
    run(&store, &transport, |s| block_on(handle(&e, s))).unwrap();
    assert_eq!(transport.calls(), ["GET /v1/setup_intents/seti_c"]);
    let customer = block_on(keys::customer("cus_given").load(&store))
        .unwrap()
        .unwrap();
    assert_eq!(customer.default_payment_method.as_deref(), Some("pm_1"));
    assert_eq!(customer.card_last4, None);
}

#[test]
fn the_success_page_sends_the_same_writes_as_the_webhook_and_either_order_is_one_effect() {
    // Webhook alone.
    let by_webhook = MemoryStore::new();
    let webhook_transport = FakeTransport::new(stripe);
    let e = setup_completed("evt_1");
    run(&by_webhook, &webhook_transport, |s| block_on(handle(&e, s))).unwrap();

    // Success page first, in one retrieval, then the webhook.
    let store = MemoryStore::new();
    let transport = FakeTransport::new(stripe);
    let view = run(&store, &transport, |s| {
        block_on(complete_from_success_page(s, "cs_1"))
    })
    .unwrap();
    assert_eq!(
        view,
        SuccessView::CardSaved {
            customer: "cus_new".into(),
            brand: Some("visa".into()),
            last4: Some("4242".into())
        }
    );
    assert_eq!(
        transport.calls(),
        [
            "GET /v1/checkout/sessions/cs_1",
            "POST /v1/customers",
            "POST /v1/payment_methods/pm_1/attach"
        ]
    );
    assert_eq!(writes(&transport), writes(&webhook_transport));
    run(&store, &transport, |s| block_on(handle(&e, s))).unwrap();
    assert_eq!(
        transport.calls().len(),
        3,
        "the webhook after the page calls nothing"
    );

    // Webhook first, then the page: the page reads what was recorded.
    let view = run(&by_webhook, &webhook_transport, |s| {
        block_on(complete_from_success_page(s, "cs_1"))
    })
    .unwrap();
    assert!(matches!(view, SuccessView::CardSaved { ref customer, .. } if customer == "cus_new"));
    assert_eq!(webhook_transport.calls().len(), 3);
}

#[test]
fn a_card_saved_by_an_older_session_never_replaces_a_newer_one() {
    let store = MemoryStore::new();
    let session = |id: &str, created: i64, pm: &str| {
        serde_json::json!({
            "id": id, "object": "checkout.session", "mode": "setup", "status": "complete",
            "created": created, "customer": "cus_x",
            "setup_intent": {"id": format!("seti_{id}"), "status": "succeeded",
                             "customer": "cus_x", "payment_method": pm},
            "metadata": {"created_by": "stripe-edge-webhooks", "bound_by": "app"}
        })
    };
    // The newer session's completion is handled first, the older one's after it.
    for (event_id, id, created, pm) in [
        ("evt_b", "cs_b", NOW - 100, "pm_b"),
        ("evt_a", "cs_a", NOW - 200, "pm_a"),
    ] {
        let e = event(
            event_id,
            EventKind::CheckoutSessionCompleted.as_str(),
            NOW,
            session(id, created, pm),
        );
        run(&store, &FakeTransport::unreachable(), |s| {
            block_on(handle(&e, s))
        })
        .unwrap();
    }
    let customer = block_on(keys::customer("cus_x").load(&store))
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            customer.default_payment_method.as_deref(),
            customer.checkout_session.as_deref()
        ),
        (Some("pm_b"), Some("cs_b"))
    );
    // Both sessions are still recorded as complete.
    for id in ["cs_a", "cs_b"] {
        assert!(block_on(keys::checkout(id).load(&store))
            .unwrap()
            .unwrap()
            .is_completed_setup());
    }
}

#[test]
fn a_session_another_integration_created_is_left_alone() {
    let store = MemoryStore::new();
    let mut foreign = completed("cs_1", None, "seti_1");
    foreign["metadata"] = serde_json::json!({"order": "42"});
    let e = event(
        "evt_f",
        EventKind::CheckoutSessionCompleted.as_str(),
        NOW,
        foreign,
    );
    let outcome = run(&store, &FakeTransport::unreachable(), |s| {
        block_on(handle(&e, s))
    })
    .unwrap();
    assert_eq!(outcome, Outcome::Ignored);
    assert!(store.is_empty());

    // Another deployment's session on the same account (staging beside production): the same
    // key, another value. Recorded ignored with the reason.
    let mut staging = completed("cs_1", None, "seti_1");
    staging["metadata"] = serde_json::json!({"created_by": "stripe-edge-webhooks-staging"});
    let e = event(
        "evt_s",
        EventKind::CheckoutSessionCompleted.as_str(),
        NOW,
        staging,
    );
    let handled = run(&store, &FakeTransport::unreachable(), |s| {
        block_on(dispatch(&e, s))
    })
    .unwrap();
    assert_eq!(
        (handled.outcome, handled.reason),
        (Outcome::Ignored, Some("not_created_by_this_deployment"))
    );
    assert!(store.is_empty());

    let foreign_page = FakeTransport::new(|_| {
        Ok(FakeTransport::json(
            200,
            r#"{"id":"cs_9","object":"checkout.session","mode":"setup","status":"complete","setup_intent":null,"metadata":{}}"#,
        ))
    });
    let error = run(&store, &foreign_page, |s| {
        block_on(complete_from_success_page(s, "cs_9"))
    })
    .unwrap_err();
    assert_eq!(error.status(), 404);
    assert_eq!(foreign_page.calls(), ["GET /v1/checkout/sessions/cs_9"]);
    assert!(store.is_empty());
}

#[test]
fn a_stripe_outage_is_retryable_and_the_retry_reuses_the_keys() {
    let store = MemoryStore::new();
    let down = stripe_failing(
        |path| path.ends_with("/attach"),
        500,
        r#"{"error":{"type":"api_error"}}"#,
    );
    let e = setup_completed("evt_1");
    let failure = run(&store, &down, |s| block_on(handle(&e, s))).unwrap_err();
    assert_eq!(failure.step, "attach");
    assert!(failure.is_retryable());
    assert!(block_on(keys::checkout("cs_1").load(&store))
        .unwrap()
        .is_none());

    let up = FakeTransport::new(stripe);
    run(&store, &up, |s| block_on(handle(&e, s))).unwrap();
    let keys_down: Vec<_> = writes(&down).into_iter().map(|w| w.1).collect();
    let keys_up: Vec<_> = writes(&up).into_iter().map(|w| w.1).collect();
    assert_eq!(
        keys_up,
        keys_down[..2].to_vec(),
        "customer then attach, same keys"
    );
}

#[test]
fn a_refused_write_is_final_and_a_store_outage_retryable() {
    let store = MemoryStore::new();
    let refusing = stripe_failing(
        |path| path == "/v1/customers",
        400,
        r#"{"error":{"type":"invalid_request_error","message":"Invalid email"}}"#,
    );
    let e = setup_completed("evt_1");
    let failure = run(&store, &refusing, |s| block_on(handle(&e, s))).unwrap_err();
    assert_eq!(
        (failure.step, failure.is_retryable()),
        ("create_customer", false)
    );

    let odd = event(
        "evt_odd",
        EventKind::CheckoutSessionCompleted.as_str(),
        NOW,
        completed("cs_1/../x", None, "seti_1"),
    );
    let failure = run(&store, &FakeTransport::unreachable(), |s| {
        block_on(handle(&odd, s))
    })
    .unwrap_err();
    assert_eq!(
        (failure.step, failure.is_retryable()),
        ("decode_session", false)
    );

    store.set_failing(true);
    let failure = run(&store, &FakeTransport::unreachable(), |s| {
        block_on(handle(&e, s))
    })
    .unwrap_err();
    assert_eq!(
        (failure.step, failure.is_retryable()),
        ("load_checkout", true)
    );
}

#[test]
fn an_answer_of_the_wrong_shape_is_a_bad_response_not_a_success() {
    let store = MemoryStore::new();
    let odd = stripe_failing(
        |path| path == "/v1/customers",
        200,
        r#"{"object":"customer","id":5}"#,
    );
    let e = setup_completed("evt_1");
    let failure = run(&store, &odd, |s| block_on(handle(&e, s))).unwrap_err();
    assert_eq!(failure.step, "create_customer");
    assert_eq!(
        (failure.error.status(), failure.error.code()),
        (502, "stripe_bad_response")
    );
    assert_eq!(odd.calls().len(), 2, "a 2xx is not retried");
    assert!(block_on(keys::checkout("cs_1").load(&store))
        .unwrap()
        .is_none());
}

fn save_customer(store: &MemoryStore, pm: &str) {
    let record = CustomerRecord {
        version: 1,
        id: "cus_new".into(),
        default_payment_method: Some(pm.into()),
        card_brand: None,
        card_last4: None,
        checkout_session: None,
        saved_by_session_created: 0,
        updated_at: NOW,
    };
    block_on(keys::customer("cus_new").save(store, &record, None)).unwrap();
}

/// A `POST /charges` body, with an `idempotency_key` when it names none (every charge has one).
fn charge_request(mut json: serde_json::Value) -> ChargeRequest {
    json.as_object_mut()
        .unwrap()
        .entry("idempotency_key")
        .or_insert("order-default".into());
    ChargeRequest::parse(serde_json::from_value(json).unwrap(), "usd").unwrap()
}

fn charge(
    store: &MemoryStore,
    transport: &FakeTransport,
    request: &ChargeRequest,
) -> Result<ChargeRecord, AppError> {
    let config = config();
    let trace = Trace::new();
    let services = Services::new(store, transport, &config, NOW, &trace);
    block_on(create_charge(&services, request, "https://app.test"))
}

#[test]
fn a_successful_charge_is_recorded() {
    let store = MemoryStore::new();
    save_customer(&store, "pm_1");
    let transport = FakeTransport::new(stripe);
    let request = charge_request(serde_json::json!({"customer": "cus_new", "amount": 1099}));
    let record = charge(&store, &transport, &request).unwrap();
    assert_eq!(
        (record.id.as_str(), record.status.as_str(), record.paid),
        ("pi_ok", "succeeded", true)
    );
    assert_eq!(transport.calls(), ["POST /v1/payment_intents"]);
    let sent = transport.sent();
    assert_eq!(
        sent[0].header("idempotency-key"),
        Some("charge:cus_new:order-default"),
        "the caller's key, scoped by the customer"
    );
    assert!(sent[0]
        .body
        .as_deref()
        .unwrap()
        .contains("off_session=true&confirm=true"));
    assert_eq!(
        block_on(keys::charge("pi_ok").load(&store)).unwrap(),
        Some(record)
    );
}

#[test]
fn a_decline_gets_a_recovery_session_and_a_notification_once() {
    let store = MemoryStore::new();
    save_customer(&store, "pm_decline");
    let transport = FakeTransport::new(stripe);
    let request = charge_request(serde_json::json!({
        "customer": "cus_new", "amount": 1099, "description": "Order 7", "idempotency_key": "order-7"
    }));
    let record = charge(&store, &transport, &request).unwrap();
    assert_eq!(
        transport.calls(),
        ["POST /v1/payment_intents", "POST /v1/checkout/sessions"]
    );
    let w = writes(&transport);
    assert_eq!(w[0].1.as_deref(), Some("charge:cus_new:order-7"));
    assert_eq!(w[1].1.as_deref(), Some("pi_1:recovery"));
    assert!(w[1]
        .2
        .as_deref()
        .unwrap()
        .contains("metadata[payment_intent]=pi_1"));
    assert_eq!(record.answer().0, 402);
    assert_eq!(
        record.recovery.as_ref().unwrap().url.as_deref(),
        Some("https://checkout.test/cs_r")
    );
    assert_eq!(
        record.last_error.as_ref().unwrap().decline_code.as_deref(),
        Some("insufficient_funds")
    );
    assert_eq!(
        block_on(keys::charge("pi_1").load(&store))
            .unwrap()
            .as_ref(),
        Some(&record)
    );
    let recovery_checkout = block_on(keys::checkout("cs_r").load(&store))
        .unwrap()
        .unwrap();
    assert_eq!(recovery_checkout.recovers.as_deref(), Some("pi_1"));
    let note = block_on(keys::notification("pi_1.charge.recovery").load(&store))
        .unwrap()
        .unwrap();
    assert_eq!(note.recipient, Recipient::Customer("cus_new".into()));
    assert_eq!(note.payload["recovery_url"], "https://checkout.test/cs_r");
    assert_eq!(note.payload["code"], "card_declined");

    // The caller retries with its key: answered from the records, Stripe is not asked again,
    // and no second session or notification is made.
    let again = charge(&store, &transport, &request).unwrap();
    assert_eq!(again, record);
    assert_eq!(transport.calls().len(), 2);
}

/// KV as a request may see it: reads of the keys in `stale` answer an older value (KV
/// caches reads at the edge for up to a minute); writes go through.
#[derive(Default)]
struct StaleReads {
    inner: MemoryStore,
    stale: std::cell::RefCell<std::collections::HashMap<String, String>>,
}

impl Store for StaleReads {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let old = self.stale.borrow().get(key).cloned();
        match old {
            Some(old) => Ok(Some(old)),
            None => self.inner.get(key).await,
        }
    }
    async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
        self.inner.put(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<stripe_edge_webhooks::store::ListPage, StoreError> {
        self.inner.list(prefix, limit, cursor).await
    }
}

#[test]
fn a_retried_charge_that_reads_a_stale_record_does_not_undo_a_paid_recovery() {
    let store = StaleReads::default();
    save_customer(&store.inner, "pm_decline");
    let transport = FakeTransport::new(stripe);
    let config = config();
    let trace = Trace::new();
    let services = Services::new(&store, &transport, &config, NOW, &trace);
    let request = charge_request(serde_json::json!({
        "customer": "cus_new", "amount": 1099, "idempotency_key": "order-8"
    }));
    let first = block_on(create_charge(&services, &request, "https://app.test")).unwrap();
    assert_eq!(first.answer().0, 402);
    let declined = block_on(store.get("charge:pi_1")).unwrap().unwrap();

    // The customer pays through the recovery session; the webhook records it.
    let paid = event(
        "evt_p",
        EventKind::CheckoutSessionCompleted.as_str(),
        NOW + 20,
        serde_json::json!({
            "id": "cs_r", "mode": "payment", "status": "complete", "payment_status": "paid",
            "payment_intent": "pi_new", "customer": "cus_new", "amount_total": 1099, "currency": "usd",
            "metadata": {"payment_intent": "pi_1", "created_by": "stripe-edge-webhooks"}
        }),
    );
    block_on(handle(&paid, &services)).unwrap();
    assert!(stored_charge(&store).paid);

    // The app retries its request (same key) while its read of the charge is still the
    // declined one: answered from that read, and nothing is written over the payment.
    store
        .stale
        .borrow_mut()
        .insert("charge:pi_1".into(), declined);
    let retry = block_on(create_charge(&services, &request, "https://app.test")).unwrap();
    assert_eq!(retry.id, "pi_1");
    store.stale.borrow_mut().clear();
    let stored = stored_charge(&store);
    assert_eq!(
        (stored.status.as_str(), stored.paid),
        (billing::RECOVERED, true)
    );
    assert_eq!(
        transport.calls(),
        [
            "POST /v1/payment_intents",
            "POST /v1/checkout/sessions",
            // The webhook reads the paid recovery's card.
            "GET /v1/payment_intents/pi_new",
        ],
        "the retry asked Stripe nothing and made no second recovery session"
    );
}

#[test]
fn charges_for_unknown_customers_or_without_a_card_call_nothing() {
    let store = MemoryStore::new();
    let request = charge_request(serde_json::json!({"customer": "cus_new", "amount": 5}));
    let unknown = charge(&store, &FakeTransport::unreachable(), &request).unwrap_err();
    assert!(matches!(
        unknown,
        AppError::Billing(BillingError::UnknownCustomer)
    ));
    assert_eq!(unknown.status(), 400);
    let record = CustomerRecord {
        version: 1,
        id: "cus_new".into(),
        default_payment_method: None,
        card_brand: None,
        card_last4: None,
        checkout_session: None,
        saved_by_session_created: 0,
        updated_at: NOW,
    };
    block_on(keys::customer("cus_new").save(&store, &record, None)).unwrap();
    let no_card = charge(&store, &FakeTransport::unreachable(), &request).unwrap_err();
    assert!(matches!(
        no_card,
        AppError::Billing(BillingError::NoSavedPaymentMethod)
    ));
}

#[test]
fn follow_up_events_update_the_charge_in_order_and_the_recovery_marks_it_paid() {
    let store = MemoryStore::new();
    save_customer(&store, "pm_decline");
    let transport = FakeTransport::new(stripe);
    let request = charge_request(serde_json::json!({"customer": "cus_new", "amount": 1099}));
    charge(&store, &transport, &request).unwrap();
    let pi = |status: &str| {
        serde_json::json!({"id": "pi_1", "status": status, "amount": 1099, "currency": "usd",
            "customer": "cus_new", "last_payment_error": {"code": "card_declined", "decline_code": "lost_card"}})
    };
    // An older failure: nothing changes.
    let old = event(
        "evt_o",
        EventKind::PaymentIntentPaymentFailed.as_str(),
        NOW - 10,
        pi("requires_payment_method"),
    );
    assert_eq!(
        run(&store, &transport, |s| block_on(handle(&old, s))).unwrap(),
        Outcome::Handled
    );
    let stored = stored_charge(&store);
    assert_eq!(
        stored.last_error.unwrap().decline_code.as_deref(),
        Some("insufficient_funds")
    );
    // A newer failure updates the error.
    let newer = event(
        "evt_n",
        EventKind::PaymentIntentPaymentFailed.as_str(),
        NOW + 10,
        pi("requires_payment_method"),
    );
    run(&store, &transport, |s| block_on(handle(&newer, s))).unwrap();
    let stored = stored_charge(&store);
    assert_eq!(
        stored.last_error.unwrap().decline_code.as_deref(),
        Some("lost_card")
    );
    // Unknown PaymentIntents are not ours.
    let mut foreign = pi("succeeded");
    foreign["id"] = "pi_other".into();
    let foreign = event(
        "evt_f",
        EventKind::PaymentIntentSucceeded.as_str(),
        NOW,
        foreign,
    );
    assert_eq!(
        run(&store, &transport, |s| block_on(handle(&foreign, s))).unwrap(),
        Outcome::Ignored
    );
    // The recovery session completes: paid.
    let paid = event(
        "evt_p",
        EventKind::CheckoutSessionCompleted.as_str(),
        NOW + 20,
        serde_json::json!({
            "id": "cs_r", "mode": "payment", "status": "complete", "payment_status": "paid",
            "payment_intent": "pi_new", "customer": "cus_new", "amount_total": 1099, "currency": "usd",
            "metadata": {"payment_intent": "pi_1", "created_by": "stripe-edge-webhooks"}
        }),
    );
    run(&store, &transport, |s| block_on(handle(&paid, s))).unwrap();
    let stored = stored_charge(&store);
    assert_eq!(
        (stored.status.as_str(), stored.paid),
        (billing::RECOVERED, true)
    );
    assert_eq!(
        stored.recovery.unwrap().payment_intent.as_deref(),
        Some("pi_new")
    );
    // A late failure of the original intent does not undo it.
    let late = event(
        "evt_l",
        EventKind::PaymentIntentPaymentFailed.as_str(),
        NOW + 30,
        pi("requires_payment_method"),
    );
    run(&store, &transport, |s| block_on(handle(&late, s))).unwrap();
    assert!(stored_charge(&store).paid);
    // The paid recovery's card (retrieved once) is the customer's default from now on.
    let calls = transport.calls();
    assert_eq!(
        calls.len(),
        3,
        "events call nothing at Stripe but the paid recovery's PaymentIntent"
    );
    assert_eq!(calls[2], "GET /v1/payment_intents/pi_new");
    let customer = block_on(keys::customer("cus_new").load(&store))
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            customer.default_payment_method.as_deref(),
            customer.card_last4.as_deref(),
            customer.checkout_session.as_deref()
        ),
        (Some("pm_new"), Some("4444"), Some("cs_r"))
    );
}

#[test]
fn the_success_page_records_a_paid_recovery_session() {
    let store = MemoryStore::new();
    let transport = FakeTransport::new(stripe);
    let view = run(&store, &transport, |s| {
        block_on(complete_from_success_page(s, "cs_paid"))
    })
    .unwrap();
    assert_eq!(
        view,
        SuccessView::PaymentReceived {
            session: "cs_paid".into(),
            amount: Some(Money {
                amount: 1099,
                currency: "usd".into()
            }),
        }
    );
    assert!(view.render().contains("10.99 USD"));
    assert!(stored_charge(&store).paid);
    // A reload answers from the record: no second Stripe call.
    let calls = transport.calls().len();
    let again = run(&store, &transport, |s| {
        block_on(complete_from_success_page(s, "cs_paid"))
    })
    .unwrap();
    assert_eq!(again, view, "the record keeps the amount");
    assert_eq!(transport.calls().len(), calls);
    assert_eq!(
        store.ttl("checkout:cs_paid"),
        Some(FINISHED_TTL_SECONDS),
        "a finished session is kept 90 days"
    );
}

#[test]
fn each_record_of_a_saved_card_and_a_charge_has_its_stated_lifetime() {
    let store = MemoryStore::new();
    let transport = FakeTransport::new(stripe);
    let e = setup_completed("evt_1");
    run(&store, &transport, |s| block_on(handle(&e, s))).unwrap();
    assert_eq!(store.ttl("checkout:cs_1"), Some(FINISHED_TTL_SECONDS));
    assert_eq!(
        store.ttl("customer:cus_new"),
        None,
        "the card on file is kept"
    );
    let request = charge_request(serde_json::json!({
        "customer": "cus_new", "amount": 500, "idempotency_key": "order-ttl"
    }));
    let record = charge(&store, &transport, &request).unwrap();
    // A charge and its key are kept: a repeat of the key, however late, is answered from
    // them (Stripe forgets its own key after 24 h and would make a second PaymentIntent, and a
    // record rebuilt from the PaymentIntent alone would not know its recovery was paid).
    assert_eq!(store.ttl(&format!("charge:{}", record.id)), None);
    assert_eq!(store.ttl("charge_key:order-ttl"), None);
}

#[test]
fn a_setup_session_first_seen_complete_after_thirty_days_is_not_completed_again() {
    let store = MemoryStore::new();
    let transport = FakeTransport::new(stripe);
    let mut old = completed("cs_1", None, "seti_1");
    old["created"] = (NOW - MAX_COMPLETION_AGE_SECONDS - 1).into();
    let e = event("evt_old", "checkout.session.completed", NOW, old);
    let failure = run(&store, &transport, |s| block_on(handle(&e, s))).unwrap_err();
    assert_eq!(
        (failure.step, failure.error.code()),
        ("plan", "session_too_old")
    );
    assert!(
        writes(&transport).is_empty(),
        "no second customer at Stripe"
    );
    assert_eq!(store.len(), 0);
}

#[test]
fn opening_a_setup_session_stores_nothing() {
    let store = MemoryStore::new();
    let transport = FakeTransport::new(stripe);
    for request in [
        SetupRequest::public(None, None, "usd").unwrap(),
        SetupRequest::bound(
            serde_json::from_value(serde_json::json!({"customer": "cus_9"})).unwrap(),
            "usd",
        )
        .unwrap(),
    ] {
        let opened = run(&store, &transport, |s| {
            block_on(open_setup_session(s, &request, "https://app.test", [3; 16]))
        })
        .unwrap();
        assert!(opened.url.starts_with("https://"));
    }
    assert_eq!(store.len(), 0, "no KV write for an open session");
}

#[test]
fn an_expired_setup_session_writes_nothing_and_an_expired_recovery_is_still_handled() {
    let store = MemoryStore::new();
    let transport = FakeTransport::unreachable();
    for customer in [None, Some("cus_9")] {
        let mut session = completed("cs_gone", customer, "seti_1");
        session["status"] = "expired".into();
        let expired = event("evt_exp", "checkout.session.expired", NOW, session);
        assert!(billing::leaves_nothing(&expired));
        let receipt = run(&store, &transport, |s| {
            block_on(stripe_edge_webhooks::webhook::process(s, expired, NOW))
        })
        .unwrap();
        assert_eq!(
            (receipt.outcome, receipt.duplicate),
            (Outcome::Ignored, false)
        );
    }
    assert_eq!(store.len(), 0, "no event record, no checkout record");
    assert!(transport.calls().is_empty());
    // A payment session's expiry moves its recovery: it is not inert.
    let recovery = recovery_event(
        "evt_r",
        "checkout.session.expired",
        NOW,
        "cs_r",
        "expired",
        "unpaid",
    );
    assert!(!billing::leaves_nothing(&recovery));
}

#[test]
fn success_page_failures_are_clear_pages() {
    let store = MemoryStore::new();
    let transport = FakeTransport::new(stripe);
    let unknown = run(&store, &transport, |s| {
        block_on(complete_from_success_page(s, "cs_nope"))
    })
    .unwrap_err();
    let (status, html) = success_error_page(&unknown);
    assert_eq!(status, 404);
    assert!(html.contains("Unknown session"));
    // Not complete: the page links back to Checkout, and says so with the 409 of the one table.
    let open = run(&store, &transport, |s| {
        block_on(complete_from_success_page(s, "cs_open"))
    })
    .unwrap();
    assert_eq!(
        open,
        SuccessView::NotFinished {
            checkout_url: Some("https://checkout.test/c/pay/cs_open".into())
        }
    );
    assert_eq!(open.status(), 409);
    let expired = run(&store, &transport, |s| {
        block_on(complete_from_success_page(s, "cs_expired"))
    })
    .unwrap();
    assert_eq!(expired, SuccessView::NotFinished { checkout_url: None });
    assert_eq!(
        block_on(keys::charge("pi_1").load(&store)).unwrap(),
        None,
        "an expired recovery records nothing"
    );
    let bad = AppError::from(BillingError::InvalidSessionId);
    assert_eq!(success_error_page(&bad).0, 400);
    let down = FakeTransport::new(|_| Err(SendFailure::Network("reset".into())));
    let unavailable = run(&store, &down, |s| {
        block_on(complete_from_success_page(s, "cs_1"))
    })
    .unwrap_err();
    assert_eq!(success_error_page(&unavailable).0, 503);
    assert_eq!(success_error_page(&AppError::Internal("x")).0, 500);
}

/// A recovery session's own event: `cs_r` (or `cs_r2`) for the charge `pi_1`.
fn recovery_event(id: &str, kind: &str, at: i64, session: &str, status: &str, paid: &str) -> Event {
    event(
        id,
        kind,
        at,
        serde_json::json!({
            "id": session, "object": "checkout.session", "mode": "payment", "status": status,
            "payment_status": paid, "payment_intent": (status == "complete").then_some("pi_new"),
            "customer": "cus_new", "amount_total": 1099, "currency": "usd", "created": NOW + 1,
            "metadata": {"payment_intent": "pi_1", "created_by": "stripe-edge-webhooks"}
        }),
    )
}

fn declined_charge(store: &MemoryStore, transport: &FakeTransport) -> ChargeRequest {
    save_customer(store, "pm_decline");
    let request = charge_request(serde_json::json!({
        "customer": "cus_new", "amount": 1099, "idempotency_key": "order-9"
    }));
    let first = charge(store, transport, &request).unwrap();
    assert_eq!(first.recovery.as_ref().unwrap().checkout_session, "cs_r");
    request
}

#[test]
fn a_recovery_paid_later_by_a_delayed_method_is_processing_then_paid_with_its_card_kept() {
    let store = MemoryStore::new();
    let transport = FakeTransport::new(stripe);
    declined_charge(&store, &transport);
    let unpaid = recovery_event(
        "evt_c",
        EventKind::CheckoutSessionCompleted.as_str(),
        NOW + 5,
        "cs_r",
        "complete",
        "unpaid",
    );
    run(&store, &transport, |s| block_on(handle(&unpaid, s))).unwrap();
    let stored = stored_charge(&store);
    assert_eq!(
        (
            stored.paid,
            stored.recovery.as_ref().unwrap().status.as_str()
        ),
        (false, "processing")
    );
    let paid = recovery_event(
        "evt_s",
        EventKind::CheckoutSessionAsyncPaymentSucceeded.as_str(),
        NOW + 90,
        "cs_r",
        "complete",
        "paid",
    );
    run(&store, &transport, |s| block_on(handle(&paid, s))).unwrap();
    let stored = stored_charge(&store);
    assert_eq!(
        (stored.status.as_str(), stored.paid),
        (billing::RECOVERED, true)
    );
    let customer = block_on(keys::customer("cus_new").load(&store))
        .unwrap()
        .unwrap();
    assert_eq!(customer.default_payment_method.as_deref(), Some("pm_new"));
}

#[test]
fn a_failed_recovery_is_renewed_at_once_and_an_expired_one_by_the_repeated_charge() {
    for (kind, status) in [
        (
            EventKind::CheckoutSessionAsyncPaymentFailed.as_str(),
            "failed",
        ),
        (EventKind::CheckoutSessionExpired.as_str(), "expired"),
    ] {
        let store = MemoryStore::new();
        let transport = FakeTransport::new(stripe);
        let request = declined_charge(&store, &transport);
        let (session_status, payment_status) = match status {
            "failed" => ("complete", "unpaid"),
            _ => ("expired", "unpaid"),
        };
        let moved = recovery_event(
            "evt_m",
            kind,
            NOW + 50,
            "cs_r",
            session_status,
            payment_status,
        );
        assert_eq!(
            run(&store, &transport, |s| block_on(handle(&moved, s))).unwrap(),
            Outcome::Handled
        );
        let stored = stored_charge(&store);
        assert!(!stored.paid);
        let renewed = if status == "failed" {
            // A delayed payment that failed is a charge that failed later: the next recovery
            // session is made at once, and the customer told its link.
            assert_eq!(stored.recovery.as_ref().unwrap().status, "open", "{kind}");
            stored
        } else {
            // An expired link waits for the app: its repeat makes the next one.
            assert_eq!(stored.recovery.as_ref().unwrap().status, status, "{kind}");
            charge(&store, &transport, &request).unwrap()
        };
        // Renewed from the record, not by asking Stripe for the PaymentIntent again: by the
        // time a link expires (24 h) Stripe has forgotten the key and would charge anew.
        let intents = transport
            .calls()
            .iter()
            .filter(|c| c.as_str() == "POST /v1/payment_intents")
            .count();
        assert_eq!(intents, 1, "{kind}");
        let recovery = renewed.recovery.clone().unwrap();
        assert_eq!(
            (
                recovery.checkout_session.as_str(),
                recovery.status.as_str(),
                recovery.attempt
            ),
            ("cs_r2", "open", 2),
            "{kind}"
        );
        assert_eq!(
            renewed.answer().1["recovery_url"],
            "https://checkout.test/cs_r2"
        );
        let keys: Vec<_> = writes(&transport)
            .into_iter()
            .map(|(path, key, _)| (path, key))
            .collect();
        assert!(
            keys.contains(&(
                "/v1/checkout/sessions".into(),
                Some("pi_1:recovery.2".into())
            )),
            "{keys:?}"
        );
        assert!(
            block_on(keys::notification("pi_1.2.charge.recovery").load(&store))
                .unwrap()
                .is_some(),
            "the renewed link is notified"
        );
        // A late event of the replaced session changes nothing.
        let stale = recovery_event(
            "evt_x",
            EventKind::CheckoutSessionExpired.as_str(),
            NOW + 60,
            "cs_r",
            "expired",
            "unpaid",
        );
        run(&store, &transport, |s| block_on(handle(&stale, s))).unwrap();
        assert_eq!(
            stored_charge(&store).recovery.unwrap().checkout_session,
            "cs_r2"
        );
        // Repeating once more while the new one is open makes nothing new.
        let again = charge(&store, &transport, &request).unwrap();
        assert_eq!(again.recovery.unwrap().checkout_session, "cs_r2");
    }
}

#[test]
fn the_success_page_of_an_unpaid_recovery_says_processing() {
    let store = MemoryStore::new();
    let transport = FakeTransport::new(|request| {
        if request.url.contains("/v1/checkout/sessions/cs_slow?") {
            return Ok(FakeTransport::json(200, &serde_json::json!({
                "id": "cs_slow", "mode": "payment", "status": "complete", "payment_status": "unpaid",
                "payment_intent": null, "customer": "cus_new", "amount_total": 1099, "currency": "usd",
                "metadata": {"payment_intent": "pi_1", "created_by": "stripe-edge-webhooks"}
            }).to_string()));
        }
        stripe(request)
    });
    let view = run(&store, &transport, |s| {
        block_on(complete_from_success_page(s, "cs_slow"))
    })
    .unwrap();
    assert_eq!(
        view,
        SuccessView::PaymentProcessing {
            session: "cs_slow".into(),
            amount: Some(Money {
                amount: 1099,
                currency: "usd".into()
            }),
        }
    );
    assert!(view.render().contains("Payment processing"));
}

#[test]
fn a_setup_whose_intent_did_not_succeed_saves_no_card() {
    let store = MemoryStore::new();
    let transport =
        FakeTransport::new(|request| {
            if request.url.contains("/v1/setup_intents/seti_1") {
                return Ok(FakeTransport::json(200, &serde_json::json!({
                "id": "seti_1", "object": "setup_intent", "status": "requires_payment_method",
                "customer": null, "payment_method": "pm_1"
            }).to_string()));
            }
            stripe(request)
        });
    let error = run(&store, &transport, |s| {
        block_on(handle(&setup_completed("evt_1"), s))
    })
    .unwrap_err();
    assert_eq!(error.error.code(), "setup_not_succeeded");
    assert!(!error.is_retryable());
    assert!(block_on(keys::customer("cus_new").load(&store))
        .unwrap()
        .is_none());
    assert_eq!(writes(&transport).len(), 0, "no customer, no attach");
}

#[test]
fn the_webhook_records_the_card_brand_and_last4_from_the_expanded_setup_intent() {
    let store = MemoryStore::new();
    let transport = FakeTransport::new(|request| {
        if request
            .url
            .contains("/v1/setup_intents/seti_1?expand[]=payment_method")
        {
            return Ok(FakeTransport::json(200, &serde_json::json!({
                "id": "seti_1", "object": "setup_intent", "status": "succeeded", "customer": null,
                "payment_method": {"id": "pm_1", "object": "payment_method", "customer": null,
                    "card": {"brand": "amex", "last4": "0005"}}
            }).to_string()));
        }
        if request.url.contains("/attach") {
            // An attach answer without card details: the expanded SetupIntent's are kept.
            return Ok(FakeTransport::json(
                200,
                r#"{"id":"pm_1","customer":"cus_new"}"#,
            ));
        }
        stripe(request)
    });
    run(&store, &transport, |s| {
        block_on(handle(&setup_completed("evt_1"), s))
    })
    .unwrap();
    let customer = block_on(keys::customer("cus_new").load(&store))
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            customer.card_brand.as_deref(),
            customer.card_last4.as_deref()
        ),
        (Some("amex"), Some("0005"))
    );
}

/// Stripe that makes a new PaymentIntent for every create, whatever its key: what Stripe does
/// once it pruned a key (docs.stripe.com/idempotency: keys may be removed "after they're at
/// least 24 hours old", and a reused pruned key makes a new request). `status` is what a
/// create answers; the PaymentIntents made are numbered `pi_made1`, `pi_made2`, …
fn forgetful_stripe(status: &'static str) -> FakeTransport {
    let made = std::cell::Cell::new(0);
    FakeTransport::new(move |request| {
        if request.method == Method::Post && path(request) == "/v1/payment_intents" {
            made.set(made.get() + 1);
            return Ok(FakeTransport::json(
                200,
                &serde_json::json!({
                    "id": format!("pi_made{}", made.get()), "status": status, "amount": 1099,
                    "currency": "usd", "customer": "cus_new", "payment_method": "pm_1"
                })
                .to_string(),
            ));
        }
        stripe(request)
    })
}

fn creates(transport: &FakeTransport) -> usize {
    transport
        .calls()
        .iter()
        .filter(|c| c.as_str() == "POST /v1/payment_intents")
        .count()
}

#[test]
fn a_repeat_is_answered_from_the_records_at_any_age_never_by_a_second_create() {
    for status in ["succeeded", "processing"] {
        let store = MemoryStore::new();
        save_customer(&store, "pm_1");
        let transport = forgetful_stripe(status);
        let request = charge_request(serde_json::json!({
            "customer": "cus_new", "amount": 1099, "idempotency_key": "order-once"
        }));
        let first = charge(&store, &transport, &request).unwrap();
        // Days later (the pin lives 30 days), after Stripe forgot its key.
        let later = charge(&store, &transport, &request).unwrap();
        assert_eq!(
            (later.id.as_str(), creates(&transport)),
            ("pi_made1", 1),
            "{status}"
        );
        assert_eq!(later, first);
        // Even when the charge's record is gone, the PaymentIntent is read, not made again.
        block_on(store.delete("charge:pi_made1")).unwrap();
        let transport = FakeTransport::new(move |request| {
            if request.method == Method::Get
                && path(request).starts_with("/v1/payment_intents/pi_made1")
            {
                return Ok(FakeTransport::json(
                    200,
                    &serde_json::json!({
                        "id": "pi_made1", "status": status, "amount": 1099, "currency": "usd",
                        "customer": "cus_new", "payment_method": {"id": "pm_1", "type": "card"}
                    })
                    .to_string(),
                ));
            }
            panic!("only a GET of the PaymentIntent: {}", path(request))
        });
        let read = charge(&store, &transport, &request).unwrap();
        assert_eq!(
            (read.id.as_str(), read.status.as_str()),
            ("pi_made1", status)
        );
        assert_eq!(stored_charge_of(&store, "pi_made1"), read, "recorded again");
    }
}

fn stored_charge_of(store: &impl Store, pi: &str) -> ChargeRecord {
    block_on(keys::charge(pi).load(store)).unwrap().unwrap()
}

#[test]
fn a_key_used_for_another_customer_or_amount_is_409_and_touches_nothing() {
    let store = MemoryStore::new();
    let transport = FakeTransport::new(stripe);
    // Customer A's charge is declined and its recovery expires.
    let request = declined_charge(&store, &transport);
    let expired = recovery_event(
        "evt_e",
        EventKind::CheckoutSessionExpired.as_str(),
        NOW + 50,
        "cs_r",
        "expired",
        "unpaid",
    );
    run(&store, &transport, |s| block_on(handle(&expired, s))).unwrap();
    let before = (
        stored_charge(&store),
        block_on(store.list("notification:", 100, None)).unwrap(),
    );
    let calls = transport.calls().len();
    for (body, field) in [
        (
            serde_json::json!({"customer": "cus_other", "amount": 999, "idempotency_key": "order-9"}),
            "customer",
        ),
        (
            serde_json::json!({"customer": "cus_new", "amount": 999, "idempotency_key": "order-9"}),
            "amount",
        ),
        (
            serde_json::json!({"customer": "cus_new", "amount": 1099, "currency": "eur", "idempotency_key": "order-9"}),
            "currency",
        ),
        (
            serde_json::json!({"customer": "cus_new", "amount": 1099, "idempotency_key": "order-9", "payment_method": "pm_other"}),
            "payment_method",
        ),
    ] {
        let error = charge(&store, &transport, &charge_request(body)).unwrap_err();
        assert_eq!(
            (error.status(), error.code(), error.field()),
            (409, "idempotency_key_reused", Some(field))
        );
    }
    assert_eq!(transport.calls().len(), calls, "no Stripe call");
    let after = (
        stored_charge(&store),
        block_on(store.list("notification:", 100, None)).unwrap(),
    );
    assert_eq!(after, before, "A's charge and notifications untouched");
    // A's own repeat still renews A's recovery.
    let renewed = charge(&store, &transport, &request).unwrap();
    assert_eq!(renewed.recovery.unwrap().checkout_session, "cs_r2");
}

#[test]
fn a_charge_that_fails_later_is_recovered_once_like_a_decline() {
    let store = MemoryStore::new();
    save_customer(&store, "pm_1");
    let transport = forgetful_stripe("processing");
    let request = charge_request(serde_json::json!({
        "customer": "cus_new", "amount": 1099, "idempotency_key": "order-bank"
    }));
    let processing = charge(&store, &transport, &request).unwrap();
    assert_eq!((processing.answer().0, processing.paid), (202, false));
    // Days later the bank debit fails (payment_intent.payment_failed), delivered twice
    // (a redelivery, then catch-up under the same event id is deduped; another id here).
    let failed = |id: &str| {
        event(
            id,
            EventKind::PaymentIntentPaymentFailed.as_str(),
            NOW + 86_400,
            serde_json::json!({
                "id": "pi_made1", "object": "payment_intent", "status": "requires_payment_method",
                "amount": 1099, "currency": "usd", "customer": "cus_new", "payment_method": "pm_1",
                "last_payment_error": {"type": "card_error", "code": "payment_method_provider_decline",
                    "message": "The payment was declined by the bank."}
            }),
        )
    };
    for id in ["evt_f1", "evt_f2"] {
        let outcome = run(&store, &transport, |s| block_on(handle(&failed(id), s))).unwrap();
        assert_eq!(outcome, Outcome::Handled);
    }
    let record = stored_charge_of(&store, "pi_made1");
    assert_eq!(record.answer().0, 402);
    let sessions: Vec<_> = writes(&transport)
        .into_iter()
        .filter(|(path, _, _)| path == "/v1/checkout/sessions")
        .collect();
    assert_eq!(sessions.len(), 1, "one recovery session");
    assert_eq!(sessions[0].1.as_deref(), Some("pi_made1:recovery"));
    assert!(sessions[0]
        .2
        .as_deref()
        .unwrap()
        .contains("success_url=https%3A%2F%2Fapp.test%2Fsuccess"));
    let notes = block_on(store.list("notification:", 100, None)).unwrap();
    assert_eq!(
        notes.keys,
        ["notification:pi_made1.charge.recovery"],
        "one notification"
    );
    let note = block_on(keys::notification("pi_made1.charge.recovery").load(&store))
        .unwrap()
        .unwrap();
    assert_eq!(note.payload["code"], "payment_method_provider_decline");
    // The caller's repeat answers the decline with the link, and makes nothing new.
    let repeat = charge(&store, &transport, &request).unwrap();
    assert_eq!(
        repeat.answer().1["recovery_url"],
        "https://checkout.test/cs_r"
    );
    assert_eq!(creates(&transport), 1);
}

#[test]
fn a_charge_refused_for_its_saved_method_ends_in_a_recovery_not_a_bare_400() {
    let store = MemoryStore::new();
    save_customer(&store, "pm_sepa");
    let transport = FakeTransport::new(|request| {
        let body = request.body.as_deref().unwrap_or("");
        if path(request) == "/v1/payment_intents" && body.contains("payment_method=pm_sepa") {
            return Ok(FakeTransport::json(
                400,
                r#"{"error":{"type":"invalid_request_error","code":"payment_intent_incompatible_payment_method","param":"payment_method","message":"The PaymentMethod cannot be used in usd."}}"#,
            ));
        }
        if path(request) == "/v1/payment_intents" {
            assert!(
                !body.contains("confirm"),
                "the holder is not confirmed: {body}"
            );
            assert_eq!(
                request.header("idempotency-key"),
                Some("charge:cus_new:order-sepa:unconfirmed")
            );
            return Ok(FakeTransport::json(200, &serde_json::json!({
                "id": "pi_1", "status": "requires_payment_method", "amount": 1099, "currency": "usd",
                "customer": "cus_new", "payment_method": null
            }).to_string()));
        }
        stripe(request)
    });
    let request = charge_request(serde_json::json!({
        "customer": "cus_new", "amount": 1099, "idempotency_key": "order-sepa"
    }));
    let record = charge(&store, &transport, &request).unwrap();
    let (status, body) = record.answer();
    assert_eq!(status, 402);
    assert_eq!(
        body["error"]["code"],
        "payment_intent_incompatible_payment_method"
    );
    assert_eq!(body["recovery_url"], "https://checkout.test/cs_r");
    assert!(
        block_on(keys::notification("pi_1.charge.recovery").load(&store))
            .unwrap()
            .is_some()
    );
    // A repeat is answered from the records.
    let calls = transport.calls().len();
    assert_eq!(charge(&store, &transport, &request).unwrap(), record);
    assert_eq!(transport.calls().len(), calls);
}

#[test]
fn a_recovery_paid_with_a_bank_debit_does_not_become_the_default() {
    let store = MemoryStore::new();
    let transport = FakeTransport::new(|request| {
        if path(request).starts_with("/v1/payment_intents/pi_new") {
            return Ok(FakeTransport::json(200, &serde_json::json!({
                "id": "pi_new", "status": "succeeded", "amount": 1099, "currency": "usd",
                "customer": "cus_new", "payment_method": {"id": "pm_bank", "object": "payment_method",
                    "type": "us_bank_account", "customer": "cus_new", "card": null}
            }).to_string()));
        }
        stripe(request)
    });
    declined_charge(&store, &transport);
    let paid = recovery_event(
        "evt_p",
        EventKind::CheckoutSessionCompleted.as_str(),
        NOW + 5,
        "cs_r",
        "complete",
        "paid",
    );
    run(&store, &transport, |s| block_on(handle(&paid, s))).unwrap();
    assert!(stored_charge(&store).paid);
    let customer = block_on(keys::customer("cus_new").load(&store))
        .unwrap()
        .unwrap();
    assert_eq!(
        customer.default_payment_method.as_deref(),
        Some("pm_decline")
    );
}

#[test]
fn a_caller_keys_payment_method_is_pinned_once_and_never_replaced() {
    let store = MemoryStore::new();
    let transport = FakeTransport::new(stripe);
    save_customer(&store, "pm_1");
    let first = charge_request(serde_json::json!({
        "customer": "cus_new", "amount": 1099, "idempotency_key": "order-pin"
    }));
    charge(&store, &transport, &first).unwrap();
    let pin = || {
        block_on(keys::charge_key("order-pin").load(&store))
            .unwrap()
            .unwrap()
    };
    assert_eq!(
        (
            pin().payment_method.as_str(),
            pin().payment_intent.as_deref()
        ),
        ("pm_1", Some("pi_ok"))
    );
    assert_eq!(
        (
            pin().customer.as_deref(),
            pin().amount,
            pin().currency.as_deref()
        ),
        (Some("cus_new"), Some(1099), Some("usd")),
        "the whole request is recorded"
    );
    // The customer's default changes: the key's repeat is still the same charge.
    save_customer(&store, "pm_changed");
    let again = charge(&store, &transport, &first).unwrap();
    assert_eq!((again.id.as_str(), creates(&transport)), ("pi_ok", 1));
    assert_eq!(pin().payment_method, "pm_1");
}

/// Stripe as in [`stripe`], which also keeps `event` (`GET /v1/events/{id}`).
fn stripe_keeping(event: serde_json::Value) -> FakeTransport {
    FakeTransport::new(move |request| {
        let id = event["id"].as_str().unwrap_or("");
        if path(request) == format!("/v1/events/{id}") {
            Ok(FakeTransport::json(200, &event.to_string()))
        } else {
            stripe(request)
        }
    })
}

/// A transport in dry mode, as `FetchTransport(Some(log))` is in the worker: the log first.
struct DryFake<'a>(&'a DryLog, &'a FakeTransport);

impl Transport for DryFake<'_> {
    async fn send(
        &self,
        request: &HttpRequest,
        timeout_ms: u64,
    ) -> Result<HttpResponse, SendFailure> {
        self.0.request(request)?;
        self.1.send(request, timeout_ms).await
    }
    async fn sleep(&self, ms: u64) {
        self.1.sleep(ms).await
    }
    fn now_ms(&self) -> f64 {
        self.1.now_ms()
    }
    fn random(&self) -> f64 {
        self.1.random()
    }
}

/// The dry run of `event_id` over the worker's store type (`EntityStore`, KV alone) in its
/// dry mode, over `store`.
fn preview(store: &MemoryStore, transport: &FakeTransport, event_id: &str) -> Preview {
    let log = DryLog::default();
    let dry = EntityStore::<MemoryTable, _>::replica_only(store, NOW).dry(&log);
    let config = config();
    let trace = Trace::new();
    let fake = DryFake(&log, transport);
    let services = Services::new(&dry, &fake, &config, NOW, &trace).for_webhook();
    block_on(dry_run::preview(&services, &log, event_id)).unwrap()
}

#[test]
fn a_replays_dry_run_lists_the_handlers_first_write_and_carries_nothing_out() {
    let store = MemoryStore::new();
    let transport = stripe_keeping(event_json(
        "evt_1",
        "checkout.session.completed",
        NOW,
        completed("cs_1", None, "seti_1"),
    ));
    let preview = preview(&store, &transport, "evt_1");
    assert_eq!(preview.event_type, "checkout.session.completed");
    // The handler's own decision: create the customer first. Nothing after it is guessed.
    assert_eq!(preview.sends, ["POST https://api.stripe.com/v1/customers"]);
    assert!(
        preview.ends.contains("step create_customer"),
        "{}",
        preview.ends
    );
    assert_eq!(
        preview.reads,
        [
            "GET https://api.stripe.com/v1/events/evt_1",
            "GET https://api.stripe.com/v1/setup_intents/seti_1"
        ]
    );
    // Only reads reached Stripe, and nothing was stored.
    assert_eq!(
        transport.calls(),
        ["GET /v1/events/evt_1", "GET /v1/setup_intents/seti_1"]
    );
    assert!(block_on(store.list("", 10, None)).unwrap().keys.is_empty());
}

#[test]
fn a_dry_run_that_needs_no_stripe_write_lists_its_store_writes_and_a_done_event_is_left() {
    let store = MemoryStore::new();
    let transport = stripe_keeping(event_json(
        "evt_1",
        "checkout.session.completed",
        NOW,
        completed("cs_c", Some("cus_given"), "seti_c"),
    ));
    let preview_of = preview(&store, &transport, "evt_1");
    assert_eq!(preview_of.ends, "A replay would handle it.");
    assert!(preview_of.sends.is_empty());
    assert!(
        preview_of
            .writes
            .iter()
            .any(|w| w == "put customer:cus_given"),
        "{:?}",
        preview_of.writes
    );
    assert_eq!(
        block_on(keys::customer("cus_given").load(&store)).unwrap(),
        None
    );

    // Handled for real; the dry run then says a replay changes nothing, and asks Stripe nothing.
    let record = serde_json::json!({"version": 1, "id": "evt_1", "type": "checkout.session.completed",
        "created": NOW, "livemode": false, "outcome": "handled", "recorded_at": NOW});
    block_on(store.put("event:evt_1", &record.to_string(), None)).unwrap();
    let before = transport.calls().len();
    let unchanged = preview(&store, &transport, "evt_1");
    assert!(unchanged.unchanged && unchanged.ends.contains("changes nothing"));
    assert_eq!(transport.calls().len(), before);
}
