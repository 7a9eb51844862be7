//! Off-session charges with a recovery Checkout Session after a decline, and the follow-up
//! events. The decisions are in `billing::charge`; this module loads, calls Stripe, stores.

use crate::billing::{
    self, ChargeError, ChargeRecord, ChargeRequest, CheckoutRecord, LastPaymentError,
};
use crate::error::AppError;
use crate::event::{Event, Outcome};
use crate::http::Transport;
use crate::notify::{Notification, Recipient};
use crate::objects::{CheckoutSession, PaymentIntent};
use crate::services::Services;
use crate::store::{keys, Store};
use crate::stripe::{is_stripe_id, StripeError, StripeRequest};

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

/// `checkout.session.completed` in payment mode: a paid recovery session marks the declined
/// charge it names (`metadata[payment_intent]`) as paid. Needs no Stripe call.
pub(crate) async fn record_recovery<S: Store, T: Transport>(
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
    let existing = key.load_tolerant(store).await.step("load_charge")?;
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
/// session returns.
pub async fn create_charge<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    request: &ChargeRequest,
    random: [u8; 16],
    app_base_url: &str,
) -> Result<ChargeRecord, AppError> {
    let store = services.store;
    let now = services.now;
    let customer = keys::customer(&request.customer)
        .load_tolerant(store)
        .await?;
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
    let existing = key.load_tolerant(store).await?;
    let merged = ChargeRecord::merge_answer(existing.clone(), answer);
    let mut record = match existing {
        // A repeat that adds nothing writes nothing: it could erase a paid recovery recorded
        // meanwhile by the webhook (and not seen by a stale read).
        Some(existing) if !merged.adds_to(Some(&existing)) => existing,
        _ => {
            // The decline is on record before anything else can fail.
            key.save(store, &merged, None).await?;
            merged
        }
    };
    if record.needs_recovery() {
        if let Some(recovery) = record.recovery_request(app_base_url) {
            record = open_recovery(services, record, &recovery).await?;
        }
    }
    let recovering = !record.paid && record.recovery.as_ref().is_some_and(|r| r.status == "open");
    if let Some(customer) = record.customer.clone().filter(|_| recovering) {
        // Keyed by the PaymentIntent: a repeated request does not notify twice once delivered.
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
        keys::checkout(&session.id)
            .save(
                services.store,
                &CheckoutRecord::opened(&session, services.now),
                None,
            )
            .await?;
    }
    Ok(record)
}
