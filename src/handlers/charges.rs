//! Off-session charges with a recovery Checkout Session after a decline, and the follow-up
//! events. The decisions are in `billing::charge`; this module loads, calls Stripe, stores.

use crate::billing::{
    self, refused_for_method, BillingError, ChargeError, ChargeKeyRecord, ChargeRecord,
    ChargeRequest, CheckoutRecord, CustomerRecord, RecoveryStatus,
};
use crate::error::AppError;
use crate::event::{Event, Outcome};
use crate::http::Transport;
use crate::notify::{Notification, Recipient};
use crate::objects::{CheckoutSession, Expandable, PaymentIntent, PaymentMethod};
use crate::services::Services;
use crate::store::{keys, Store};
use crate::stripe::{calls, is_stripe_id, ApiError, StripeError, StripeRequest};

use super::customers::save_customer;
use super::{Step, StepError};

/// The notification kind sent to a customer after a decline, with the recovery URL.
pub const RECOVERY_NOTIFICATION: &str = "charge.recovery";

/// `payment_intent.succeeded` and `payment_intent.payment_failed`: the stored charge follows.
/// A charge that fails after it was answered (a bank debit that was `processing`) is
/// recovered as a decline is: a recovery session and the customer's notification, once.
pub async fn payment_intent_updated<S: Store, T: Transport>(
    event: &Event,
    services: &Services<'_, S, T>,
) -> Result<Outcome, StepError> {
    let pi: PaymentIntent = event.object().step("decode_payment_intent")?;
    let error = pi.last_payment_error.clone();
    let Some(record) = update_charge(services, &pi, error, event.created).await? else {
        return Ok(Outcome::Ignored);
    };
    recover_later(services, record).await?;
    Ok(Outcome::Handled)
}

/// After an event left a charge unpaid with no recovery that can still be paid: the recovery
/// session (keyed by the PaymentIntent and its number, so a redelivery makes none again) and
/// the notification (keyed the same way). It returns to `APP_BASE_URL`: no request is there
/// to take an origin from.
async fn recover_later<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    record: ChargeRecord,
) -> Result<(), StepError> {
    if !record.needs_recovery() {
        return Ok(());
    }
    let app_base_url = services
        .config
        .return_origin(None)
        .step("recovery_return_url")?;
    recover_if_unpaid(services, record, &app_base_url)
        .await
        .step("open_recovery")?;
    Ok(())
}

/// A recovery session completed (`checkout.session.completed`) or paid later
/// (`async_payment_succeeded`): when paid, the declined charge it names
/// (`metadata[payment_intent]`) is marked paid and the payment method it was paid with becomes
/// the customer's default; when completed unpaid (a delayed method), the charge says
/// `processing` until the outcome's event.
pub(crate) async fn record_recovery<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    session: &CheckoutSession,
    at: i64,
) -> Result<Outcome, StepError> {
    let Some(pi_id) = recovered_charge(session) else {
        return Ok(Outcome::Ignored);
    };
    if session.status.as_deref() == Some("complete")
        && session.payment_status.as_deref() == Some("unpaid")
    {
        return recovery_moved(services, session, RecoveryStatus::Processing, at).await;
    }
    let store = services.store;
    let key = keys::charge(pi_id);
    let existing = key.load_tolerant(store).await.step("load_charge")?;
    if let Some(record) = ChargeRecord::recovered(existing.as_ref(), session, at) {
        key.save(store, &record, None).await.step("save_charge")?;
    }
    if session.payment_status.as_deref() == Some("paid") {
        keep_recovery_card(services, session).await?;
    }
    if is_stripe_id(&session.id) {
        let checkout = CheckoutRecord::opened(session, at);
        keys::checkout(&session.id)
            .save(store, &checkout, checkout.ttl_seconds())
            .await
            .step("save_checkout")?;
    }
    Ok(Outcome::Handled)
}

/// The declined PaymentIntent a recovery session pays for (`metadata[payment_intent]`).
fn recovered_charge(session: &CheckoutSession) -> Option<&str> {
    session
        .metadata
        .get(billing::RECOVERS_METADATA)
        .map(String::as_str)
        .filter(|id| billing::is_prefixed_id(id, "pi_"))
}

