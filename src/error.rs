//! The one application error, and the one place where errors become HTTP statuses.
//!
//! Stripe retries any non-2xx delivery for days, so: 4xx only when the request itself is
//! wrong and a retry would fail the same way; 5xx only for faults a retry can get past.

use crate::billing::BillingError;
use crate::config::ConfigError;
use crate::event::EventError;
use crate::identity::CreateError;
use crate::signature::SignatureError;
use crate::store::error::StoreError;
use crate::stripe::StripeError;

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
    #[error("the request body is not a valid form")]
    BadForm,
    #[error("the request body is not valid: {0}")]
    BadJson(String),
    #[error("the query is not valid: {0}")]
    BadQuery(String),
    /// A fault of this service that a retry will not fix; the message is for the log.
    #[error("internal error: {0}")]
    Internal(&'static str),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Identity(#[from] CreateError),
    #[error(transparent)]
    Stripe(#[from] StripeError),
}

impl AppError {
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::Unauthorized => 401,
            Self::PayloadTooLarge => 413,
            Self::BadForm | Self::BadJson(_) | Self::BadQuery(_) => 400,
            Self::Internal(_) => 500,
            Self::Signature(_) | Self::Event(_) => 400,
            // A missing or invalid setting is fixed by the operator; 500 keeps Stripe retrying
            // until then, so no event is lost to a misconfiguration.
            Self::Config(_) => 500,
            Self::Store(StoreError::Unavailable(_)) => 503,
            Self::Store(StoreError::Corrupt { .. }) => 500,
            Self::Billing(_) => 400,
            Self::Identity(CreateError::Invalid(_)) => 400,
            Self::Identity(CreateError::Refused(_)) => 409,
            Self::Stripe(e) => stripe_status(e),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::PayloadTooLarge => "payload_too_large",
            Self::BadForm => "bad_form",
            Self::BadJson(_) => "bad_json",
            Self::BadQuery(_) => "bad_query",
            Self::Internal(_) => "internal_error",
            Self::Signature(e) => e.code(),
            Self::Event(e) => e.code(),
            Self::Config(_) => "configuration_error",
            Self::Store(StoreError::Unavailable(_)) => "store_unavailable",
            Self::Store(StoreError::Corrupt { .. }) => "store_corrupt",
            Self::Billing(e) => e.code(),
            Self::Identity(CreateError::Invalid(_)) => "invalid_request",
            Self::Identity(CreateError::Refused(refusal)) => refusal.code(),
            Self::Stripe(e) => stripe_code(e),
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
            Self::Stripe(e) => stripe_message(e),
            Self::Internal(_) => "internal error; see the logs".into(),
            other => other.to_string(),
        }
    }

    /// What the operator's log gets: the whole error, except that a Stripe error is reduced to
    /// its status, type, code and request id. Stripe's message can quote what was sent (an
    /// email address), and the log must carry no personal data.
    pub fn log_text(&self) -> String {
        let Self::Stripe(e) = self else {
            return self.to_string();
        };
        let Some(api) = e.api_error() else {
            return e.to_string();
        };
        let mut text = format!(
            "{}: Stripe answered {} {}",
            self.code(),
            api.status,
            api.error_type
        );
        if let Some(code) = &api.code {
            text.push_str(&format!(" ({code})"));
        }
        if let Some(id) = &api.request_id {
            text.push_str(&format!(", request {id}"));
        }
        text
    }

    /// `{"error":{"code":…,"message":…}}`
    pub fn body(&self) -> String {
        serde_json::json!({ "error": { "code": self.code(), "message": self.public_message() } })
            .to_string()
    }
}

/// Transient Stripe trouble is 503 (retry later); a request Stripe refused because of what
/// the caller sent is 400 with Stripe's message; a refused API key or an answer that makes no
/// sense is this service's problem (500/502), as is a failure Stripe says not to retry (502);
/// a decline is 402, as Stripe says it.
fn stripe_status(error: &StripeError) -> u16 {
    match error {
        e if e.is_transient() => 503,
        StripeError::CardDeclined(_) => 402,
        StripeError::Api(api) if api.status == 401 || api.status == 403 => 500,
        StripeError::Api(api) if api.status == 400 || api.status == 404 => 400,
        StripeError::InvalidRequest(_) | StripeError::Unsendable(_) => 500,
        _ => 502,
    }
}

