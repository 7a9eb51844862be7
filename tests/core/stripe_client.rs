//! The Stripe client against a scripted transport with a virtual clock: the exact requests it
//! sends, what it retries and how long it waits, and how it decodes Stripe's answers.
//! The same behaviour is checked against the local stand-in under real workerd in e2e/.

use crate::helpers::config_with;
use pollster::block_on;
use stripe_edge_webhooks::config::{Config, STRIPE_SECRET_KEY};
use stripe_edge_webhooks::http::{HttpResponse, Method, Transport};
use stripe_edge_webhooks::objects::{CheckoutSession, Customer, Metadata, PaymentIntent};
use stripe_edge_webhooks::stripe::{
    calls, Form, IdempotencyKey, RetryPolicy, StripeClient, StripeError, StripeRequest,
};
use stripe_edge_webhooks::testing::{FakeTransport, Scripted};

const KEY: &str = "sk_test_client_tests_9f8e7d";
const BASE: &str = "http://127.0.0.1:12111";
const VERSION: &str = "2026-10-28.endive";

fn respond(status: u16, body: &str) -> Scripted {
    respond_with(status, body, &[])
}

fn respond_with(status: u16, body: &str, headers: &[(&str, &str)]) -> Scripted {
    let mut all = vec![("request-id".to_owned(), format!("req_{status}"))];
    all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Scripted::Respond(HttpResponse {
        status,
        headers: all,
        body: body.to_owned(),
        truncated: false,
    })
}

const CUSTOMER: &str = r#"{"id":"cus_123","object":"customer","email":"a@example.com"}"#;
const SERVER_ERROR: &str =
    r#"{"error":{"type":"api_error","message":"An unknown error occurred"}}"#;

fn config() -> Config {
    config_with(&[(STRIPE_SECRET_KEY, KEY)])
}

fn customer_request() -> StripeRequest {
    let mut metadata = Metadata::new();
    metadata.insert("source".into(), "tests".into());
    calls::create_customer(
        Some("a@example.com"),
        &metadata,
        IdempotencyKey::for_event("evt_1", "customer"),
    )
}

fn send<T: serde::de::DeserializeOwned>(
    transport: &FakeTransport,
    request: &StripeRequest,
) -> Result<stripe_edge_webhooks::stripe::Reply<T>, StripeError> {
    send_with(transport, RetryPolicy::default(), request)
}

fn send_with<T: serde::de::DeserializeOwned>(
    transport: &FakeTransport,
    policy: RetryPolicy,
    request: &StripeRequest,
) -> Result<stripe_edge_webhooks::stripe::Reply<T>, StripeError> {
    let config = config();
    let client = StripeClient::new(
        transport,
        BASE,
        VERSION,
        config.stripe_secret_key().unwrap(),
    )
    .with_policy(policy);
    block_on(client.send::<T>(request))
}