/// The payment method a paid recovery session was paid with becomes the customer's default
/// when it is a card (`CustomerRecord::from_recovery`), unless a newer session saved a card
/// since. The success page's retrieval has it expanded; otherwise Stripe is asked.
async fn keep_recovery_card<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    session: &CheckoutSession,
) -> Result<(), StepError> {
    let Some(customer) = session.customer.as_deref().filter(|c| is_stripe_id(c)) else {
        return Ok(());
    };
    let Some(method) = recovery_payment_method(services, session).await? else {
        return Ok(());
    };
    match CustomerRecord::from_recovery(customer, session, &method, services.now) {
        Some(record) => save_customer(services, &record, &session.id).await,
        None => {
            services.trace.note(format!(
                "recovery session {} was paid with a {} method: the customer's default stays",
                session.id,
                method.kind.as_deref().unwrap_or("unknown")
            ));
            Ok(())
        }
    }
}

/// The payment method of a paid session's PaymentIntent, with its type: expanded in the
/// session, else retrieved with the PaymentIntent.
async fn recovery_payment_method<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    session: &CheckoutSession,
) -> Result<Option<PaymentMethod>, StepError> {
    let pi_id = match session.payment_intent.as_ref() {
        Some(Expandable::Object(pi)) => match pi.payment_method.as_ref() {
            Some(Expandable::Object(pm)) => return Ok(Some(pm.as_ref().clone())),
            None => return Ok(None),
            Some(Expandable::Id(_)) => &pi.id,
        },
        Some(Expandable::Id(id)) => id,
        None => return Ok(None),
    };
    if !is_stripe_id(pi_id) {
        return Ok(None);
    }
    let retrieved: PaymentIntent = services
        .stripe(&calls::retrieve_payment_intent(pi_id))
        .await
        .step("retrieve_payment_intent")?;
    Ok(match retrieved.payment_method {
        Some(Expandable::Object(pm)) => Some(*pm),
        _ => None,
    })
}

/// A recovery session's delayed payment failed, it expired, or it completed unpaid: the
/// charge's recovery says so. After `failed` the next recovery session is made at once;
/// after `expired`, repeating `POST /charges` with the same `idempotency_key` makes it.
pub(crate) async fn recovery_moved<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    session: &CheckoutSession,
    status: RecoveryStatus,
    at: i64,
) -> Result<Outcome, StepError> {
    let Some(pi_id) = recovered_charge(session) else {
        return Ok(Outcome::Ignored);
    };
    let key = keys::charge(pi_id);
    let Some(existing) = key
        .load_tolerant(services.store)
        .await
        .step("load_charge")?
    else {
        return Ok(Outcome::Ignored);
    };
    match existing.recovery_moved(session, status, at) {
        Some(next) => {
            key.save(services.store, &next, None)
                .await
                .step("save_charge")?;
            // A delayed payment that failed is a charge that failed later: the customer gets
            // the next recovery session now. An expired one waits for the caller's repeat.
            if status == RecoveryStatus::Failed {
                recover_later(services, next).await?;
            }
        }
        None => services.trace.note(format!(
            "recovery session {} {}: charge {pi_id} unchanged",
            session.id,
            status.as_str()
        )),
    }
    Ok(Outcome::Handled)
}

/// `payment_intent.succeeded` / `payment_failed` for a charge made here: its record as it
/// stands after the event. Other PaymentIntents (a recovery session's own, those of other
/// systems) are not ours to record: `None`.
async fn update_charge<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    pi: &PaymentIntent,
    error: Option<ChargeError>,
    created: i64,
) -> Result<Option<ChargeRecord>, StepError> {
    if !is_stripe_id(&pi.id) {
        return Ok(None);
    }
    let store = services.store;
    let key = keys::charge(&pi.id);
    let Some(existing) = key.load_tolerant(store).await.step("load_charge")? else {
        return Ok(None);
    };
    match existing.apply_event(pi, error, created) {
        Some(next) => {
            key.save(store, &next, None).await.step("save_charge")?;
            Ok(Some(next))
        }
        None => Ok(Some(existing)),
    }
}

