//! Cards saved with Checkout setup mode, and charges made later. Pure: it decides what to ask
//! Stripe and what to store; `handlers::setup` and `handlers::charges` carry it out and the
//! routes adapt HTTP. One file per flow: [`setup`] and [`charge`]; here what both share
//! (the error, the metadata that marks our sessions, ids and currencies).
//!
//! - Setup completion ([`plan_setup`]): from a completed setup-mode Checkout Session and its
//!   SetupIntent, which customer to use (the session's, or a new one) and whether the payment
//!   method still has to be attached. The Stripe writes carry keys derived from the session id
//!   ([`completion_key`]), so the webhook and the success page make each effect once at Stripe.
//! - Charges ([`ChargeRequest`], [`ChargeRecord`]): validation, the off-session PaymentIntent,
//!   the record after success or decline, the recovery Checkout Session, and the follow-up
//!   events, whose status never goes backwards.

use crate::event::{Event, EventKind};
use crate::objects::{CheckoutSession, Metadata};

pub mod charge;
pub mod setup;

pub use charge::*;
pub use setup::*;

/// The placeholder Checkout replaces with the session id in `success_url`; sent literally.
pub const SESSION_ID_PLACEHOLDER: &str = "{CHECKOUT_SESSION_ID}";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    #[error("customer must be a Stripe customer id (cus_…)")]
    InvalidCustomer,
    #[error("currency must be a three-letter ISO code")]
    InvalidCurrency,
    #[error(
        "amount must be a positive integer in the currency's smallest unit, at most {MAX_AMOUNT}"
    )]
    InvalidAmount,
    #[error("description must be at most {MAX_DESCRIPTION_CHARS} characters")]
    InvalidDescription,
    #[error("idempotency_key must be 1 to {MAX_CALLER_KEY_LEN} printable ASCII characters")]
    InvalidIdempotencyKey,
    /// Without a key, a retry after a timeout or a 5xx (the charge may have gone through)
    /// would be a second charge.
    #[error("idempotency_key is required: one key per charge you mean to make (an order id, say), sent again unchanged on every retry, so that a retry after a timeout or a 5xx never charges twice")]
    MissingIdempotencyKey,
    /// The key was first used for another charge: one key is one charge of one customer.
    #[error("idempotency_key was first used with another {0}; a key is one charge of one customer, amount and currency: use a new key for a new charge")]
    IdempotencyKeyReused(&'static str),
    #[error("payment_method must be a Stripe payment method id (pm_…)")]
    InvalidPaymentMethod,
    #[error("no card has been saved for this customer here; save one with the setup flow first")]
    UnknownCustomer,
    #[error("the customer has no saved payment method; save a card or pass payment_method")]
    NoSavedPaymentMethod,
    #[error("session_id must be a Checkout Session id (cs_…)")]
    InvalidSessionId,
    #[error("the Checkout Session is not complete yet")]
    SessionNotComplete,
    #[error("the Checkout Session has no SetupIntent")]
    NoSetupIntent,
    /// A setup session first seen complete more than `MAX_COMPLETION_AGE_SECONDS` after it was
    /// created: its record may have expired, and Stripe's idempotency keys (24 hours) no
    /// longer stop a second customer, so it is not completed again.
    #[error("the Checkout Session is too old to be completed here")]
    SessionTooOld,
    #[error("the SetupIntent has no payment method")]
    NoPaymentMethod,
    /// A completed session whose SetupIntent did not succeed (still processing, or failed):
    /// no card is saved until Stripe says `succeeded`.
    #[error("the card was not saved: the SetupIntent has not succeeded")]
    SetupNotSucceeded,
    /// The anonymous form cannot name a customer: anyone could bind a card to anyone's.
    #[error("the public form saves a card for a new customer only; the app binds a session to an existing customer with POST /setup-sessions")]
    CustomerNotAllowed,
    /// A session naming a customer that the app did not bind (`metadata[bound_by]`).
    #[error("the Checkout Session names a customer it was not bound to by the app")]
    UnboundCustomer,
    #[error("success_path must be a path on APP_BASE_URL: /, then at most {MAX_SUCCESS_PATH_CHARS} printable characters, no fragment")]
    InvalidSuccessPath,
}

impl BillingError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidCustomer => "invalid_customer",
            Self::InvalidCurrency => "invalid_currency",
            Self::InvalidAmount => "invalid_amount",
            Self::InvalidDescription => "invalid_description",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::MissingIdempotencyKey => "missing_idempotency_key",
            Self::IdempotencyKeyReused(_) => "idempotency_key_reused",
            Self::InvalidPaymentMethod => "invalid_payment_method",
            Self::UnknownCustomer => "unknown_customer",
            Self::NoSavedPaymentMethod => "no_saved_payment_method",
            Self::InvalidSessionId => "invalid_session_id",
            Self::SessionNotComplete => "session_not_complete",
            Self::NoSetupIntent => "no_setup_intent",
            Self::SessionTooOld => "session_too_old",
            Self::NoPaymentMethod => "no_payment_method",
            Self::SetupNotSucceeded => "setup_not_succeeded",
            Self::CustomerNotAllowed => "customer_not_allowed",
            Self::UnboundCustomer => "unbound_customer",
            Self::InvalidSuccessPath => "invalid_success_path",
        }
    }

    /// The request field a validation error is about, named in the answer.
    pub fn field(&self) -> Option<&'static str> {
        Some(match self {
            Self::InvalidCustomer => "customer",
            Self::InvalidCurrency => "currency",
            Self::InvalidAmount => "amount",
            Self::InvalidDescription => "description",
            Self::InvalidIdempotencyKey | Self::MissingIdempotencyKey => "idempotency_key",
            // The field whose value differs from the key's first use.
            Self::IdempotencyKeyReused(field) => field,
            Self::InvalidPaymentMethod => "payment_method",
            Self::InvalidSessionId => "session_id",
            Self::InvalidSuccessPath => "success_path",
            Self::CustomerNotAllowed => "customer",
            _ => return None,
        })
    }
}

