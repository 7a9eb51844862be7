//! Billing: setup-mode completion (from the webhook and from the success page, idempotent with
//! each other), off-session charges with a recovery Checkout Session after a decline, and the
//! follow-up events. The decisions are in `crate::billing`; this module loads, calls, stores.

use crate::billing::{
    self, BillingError, ChargeError, ChargeRecord, ChargeRequest, CheckoutRecord, CustomerRecord,
    CustomerStep, LastPaymentError, SuccessView,
};
use crate::error::AppError;
use crate::event::Event;
use crate::notify::{Notification, Recipient};
use crate::objects::{
    CheckoutSession, Customer, Expandable, PaymentIntent, PaymentMethod, SetupIntent,
};
use crate::services::Services;
use crate::store::{keys, Key, Store, StoreError};
use crate::stripe::{calls, is_stripe_id, StripeError, Transport};
use crate::webhook::Outcome;

use super::{Step, StepError};

pub const CHECKOUT_SESSION_COMPLETED: &str = "checkout.session.completed";
pub const PAYMENT_INTENT_SUCCEEDED: &str = "payment_intent.succeeded";
pub const PAYMENT_INTENT_PAYMENT_FAILED: &str = "payment_intent.payment_failed";

pub const EVENT_TYPES: &[&str] = &[
    CHECKOUT_SESSION_COMPLETED,
    PAYMENT_INTENT_SUCCEEDED,
    PAYMENT_INTENT_PAYMENT_FAILED,
];

/// The notification kind sent to a customer after a decline, with the recovery URL.
pub const RECOVERY_NOTIFICATION: &str = "charge.recovery";

pub async fn handle<S: Store, T: Transport>(
    event: &Event,
    services: &Services<'_, S, T>,
) -> Result<Outcome, StepError> {
    match event.event_type.as_str() {
        CHECKOUT_SESSION_COMPLETED => {
            let session: CheckoutSession = event.object().step("decode_session")?;
            match session.mode.as_str() {
                "setup" => {
                    complete_setup(services, &session).await?;
                    Ok(Outcome::Handled)
                }
                "payment" => record_recovery(services, &session, event.created).await,
                _ => Ok(Outcome::Ignored),
            }
        }
        PAYMENT_INTENT_SUCCEEDED | PAYMENT_INTENT_PAYMENT_FAILED => {
            let pi: PaymentIntent = event.object().step("decode_payment_intent")?;
            let extra: LastPaymentError = event.object().step("decode_payment_intent")?;
            update_charge(services, &pi, extra.last_payment_error, event.created).await
        }
        _ => Ok(Outcome::Ignored),
    }
}

/// A record that does not decode is treated as absent: it is rewritten by the flow (every
/// Stripe write is idempotent) instead of blocking it.
async fn load_tolerant<T: serde::de::DeserializeOwned>(
    key: &Key<T>,
    store: &impl Store,
) -> Result<Option<T>, StoreError> {
    match key.load(store).await {
        Err(StoreError::Corrupt { .. }) => Ok(None),
        other => other,
    }
}

/// What completing a setup session left: the checkout record, and the customer record when
/// this call wrote it (`None` when the completion was already recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupDone {
    pub checkout: CheckoutRecord,
    pub customer: Option<CustomerRecord>,
}

/// Completes a setup-mode session: the SetupIntent's payment method, a customer when the
/// session had none (with the email given to Checkout), the attach when needed, then
/// `customer:{id}` and `checkout:{cs_id}`. Every write is keyed by the session id, so the
/// webhook and the success page make each effect once at Stripe; an already completed
/// `checkout:{cs_id}` makes this a no-op without any Stripe call.
pub async fn complete_setup<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    session: &CheckoutSession,
) -> Result<SetupDone, StepError> {
    let store = services.store;
    let checkout_key = keys::checkout(&session.id);
    let existing = load_tolerant(&checkout_key, store)
        .await
        .step("load_checkout")?;
    if let Some(done) = existing.filter(CheckoutRecord::is_completed_setup) {
        return Ok(SetupDone {
            checkout: done,
            customer: None,
        });
    }
    let setup_intent = match session.setup_intent.as_ref() {
        Some(Expandable::Object(si)) => (**si).clone(),
        Some(Expandable::Id(id)) if is_stripe_id(id) => services
            .stripe::<SetupIntent>(&calls::retrieve_setup_intent(id))
            .await
            .step("retrieve_setup_intent")?,
        _ => return Err(BillingError::NoSetupIntent).step("plan"),
    };
    let plan = billing::plan_setup(session, &setup_intent).step("plan")?;
    let customer = match &plan.customer {
        CustomerStep::Existing(id) => id.clone(),
        CustomerStep::Create { email } => {
            services
                .stripe::<Customer>(&plan.create_customer(email.as_deref()))
                .await
                .step("create_customer")?
                .id
        }
    };
    if !is_stripe_id(&customer) {
        return Err(AppError::Internal(
            "Stripe returned a customer id that is not an id",
        ))
        .step("create_customer");
    }
    let card = match plan.attach(&customer) {
        Some(request) => {
            services
                .stripe::<PaymentMethod>(&request)
                .await
                .step("attach")?
                .card
        }
        None => None,
    };
    let (customer_record, checkout) = plan.records(&customer, card.as_ref(), services.now);
    keys::customer(&customer)
        .save(store, &customer_record, None)
        .await
        .step("save_customer")?;
    // Written last: once it says complete, a repeat does nothing.
    checkout_key
        .save(store, &checkout, None)
        .await
        .step("save_checkout")?;
    Ok(SetupDone {
        checkout,
        customer: Some(customer_record),
    })
}

