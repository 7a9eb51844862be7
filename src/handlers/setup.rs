//! Saving a card: opening a setup-mode Checkout Session, then completing it from the webhook
//! and from the success page, idempotent with each other. The decisions are in
//! `billing::setup`; this module loads, calls Stripe, stores.

use crate::billing::{
    self, BillingError, CheckoutRecord, CustomerRecord, CustomerStep, RecoveryStatus, SetupRequest,
};
use crate::error::AppError;
use crate::event::{Event, EventKind, Outcome};
use crate::http::Transport;
use crate::objects::{CheckoutSession, Customer, Expandable, PaymentMethod, SetupIntent};
use crate::pages::{checkout_link, Money, SuccessView};
use crate::services::Services;
use crate::store::{keys, Store};
use crate::stripe::{calls, is_stripe_id, IdempotencyKey};

use super::charges::{record_recovery, recovery_moved};
use super::customers::save_customer;
use super::Handled;
use super::{Step, StepError};

/// A setup session just opened: its id, and the Checkout URL to send the browser to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedSession {
    pub id: String,
    pub url: String,
}

/// `POST /create-checkout-session` and `POST /setup-sessions`: opens a setup-mode Checkout
/// Session returning to `{app_base_url}{success_path}`. Nothing is stored: what an open
/// session needs is at Stripe (its `metadata[created_by]` says it is ours, the success page
/// retrieves it), and `checkout:{cs_id}` is written when it completes. So the anonymous form
/// costs no KV write. `random` makes the key: neither a browser form nor the app's call has a
/// natural one.
pub async fn open_setup_session<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    setup: &SetupRequest,
    app_base_url: &str,
    random: [u8; 16],
) -> Result<OpenedSession, AppError> {
    let request = setup.to_stripe(app_base_url, IdempotencyKey::random(random));
    let session: CheckoutSession = services.stripe(&request).await?;
    let url = session.url.clone().ok_or(AppError::Internal(
        "Stripe returned a Checkout Session without a url",
    ))?;
    if !url.starts_with("https://") && !url.starts_with("http://") {
        return Err(AppError::Internal(
            "Stripe returned a Checkout url that is not http(s)",
        ));
    }
    Ok(OpenedSession {
        id: session.id,
        url,
    })
}

/// `checkout.session.*`: a completed setup session saves a card; a payment session is a
/// declined charge's recovery, paid (at once or later), processing, failed or expired.
/// Sessions another integration created are ignored.
pub async fn checkout_session_event<S: Store, T: Transport>(
    event: &Event,
    kind: EventKind,
    services: &Services<'_, S, T>,
) -> Result<Handled, StepError> {
    let session: CheckoutSession = event.object().step("decode_session")?;
    // The id becomes a KV key: only a Stripe id is let through (a 4xx, recorded failed).
    if !billing::is_prefixed_id(&session.id, "cs_") {
        return Err(BillingError::InvalidSessionId).step("decode_session");
    }
    if !billing::is_ours(&session, &services.config.deployment_id) {
        services.trace.note(format!(
            "checkout session {} was not created by this deployment; ignored",
            session.id
        ));
        return Ok(Handled::ignored(crate::provenance::NOT_MADE_HERE));
    }
    let outcome = match (session.mode.as_str(), kind) {
        ("setup", EventKind::CheckoutSessionCompleted) => {
            complete_setup(services, &session).await?;
            Outcome::Handled
        }
        ("payment", EventKind::CheckoutSessionAsyncPaymentFailed) => {
            recovery_moved(services, &session, RecoveryStatus::Failed, event.created).await?
        }
        ("payment", EventKind::CheckoutSessionExpired) => {
            recovery_moved(services, &session, RecoveryStatus::Expired, event.created).await?
        }
        // Completed (paid, or unpaid with a delayed method), or paid later.
        ("payment", _) => record_recovery(services, &session, event.created).await?,
        _ => Outcome::Ignored,
    };
    Ok(outcome.into())
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
    let existing = checkout_key
        .load_tolerant(store)
        .await
        .step("load_checkout")?;
    if let Some(done) = existing.filter(CheckoutRecord::is_completed_setup) {
        return Ok(SetupDone {
            checkout: done,
            customer: None,
        });
    }
    if session.status.as_deref() != Some("complete") {
        return Err(BillingError::SessionNotComplete).step("plan");
    }
    if billing::too_old_to_complete(session, services.now) {
        return Err(BillingError::SessionTooOld).step("plan");
    }
    let setup_intent = setup_intent_of(services, session).await?;
    let plan = billing::plan_setup(session, &setup_intent).step("plan")?;
    let customer = customer_of(services, &plan).await?;
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
    save_customer(services, &customer_record, &session.id).await?;
    // Written last: once it says complete, a repeat does nothing.
    // Kept 90 days (the key's lifetime), past the completion window.
    checkout_key
        .save(store, &checkout, None)
        .await
        .step("save_checkout")?;
    Ok(SetupDone {
        checkout,
        customer: Some(customer_record),
    })
}

