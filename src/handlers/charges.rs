//! Off-session charges with a recovery Checkout Session after a decline, and the follow-up
//! events. The decisions are in `billing::charge`; this module loads, calls Stripe, stores.

use crate::billing::{
    self, ChargeError, ChargeKeyRecord, ChargeRecord, ChargeRequest, CheckoutRecord,
    CustomerRecord, LastPaymentError, RecoveryStatus, CHARGE_KEY_TTL_SECONDS,
};
use crate::error::AppError;
use crate::event::{Event, Outcome};
use crate::http::Transport;
use crate::notify::{Notification, Recipient};
use crate::objects::{CheckoutSession, Expandable, PaymentIntent, PaymentMethod};
use crate::services::Services;
use crate::store::{keys, Store};
use crate::stripe::{calls, is_stripe_id, StripeError, StripeRequest};

use super::{Step, StepError};

/// The notification kind sent to a customer after a decline, with the recovery URL.
pub const RECOVERY_NOTIFICATION: &str = "charge.recovery";

/// `payment_intent.succeeded` and `payment_intent.payment_failed`: the stored charge follows.
pub async fn payment_intent_updated<S: Store, T: Transport>(
    event: &Event,
    services: &Services<'_, S, T>,
) -> Result<Outcome, StepError> {
    let pi: PaymentIntent = event.object().step("decode_payment_intent")?;
    let extra: LastPaymentError = event.object().step("decode_payment_intent")?;
    update_charge(services, &pi, extra.last_payment_error, event.created).await
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
/// (`setup_future_usage=off_session` kept it for off-session use), unless a newer session
/// saved a card since. The success page's retrieval has it expanded; the webhook asks Stripe.
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
        Some(record) => super::setup::save_customer(services, &record, &session.id).await,
        None => Ok(()),
    }
}

/// The payment method of a paid session's PaymentIntent: expanded in it, else retrieved.
async fn recovery_payment_method<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    session: &CheckoutSession,
) -> Result<Option<PaymentMethod>, StepError> {
    let retrieved;
    let payment_intent = match session.payment_intent.as_ref() {
        Some(Expandable::Object(pi)) => pi.as_ref(),
        Some(Expandable::Id(id)) if is_stripe_id(id) => {
            retrieved = services
                .stripe::<PaymentIntent>(&calls::retrieve_payment_intent(id))
                .await
                .step("retrieve_payment_intent")?;
            &retrieved
        }
        _ => return Ok(None),
    };
    Ok(match payment_intent.payment_method.as_ref() {
        Some(Expandable::Object(pm)) => Some(pm.as_ref().clone()),
        // Not expanded by whoever sent it: the id is enough, the card details stay unknown.
        Some(Expandable::Id(id)) => Some(PaymentMethod {
            id: id.clone(),
            customer: None,
            card: None,
        }),
        None => None,
    })
}

/// A recovery session's delayed payment failed, it expired, or it completed unpaid: the
/// charge's recovery says so. After `failed` or `expired`, repeating `POST /charges` with the
/// same `idempotency_key` makes a new recovery session.
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
        Some(next) => key
            .save(services.store, &next, None)
            .await
            .step("save_charge")?,
        None => services.trace.note(format!(
            "recovery session {} {}: charge {pi_id} unchanged",
            session.id,
            status.as_str()
        )),
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
    let Some(existing) = key.load_tolerant(store).await.step("load_charge")? else {
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
/// session returns. Repeated with the same `idempotency_key` after the recovery session
/// expired or its payment failed, it renews the recovery without a new PaymentIntent.
pub async fn create_charge<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    request: &ChargeRequest,
    random: [u8; 16],
    app_base_url: &str,
) -> Result<ChargeRecord, AppError> {
    let pin = match request.idempotency_key.as_deref() {
        Some(caller_key) => {
            keys::charge_key(caller_key)
                .load_tolerant(services.store)
                .await?
        }
        None => None,
    };
    let mut record = match renewable(services, pin.as_ref()).await? {
        Some(declined) => declined,
        None => charge_once(services, request, random, pin).await?,
    };
    if record.needs_recovery() {
        if let Some(recovery) = record.recovery_request(app_base_url) {
            record = open_recovery(services, record, &recovery).await?;
        }
    }
    notify_recovery(services, &record).await?;
    Ok(record)
}

/// The charge a caller key made, when it was declined and its recovery session expired or
/// failed: renewed from the record. Stripe keeps the key only 24 h, which is when a recovery
/// link expires, so asking Stripe again would make a second charge.
async fn renewable<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    pin: Option<&ChargeKeyRecord>,
) -> Result<Option<ChargeRecord>, AppError> {
    let Some(pi) = pin.and_then(|p| p.payment_intent.as_deref()) else {
        return Ok(None);
    };
    let stored = keys::charge(pi).load_tolerant(services.store).await?;
    Ok(stored.filter(|record| record.recovery.is_some() && record.needs_recovery()))
}

/// The PaymentIntent, and its record merged with what is stored.
async fn charge_once<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    request: &ChargeRequest,
    random: [u8; 16],
    pin: Option<ChargeKeyRecord>,
) -> Result<ChargeRecord, AppError> {
    let store = services.store;
    let now = services.now;
    let pin = pinned(services, request, pin).await?;
    let intent = request.to_stripe(&pin.payment_method, request.key(random));
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
    if let Some(caller_key) = request.idempotency_key.as_deref() {
        if pin.payment_intent.as_deref() != Some(answer.id.as_str()) {
            let pin = ChargeKeyRecord {
                payment_intent: Some(answer.id.clone()),
                ..pin
            };
            keys::charge_key(caller_key)
                .save(store, &pin, Some(CHARGE_KEY_TTL_SECONDS))
                .await?;
        }
    }
    let key = keys::charge(&answer.id);
    let existing = key.load_tolerant(store).await?;
    let merged = ChargeRecord::merge_answer(existing.clone(), answer);
    Ok(match existing {
        // A repeat that adds nothing writes nothing: it could erase a paid recovery recorded
        // meanwhile by the webhook (and not seen by a stale read).
        Some(existing) if !merged.adds_to(Some(&existing)) => existing,
        _ => {
            // The decline is on record before anything else can fail.
            key.save(store, &merged, None).await?;
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

/// What the charge is sent with. With a caller key, the payment method the key was first used
/// with (see [`ChargeKeyRecord`]), recorded before Stripe is asked and never replaced: a
/// retry then sends Stripe the same request. An explicit `payment_method` is sent as given
/// (Stripe refuses a key reused with another one, as it should).
async fn pinned<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    request: &ChargeRequest,
    pin: Option<ChargeKeyRecord>,
) -> Result<ChargeKeyRecord, AppError> {
    if let Some(pin) = pin {
        return Ok(match &request.payment_method {
            Some(given) => ChargeKeyRecord {
                payment_method: given.clone(),
                ..pin
            },
            None => pin,
        });
    }
    let customer = keys::customer(&request.customer)
        .load_tolerant(services.store)
        .await?;
    let pin = ChargeKeyRecord {
        version: 1,
        payment_method: request.payment_method(customer.as_ref())?.to_owned(),
        payment_intent: None,
    };
    if let Some(caller_key) = request.idempotency_key.as_deref() {
        keys::charge_key(caller_key)
            .save(services.store, &pin, Some(CHARGE_KEY_TTL_SECONDS))
            .await?;
    }
    Ok(pin)
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
