//! The calls this service makes (DESIGN.md, "Stripe"), one function per endpoint. Every
//! parameter sent must exist in Stripe's definitions for the pinned version. Pure. Every call
//! that creates an object is built with `StripeRequest::create`, so it is sent with this
//! deployment's `metadata[created_by]` (`crate::provenance`).

use crate::objects::Metadata;

use super::*;

pub struct SetupSession<'a> {
    pub currency: &'a str,
    pub customer: Option<&'a str>,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    pub metadata: &'a Metadata,
}

/// Cards only, by `allowed_payment_method_types`: the saved card is charged later off-session,
/// where a card behaves as [`create_off_session_payment_intent`] expects.
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
    StripeRequest::create("/v1/checkout/sessions", form, key)
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

/// The recovery session after a decline. The customer may pay with any method the account
/// offers, but only a card is kept for later off-session charges
/// (`payment_method_options[card][setup_future_usage]=off_session`: Stripe attaches it to the
/// customer), so the next charge does not go to the card that was declined, and a bank debit,
/// tied to one currency and settling days later, never becomes the default.
pub fn create_payment_session(p: &PaymentSession<'_>, key: IdempotencyKey) -> StripeRequest {
    let form = Form::new()
        .set("mode", "payment")
        .set("customer", p.customer)
        .set(
            "payment_method_options[card][setup_future_usage]",
            "off_session",
        )
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
    StripeRequest::create("/v1/checkout/sessions", form, key)
}

/// The session with what either mode needs expanded: a setup session's SetupIntent and its
/// card, a payment session's PaymentIntent and the payment method it was paid with. Stripe
/// expands a field that is null to null, so one request serves both modes.
pub fn retrieve_checkout_session(id: &str) -> StripeRequest {
    let query = Form::new()
        .expand("setup_intent.payment_method")
        .expand("payment_intent.payment_method");
    StripeRequest::get(format!("/v1/checkout/sessions/{id}"), query)
}

/// With its payment method expanded: the card's brand and last4 are recorded.
pub fn retrieve_setup_intent(id: &str) -> StripeRequest {
    StripeRequest::get(
        format!("/v1/setup_intents/{id}"),
        Form::new().expand("payment_method"),
    )
}

/// With its payment method expanded (a paid recovery session's new card).
pub fn retrieve_payment_intent(id: &str) -> StripeRequest {
    StripeRequest::get(
        format!("/v1/payment_intents/{id}"),
        Form::new().expand("payment_method"),
    )
}

pub fn create_customer(
    email: Option<&str>,
    metadata: &Metadata,
    key: IdempotencyKey,
) -> StripeRequest {
    let form = Form::new().set_opt("email", email).metadata(metadata);
    StripeRequest::create("/v1/customers", form, key)
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
    // Confirmed at once with nobody present, so nothing may redirect: with the account's
    // automatic payment methods Stripe refuses `confirm=true` without a `return_url`
    // (PaymentIntents.d.ts, AutomaticPaymentMethods.allow_redirects). Not limited to cards: a
    // recovery session may have kept a method that is not a card (a bank debit) as the
    // customer's default, and any method that never redirects can be charged off-session.
    let form = Form::new()
        .set("amount", p.amount)
        .set("currency", p.currency)
        .set("customer", p.customer)
        .set("payment_method", p.payment_method)
        .set("automatic_payment_methods[enabled]", true)
        .set("automatic_payment_methods[allow_redirects]", "never")
        .set("off_session", true)
        .set("confirm", true)
        .set_opt("description", p.description)
        .metadata(p.metadata);
    StripeRequest::create("/v1/payment_intents", form, key)
}

/// A PaymentIntent that is not confirmed and has no payment method: it carries a charge that
/// Stripe refused for its payment method, whose recovery session then pays it instead.
pub struct HeldCharge<'a> {
    pub customer: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub description: Option<&'a str>,
}

pub fn create_payment_intent_holder(p: &HeldCharge<'_>, key: IdempotencyKey) -> StripeRequest {
    let form = Form::new()
        .set("amount", p.amount)
        .set("currency", p.currency)
        .set("customer", p.customer)
        .set("automatic_payment_methods[enabled]", true)
        .set_opt("description", p.description);
    StripeRequest::create("/v1/payment_intents", form, key)
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
    StripeRequest::create("/v1/identity/verification_sessions", form, key)
}