fn stripe_code(error: &StripeError) -> &'static str {
    match (stripe_status(error), error) {
        (503, _) => "stripe_unavailable",
        (402, _) => "card_declined",
        (400, _) => "stripe_invalid_request",
        (500, _) => "stripe_configuration_error",
        (_, StripeError::Api(_)) => "stripe_failed",
        _ => "stripe_bad_response",
    }
}

fn stripe_message(error: &StripeError) -> String {
    match (stripe_status(error), error.api_error()) {
        (400 | 402, Some(api)) => api
            .message
            .clone()
            .unwrap_or_else(|| "Stripe refused the request".into()),
        (500, _) => "Stripe refused this service's credentials or request; see the logs".into(),
        (503, _) => "Stripe is unavailable, retry later".into(),
        (_, Some(_)) => "Stripe could not complete the request; see the logs".into(),
        _ => "Stripe answered unexpectedly; see the logs".into(),
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
    fn stripe_failures_map_to_retry_later_caller_error_or_our_fault() {
        use crate::stripe::ApiError;
        let api = |status: u16| {
            let mut e: ApiError = serde_json::from_str(
                r#"{"type":"invalid_request_error","message":"No such customer: 'cus_x'"}"#,
            )
            .unwrap();
            e.status = status;
            Box::new(e)
        };
        let cases = [
            (StripeError::Api(api(400)), 400, "stripe_invalid_request"),
            (StripeError::Api(api(404)), 400, "stripe_invalid_request"),
            (StripeError::CardDeclined(api(402)), 402, "card_declined"),
            (
                StripeError::Api(api(401)),
                500,
                "stripe_configuration_error",
            ),
            (StripeError::Api(api(429)), 503, "stripe_unavailable"),
            (StripeError::Api(api(500)), 503, "stripe_unavailable"),
            (
                StripeError::Api({
                    let mut final_500 = api(500);
                    final_500.should_retry = Some(false);
                    final_500
                }),
                502,
                "stripe_failed",
            ),
            (
                StripeError::Unsendable("invalid value for header stripe-version".into()),
                500,
                "stripe_configuration_error",
            ),
            (
                StripeError::Network("reset".into()),
                503,
                "stripe_unavailable",
            ),
            (
                StripeError::Deadline { attempts: 3 },
                503,
                "stripe_unavailable",
            ),
            (
                StripeError::Malformed {
                    status: 200,
                    reason: "x".into(),
                },
                502,
                "stripe_bad_response",
            ),
        ];
        for (error, status, code) in cases {
            let app = AppError::from(error);
            assert_eq!((app.status(), app.code()), (status, code), "{app:?}");
        }
        let refused = AppError::from(StripeError::Api(api(404)));
        assert_eq!(refused.public_message(), "No such customer: 'cus_x'");
        assert!(!AppError::from(StripeError::Api(api(401)))
            .public_message()
            .contains("cus_x"));
    }

    #[test]
    fn the_log_text_of_a_stripe_error_leaves_out_its_message() {
        let mut api: crate::stripe::ApiError = serde_json::from_str(
            r#"{"type":"invalid_request_error","code":"email_invalid","message":"Invalid email address: jane@example.com"}"#,
        )
        .unwrap();
        api.status = 400;
        api.request_id = Some("req_123".into());
        let text = AppError::from(StripeError::Api(Box::new(api))).log_text();
        assert_eq!(
            text,
            "stripe_invalid_request: Stripe answered 400 invalid_request_error (email_invalid), request req_123"
        );
        assert!(AppError::from(ConfigError::Missing("ADMIN_TOKEN"))
            .log_text()
            .contains("ADMIN_TOKEN"));
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