#[test]
fn a_post_carries_credentials_version_idempotency_key_and_a_form_body() {
    let transport = FakeTransport::scripted(vec![respond(200, CUSTOMER)]);
    let reply = send::<Customer>(&transport, &customer_request()).unwrap();
    assert_eq!(reply.object.id, "cus_123");
    assert_eq!(
        (reply.attempts, reply.request_id.as_deref()),
        (1, Some("req_200"))
    );

    let sent = transport.sent();
    let request = &sent[0];
    assert_eq!(request.method, Method::Post);
    assert_eq!(request.url, "http://127.0.0.1:12111/v1/customers");
    assert_eq!(
        request.header("Authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(request.header("Stripe-Version"), Some(VERSION));
    assert_eq!(request.header("Idempotency-Key"), Some("evt_1:customer"));
    assert_eq!(
        request.header("Content-Type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        request.body.as_deref(),
        Some("email=a%40example.com&metadata[source]=tests")
    );
}

#[test]
fn a_get_has_its_parameters_in_the_query_and_no_idempotency_key() {
    let body = r#"{"id":"cs_1","object":"checkout.session","mode":"setup","setup_intent":{"id":"seti_1","status":"succeeded","payment_method":"pm_1"}}"#;
    let transport = FakeTransport::scripted(vec![respond(200, body)]);
    let reply =
        send::<CheckoutSession>(&transport, &calls::retrieve_checkout_session("cs_1")).unwrap();
    assert_eq!(reply.object.setup_intent.unwrap().id(), "seti_1");
    let request = &transport.sent()[0];
    assert_eq!(request.method, Method::Get);
    assert_eq!(
        request.url,
        "http://127.0.0.1:12111/v1/checkout/sessions/cs_1?expand[]=setup_intent.payment_method&expand[]=payment_intent.payment_method"
    );
    assert_eq!(
        (request.header("Idempotency-Key"), request.body.as_deref()),
        (None, None)
    );
}

#[test]
fn a_post_without_an_idempotency_key_is_never_sent() {
    let transport = FakeTransport::scripted(vec![]);
    let request = StripeRequest {
        idempotency_key: None,
        ..customer_request()
    };
    assert_eq!(
        send::<Customer>(&transport, &request).unwrap_err(),
        StripeError::InvalidRequest("a POST needs an idempotency key")
    );
    assert!(transport.sent().is_empty());
}

#[test]
fn a_500_then_success_is_retried_with_the_same_request_and_key() {
    let transport =
        FakeTransport::scripted(vec![respond(500, SERVER_ERROR), respond(200, CUSTOMER)]);
    let reply = send::<Customer>(&transport, &customer_request()).unwrap();
    assert_eq!(reply.attempts, 2);
    let sent = transport.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0], sent[1],
        "every retry is byte-for-byte the same request"
    );
    assert_eq!(sent[1].header("Idempotency-Key"), Some("evt_1:customer"));
    assert_eq!(
        transport.sleeps(),
        vec![187],
        "first backoff: 125..250 ms, jittered"
    );
}

#[test]
fn statuses_that_retry_and_statuses_that_do_not() {
    for (status, headers, retried) in [
        (429, vec![], true),
        (409, vec![], true),
        (502, vec![], true),
        (503, vec![("stripe-should-retry", "false")], false),
        (400, vec![("stripe-should-retry", "true")], true),
        (400, vec![], false),
        (401, vec![], false),
        (403, vec![], false),
        (404, vec![], false),
    ] {
        let body = format!(
            r#"{{"error":{{"type":"invalid_request_error","message":"status {status}"}}}}"#
        );
        let transport = FakeTransport::scripted(vec![
            respond_with(status, &body, &headers),
            respond(200, CUSTOMER),
        ]);
        let result = send::<Customer>(&transport, &customer_request());
        assert_eq!(result.is_ok(), retried, "{status} {headers:?}");
        assert_eq!(
            transport.sent().len(),
            if retried { 2 } else { 1 },
            "{status} {headers:?}"
        );
    }
}

#[test]
fn retries_stop_after_the_attempt_limit_with_the_last_error() {
    let transport = FakeTransport::scripted(vec![
        respond(500, SERVER_ERROR),
        respond(500, SERVER_ERROR),
        respond(503, SERVER_ERROR),
    ]);
    let error = send::<Customer>(&transport, &customer_request()).unwrap_err();
    assert_eq!(transport.sent().len(), 3);
    assert_eq!(transport.sleeps(), vec![187, 375]);
    let api = error.api_error().unwrap();
    assert_eq!((api.status, api.error_type.as_str()), (503, "api_error"));
    assert!(error.is_transient());
}

#[test]
fn a_429_that_persists_is_returned_decoded_after_the_last_attempt() {
    let body = r#"{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests hit the API too quickly."}}"#;
    let transport = FakeTransport::scripted(vec![
        respond(429, body),
        respond(429, body),
        respond(429, body),
    ]);
    let error = send::<Customer>(&transport, &customer_request()).unwrap_err();
    let StripeError::Api(api) = &error else {
        panic!("{error:?}")
    };
    assert_eq!((api.status, api.code.as_deref()), (429, Some("rate_limit")));
    assert_eq!(transport.sent().len(), 3);
    assert!(error.is_transient());
}

#[test]
fn network_errors_are_retried() {
    let transport = FakeTransport::scripted(vec![Scripted::Fail(10), respond(200, CUSTOMER)]);
    assert_eq!(
        send::<Customer>(&transport, &customer_request())
            .unwrap()
            .attempts,
        2
    );
    let transport = FakeTransport::scripted(vec![
        Scripted::Fail(10),
        Scripted::Fail(10),
        Scripted::Fail(10),
    ]);
    let error = send::<Customer>(&transport, &customer_request()).unwrap_err();
    assert_eq!(error, StripeError::Network("connection reset".into()));
    assert!(error.is_transient());
}

#[test]
fn the_overall_deadline_bounds_attempts_and_waits() {
    let policy = RetryPolicy {
        attempt_timeout_ms: 4_000,
        deadline_ms: 10_000,
        max_attempts: 5,
        ..Default::default()
    };
    let transport = FakeTransport::scripted(vec![
        Scripted::Hang,
        Scripted::Hang,
        Scripted::Hang,
        Scripted::Hang,
    ]);
    let error = send_with::<Customer>(&transport, policy, &customer_request()).unwrap_err();
    assert!(matches!(error, StripeError::Deadline { .. }), "{error:?}");
    assert!(
        transport.now_ms() <= 10_000.0 + 10.0,
        "ran until {}",
        transport.now_ms()
    );
    let timeouts: Vec<u64> = transport.timeouts();
    assert_eq!(timeouts[0], 4_000);
    assert!(timeouts.iter().skip(1).all(|t| *t <= 4_000), "{timeouts:?}");
    assert!(error.is_transient());
}

#[test]
fn a_402_is_a_card_decline_with_the_payment_intent_embedded() {
    let body = r#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds.","param":"","payment_intent":{"id":"pi_1","object":"payment_intent","status":"requires_payment_method","amount":1099,"currency":"usd","customer":"cus_1","payment_method":"pm_1","metadata":{}}}}"#;
    let transport = FakeTransport::scripted(vec![respond(402, body)]);
    let request = calls::create_off_session_payment_intent(
        &calls::OffSessionCharge {
            customer: "cus_1",
            payment_method: "pm_1",
            amount: 1099,
            currency: "usd",
            description: Some("Order 42"),
            metadata: &Metadata::new(),
        },
        IdempotencyKey::scoped("charge", "order-42"),
    );
    let error = send::<PaymentIntent>(&transport, &request).unwrap_err();
    let StripeError::CardDeclined(declined) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(declined.status, 402);
    assert_eq!(declined.code.as_deref(), Some("card_declined"));
    assert_eq!(declined.decline_code.as_deref(), Some("insufficient_funds"));
    assert_eq!(declined.request_id.as_deref(), Some("req_402"));
    let pi = declined.payment_intent.as_ref().unwrap();
    assert_eq!(
        (pi.id.as_str(), pi.status.as_str()),
        ("pi_1", "requires_payment_method")
    );
    assert!(!error.is_transient());
    assert_eq!(transport.sent().len(), 1, "a decline is never retried");
    assert_eq!(
        transport.sent()[0].body.as_deref(),
        Some("amount=1099&currency=usd&customer=cus_1&payment_method=pm_1&automatic_payment_methods[enabled]=true&automatic_payment_methods[allow_redirects]=never&off_session=true&confirm=true&description=Order+42")
    );
}

#[test]
fn errors_400_401_404_decode_with_type_code_and_param() {
    for (status, body, error_type, code) in [
        (
            400,
            r#"{"error":{"type":"invalid_request_error","code":"parameter_missing","param":"currency","message":"Missing required param: currency."}}"#,
            "invalid_request_error",
            Some("parameter_missing"),
        ),
        (
            401,
            r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****"}}"#,
            "invalid_request_error",
            None,
        ),
        (
            404,
            r#"{"error":{"type":"invalid_request_error","code":"resource_missing","param":"id","message":"No such customer: 'cus_x'"}}"#,
            "invalid_request_error",
            Some("resource_missing"),
        ),
        (
            400,
            r#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters they were first used with."}}"#,
            "idempotency_error",
            None,
        ),
    ] {
        let transport = FakeTransport::scripted(vec![respond(status, body)]);
        let error = send::<Customer>(&transport, &customer_request()).unwrap_err();
        let StripeError::Api(api) = &error else {
            panic!("{status}: {error:?}")
        };
        assert_eq!(
            (api.status, api.error_type.as_str(), api.code.as_deref()),
            (status, error_type, code)
        );
        assert!(!error.is_transient());
    }
}

#[test]
fn malformed_bodies_are_reported_and_a_2xx_one_is_not_retried() {
    let transport = FakeTransport::scripted(vec![respond(200, "<html>oops")]);
    let error = send::<Customer>(&transport, &customer_request()).unwrap_err();
    assert!(
        matches!(error, StripeError::Malformed { status: 200, .. }),
        "{error:?}"
    );
    assert_eq!(
        transport.sent().len(),
        1,
        "the write may have happened: not retried"
    );

    let transport =
        FakeTransport::scripted(vec![respond(500, "{\"error\":"), respond(200, CUSTOMER)]);
    assert_eq!(
        send::<Customer>(&transport, &customer_request())
            .unwrap()
            .attempts,
        2
    );

    let transport = FakeTransport::scripted(vec![respond(200, r#"{"id":"cus_1","email":5}"#)]);
    assert!(matches!(
        send::<Customer>(&transport, &customer_request()),
        Err(StripeError::Malformed { .. })
    ));
}

#[test]
fn the_secret_key_and_the_form_body_never_show_in_debug_output() {
    let transport = FakeTransport::scripted(vec![]);
    let config = config();
    let client = StripeClient::new(
        &transport,
        BASE,
        VERSION,
        config.stripe_secret_key().unwrap(),
    );
    assert!(!format!("{client:?}").contains(KEY));
    let request = client.build(&customer_request()).unwrap();
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let printed = format!("{request:?}");
    assert!(!printed.contains(KEY), "{printed}");
    assert!(!printed.contains("a@example.com"), "{printed}");
    assert!(printed.contains("idempotency-key"), "{printed}");
}

#[test]
fn stripe_should_retry_false_makes_even_a_5xx_final_for_the_caller() {
    let transport = FakeTransport::scripted(vec![respond_with(
        503,
        SERVER_ERROR,
        &[("stripe-should-retry", "false")],
    )]);
    let error = send::<Customer>(&transport, &customer_request()).unwrap_err();
    assert_eq!(transport.sent().len(), 1);
    assert_eq!(error.api_error().map(|e| e.should_retry), Some(Some(false)));
    assert!(!error.is_transient(), "{error:?}");

    let transport = FakeTransport::scripted((0..3).map(|_| respond(503, SERVER_ERROR)).collect());
    let error = send::<Customer>(&transport, &customer_request()).unwrap_err();
    assert!(error.is_transient(), "{error:?}");
}

#[test]
fn a_request_the_runtime_cannot_build_is_final_and_not_a_network_error() {
    let transport = FakeTransport::scripted(vec![Scripted::Unsendable]);
    let error = send::<Customer>(&transport, &customer_request()).unwrap_err();
    assert_eq!(transport.sent().len(), 1);
    assert!(matches!(error, StripeError::Unsendable(_)), "{error:?}");
    assert!(!error.is_transient());
}

#[test]
fn every_call_builds_the_parameters_stripe_documents() {
    let metadata: Metadata = [("user_id".to_owned(), "u1".to_owned())].into();
    let key = || IdempotencyKey::for_event("evt_9", "step");
    let cases: Vec<(StripeRequest, &str, &str)> = vec![
        (
            calls::create_setup_session(
                &calls::SetupSession {
                    currency: "eur",
                    customer: Some("cus_1"),
                    success_url: "https://app.test/success?session_id={CHECKOUT_SESSION_ID}",
                    cancel_url: "https://app.test/",
                    metadata: &Metadata::new(),
                },
                key(),
            ),
            "/v1/checkout/sessions",
            "mode=setup&currency=eur&customer=cus_1&allowed_payment_method_types[]=card&success_url=https%3A%2F%2Fapp.test%2Fsuccess%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D&cancel_url=https%3A%2F%2Fapp.test%2F",
        ),
        (
            calls::create_payment_session(
                &calls::PaymentSession {
                    customer: "cus_1",
                    amount: 1099,
                    currency: "usd",
                    product_name: "Order 42",
                    success_url: "https://app.test/paid",
                    cancel_url: "https://app.test/",
                    metadata: &metadata,
                },
                key(),
            ),
            "/v1/checkout/sessions",
            "mode=payment&customer=cus_1&payment_method_options[card][setup_future_usage]=off_session&line_items[0][quantity]=1&line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount]=1099&line_items[0][price_data][product_data][name]=Order+42&success_url=https%3A%2F%2Fapp.test%2Fpaid&cancel_url=https%3A%2F%2Fapp.test%2F&metadata[user_id]=u1",
        ),
        (calls::attach_payment_method("pm_1", "cus_1", key()), "/v1/payment_methods/pm_1/attach", "customer=cus_1"),
        (
            // Holds a charge Stripe refused for its payment method: not confirmed, no method.
            calls::create_payment_intent_holder(
                &calls::HeldCharge { customer: "cus_1", amount: 1900, currency: "usd", description: Some("Order 43") },
                key(),
            ),
            "/v1/payment_intents",
            "amount=1900&currency=usd&customer=cus_1&automatic_payment_methods[enabled]=true&description=Order+43",
        ),
        (
            calls::create_verification_session("document", "u1", Some("https://app.test/back"), key()),
            "/v1/identity/verification_sessions",
            "type=document&metadata[user_id]=u1&return_url=https%3A%2F%2Fapp.test%2Fback",
        ),
        (
            calls::create_webhook_endpoint("https://w.test/webhook", &["checkout.session.completed", "payment_intent.succeeded"], VERSION, key()),
            "/v1/webhook_endpoints",
            "url=https%3A%2F%2Fw.test%2Fwebhook&enabled_events[]=checkout.session.completed&enabled_events[]=payment_intent.succeeded&api_version=2026-10-28.endive",
        ),
        (calls::retrieve_setup_intent("seti_1"), "/v1/setup_intents/seti_1", "expand[]=payment_method"),
        (calls::retrieve_payment_intent("pi_1"), "/v1/payment_intents/pi_1", "expand[]=payment_method"),
    ];
    for (request, path, body) in cases {
        assert_eq!(request.path, path);
        assert_eq!(request.form.encode(), body, "{path}");
        assert_eq!(
            request.idempotency_key.is_some(),
            request.method == Method::Post,
            "{path}"
        );
    }
    assert_eq!(Form::new().encode(), "");
}

#[test]
fn an_answer_larger_than_four_mib_is_not_read_and_is_a_bad_response_not_retried() {
    let huge = format!(
        r#"{{"id":"cus_1","object":"customer","description":"{}"}}"#,
        "x".repeat(5 << 20)
    );
    let transport = FakeTransport::scripted(vec![respond(200, &huge)]);
    let error = send::<Customer>(&transport, &customer_request()).unwrap_err();
    assert_eq!(
        transport.sent().len(),
        1,
        "a 2xx is not retried: the write may have happened"
    );
    assert_eq!(transport.sent()[0].max_response_bytes, 4 * 1024 * 1024);
    match error {
        StripeError::Malformed { status, reason } => {
            assert_eq!(status, 200);
            assert!(reason.contains("4 MiB"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