/// `checkout.session.completed` in payment mode: a paid recovery session marks the declined
/// charge it names (`metadata[payment_intent]`) as paid. Needs no Stripe call.
async fn record_recovery<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    session: &CheckoutSession,
    at: i64,
) -> Result<Outcome, StepError> {
    let Some(pi_id) = session.metadata.get(billing::RECOVERS_METADATA) else {
        return Ok(Outcome::Ignored);
    };
    if !billing::is_prefixed_id(pi_id, "pi_") {
        return Ok(Outcome::Ignored);
    }
    let store = services.store;
    let key = keys::charge(pi_id);
    let existing = load_tolerant(&key, store).await.step("load_charge")?;
    if let Some(record) = ChargeRecord::recovered(existing.as_ref(), session, at) {
        key.save(store, &record, None).await.step("save_charge")?;
    }
    if is_stripe_id(&session.id) {
        keys::checkout(&session.id)
            .save(store, &CheckoutRecord::opened(session, at), None)
            .await
            .step("save_checkout")?;
    }
    Ok(Outcome::Handled)
}

/// `payment_intent.succeeded` / `payment_failed` for a charge made here; other
/// PaymentIntents (a recovery session's own, those of other systems) are ignored.
async fn update_charge<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    pi: &PaymentIntent,
    error: Option<ChargeError>,
    created: i64,
) -> Result<Outcome, StepError> {
    if !is_stripe_id(&pi.id) {
        return Ok(Outcome::Ignored);
    }
    let store = services.store;
    let key = keys::charge(&pi.id);
    let Some(existing) = load_tolerant(&key, store).await.step("load_charge")? else {
        return Ok(Outcome::Ignored);
    };
    if let Some(next) = existing.apply_event(pi, error, created) {
        key.save(store, &next, None).await.step("save_charge")?;
    }
    Ok(Outcome::Handled)
}

/// `POST /charges`: the off-session PaymentIntent; after a decline, the decline on record,
/// a recovery Checkout Session for the same amount, and a notification with its URL.
/// `random` makes the key when the caller gave none; `app_base_url` is where the recovery
/// session returns.
pub async fn create_charge<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    request: &ChargeRequest,
    random: [u8; 16],
    app_base_url: &str,
) -> Result<ChargeRecord, AppError> {
    let store = services.store;
    let now = services.now;
    let customer = load_tolerant(&keys::customer(&request.customer), store).await?;
    let payment_method = request.payment_method(customer.as_ref())?;
    let intent = request.to_stripe(payment_method, request.key(random));
    let description = request.description.as_deref();
    let answer = match services.stripe_or_decline::<PaymentIntent>(&intent).await? {
        Ok(pi) => ChargeRecord::from_payment_intent(&pi, description, None, now),
        Err(declined) => match declined.payment_intent.as_ref() {
            Some(pi) => ChargeRecord::from_payment_intent(
                pi,
                description,
                Some(ChargeError::from_api(&declined)),
                now,
            ),
            // A decline without a PaymentIntent leaves nothing to recover: answered as is.
            None => return Err(StripeError::CardDeclined(declined).into()),
        },
    };
    if !is_stripe_id(&answer.id) {
        return Err(AppError::Internal(
            "Stripe returned a PaymentIntent id that is not an id",
        ));
    }
    let key = keys::charge(&answer.id);
    let existing = load_tolerant(&key, store).await?;
    let mut record = ChargeRecord::merge_answer(existing, answer);
    // The decline is on record before anything else can fail.
    key.save(store, &record, None).await?;
    if record.needs_recovery() {
        if let Some(recovery) = record.recovery_request(app_base_url) {
            let session: CheckoutSession = services.stripe(&recovery).await?;
            record = record.with_recovery(&session);
            key.save(store, &record, None).await?;
            if is_stripe_id(&session.id) {
                keys::checkout(&session.id)
                    .save(store, &CheckoutRecord::opened(&session, now), None)
                    .await?;
            }
        }
    }
    let recovering = !record.paid && record.recovery.as_ref().is_some_and(|r| r.status == "open");
    if let (true, Some(customer)) = (recovering, record.customer.clone()) {
        // Keyed by the PaymentIntent: a repeated request does not notify twice.
        services
            .notify(Notification::new(
                &record.id,
                RECOVERY_NOTIFICATION,
                Recipient::Customer(customer),
                record.recovery_notification(),
            ))
            .await?;
    }
    Ok(record)
}

