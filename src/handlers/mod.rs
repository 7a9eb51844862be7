//! Event handlers: they load what is stored, ask the pure decision modules (`identity`,
//! `billing`) what to do, and carry it out through [`Services`] (Stripe, the store,
//! notifications). One entry point, [`dispatch`], chooses by `event.type`.

pub mod charges;
pub mod customers;
pub mod dry_run;
pub mod identity;
pub mod setup;

use crate::error::AppError;
use crate::event::Outcome;
use crate::event::{Event, EventData, EventError, EventKind};
use crate::http::Transport;
use crate::services::Services;
use crate::store::Store;
use crate::stripe::calls;
use serde_json::value::RawValue;

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
    /// Stripe should redeliver: the rule is [`AppError::is_retryable`], which sits in the one
    /// table beside the status.
    pub fn is_retryable(&self) -> bool {
        self.error.is_retryable()
    }

    /// For the log: the step and [`AppError::log_text`].
    pub fn summary(&self) -> String {
        format!("step {}: {}", self.step, self.error.log_text())
    }
}

/// What handling an event came to and, when it was ignored for a reason worth keeping
/// (its object was not made here), that reason: recorded with the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    pub outcome: Outcome,
    pub reason: Option<&'static str>,
}

impl Handled {
    pub fn ignored(reason: &'static str) -> Self {
        Self {
            outcome: Outcome::Ignored,
            reason: Some(reason),
        }
    }
}

impl From<Outcome> for Handled {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            reason: None,
        }
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

/// The event types this service acts on, from [`EventKind`]; every other verified type is
/// recorded as ignored.
pub const HANDLED_EVENT_TYPES: &[&str] = EventKind::TYPES;

/// The one `match` over what an event is. It has no wildcard arm, so a new [`EventKind`]
/// does not compile until it is handled here.
pub async fn dispatch<S: Store, T: Transport>(
    event: &Event,
    services: &Services<'_, S, T>,
) -> Result<Handled, StepError> {
    let Some(kind) = event.kind() else {
        return Ok(Outcome::Ignored.into());
    };
    let reread = at_pinned_version(event, kind, services).await?;
    let event = reread.as_ref().unwrap_or(event);
    match kind {
        EventKind::VerificationSessionCreated
        | EventKind::VerificationSessionProcessing
        | EventKind::VerificationSessionVerified
        | EventKind::VerificationSessionRequiresInput
        | EventKind::VerificationSessionCanceled
        | EventKind::VerificationSessionRedacted => identity::handle(event, kind, services).await,
        EventKind::CheckoutSessionCompleted
        | EventKind::CheckoutSessionAsyncPaymentSucceeded
        | EventKind::CheckoutSessionAsyncPaymentFailed
        | EventKind::CheckoutSessionExpired => {
            setup::checkout_session_event(event, kind, services).await
        }
        EventKind::PaymentIntentSucceeded | EventKind::PaymentIntentPaymentFailed => {
            charges::payment_intent_updated(event, services)
                .await
                .map(Handled::from)
        }
    }
}
/// The API version rule: an event rendered in another API version than the pinned one (an
/// endpoint made with another version, or an event read back from `GET /v1/events`, which
/// Stripe renders in the account's default version at the event's creation) is not handled on
/// its payload. Its object is retrieved at the pinned version and handled instead (`Some`);
/// `None` when the event is already at the pinned version (or says none, as only events from
/// before 2014-10-31 do). The object is the current one, which the state machines order by
/// the event's `created` as for any late event.
pub async fn at_pinned_version<S: Store, T: Transport>(
    event: &Event,
    kind: EventKind,
    services: &Services<'_, S, T>,
) -> Result<Option<Event>, StepError> {
    let pinned = services.config.stripe_api_version.as_str();
    let Some(version) = event.api_version.as_deref().filter(|v| *v != pinned) else {
        return Ok(None);
    };
    struct Id {
        id: String,
    }
    crate::json::decode_map!(Id { id: "id" required });
    let id = event.object::<Id>().step("decode_object")?.id;
    let request = calls::retrieve_event_object(kind, &id)
        .ok_or_else(|| EventError::NotAnEvent("data.object.id is not of its type".into()))
        .step("decode_object")?;
    let object: Box<RawValue> = services.stripe(&request).await.step("reread_object")?;
    services.trace.note(format!(
        "event {} is in API version {version}: {id} was re-read at {pinned}",
        event.id
    ));
    Ok(Some(Event {
        id: event.id.clone(),
        event_type: event.event_type.clone(),
        created: event.created,
        livemode: event.livemode,
        api_version: Some(pinned.to_owned()),
        data: EventData { object },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;
    use crate::store::StoreError;
    use crate::stripe::{ApiError, StripeError};

    fn api(status: u16, should_retry: Option<bool>) -> StripeError {
        let mut e: ApiError = serde_json::from_str(r#"{"type":"api_error"}"#).unwrap();
        e.status = status;
        e.should_retry = should_retry;
        if status == 402 {
            StripeError::CardDeclined(Box::new(e))
        } else {
            StripeError::Api(Box::new(e))
        }
    }

    fn retryable(error: impl Into<AppError>) -> bool {
        StepError {
            step: "s",
            error: error.into(),
        }
        .is_retryable()
    }

    #[test]
    fn only_what_a_redelivery_can_get_past_is_retried() {
        assert!(retryable(api(500, None)));
        assert!(retryable(api(429, None)));
        assert!(retryable(api(409, None)));
        assert!(
            retryable(api(401, None)),
            "a refused key is fixed by the operator"
        );
        assert!(retryable(StripeError::Network("reset".into())));
        assert!(retryable(StripeError::Deadline { attempts: 2 }));
        assert!(retryable(StripeError::Malformed {
            status: 200,
            reason: "truncated".into()
        }));
        assert!(retryable(StoreError::Unavailable("down".into())));
        assert!(retryable(ConfigError::Missing("STRIPE_SECRET_KEY")));

        assert!(
            !retryable(api(500, Some(false))),
            "Stripe said not to retry"
        );
        assert!(!retryable(api(400, None)));
        assert!(!retryable(api(404, None)));
        assert!(!retryable(api(402, None)));
        assert!(!retryable(AppError::Internal("inconsistent")));
        assert!(!retryable(StoreError::Corrupt {
            key: "k".into(),
            reason: "r".into()
        }));
    }
}