/// Metadata key on a recovery Checkout Session naming the declined PaymentIntent it pays for.
pub const RECOVERS_METADATA: &str = "payment_intent";

/// Set on the setup sessions the app bound to one of its customers (`POST /setup-sessions`):
/// only those may save a card for an existing customer.
pub const BOUND_METADATA: &str = "bound_by";
pub const BOUND_BY_APP: &str = "app";
pub const MAX_SUCCESS_PATH_CHARS: usize = 200;

/// Whether the app bound the session to its customer.
pub fn is_bound(session: &CheckoutSession) -> bool {
    session.metadata.get(BOUND_METADATA).map(String::as_str) == Some(BOUND_BY_APP)
}

/// Whether this deployment created the session (`crate::provenance`).
pub fn is_ours(session: &CheckoutSession, deployment_id: &str) -> bool {
    crate::provenance::made_here(&session.metadata, deployment_id)
}

/// A setup session is completed here within 30 days of its creation: Checkout Sessions
/// expire within a day, Stripe keeps events 30 days, and a finished `checkout:` record
/// (kept `store::FINISHED_TTL_SECONDS`, 90 days) outlives the window, so a repeat is always
/// answered from the record, never by a second run at Stripe.
pub const MAX_COMPLETION_AGE_SECONDS: i64 = 30 * 24 * 60 * 60;

/// Whether a setup session is past [`MAX_COMPLETION_AGE_SECONDS`] at `now`.
pub fn too_old_to_complete(session: &CheckoutSession, now: i64) -> bool {
    now - session.created > MAX_COMPLETION_AGE_SECONDS
}

/// An event with nothing to do and nothing to keep: a setup-mode Checkout Session that
/// expired. Nobody saved a card, and an open setup session is never stored, so there is no
/// record to update. It runs in no queue and writes no `event:` record: an abandoned anonymous
/// session costs no KV write and leaves no Durable Object. A redelivery finds it as inert.
pub fn leaves_nothing(event: &Event) -> bool {
    event.kind() == Some(EventKind::CheckoutSessionExpired)
        && event
            .object::<CheckoutSession>()
            .is_ok_and(|session| session.mode == "setup")
}
/// Stripe's largest amount (eight digits in the smallest unit).
pub const MAX_AMOUNT: i64 = 99_999_999;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Leaves room for the `charge:` scope within Stripe's 255-character key limit.
pub const MAX_CALLER_KEY_LEN: usize = 200;
/// The recovery line item's name when the charge had no description.
pub const DEFAULT_PRODUCT_NAME: &str = "Payment";

pub use crate::stripe::is_prefixed_id;

/// A three-letter code, lower-cased; absent or blank means `default_currency`.
fn parse_currency(currency: Option<&str>, default_currency: &str) -> Result<String, BillingError> {
    let currency = currency
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .unwrap_or(default_currency);
    crate::config::currency_code(currency).ok_or(BillingError::InvalidCurrency)
}