/// `POST /charges`: one charge per `idempotency_key`. The key's first use sends the
/// off-session PaymentIntent; every repeat with the same request is answered from what is
/// stored (or a `GET` of the PaymentIntent when its record is missing), never by a second
/// create, however old; a repeat with another request is refused. A charge that is not paid
/// and has no recovery session that can still be paid gets one, and the customer a
/// notification with its URL. `app_base_url` is where the recovery session returns.
pub async fn create_charge<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    request: &ChargeRequest,
    app_base_url: &str,
) -> Result<ChargeRecord, AppError> {
    let pin = keys::charge_key(&request.idempotency_key)
        .load_tolerant(services.store)
        .await?;
    if let Some(field) = pin.as_ref().and_then(|p| p.differs_from(request)) {
        return Err(BillingError::IdempotencyKeyReused(field).into());
    }
    let record = match pin.as_ref().and_then(|p| p.payment_intent.clone()) {
        Some(pi) => made_before(services, request, &pi).await?,
        None => charge_once(services, request, pin).await?,
    };
    recover_if_unpaid(services, record, app_base_url).await
}

/// The charge a key already made: its record, or, when the record is missing (a write that
/// did not happen before a failure), the PaymentIntent as Stripe has it now.
async fn made_before<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    request: &ChargeRequest,
    pi: &str,
) -> Result<ChargeRecord, AppError> {
    let key = keys::charge(pi);
    let record = match key.load_tolerant(services.store).await? {
        Some(record) => record,
        None => {
            let intent: PaymentIntent =
                services.stripe(&calls::retrieve_payment_intent(pi)).await?;
            let description = request.description.as_deref();
            let record =
                ChargeRecord::from_payment_intent(&intent, description, None, services.now);
            key.save(services.store, &record, None).await?;
            record
        }
    };
    // A key recorded before keys kept their request (version 1) is checked against its charge.
    match record.differs_from(request) {
        Some(field) => Err(BillingError::IdempotencyKeyReused(field).into()),
        None => Ok(record),
    }
}

/// Not paid, and no recovery session that can still be paid (declined now, failed later,
/// refused for its method, or the last recovery expired or failed): a new recovery session
/// and the notification; otherwise the notification of the open one, which is sent once.
pub(crate) async fn recover_if_unpaid<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    mut record: ChargeRecord,
    app_base_url: &str,
) -> Result<ChargeRecord, AppError> {
    if record.needs_recovery() {
        if let Some(recovery) = record.recovery_request(app_base_url) {
            record = open_recovery(services, record, &recovery).await?;
        }
    }
    notify_recovery(services, &record).await?;
    Ok(record)
}

/// The key's first use (or a retry of it after a failure before Stripe's answer was
/// recorded): the request is recorded under the key, then sent with the key's Stripe key.
async fn charge_once<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    request: &ChargeRequest,
    pin: Option<ChargeKeyRecord>,
) -> Result<ChargeRecord, AppError> {
    let pin = match pin {
        Some(pin) => pin,
        None => pin_first_use(services, request).await?,
    };
    let intent = request.to_stripe(&pin.payment_method, pin.stripe_key(request));
    let answer = match services.stripe_or_decline::<PaymentIntent>(&intent).await {
        Ok(Ok(pi)) => charged(&pi, request, None, services.now),
        Ok(Err(declined)) => match declined.payment_intent.as_ref() {
            Some(pi) => charged(
                pi,
                request,
                Some(ChargeError::from_api(&declined)),
                services.now,
            ),
            // A decline without a PaymentIntent leaves nothing to recover: answered as is.
            None => return Err(StripeError::CardDeclined(declined).into()),
        },
        Err(AppError::Stripe(StripeError::Api(refused))) if refused_for_method(&refused) => {
            refused_method(services, request, &refused).await?
        }
        Err(other) => return Err(other),
    };
    if !is_stripe_id(&answer.id) {
        return Err(AppError::Internal(
            "Stripe returned a PaymentIntent id that is not an id",
        ));
    }
    let pin = ChargeKeyRecord {
        payment_intent: Some(answer.id.clone()),
        ..pin
    };
    keys::charge_key(&request.idempotency_key)
        .save(services.store, &pin, None)
        .await?;
    store_answer(services, answer).await
}

