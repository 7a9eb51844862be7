//! The one application error, and the one place where errors become HTTP statuses.
//!
//! Stripe retries any non-2xx delivery for days, so: 4xx only when the request itself is
//! wrong and a retry would fail the same way; 5xx only for faults a retry can get past.

use crate::config::ConfigError;
use crate::event::EventError;
use crate::signature::SignatureError;
use crate::store::StoreError;
use crate::webhook::WebhookError;

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("missing or wrong admin token")]
    Unauthorized,
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WebhookError> for AppError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::BodyTooLarge => Self::PayloadTooLarge,
            WebhookError::Signature(e) => Self::Signature(e),
            WebhookError::Event(e) => Self::Event(e),
            WebhookError::Store(e) => Self::Store(e),
        }
    }
}

impl AppError {
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::Unauthorized => 401,
            Self::PayloadTooLarge => 413,
            Self::Signature(_) | Self::Event(_) => 400,
            // A missing or invalid setting is fixed by the operator; 500 keeps Stripe retrying
            // until then, so no event is lost to a misconfiguration.
            Self::Config(_) => 500,
            Self::Store(StoreError::Unavailable(_)) => 503,
            Self::Store(StoreError::Corrupt { .. }) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Signature(e) => e.code(),
            Self::Event(e) => e.code(),
            Self::Config(_) => "configuration_error",
            Self::Store(StoreError::Unavailable(_)) => "store_unavailable",
            Self::Store(StoreError::Corrupt { .. }) => "store_corrupt",
        }
    }

    /// What the client is told. Configuration errors name the setting (never a value);
    /// store failures say nothing of the backend's internals, which go to the log instead.
    pub fn public_message(&self) -> String {
        match self {
            Self::Store(StoreError::Unavailable(_)) => {
                "state store unavailable, retry later".into()
            }
            Self::Store(StoreError::Corrupt { .. }) => "stored state could not be read".into(),
            other => other.to_string(),
        }
    }

    /// `{"error":{"code":…,"message":…}}`
    pub fn body(&self) -> String {
        serde_json::json!({ "error": { "code": self.code(), "message": self.public_message() } })
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_the_status_stripe_should_see() {
        let cases: [(AppError, u16); 9] = [
            (AppError::NotFound, 404),
            (AppError::MethodNotAllowed { allow: "POST" }, 405),
            (AppError::Unauthorized, 401),
            (AppError::PayloadTooLarge, 413),
            (SignatureError::NoMatchingSignature.into(), 400),
            (EventError::InvalidId.into(), 400),
            (ConfigError::Missing("STRIPE_WEBHOOK_SECRET").into(), 500),
            (StoreError::Unavailable("kv down".into()).into(), 503),
            (
                StoreError::Corrupt {
                    key: "k".into(),
                    reason: "r".into(),
                }
                .into(),
                500,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error:?}");
        }
    }

    #[test]
    fn bodies_are_json_with_a_code_and_hide_backend_details() {
        let body: serde_json::Value = serde_json::from_str(
            &AppError::from(StoreError::Unavailable("kv at 10.0.0.1".into())).body(),
        )
        .unwrap();
        assert_eq!(body["error"]["code"], "store_unavailable");
        assert!(!body.to_string().contains("10.0.0.1"));
        let missing = AppError::from(ConfigError::Missing("STRIPE_WEBHOOK_SECRET")).body();
        assert!(missing.contains("STRIPE_WEBHOOK_SECRET"), "{missing}");
    }
}
