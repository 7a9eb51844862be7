//! The calls this service makes (DESIGN.md, "Stripe"), one function per endpoint. Every
//! parameter sent must exist in Stripe's definitions for the pinned version. Pure.

use crate::objects::Metadata;

use super::*;

pub struct SetupSession<'a> {
    pub currency: &'a str,
    pub customer: Option<&'a str>,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    pub metadata: &'a Metadata,
}

pub fn create_setup_session(p: &SetupSession<'_>, key: IdempotencyKey) -> StripeRequest {
    let form = Form::new()
        .set("mode", "setup")
        .set("currency", p.currency)
        .set_opt("customer", p.customer)
        // Cards only. `payment_method_types` is gone from SessionCreateParams in stripe-node
        // 23.0.0 (the `endive` major, CHANGELOG); `allowed_payment_method_types` replaces it
        // (Checkout/Sessions.d.ts). `currency` stays: it is what Stripe needs in setup mode
        // without that filter, and it keeps the session valid if the filter is ever dropped.
        .set("allowed_payment_method_types[]", "card")
        .set("success_url", p.success_url)
        .set("cancel_url", p.cancel_url)
        .metadata(p.metadata);
    StripeRequest::post("/v1/checkout/sessions", form, key)
}

pub struct PaymentSession<'a> {
    pub customer: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub product_name: &'a str,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    pub metadata: &'a Metadata,
}

pub fn create_payment_session(p: &PaymentSession<'_>, key: IdempotencyKey) -> StripeRequest {
    let form = Form::new()
        .set("mode", "payment")
        .set("customer", p.customer)
        .set("line_items[0][quantity]", 1)
        .set("line_items[0][price_data][currency]", p.currency)
        .set("line_items[0][price_data][unit_amount]", p.amount)
        .set(
            "line_items[0][price_data][product_data][name]",
            p.product_name,
        )
        .set("success_url", p.success_url)
        .set("cancel_url", p.cancel_url)
        .metadata(p.metadata);
    StripeRequest::post("/v1/checkout/sessions", form, key)
}

pub fn retrieve_checkout_session(id: &str, expand_setup_intent: bool) -> StripeRequest {
    let query = if expand_setup_intent {
        Form::new().expand("setup_intent")
    } else {
        Form::new()
    };
    StripeRequest::get(format!("/v1/checkout/sessions/{id}"), query)
}

pub fn retrieve_setup_intent(id: &str) -> StripeRequest {
    StripeRequest::get(format!("/v1/setup_intents/{id}"), Form::new())
}

pub fn create_customer(
    email: Option<&str>,
    metadata: &Metadata,
    key: IdempotencyKey,
) -> StripeRequest {
    let form = Form::new().set_opt("email", email).metadata(metadata);
    StripeRequest::post("/v1/customers", form, key)
}

pub fn attach_payment_method(
    payment_method: &str,
    customer: &str,
    key: IdempotencyKey,
) -> StripeRequest {
    let form = Form::new().set("customer", customer);
    StripeRequest::post(
        format!("/v1/payment_methods/{payment_method}/attach"),
        form,
        key,
    )
}

pub struct OffSessionCharge<'a> {
    pub customer: &'a str,
    pub payment_method: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub description: Option<&'a str>,
    pub metadata: &'a Metadata,
}

pub fn create_off_session_payment_intent(
    p: &OffSessionCharge<'_>,
    key: IdempotencyKey,
) -> StripeRequest {
    let form = Form::new()
        .set("amount", p.amount)
        .set("currency", p.currency)
        .set("customer", p.customer)
        .set("payment_method", p.payment_method)
        .set("off_session", true)
        .set("confirm", true)
        // Cards only, which never redirect: with the account's automatic payment methods
        // Stripe refuses `confirm=true` without a `return_url` (PaymentIntents.d.ts,
        // AutomaticPaymentMethods.allow_redirects); `payment_method_types` is gone in endive.
        .set("allowed_payment_method_types[]", "card")
        .set_opt("description", p.description)
        .metadata(p.metadata);
    StripeRequest::post("/v1/payment_intents", form, key)
}

pub fn create_verification_session(
    kind: &str,
    user_id: &str,
    return_url: Option<&str>,
    key: IdempotencyKey,
) -> StripeRequest {
    let form = Form::new()
        .set("type", kind)
        .set("metadata[user_id]", user_id)
        .set_opt("return_url", return_url);
    StripeRequest::post("/v1/identity/verification_sessions", form, key)
}

pub fn create_webhook_endpoint(
    url: &str,
    events: &[&str],
    api_version: &str,
    key: IdempotencyKey,
) -> StripeRequest {
    let form = events
        .iter()
        .fold(Form::new().set("url", url), |form, event| {
            form.set("enabled_events[]", event)
        })
        .set("api_version", api_version);
    StripeRequest::post("/v1/webhook_endpoints", form, key)
}