/// The `session_id` query parameter of the `/success` URL (the first one), validated.
pub fn session_id_from_url(url: &str) -> Result<String, BillingError> {
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(q))
        .unwrap_or("");
    crate::form::pairs(query.as_bytes())
        .into_iter()
        .find(|(k, _)| k == "session_id")
        .map(|(_, v)| v)
        .filter(|id| is_prefixed_id(id, "cs_"))
        .ok_or(BillingError::InvalidSessionId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Card, PaymentIntent, SetupIntent};
    use crate::pages::*;
    use crate::stripe::{ApiError, IdempotencyKey, StripeRequest};

    fn bound_input(customer: &str, success_path: Option<&str>) -> SetupSessionInput {
        SetupSessionInput {
            customer: Some(customer.into()),
            currency: Some("EUR".into()),
            success_path: success_path.map(Into::into),
        }
    }

    #[test]
    fn the_public_form_never_names_a_customer_and_the_app_binds_one() {
        assert_eq!(
            SetupRequest::public(Some(""), None, "usd").unwrap(),
            SetupRequest {
                customer: None,
                currency: "usd".into(),
                success_path: "/success".into(),
            }
        );
        for given in ["cus_VICTIM", " cus_123 ", "pm_1", "x"] {
            assert_eq!(
                SetupRequest::public(Some(given), None, "usd"),
                Err(BillingError::CustomerNotAllowed),
                "{given}"
            );
        }
        assert_eq!(
            SetupRequest::bound(
                bound_input(" cus_123 ", Some("/account/cards?tab=1")),
                "usd"
            )
            .unwrap(),
            SetupRequest {
                customer: Some("cus_123".into()),
                currency: "eur".into(),
                success_path: "/account/cards?tab=1".into(),
            }
        );
        for bad in ["cus_", "pm_123", "cus_1/../x", "cus_1 2"] {
            assert_eq!(
                SetupRequest::bound(bound_input(bad, None), "usd"),
                Err(BillingError::InvalidCustomer),
                "{bad}"
            );
        }
        for bad in [
            "success",
            "//evil.example/x",
            "/a b",
            "/a#b",
            "/a\\b",
            &format!("/{}", "a".repeat(200)),
        ] {
            assert_eq!(
                SetupRequest::bound(bound_input("cus_1", Some(bad)), "usd"),
                Err(BillingError::InvalidSuccessPath),
                "{bad}"
            );
        }
        for bad in ["us", "dollars", "u$d"] {
            assert_eq!(
                SetupRequest::public(None, Some(bad), "usd"),
                Err(BillingError::InvalidCurrency),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_bound_session_is_marked_and_returns_to_the_apps_path() {
        let request = SetupRequest::bound(bound_input("cus_1", Some("/cards?x=1")), "usd")
            .unwrap()
            .to_stripe("https://app.test", IdempotencyKey::random([1; 16]));
        let pairs = request.form.pairs();
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(value("customer"), Some("cus_1"));
        assert_eq!(value("metadata[bound_by]"), Some("app"));
        assert_eq!(
            value("success_url"),
            Some("https://app.test/cards?x=1&session_id={CHECKOUT_SESSION_ID}")
        );
        let public = SetupRequest::public(None, None, "usd")
            .unwrap()
            .to_stripe("https://app.test", IdempotencyKey::random([1; 16]));
        assert!(!public
            .form
            .pairs()
            .iter()
            .any(|(k, _)| k == "metadata[bound_by]" || k == "customer"));
    }

    #[test]
    fn the_session_returns_to_the_success_page_with_the_literal_placeholder() {
        let request = SetupRequest::public(None, None, "usd")
            .unwrap()
            .to_stripe("https://app.test", IdempotencyKey::random([1; 16]));
        let body = request.form.encode();
        assert!(
            body.starts_with("mode=setup&currency=usd&allowed_payment_method_types[]=card&"),
            "{body}"
        );
        assert!(body.contains("success_url=https%3A%2F%2Fapp.test%2Fsuccess%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D"), "{body}");
        assert!(!body.contains("customer="), "{body}");
        // The marker is this deployment's, stamped when the creation is sent.
        assert!(request.creates);
        assert!(!body.contains("metadata[created_by]"), "{body}");
    }

    fn session(json: serde_json::Value) -> CheckoutSession {
        serde_json::from_value(json).unwrap()
    }

    fn setup_intent(json: serde_json::Value) -> SetupIntent {
        serde_json::from_value(json).unwrap()
    }

    fn params(request: &StripeRequest) -> Vec<(String, String)> {
        request.form.pairs().to_vec()
    }

    fn param<'a>(request: &'a StripeRequest, key: &str) -> Option<&'a str> {
        request
            .form
            .pairs()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_session_without_a_customer_creates_one_with_the_checkout_email_and_attaches() {
        let s = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete", "customer": null,
            "customer_details": {"email": "a@example.com"}, "setup_intent": "seti_1"
        }));
        let si = setup_intent(serde_json::json!({
            "id": "seti_1", "status": "succeeded", "customer": null, "payment_method": "pm_1"
        }));
        let plan = plan_setup(&s, &si).unwrap();
        assert_eq!(
            plan.customer,
            CustomerStep::Create {
                email: Some("a@example.com".into())
            }
        );
        assert!(plan.attach);
        let create = plan.create_customer(Some("a@example.com"));
        assert_eq!(create.path, "/v1/customers");
        assert_eq!(
            create.idempotency_key.as_ref().unwrap().as_str(),
            "checkout.cs_1:customer"
        );
        assert_eq!(
            params(&create),
            vec![
                ("email".to_owned(), "a@example.com".to_owned()),
                ("metadata[checkout_session]".to_owned(), "cs_1".to_owned())
            ]
        );
        let attach = plan.attach("cus_9").unwrap();
        assert_eq!(attach.path, "/v1/payment_methods/pm_1/attach");
        assert_eq!(param(&attach, "customer"), Some("cus_9"));
        assert_eq!(
            attach.idempotency_key.as_ref().unwrap().as_str(),
            "checkout.cs_1:attach"
        );
    }

    #[test]
    fn without_an_email_the_customer_is_created_without_one() {
        let s = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete", "setup_intent": "seti_1"
        }));
        let si = setup_intent(
            serde_json::json!({"id": "seti_1", "status": "succeeded", "payment_method": "pm_1"}),
        );
        let plan = plan_setup(&s, &si).unwrap();
        assert_eq!(plan.customer, CustomerStep::Create { email: None });
        assert_eq!(param(&plan.create_customer(None), "email"), None);
    }

    #[test]
    fn a_session_with_a_customer_needs_no_customer_and_no_attach() {
        let s = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete", "customer": "cus_1",
            "setup_intent": "seti_1", "metadata": {"bound_by": "app"}
        }));
        let si = setup_intent(serde_json::json!({
            "id": "seti_1", "status": "succeeded", "customer": "cus_1", "payment_method": "pm_1"
        }));
        let plan = plan_setup(&s, &si).unwrap();
        assert_eq!(plan.customer, CustomerStep::Existing("cus_1".into()));
        assert!(!plan.attach);
        assert_eq!(plan.attach("cus_1"), None);
    }

    #[test]
    fn only_a_session_the_app_bound_may_save_a_card_for_an_existing_customer() {
        let si = setup_intent(serde_json::json!({
            "id": "seti_1", "status": "succeeded", "customer": null, "payment_method": "pm_1"
        }));
        for metadata in [
            serde_json::json!({}),
            serde_json::json!({"bound_by": "someone"}),
            serde_json::Value::Null,
        ] {
            let s = session(serde_json::json!({
                "id": "cs_1", "mode": "setup", "status": "complete", "customer": "cus_VICTIM",
                "setup_intent": "seti_1", "metadata": metadata
            }));
            assert_eq!(
                plan_setup(&s, &si),
                Err(BillingError::UnboundCustomer),
                "{metadata}"
            );
        }
        // Nor through the SetupIntent's customer.
        let s = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete", "customer": null, "setup_intent": "seti_1"
        }));
        let si = setup_intent(serde_json::json!({
            "id": "seti_1", "status": "succeeded", "customer": "cus_VICTIM", "payment_method": "pm_1"
        }));
        assert_eq!(plan_setup(&s, &si), Err(BillingError::UnboundCustomer));
    }

    #[test]
    fn a_payment_method_not_attached_to_the_named_customer_is_attached() {
        // The SetupIntent does not name the customer, and the expanded payment method
        // belongs to nobody yet.
        let s = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete", "customer": "cus_1",
            "setup_intent": "seti_1", "metadata": {"bound_by": "app"}
        }));
        let si = setup_intent(serde_json::json!({
            "id": "seti_1", "status": "succeeded", "customer": null,
            "payment_method": {"id": "pm_1", "customer": null, "card": {"brand": "visa", "last4": "4242"}}
        }));
        let plan = plan_setup(&s, &si).unwrap();
        assert_eq!(plan.customer, CustomerStep::Existing("cus_1".into()));
        assert!(plan.attach);
        let (customer, _) = plan.records("cus_1", None, 5);
        assert_eq!(
            (
                customer.card_brand.as_deref(),
                customer.card_last4.as_deref()
            ),
            (Some("visa"), Some("4242"))
        );
        // Attached already (expanded payment method says so): nothing to do.
        let si = setup_intent(serde_json::json!({
            "id": "seti_1", "status": "succeeded", "customer": null,
            "payment_method": {"id": "pm_1", "customer": "cus_1"}
        }));
        assert!(!plan_setup(&s, &si).unwrap().attach);
    }

    #[test]
    fn sessions_that_cannot_complete_are_refused() {
        let si = setup_intent(
            serde_json::json!({"id": "seti_1", "status": "succeeded", "payment_method": "pm_1"}),
        );
        let open = session(
            serde_json::json!({"id": "cs_1", "mode": "setup", "status": "open", "setup_intent": "seti_1"}),
        );
        assert_eq!(
            plan_setup(&open, &si),
            Err(BillingError::SessionNotComplete)
        );
        let none =
            session(serde_json::json!({"id": "cs_1", "mode": "setup", "status": "complete"}));
        assert_eq!(plan_setup(&none, &si), Err(BillingError::NoSetupIntent));
        let other = session(
            serde_json::json!({"id": "cs_1", "mode": "setup", "status": "complete", "setup_intent": "seti_2"}),
        );
        assert_eq!(plan_setup(&other, &si), Err(BillingError::NoSetupIntent));
        let complete = session(
            serde_json::json!({"id": "cs_1", "mode": "setup", "status": "complete", "setup_intent": "seti_1"}),
        );
        let no_pm = setup_intent(serde_json::json!({"id": "seti_1", "status": "succeeded"}));
        assert_eq!(
            plan_setup(&complete, &no_pm),
            Err(BillingError::NoPaymentMethod)
        );
        // A card is saved only once the SetupIntent succeeded (a declined card leaves it
        // requires_payment_method; a delayed method, processing).
        for status in [
            "requires_payment_method",
            "requires_action",
            "processing",
            "canceled",
        ] {
            let unfinished = setup_intent(
                serde_json::json!({"id": "seti_1", "status": status, "payment_method": "pm_1"}),
            );
            assert_eq!(
                plan_setup(&complete, &unfinished),
                Err(BillingError::SetupNotSucceeded),
                "{status}"
            );
        }
    }

    #[test]
    fn completion_keys_depend_on_the_session_only_and_are_stable() {
        assert_eq!(
            completion_key("cs_1", "customer"),
            completion_key("cs_1", "customer")
        );
        assert_ne!(
            completion_key("cs_1", "customer"),
            completion_key("cs_2", "customer")
        );
        assert_ne!(
            completion_key("cs_1", "customer"),
            completion_key("cs_1", "attach")
        );
        // The webhook (session from the event, SetupIntent retrieved) and the success page
        // (session retrieved with the SetupIntent expanded) send identical requests.
        let from_event = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete",
            "customer_details": {"email": "a@example.com"}, "setup_intent": "seti_1"
        }));
        let retrieved = setup_intent(
            serde_json::json!({"id": "seti_1", "status": "succeeded", "payment_method": "pm_1"}),
        );
        let expanded = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete",
            "customer_details": {"email": "a@example.com"},
            "setup_intent": {"id": "seti_1", "status": "succeeded", "payment_method": "pm_1"}
        }));
        let a = plan_setup(&from_event, &retrieved).unwrap();
        let b = plan_setup(&expanded, &retrieved).unwrap();
        assert_eq!(
            a.create_customer(Some("a@example.com")),
            b.create_customer(Some("a@example.com"))
        );
        assert_eq!(a.attach("cus_1"), b.attach("cus_1"));
    }

    #[test]
    fn the_records_say_what_was_saved() {
        let s = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete", "setup_intent": "seti_1"
        }));
        let si = setup_intent(
            serde_json::json!({"id": "seti_1", "status": "succeeded", "payment_method": "pm_1"}),
        );
        let plan = plan_setup(&s, &si).unwrap();
        let card: Card =
            serde_json::from_value(serde_json::json!({"brand": "mastercard", "last4": "4444"}))
                .unwrap();
        let (customer, checkout) = plan.records("cus_1", Some(&card), 100);
        assert_eq!(customer.default_payment_method.as_deref(), Some("pm_1"));
        assert_eq!(customer.card_last4.as_deref(), Some("4444"));
        assert_eq!((customer.version, customer.updated_at), (1, 100));
        assert!(checkout.is_completed_setup());
        assert_eq!(checkout.customer.as_deref(), Some("cus_1"));
        assert_eq!(checkout.setup_intent.as_deref(), Some("seti_1"));
        let open = CheckoutRecord::opened(&s, 1);
        assert!(!CheckoutRecord {
            status: "open".into(),
            ..open
        }
        .is_completed_setup());
    }

    /// The body as sent, with an `idempotency_key` when it names none (every charge needs
    /// one; [`a_charge_without_an_idempotency_key_is_refused`] sends none).
    fn input(mut json: serde_json::Value) -> ChargeInput {
        if let Some(body) = json.as_object_mut() {
            body.entry("idempotency_key").or_insert("order-test".into());
        }
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_charge_without_an_idempotency_key_is_refused() {
        let body = serde_json::json!({"customer": "cus_1", "amount": 1099});
        let refused = ChargeRequest::parse(serde_json::from_value(body).unwrap(), "usd");
        assert_eq!(refused, Err(BillingError::MissingIdempotencyKey));
        let error = crate::error::AppError::from(BillingError::MissingIdempotencyKey);
        assert_eq!(
            (error.status(), error.code()),
            (400, "missing_idempotency_key")
        );
        assert!(
            error.public_message().contains("retry"),
            "the message says why"
        );
        assert_eq!(error.field(), Some("idempotency_key"));
    }

    #[test]
    fn charge_requests_are_validated_field_by_field() {
        let ok = ChargeRequest::parse(
            input(serde_json::json!({"customer": "cus_1", "amount": 1099, "currency": "EUR", "description": " Order 7 "})),
            "usd",
        )
        .unwrap();
        assert_eq!(
            (ok.amount, ok.currency.as_str(), ok.description.as_deref()),
            (1099, "eur", Some("Order 7"))
        );
        let defaulted = ChargeRequest::parse(
            input(serde_json::json!({"customer": "cus_1", "amount": 1})),
            "usd",
        )
        .unwrap();
        assert_eq!(defaulted.currency, "usd");
        let cases = [
            (
                serde_json::json!({"customer": "pm_1", "amount": 1}),
                BillingError::InvalidCustomer,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 0}),
                BillingError::InvalidAmount,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": -5}),
                BillingError::InvalidAmount,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 10.5}),
                BillingError::InvalidAmount,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": "1099"}),
                BillingError::InvalidAmount,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 100_000_000}),
                BillingError::InvalidAmount,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "currency": "dollars"}),
                BillingError::InvalidCurrency,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "description": "x".repeat(501)}),
                BillingError::InvalidDescription,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "idempotency_key": ""}),
                BillingError::InvalidIdempotencyKey,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "idempotency_key": "a b"}),
                BillingError::InvalidIdempotencyKey,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "idempotency_key": "é"}),
                BillingError::InvalidIdempotencyKey,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "payment_method": "card_1"}),
                BillingError::InvalidPaymentMethod,
            ),
            // Missing or of the wrong type: the field's own error, never a generic one.
            (
                serde_json::json!({"amount": 1}),
                BillingError::InvalidCustomer,
            ),
            (
                serde_json::json!({"customer": 7, "amount": 1}),
                BillingError::InvalidCustomer,
            ),
            (
                serde_json::json!({"customer": "cus_1"}),
                BillingError::InvalidAmount,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "currency": 978}),
                BillingError::InvalidCurrency,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "description": ["x"]}),
                BillingError::InvalidDescription,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "idempotency_key": 1}),
                BillingError::InvalidIdempotencyKey,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "payment_method": {}}),
                BillingError::InvalidPaymentMethod,
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(
                ChargeRequest::parse(input(json.clone()), "usd"),
                Err(expected),
                "{json}"
            );
        }
        assert!(serde_json::from_value::<ChargeInput>(
            serde_json::json!({"customer": "cus_1", "amount": 1, "amout": 2})
        )
        .is_err());
    }

    fn saved(pm: Option<&str>) -> CustomerRecord {
        CustomerRecord {
            version: 1,
            id: "cus_1".into(),
            default_payment_method: pm.map(str::to_owned),
            card_brand: None,
            card_last4: None,
            checkout_session: None,
            saved_by_session_created: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn the_charge_uses_the_saved_card_or_the_one_given() {
        let request = ChargeRequest::parse(
            input(serde_json::json!({"customer": "cus_1", "amount": 5})),
            "usd",
        )
        .unwrap();
        assert_eq!(
            request.payment_method(None),
            Err(BillingError::UnknownCustomer)
        );
        assert_eq!(
            request.payment_method(Some(&saved(None))),
            Err(BillingError::NoSavedPaymentMethod)
        );
        assert_eq!(
            request.payment_method(Some(&saved(Some("pm_1")))),
            Ok("pm_1")
        );
        let explicit = ChargeRequest::parse(
            input(serde_json::json!({"customer": "cus_1", "amount": 5, "payment_method": "pm_2"})),
            "usd",
        )
        .unwrap();
        assert_eq!(
            explicit.payment_method(Some(&saved(Some("pm_1")))),
            Ok("pm_2")
        );
        assert_eq!(explicit.payment_method(Some(&saved(None))), Ok("pm_2"));
    }

    #[test]
    fn the_payment_intent_is_off_session_and_confirmed_with_the_callers_key_scoped_by_customer() {
        let request = ChargeRequest::parse(
            input(serde_json::json!({"customer": "cus_1", "amount": 1099, "currency": "usd", "description": "Order 7", "idempotency_key": "order-7"})),
            "usd",
        )
        .unwrap();
        let key = request.stripe_key();
        assert_eq!(key.as_str(), "charge:cus_1:order-7");
        let other_customer = ChargeRequest {
            customer: "cus_2".into(),
            ..request.clone()
        };
        assert_ne!(
            key,
            other_customer.stripe_key(),
            "one key per customer at Stripe"
        );
        let pi = request.to_stripe("pm_1", key);
        assert_eq!(pi.path, "/v1/payment_intents");
        assert_eq!(
            pi.form.encode(),
            "amount=1099&currency=usd&customer=cus_1&payment_method=pm_1&automatic_payment_methods[enabled]=true&automatic_payment_methods[allow_redirects]=never&off_session=true&confirm=true&description=Order+7"
        );
        // A caller key as long as allowed still fits Stripe's 255 characters with its scope.
        let long = ChargeRequest {
            customer: format!("cus_{}", "a".repeat(200)),
            idempotency_key: "k".repeat(MAX_CALLER_KEY_LEN),
            ..request
        };
        assert!(long.stripe_key().as_str().len() <= 255);
    }

    #[test]
    fn a_key_is_one_charge_of_one_customer_amount_and_currency() {
        let request = ChargeRequest::parse(
            input(serde_json::json!({"customer": "cus_1", "amount": 1099, "currency": "usd", "description": "Order 7", "idempotency_key": "order-7"})),
            "usd",
        )
        .unwrap();
        let pin = ChargeKeyRecord::first_use(&request, "pm_1");
        assert_eq!(pin.differs_from(&request), None);
        let changed = |f: &dyn Fn(&mut ChargeRequest)| {
            let mut other = request.clone();
            f(&mut other);
            pin.differs_from(&other)
        };
        assert_eq!(changed(&|r| r.customer = "cus_2".into()), Some("customer"));
        assert_eq!(changed(&|r| r.amount = 999), Some("amount"));
        assert_eq!(changed(&|r| r.currency = "eur".into()), Some("currency"));
        assert_eq!(changed(&|r| r.description = None), Some("description"));
        assert_eq!(
            changed(&|r| r.payment_method = Some("pm_2".into())),
            Some("payment_method")
        );
        assert_eq!(changed(&|r| r.payment_method = Some("pm_1".into())), None);
        let error = crate::error::AppError::from(BillingError::IdempotencyKeyReused("customer"));
        assert_eq!(
            (error.status(), error.code()),
            (409, "idempotency_key_reused")
        );
        assert_eq!(error.field(), Some("customer"));
        // A key recorded before keys kept their request knows only its payment method.
        let legacy: ChargeKeyRecord = serde_json::from_str(
            r#"{"version":1,"payment_method":"pm_1","payment_intent":"pi_1"}"#,
        )
        .unwrap();
        assert_eq!(legacy.differs_from(&request), None);
        assert_eq!(legacy.stripe_key(&request).as_str(), "charge:order-7");
    }

    fn intent(json: serde_json::Value) -> PaymentIntent {
        serde_json::from_value(json).unwrap()
    }

    fn declined_record(decline_code: &str, code: &str) -> ChargeRecord {
        let pi = intent(serde_json::json!({
            "id": "pi_1", "status": "requires_payment_method", "amount": 1099, "currency": "usd",
            "customer": "cus_1", "payment_method": "pm_1"
        }));
        let error: ApiError = serde_json::from_value(serde_json::json!({
            "type": "card_error", "code": code, "decline_code": decline_code, "message": "Your card was declined."
        }))
        .unwrap();
        ChargeRecord::from_payment_intent(
            &pi,
            Some("Order 7"),
            Some(ChargeError::from_api(&error)),
            100,
        )
    }

    #[test]
    fn a_processing_charge_is_answered_202_not_paid_and_its_later_failure_needs_recovery() {
        let pi = intent(serde_json::json!({
            "id": "pi_1", "status": "processing", "amount": 1099, "currency": "usd",
            "customer": "cus_1", "payment_method": "pm_bank"
        }));
        let record = ChargeRecord::from_payment_intent(&pi, None, None, 100);
        assert!(!record.paid && record.in_flight() && !record.needs_recovery());
        let (status, body) = record.answer();
        assert_eq!(status, 202);
        assert_eq!(body["paid"], false);
        assert_eq!(body["status"], "processing");
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("GET /charges/pi_1"));
        // Days later, `payment_intent.payment_failed` with Stripe's reason.
        let failed = intent(serde_json::json!({
            "id": "pi_1", "status": "requires_payment_method", "amount": 1099, "currency": "usd",
            "customer": "cus_1", "payment_method": "pm_bank",
            "last_payment_error": {"type": "card_error", "code": "payment_method_provider_decline", "message": "The payment was declined by the bank."}
        }));
        let later = record
            .apply_event(&failed, failed.last_payment_error.clone(), 200)
            .unwrap();
        assert!(later.needs_recovery(), "recovered like a decline");
        assert_eq!(later.answer().0, 402);
        assert_eq!(
            later.last_error.unwrap().code.as_deref(),
            Some("payment_method_provider_decline")
        );
    }

    #[test]
    fn a_success_is_recorded_paid_and_answered_200() {
        let pi = intent(serde_json::json!({
            "id": "pi_1", "status": "succeeded", "amount": 1099, "currency": "usd",
            "customer": "cus_1", "payment_method": "pm_1"
        }));
        let record = ChargeRecord::from_payment_intent(&pi, None, None, 100);
        assert!(record.paid);
        assert!(!record.needs_recovery());
        assert_eq!(
            record.answer(),
            (
                200,
                serde_json::json!({"payment_intent": "pi_1", "status": "succeeded", "paid": true})
            )
        );
    }

    #[test]
    fn each_decline_is_recorded_and_answered_402_with_the_recovery_url() {
        for (code, decline_code) in [
            ("card_declined", "insufficient_funds"),
            ("card_declined", "generic_decline"),
            ("authentication_required", "authentication_required"),
            ("expired_card", "expired_card"),
        ] {
            let record = declined_record(decline_code, code);
            assert!(!record.paid);
            assert!(record.needs_recovery(), "{code}");
            let error = record.last_error.clone().unwrap();
            assert_eq!(
                (error.code.as_deref(), error.decline_code.as_deref()),
                (Some(code), Some(decline_code))
            );
            let session = session(serde_json::json!({
                "id": "cs_r", "mode": "payment", "url": "https://checkout.test/cs_r"
            }));
            let record = record.with_recovery(&session);
            assert!(!record.needs_recovery());
            let (status, body) = record.answer();
            assert_eq!(status, 402);
            assert_eq!(
                body,
                serde_json::json!({
                    "payment_intent": "pi_1",
                    "status": "requires_payment_method",
                    "paid": false,
                    "error": {"code": code, "decline_code": decline_code, "message": "Your card was declined."},
                    "recovery_url": "https://checkout.test/cs_r"
                })
            );
            let payload = record.recovery_notification();
            assert_eq!(payload["recovery_url"], "https://checkout.test/cs_r");
            assert_eq!(payload["decline_code"], decline_code);
            assert_eq!(
                (payload["amount"].as_i64(), payload["currency"].as_str()),
                (Some(1099), Some("usd"))
            );
        }
    }

    #[test]
    fn the_recovery_session_charges_the_same_amount_to_the_same_customer() {
        let request = declined_record("insufficient_funds", "card_declined")
            .recovery_request("https://app.test")
            .unwrap();
        assert_eq!(request.path, "/v1/checkout/sessions");
        assert!(request.creates);
        assert_eq!(
            request.idempotency_key.as_ref().unwrap().as_str(),
            "pi_1:recovery"
        );
        let expected = [
            ("mode", "payment"),
            ("customer", "cus_1"),
            // Only a card is kept for later off-session charges.
            (
                "payment_method_options[card][setup_future_usage]",
                "off_session",
            ),
            ("line_items[0][quantity]", "1"),
            ("line_items[0][price_data][currency]", "usd"),
            ("line_items[0][price_data][unit_amount]", "1099"),
            ("line_items[0][price_data][product_data][name]", "Order 7"),
            (
                "success_url",
                "https://app.test/success?session_id={CHECKOUT_SESSION_ID}",
            ),
            ("cancel_url", "https://app.test/"),
            ("metadata[payment_intent]", "pi_1"),
        ];
        assert_eq!(
            params(&request),
            expected
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        );
        let unnamed = ChargeRecord {
            description: None,
            ..declined_record("x", "card_declined")
        };
        let request = unnamed.recovery_request("https://app.test").unwrap();
        assert_eq!(
            param(&request, "line_items[0][price_data][product_data][name]"),
            Some(DEFAULT_PRODUCT_NAME)
        );
        // The same charge always asks with the same key: a retry makes no second session.
        assert_eq!(
            unnamed
                .recovery_request("https://app.test")
                .unwrap()
                .idempotency_key,
            request.idempotency_key
        );
    }

    #[test]
    fn a_repeated_answer_keeps_the_recovery_and_never_undoes_a_payment() {
        let declined = declined_record("insufficient_funds", "card_declined");
        let with_recovery = declined.clone().with_recovery(&session(
            serde_json::json!({"id": "cs_r", "mode": "payment", "url": "https://c.test/r"}),
        ));
        let merged = ChargeRecord::merge_answer(
            Some(with_recovery.clone()),
            ChargeRecord {
                created_at: 200,
                updated_at: 200,
                ..declined.clone()
            },
        );
        assert_eq!(merged.recovery, with_recovery.recovery);
        assert_eq!(merged.created_at, 100);
        let paid = ChargeRecord {
            status: RECOVERED.into(),
            paid: true,
            ..with_recovery
        };
        assert_eq!(
            ChargeRecord::merge_answer(Some(paid.clone()), declined.clone()),
            paid
        );
        assert_eq!(ChargeRecord::merge_answer(None, declined.clone()), declined);
    }

    #[test]
    fn a_repeat_never_writes_over_what_is_stored() {
        let declined = declined_record("insufficient_funds", "card_declined");
        let with_recovery = declined.clone().with_recovery(&session(
            serde_json::json!({"id": "cs_r", "mode": "payment", "url": "https://c.test/r"}),
        ));
        let paid = ChargeRecord {
            status: RECOVERED.into(),
            paid: true,
            ..with_recovery.clone()
        };
        // An event recorded a later failure of the same PaymentIntent meanwhile.
        let later = ChargeRecord {
            last_error: declined_record("lost_card", "card_declined").last_error,
            updated_at: 300,
            ..declined.clone()
        };
        // Stripe's replay of the first answer to a repeated request.
        let replay = ChargeRecord {
            updated_at: 200,
            ..declined.clone()
        };
        assert!(declined.adds_to(None), "the first answer is written");
        for stored in [&declined, &with_recovery, &paid, &later] {
            let merged = ChargeRecord::merge_answer(Some(stored.clone()), replay.clone());
            assert_eq!(&merged, stored, "the stored state wins");
            assert!(!merged.adds_to(Some(stored)), "and nothing is written");
        }
        // What a repeat may add is the recovery session the first attempt did not record,
        // which the recovery step writes itself.
        assert!(with_recovery.adds_to(Some(&declined)));
    }

    #[test]
    fn charge_status_never_goes_backwards() {
        let declined = declined_record("insufficient_funds", "card_declined"); // updated_at 100
        let succeeded = intent(serde_json::json!({
            "id": "pi_1", "status": "succeeded", "amount": 1099, "currency": "usd", "payment_method": "pm_2"
        }));
        let failed = intent(serde_json::json!({
            "id": "pi_1", "status": "requires_payment_method", "amount": 1099, "currency": "usd"
        }));
        let paid = declined.apply_event(&succeeded, None, 150).unwrap();
        assert_eq!(
            (paid.status.as_str(), paid.paid, paid.updated_at),
            ("succeeded", true, 150)
        );
        assert_eq!(paid.payment_method.as_deref(), Some("pm_2"));
        // A payment_failed older than the stored success, or even newer: nothing changes.
        assert_eq!(paid.apply_event(&failed, None, 120), None);
        assert_eq!(paid.apply_event(&failed, None, 200), None);
        // A success is final even when its event is older than the last failure seen.
        assert!(declined.apply_event(&succeeded, None, 50).unwrap().paid);
        // A failure older than the stored state is ignored; a newer one updates the error.
        let newer_error = ChargeError {
            code: Some("card_declined".into()),
            decline_code: Some("lost_card".into()),
            message: None,
        };
        assert_eq!(
            declined.apply_event(&failed, Some(newer_error.clone()), 90),
            None
        );
        let updated = declined
            .apply_event(&failed, Some(newer_error.clone()), 110)
            .unwrap();
        assert_eq!(updated.last_error, Some(newer_error));
        // The same state again changes nothing.
        assert_eq!(
            declined.apply_event(&failed, declined.last_error.clone(), 110),
            None
        );
    }

    #[test]
    fn a_paid_recovery_session_marks_its_charge_recovered() {
        let open = declined_record("insufficient_funds", "card_declined").with_recovery(&session(
            serde_json::json!({"id": "cs_r", "mode": "payment", "url": "https://c.test/r"}),
        ));
        let paid_session = session(serde_json::json!({
            "id": "cs_r", "mode": "payment", "status": "complete", "payment_status": "paid",
            "payment_intent": "pi_new", "customer": "cus_1", "amount_total": 1099, "currency": "usd",
            "metadata": {"payment_intent": "pi_1"}
        }));
        let recovered = ChargeRecord::recovered(Some(&open), &paid_session, 300).unwrap();
        assert_eq!(
            (recovered.status.as_str(), recovered.paid),
            (RECOVERED, true)
        );
        let recovery = recovered.recovery.clone().unwrap();
        assert_eq!(
            (
                recovery.status.as_str(),
                recovery.payment_intent.as_deref(),
                recovery.url.as_deref()
            ),
            ("paid", Some("pi_new"), Some("https://c.test/r"))
        );
        assert_eq!(recovered.answer().0, 200);
        // Once paid, a repeat changes nothing, and events for the old intent do not undo it.
        assert_eq!(
            ChargeRecord::recovered(Some(&recovered), &paid_session, 400),
            None
        );
        let failed = intent(serde_json::json!({
            "id": "pi_1", "status": "requires_payment_method", "amount": 1099, "currency": "usd"
        }));
        assert_eq!(recovered.apply_event(&failed, None, 500), None);
        // Without the record (not visible yet), it is made from the session.
        let made = ChargeRecord::recovered(None, &paid_session, 300).unwrap();
        assert_eq!(
            (made.id.as_str(), made.amount, made.paid),
            ("pi_1", 1099, true)
        );
        // Not a recovery session, or not paid: nothing.
        let unpaid = session(serde_json::json!({
            "id": "cs_r", "mode": "payment", "status": "complete", "payment_status": "unpaid",
            "metadata": {"payment_intent": "pi_1"}
        }));
        assert_eq!(ChargeRecord::recovered(Some(&open), &unpaid, 300), None);
        let foreign = session(serde_json::json!({
            "id": "cs_x", "mode": "payment", "status": "complete", "payment_status": "paid"
        }));
        assert_eq!(ChargeRecord::recovered(None, &foreign, 300), None);
    }

    #[test]
    fn the_session_id_is_read_from_the_success_url() {
        assert_eq!(
            session_id_from_url("https://app.test/success?session_id=cs_test_a1B2").unwrap(),
            "cs_test_a1B2"
        );
        assert_eq!(
            session_id_from_url("https://app.test/success?x=1&session_id=cs_1#top").unwrap(),
            "cs_1"
        );
        for bad in [
            "https://app.test/success",
            "https://app.test/success?session_id=",
            "https://app.test/success?session_id={CHECKOUT_SESSION_ID}",
            "https://app.test/success?session_id=pi_1",
            "https://app.test/success?session_id=cs_1%2F..%2Fx",
            "https://app.test/success?session_id=cs_<script>",
        ] {
            assert_eq!(
                session_id_from_url(bad),
                Err(BillingError::InvalidSessionId),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_public_forms_failure_pages_never_quote_stripe() {
        let mut api: ApiError = serde_json::from_str(
            r#"{"type":"invalid_request_error","code":"resource_missing","message":"No such customer: 'cus_VICTIM'"}"#,
        )
        .unwrap();
        api.status = 400;
        use crate::error::AppError;
        let refused = AppError::Stripe(crate::stripe::StripeError::Api(Box::new(api)));
        let (status, html) = setup_error_page(&refused);
        assert_eq!(status, 502);
        assert!(
            !html.contains("cus_VICTIM") && !html.contains("No such"),
            "{html}"
        );
        assert_eq!(setup_error_page(&AppError::CrossSiteForm).0, 403);
        assert_eq!(setup_error_page(&AppError::TooManyRequests).0, 429);
        assert_eq!(
            setup_error_page(&BillingError::CustomerNotAllowed.into()).0,
            400
        );
        assert_eq!(success_error_page(&AppError::TooManyRequests).0, 429);
    }

    #[test]
    fn pages_escape_what_they_echo() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let html = SuccessView::CardSaved {
            customer: "cus_1".into(),
            brand: Some("<b>visa</b>".into()),
            last4: Some("4242".into()),
        }
        .render();
        assert!(
            html.contains("&lt;b&gt;visa&lt;/b&gt; card ending in 4242"),
            "{html}"
        );
        assert!(!html.contains("<b>"));
        // Whoever holds the link sees the card's brand and last4, never the customer id.
        assert!(!html.contains("cus_1"), "{html}");
    }
}