/// `GET /success?session_id=`: records the completion (setup mode) or the recovery payment
/// (payment mode) from one retrieval of the session with its SetupIntent expanded. Nothing is
/// called when the webhook already recorded the setup.
pub async fn complete_from_success_page<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    session_id: &str,
) -> Result<SuccessView, AppError> {
    let store = services.store;
    let existing = load_tolerant(&keys::checkout(session_id), store).await?;
    if let Some(done) = existing.filter(CheckoutRecord::is_completed_setup) {
        return card_saved(services, done, None).await;
    }
    let session: CheckoutSession = services
        .stripe(&calls::retrieve_checkout_session(session_id, true))
        .await?;
    match session.mode.as_str() {
        "setup" => {
            let done = complete_setup(services, &session)
                .await
                .map_err(|e| e.error)?;
            card_saved(services, done.checkout, done.customer).await
        }
        "payment" if session.status.as_deref() == Some("complete") => {
            record_recovery(services, &session, services.now)
                .await
                .map_err(|e| e.error)?;
            Ok(SuccessView::PaymentReceived {
                session: session.id,
            })
        }
        "payment" => Err(BillingError::SessionNotComplete.into()),
        _ => Err(AppError::NotFound),
    }
}

async fn card_saved<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    checkout: CheckoutRecord,
    customer: Option<CustomerRecord>,
) -> Result<SuccessView, AppError> {
    let customer_id = checkout.customer.clone().unwrap_or_default();
    let customer = match customer {
        Some(record) => Some(record),
        None if is_stripe_id(&customer_id) => {
            load_tolerant(&keys::customer(&customer_id), services.store).await?
        }
        None => None,
    };
    // The card details belong to this session's card only if it is still the default.
    let card = customer.filter(|c| c.default_payment_method == checkout.payment_method);
    Ok(SuccessView::CardSaved {
        customer: customer_id,
        brand: card.as_ref().and_then(|c| c.card_brand.clone()),
        last4: card.as_ref().and_then(|c| c.card_last4.clone()),
    })
}

/// The status and page for a failed success page: a malformed id is 400, an id Stripe does
/// not know is 404, a transient failure is 503 (try again), anything else its own status.
pub fn success_error_page(error: &AppError) -> (u16, String) {
    let (status, title, text) = match error {
        AppError::Billing(BillingError::InvalidSessionId) => (
            400,
            "Invalid link",
            "This link does not name a Checkout Session.",
        ),
        AppError::Billing(BillingError::SessionNotComplete) => (
            409,
            "Not finished yet",
            "This Checkout Session is not complete. Go back to Checkout to finish it.",
        ),
        AppError::NotFound => (404, "Unknown session", "No such Checkout Session here."),
        AppError::Stripe(StripeError::Api(api)) if api.status == 404 => (
            404,
            "Unknown session",
            "Stripe knows no such Checkout Session.",
        ),
        other if other.status() == 503 => (
            503,
            "Please try again",
            "We could not reach our payment provider. Reload this page in a moment.",
        ),
        other if other.status() < 500 => (
            400,
            "Could not complete",
            "This Checkout Session could not be completed.",
        ),
        other => (
            other.status(),
            "Something went wrong",
            "The card could not be recorded because of an error on our side.",
        ),
    };
    (status, billing::page(title, &[text.to_owned()]))
}