/// A session as it is now: a `requires_input` one with a fresh `url` and `client_secret`
/// for the user to submit it again.
pub fn retrieve_verification_session(id: &str) -> StripeRequest {
    StripeRequest::get(
        format!("/v1/identity/verification_sessions/{id}"),
        Form::new(),
    )
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

/// One page of `GET /v1/events` (`EventListParams`: `types[]`, at most 20; `created` as a
/// range; `limit` 1 to 100; `starting_after`), newest first, as Stripe lists.
pub struct ListEvents<'a> {
    pub types: &'a [&'a str],
    pub created_gte: i64,
    pub created_lte: i64,
    pub starting_after: Option<&'a str>,
    pub limit: u32,
}

pub fn list_events(p: &ListEvents<'_>) -> StripeRequest {
    let query = p
        .types
        .iter()
        .fold(Form::new(), |form, t| form.set("types[]", t))
        .set("created[gte]", p.created_gte)
        .set("created[lte]", p.created_lte)
        .set("limit", p.limit)
        .set_opt("starting_after", p.starting_after);
    StripeRequest::get("/v1/events", query)
}

/// One page of `GET /v2/core/events` (API v2, `V2.Core.EventListParams`: `types`, at most 20;
/// `created` as a range; `limit`): thin events, paged by the answer's `next_page_url`. The
/// `created` bounds are RFC 3339 times (`event::thin::format_rfc3339`), as Stripe's docs type them (a "timestamp" in API v2),
/// not the numbers the SDK's `RangeQueryParam` says. Arrays are indexed (`types[0]`), as the
/// SDK encodes them.
pub fn list_thin_events(
    types: &[String],
    created_gte: &str,
    created_lte: &str,
    limit: u32,
) -> StripeRequest {
    let query = types
        .iter()
        .enumerate()
        .fold(Form::new(), |form, (i, t)| {
            form.set(format!("types[{i}]"), t)
        })
        .set("created[gte]", created_gte)
        .set("created[lte]", created_lte)
        .set("limit", limit);
    StripeRequest::get("/v2/core/events", query)
}

/// The next page of `GET /v2/core/events`: the answer's `next_page_url`, a path on the API base
/// (`/v2/core/events?page=…`); `None` for anything else, so a page never sends the key elsewhere.
pub fn next_thin_events_page(next_page_url: &str) -> Option<StripeRequest> {
    let query = next_page_url.strip_prefix("/v2/core/events?")?;
    let safe = next_page_url.len() <= 2048
        && query
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~%=&[]+".contains(&b));
    safe.then(|| StripeRequest::get(next_page_url, Form::new()))
}

/// The object an event of `kind` carries, retrieved by its `id` as it is now, rendered at the
/// pinned `Stripe-Version` the client sends (an event in another API version is handled on
/// this instead of its payload, see `handlers::at_pinned_version`). No `expand[]`: the same
/// shape as in an event's `data.object`. `None` for an id not of the kind's prefix.
pub fn retrieve_event_object(kind: crate::event::EventKind, id: &str) -> Option<StripeRequest> {
    use crate::event::EventKind as K;
    let (resource, prefix) = match kind {
        K::VerificationSessionCreated
        | K::VerificationSessionProcessing
        | K::VerificationSessionVerified
        | K::VerificationSessionRequiresInput
        | K::VerificationSessionCanceled
        | K::VerificationSessionRedacted => ("identity/verification_sessions", "vs_"),
        K::CheckoutSessionCompleted
        | K::CheckoutSessionAsyncPaymentSucceeded
        | K::CheckoutSessionAsyncPaymentFailed
        | K::CheckoutSessionExpired => ("checkout/sessions", "cs_"),
        K::PaymentIntentSucceeded | K::PaymentIntentPaymentFailed => ("payment_intents", "pi_"),
    };
    is_prefixed_id(id, prefix)
        .then(|| StripeRequest::get(format!("/v1/{resource}/{id}"), Form::new()))
}

/// `GET /v2/core/events/{id}`: a thin event with what it carries when fetched (`data`).
pub fn retrieve_thin_event(id: &str) -> StripeRequest {
    StripeRequest::get(format!("/v2/core/events/{id}"), Form::new())
}

/// `GET /v1/events/{id}`: Stripe keeps events for 30 days.
pub fn retrieve_event(id: &str) -> StripeRequest {
    StripeRequest::get(format!("/v1/events/{id}"), Form::new())
}
