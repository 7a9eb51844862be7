//! Billing events: setup-mode completion, off-session charge follow-ups, recovery payments.

use crate::event::Event;
use crate::services::Services;
use crate::store::Store;
use crate::stripe::Transport;
use crate::webhook::Outcome;

use super::StepError;

pub const CHECKOUT_SESSION_COMPLETED: &str = "checkout.session.completed";
pub const PAYMENT_INTENT_SUCCEEDED: &str = "payment_intent.succeeded";
pub const PAYMENT_INTENT_PAYMENT_FAILED: &str = "payment_intent.payment_failed";

pub const EVENT_TYPES: &[&str] = &[
    CHECKOUT_SESSION_COMPLETED,
    PAYMENT_INTENT_SUCCEEDED,
    PAYMENT_INTENT_PAYMENT_FAILED,
];

pub async fn handle<S: Store, T: Transport>(
    _event: &Event,
    _services: &Services<'_, S, T>,
) -> Result<Outcome, StepError> {
    // Issue 6 fills this in.
    Ok(Outcome::Ignored)
}
