//! Stripe's answers: its error object, the client's error enum, and the decoding of one HTTP
//! response into a value or an error. Pure.

use serde::de::DeserializeOwned;

use crate::http::HttpResponse;
use crate::objects::{PaymentIntent, SetupIntent};

use super::*;

// ---------------------------------------------------------------------------------------------
// Responses and errors

/// Stripe's error object (`{"error":{…}}`), with the HTTP status it came with.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub request_id: Option<String>,
    /// Stripe's `Stripe-Should-Retry` answer, when it gave one: it overrules the status.
    pub should_retry: Option<bool>,
    pub error_type: String,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub message: Option<String>,
    pub param: Option<String>,
    pub payment_intent: Option<PaymentIntent>,
    pub setup_intent: Option<SetupIntent>,
}
crate::json::decode_map!(ApiError {
    error_type: "type" default,
    code: "code" default,
    decline_code: "decline_code" default,
    message: "message" default,
    param: "param" default,
    payment_intent: "payment_intent" default,
    setup_intent: "setup_intent" default,
} skip { status, request_id, should_retry });

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stripe answered {} {}", self.status, self.error_type)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StripeError {
    /// HTTP 402: a card was declined or needs the customer. A business outcome, not a fault.
    #[error("{0}")]
    CardDeclined(Box<ApiError>),
    /// Any other error status after the retry policy gave up (or never retried).
    #[error("{0}")]
    Api(Box<ApiError>),
    /// No usable response: network failure or timeout on the last attempt.
    #[error("Stripe could not be reached: {0}")]
    Network(String),
    /// The overall deadline passed before a final answer.
    #[error("Stripe did not answer within the deadline after {attempts} attempt(s)")]
    Deadline { attempts: u32 },
    /// A response that is not what Stripe sends (not JSON, or not the expected shape).
    #[error("Stripe answered {status} with a body that does not decode: {reason}")]
    Malformed { status: u16, reason: String },
    /// A request this client refuses to send (a POST without an idempotency key, a bad id).
    #[error("refused to send: {0}")]
    InvalidRequest(&'static str),
    /// The runtime could not build the request (a header value or URL it rejects): a
    /// configuration fault, final, never retried as if it were the network.
    #[error("the request could not be built: {0}")]
    Unsendable(String),
}

impl StripeError {
    /// Worth retrying later (the webhook answers 5xx so Stripe redelivers).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network(_) | Self::Deadline { .. } => true,
            Self::Malformed { status, .. } => *status >= 500,
            Self::Api(e) => RetryPolicy::is_retryable(AttemptFailure::Status {
                status: e.status,
                should_retry: e.should_retry,
            }),
            Self::CardDeclined(_) | Self::InvalidRequest(_) | Self::Unsendable(_) => false,
        }
    }

    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Self::CardDeclined(e) | Self::Api(e) => Some(e),
            _ => None,
        }
    }
}

/// What Stripe said when it refused a call, as a failed event's record keeps it for the
/// operator (`GET /events/{id}`): Stripe's own words and its request id, to look up in the
/// Dashboard's request log. Admin-only: the message may quote what was sent, so it never goes
/// to the log lines (see `AppError::log_text`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StripeSaid {
    /// The HTTP status of Stripe's answer.
    pub status: u16,
    #[serde(rename = "type")]
    pub error_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}
crate::json::decode_map!(StripeSaid {
    status: "status" required,
    error_type: "type" required,
    code: "code" default,
    decline_code: "decline_code" default,
    param: "param" default,
    message: "message" default,
    request_id: "request_id" default,
});

impl From<&ApiError> for StripeSaid {
    fn from(error: &ApiError) -> Self {
        Self {
            status: error.status,
            error_type: error.error_type.clone(),
            code: error.code.clone(),
            decline_code: error.decline_code.clone(),
            param: error.param.clone(),
            message: error.message.clone(),
            request_id: error.request_id.clone(),
        }
    }
}

/// A decoded success and what is worth logging about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<T> {
    pub object: T,
    pub request_id: Option<String>,
    pub attempts: u32,
}

struct ErrorEnvelope {
    error: ApiError,
}
crate::json::decode_map!(ErrorEnvelope {
    error: "error" required,
});

/// Turns one HTTP response into a value or a [`StripeError`].
pub fn decode<T: DeserializeOwned>(response: &HttpResponse) -> Result<T, StripeError> {
    if response.truncated {
        return Err(StripeError::Malformed {
            status: response.status,
            reason: "the body is larger than this service reads (4 MiB); the rest was not read"
                .into(),
        });
    }
    if (200..300).contains(&response.status) {
        return serde_json::from_str(&response.body).map_err(|e| StripeError::Malformed {
            status: response.status,
            reason: format!(
                "{} at line {} column {}",
                category(&e),
                e.line(),
                e.column()
            ),
        });
    }
    let mut error = serde_json::from_str::<ErrorEnvelope>(&response.body)
        .map_err(|e| StripeError::Malformed {
            status: response.status,
            reason: format!(
                "error body: {} at line {} column {}",
                category(&e),
                e.line(),
                e.column()
            ),
        })?
        .error;
    error.status = response.status;
    error.request_id = response.header("request-id").map(str::to_owned);
    error.should_retry = response.should_retry();
    Err(if response.status == 402 {
        StripeError::CardDeclined(Box::new(error))
    } else {
        StripeError::Api(Box::new(error))
    })
}

fn category(error: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match error.classify() {
        Category::Io => "unreadable",
        Category::Syntax => "invalid JSON",
        Category::Eof => "truncated JSON",
        Category::Data => "unexpected shape",
    }
}