/// The record of the PaymentIntent a charge made, with the request's description.
fn charged(
    pi: &PaymentIntent,
    request: &ChargeRequest,
    error: Option<ChargeError>,
    now: i64,
) -> ChargeRecord {
    ChargeRecord::from_payment_intent(pi, request.description.as_deref(), error, now)
}

/// Stripe refused the saved payment method before any money moved (a bank debit in a
/// currency it cannot pay, say) and made no PaymentIntent: one is made without a payment
/// method, to carry the charge, its refusal and its recovery as a decline's PaymentIntent
/// does.
async fn refused_method<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    request: &ChargeRequest,
    refused: &ApiError,
) -> Result<ChargeRecord, AppError> {
    if let Some(pi) = refused.payment_intent.as_ref() {
        return Ok(charged(
            pi,
            request,
            Some(ChargeError::from_api(refused)),
            services.now,
        ));
    }
    let holder = request.to_stripe_unconfirmed();
    let pi: PaymentIntent = services.stripe(&holder).await?;
    services.trace.note(format!(
        "charge {} refused for its payment method ({}); recovered as a decline",
        pi.id,
        refused.code.as_deref().unwrap_or("no code")
    ));
    Ok(charged(
        &pi,
        request,
        Some(ChargeError::from_api(refused)),
        services.now,
    ))
}

/// `charge_key:{key}` before Stripe is asked: the request and the payment method it is sent
/// with, so that a retry sends Stripe the same request and another request is refused.
async fn pin_first_use<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    request: &ChargeRequest,
) -> Result<ChargeKeyRecord, AppError> {
    let customer = keys::customer(&request.customer)
        .load_tolerant(services.store)
        .await?;
    let pin = ChargeKeyRecord::first_use(request, request.payment_method(customer.as_ref())?);
    keys::charge_key(&request.idempotency_key)
        .save(services.store, &pin, None)
        .await?;
    Ok(pin)
}

/// Stripe's answer to the create, merged with what is stored under `charge:{pi}`.
async fn store_answer<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    answer: ChargeRecord,
) -> Result<ChargeRecord, AppError> {
    let key = keys::charge(&answer.id);
    let existing = key.load_tolerant(services.store).await?;
    let merged = ChargeRecord::merge_answer(existing.clone(), answer);
    Ok(match existing {
        // A repeat that adds nothing writes nothing: it could erase a paid recovery recorded
        // meanwhile by the webhook.
        Some(existing) if !merged.adds_to(Some(&existing)) => existing,
        _ => {
            // The decline is on record before anything else can fail.
            key.save(services.store, &merged, None).await?;
            merged
        }
    })
}

/// The customer is told where to pay instead, once per recovery session. Keyed by the
/// PaymentIntent (and the recovery's number after the first): a repeated request does not
/// notify twice once delivered, and a renewed link is notified anew.
async fn notify_recovery<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    record: &ChargeRecord,
) -> Result<(), AppError> {
    let open_recovery = record
        .recovery
        .as_ref()
        .filter(|r| !record.paid && r.status == "open");
    let (Some(customer), Some(recovery)) = (record.customer.clone(), open_recovery) else {
        return Ok(());
    };
    let source = match recovery.attempt {
        0 | 1 => record.id.clone(),
        n => format!("{}.{n}", record.id),
    };
    services
        .notify(Notification::new(
            &source,
            RECOVERY_NOTIFICATION,
            Recipient::Customer(customer),
            record.recovery_notification(),
        ))
        .await?;
    Ok(())
}

/// After a decline: the recovery Checkout Session, on the charge's record and as an open
/// `checkout:{cs_id}` (so its completion is recognised as ours).
async fn open_recovery<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    record: ChargeRecord,
    recovery: &StripeRequest,
) -> Result<ChargeRecord, AppError> {
    let session: CheckoutSession = services.stripe(recovery).await?;
    let record = record.with_recovery(&session);
    keys::charge(&record.id)
        .save(services.store, &record, None)
        .await?;
    if is_stripe_id(&session.id) {
        let checkout = CheckoutRecord::opened(&session, services.now);
        keys::checkout(&session.id)
            .save(services.store, &checkout, checkout.ttl_seconds())
            .await?;
    }
    Ok(record)
}
