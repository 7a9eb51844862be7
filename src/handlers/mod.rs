//! Event handlers: they load what is stored, ask the pure decision modules (`identity`,
//! `billing`) what to do, and carry it out through [`Services`] (Stripe, the store,
//! notifications). One entry point, [`dispatch`], chooses by `event.type`.

pub mod billing;
pub mod identity;

use crate::error::AppError;
use crate::event::Event;
use crate::services::Services;
use crate::store::Store;
use crate::stripe::Transport;
use crate::webhook::Outcome;

/// A handler stopped at `step` (e.g. `attach`): recorded with the event so the log and
/// `GET /events/{id}` say where, and answered 5xx when a retry can get past it.
#[derive(Debug, thiserror::Error)]
#[error("step {step}: {error}")]
pub struct StepError {
    pub step: &'static str,
    #[source]
    pub error: AppError,
}

impl StepError {
    /// Stripe should redeliver: the fault is transient (Stripe down, KV down) or this
    /// service's configuration, which an operator will fix within Stripe's retry window.
    pub fn is_retryable(&self) -> bool {
        self.error.status() >= 500
    }
}

/// Names the step of a fallible call: `store.load().await.step("load_user")?`.
pub trait Step<T> {
    fn step(self, step: &'static str) -> Result<T, StepError>;
}

impl<T, E: Into<AppError>> Step<T> for Result<T, E> {
    fn step(self, step: &'static str) -> Result<T, StepError> {
        self.map_err(|e| StepError {
            step,
            error: e.into(),
        })
    }
}

/// The event types this service acts on; every other verified type is recorded as ignored.
pub const HANDLED_EVENT_TYPES: &[&str] = &[
    identity::VERIFIED,
    identity::REQUIRES_INPUT,
    identity::PROCESSING,
    identity::CANCELED,
    identity::REDACTED,
    identity::CREATED,
    billing::CHECKOUT_SESSION_COMPLETED,
    billing::PAYMENT_INTENT_SUCCEEDED,
    billing::PAYMENT_INTENT_PAYMENT_FAILED,
];

pub async fn dispatch<S: Store, T: Transport>(
    event: &Event,
    services: &Services<'_, S, T>,
) -> Result<Outcome, StepError> {
    let kind = event.event_type.as_str();
    if identity::EVENT_TYPES.contains(&kind) {
        identity::handle(event, services).await
    } else if billing::EVENT_TYPES.contains(&kind) {
        billing::handle(event, services).await
    } else {
        Ok(Outcome::Ignored)
    }
}