/// The session's SetupIntent: expanded in it, or retrieved by its id.
async fn setup_intent_of<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    session: &CheckoutSession,
) -> Result<SetupIntent, StepError> {
    match session.setup_intent.as_ref() {
        Some(Expandable::Object(si)) => Ok((**si).clone()),
        Some(Expandable::Id(id)) if is_stripe_id(id) => services
            .stripe::<SetupIntent>(&calls::retrieve_setup_intent(id))
            .await
            .step("retrieve_setup_intent"),
        _ => Err(BillingError::NoSetupIntent).step("plan"),
    }
}

/// The plan's customer: the session's own, or one created now (keyed by the session id).
async fn customer_of<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    plan: &billing::SetupPlan,
) -> Result<String, StepError> {
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
    Ok(customer)
}

/// `GET /success?session_id=`: records the completion (setup mode) or the recovery payment
/// (payment mode) from one retrieval of the session with its SetupIntent (or PaymentIntent)
/// and their payment method expanded. Nothing is called when the webhook already recorded the
/// setup. A session not complete yet is shown with its Checkout URL to go back to (none once
/// expired). The route runs the two halves apart: [`success_step`] where the request arrived,
/// [`complete_retrieved`] in the entity's queue.
pub async fn complete_from_success_page<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    session_id: &str,
) -> Result<SuccessView, AppError> {
    match success_step(services, session_id).await? {
        SuccessStep::Done(view) => Ok(view),
        SuccessStep::Complete { session, .. } => complete_retrieved(services, &session).await,
    }
}

/// What the success page does next: answer from the record, or record the retrieved session
/// (also as Stripe's text, which is what travels to the entity's queue).
#[derive(Debug)]
pub enum SuccessStep {
    Done(SuccessView),
    Complete {
        session: Box<CheckoutSession>,
        raw: Box<serde_json::value::RawValue>,
    },
}

/// Reads only: the recorded completion, or else the session retrieved from Stripe (one of
/// this service's own).
pub async fn success_step<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    session_id: &str,
) -> Result<SuccessStep, AppError> {
    let store = services.store;
    let existing = keys::checkout(session_id).load_tolerant(store).await?;
    match existing {
        Some(done) if done.is_completed_setup() => {
            return Ok(SuccessStep::Done(card_saved(services, done, None).await?))
        }
        // Repeated reads of a finished session cost no Stripe call.
        Some(paid) if paid.is_paid_payment() => {
            return Ok(SuccessStep::Done(SuccessView::PaymentReceived {
                amount: Money::from_parts(paid.amount_total, paid.currency.as_deref()),
                session: paid.id,
            }))
        }
        _ => {}
    }
    let raw: Box<serde_json::value::RawValue> = services
        .stripe(&calls::retrieve_checkout_session(session_id))
        .await?;
    let session: CheckoutSession = crate::services::decode_raw(&raw)?;
    if !billing::is_ours(&session, &services.config.deployment_id) {
        return Err(AppError::NotFound);
    }
    if !matches!(session.mode.as_str(), "setup" | "payment") {
        return Err(AppError::NotFound);
    }
    if session.status.as_deref() != Some("complete") {
        let open = session.status.as_deref() == Some("open");
        return Ok(SuccessStep::Done(SuccessView::NotFinished {
            checkout_url: checkout_link(session.url.as_deref().filter(|_| open)),
        }));
    }
    Ok(SuccessStep::Complete {
        session: Box::new(session),
        raw,
    })
}

/// Records what a retrieved, complete session says: the saved card or the recovery payment.
pub async fn complete_retrieved<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    session: &CheckoutSession,
) -> Result<SuccessView, AppError> {
    if session.status.as_deref() != Some("complete") {
        return Err(BillingError::SessionNotComplete.into());
    }
    match session.mode.as_str() {
        "setup" => {
            let done = complete_setup(services, session)
                .await
                .map_err(|e| e.error)?;
            card_saved(services, done.checkout, done.customer).await
        }
        "payment" => {
            record_recovery(services, session, services.now)
                .await
                .map_err(|e| e.error)?;
            let amount = Money::from_parts(session.amount_total, session.currency.as_deref());
            if session.payment_status.as_deref() == Some("paid") {
                Ok(SuccessView::PaymentReceived {
                    session: session.id.clone(),
                    amount,
                })
            } else {
                Ok(SuccessView::PaymentProcessing {
                    session: session.id.clone(),
                    amount,
                })
            }
        }
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
            keys::customer(&customer_id)
                .load_tolerant(services.store)
                .await?
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
