//! Event handlers: they load what is stored, ask the pure decision modules (`identity`,
//! `billing`) what to do, and carry it out through [`Services`] (Stripe, the store,
//! notifications). One entry point, [`dispatch`], chooses by `event.type`.

pub mod billing;
pub mod identity;

use crate::error::AppError;
use crate::event::Event;
use crate::event::Outcome;
use crate::http::Transport;
use crate::services::Services;
use crate::store::{Store, StoreError};
use crate::stripe::StripeError;

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
    /// Stripe should redeliver: the fault is transient (Stripe down or slow, an answer that
    /// did not arrive whole, KV down) or this service's configuration (a missing setting, a
    /// refused API key), which an operator fixes within Stripe's retry window. Not when Stripe
    /// said not to retry (`Stripe-Should-Retry: false`: its key replays the same failure), nor
    /// for this service's own inconsistencies.
    pub fn is_retryable(&self) -> bool {
        match &self.error {
            AppError::Stripe(e) => {
                e.is_transient()
                    || matches!(
                        e,
                        StripeError::Malformed { .. } | StripeError::Unsendable(_)
                    )
                    || e.api_error()
                        .is_some_and(|api| matches!(api.status, 401 | 403))
            }
            AppError::Store(StoreError::Unavailable(_)) | AppError::Config(_) => true,
            _ => false,
        }
    }

    /// For the log: the step and [`AppError::log_text`].
    pub fn summary(&self) -> String {
        format!("step {}: {}", self.step, self.error.log_text())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;
    use crate::stripe::ApiError;

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
