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
use crate::stripe::{StripeError, StripeSaid};

pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// A kind of record the admin routes read; a lookup that finds none is `404 not_found` with
/// `"record"` naming the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Event,
    Customer,
    Charge,
    IdentityUser,
    Notification,
    /// An event Stripe does not keep (unknown, or older than its 30 days), for a replay.
    StripeEvent,
}

impl Record {
    /// The name in the answer's `error.record`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Customer => "customer",
            Self::Charge => "charge",
            Self::IdentityUser => "identity_user",
            Self::Notification => "notification",
            Self::StripeEvent => "stripe_event",
        }
    }

    fn described(self) -> &'static str {
        match self {
            Self::Event => "no event is recorded here under this id (event:{id})",
            Self::Customer => {
                "no customer with a card saved here has this id (customer:{id}); save a card first"
            }
            Self::Charge => {
                "no charge made here has this PaymentIntent id (charge:{pi_id}); only POST /charges records one"
            }
            Self::IdentityUser => {
                "no verification has been started or received for this user id (identity:user:{id})"
            }
            Self::Notification => "no notification is in the outbox under this id (notification:{id})",
            Self::StripeEvent => {
                "Stripe has no event with this id (it keeps events for 30 days)"
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No route has this path (or, on a route that needs it, no setting enables it).
    #[error("no such route")]
    NotFound,
    /// The route exists; the record it reads does not.
    #[error("{}", .0.described())]
    NoRecord(Record),
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
    /// The Workers Rate Limiting binding refused the client (by `CF-Connecting-IP`).
    #[error("too many requests; try again in a minute")]
    TooManyRequests,
    /// The global ceiling on anonymous setup sessions (`crate::ceiling`) is reached: room
    /// again in `retry_after` seconds (the next minute, or the next UTC day).
    #[error("the form has opened as many sessions as it may for now; try again in {retry_after} seconds")]
    SetupCeilingFull { retry_after: u64 },
    /// A form posted from another site's page (`Origin`, `Sec-Fetch-Site`).
    #[error("this form can only be posted from this service's own page")]
    CrossSiteForm,
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
    /// A thin event's related object could not be read (404, 5xx, a timeout): the event
    /// cannot be handled on its own payload, so Stripe is asked to redeliver, whatever the
    /// status (a 404 may be an object not yet readable where it was asked for).
    #[error("the thin event's related object could not be read; Stripe will redeliver the event")]
    RelatedObjectUnreadable(StripeError),
    /// An error the work met in an entity's queue (its Durable Object), carried back over
    /// the binding as it is answered and logged there.
    #[error("{}", .0.log)]
    Relayed(Box<Relayed>),
}

/// What an error is answered and logged as, for carrying it from one isolate to another (an
/// entity's Durable Object back to the worker that asked): the same status, code, message,
/// log text and retry decision as the error it was made from ([`AppError::relay`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Relayed {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub log: String,
    pub retry: bool,
    /// The request field the error is about, as [`AppError::field`] named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What Stripe said, as [`AppError::stripe_said`] gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe: Option<StripeSaid>,
}
crate::json::decode_map!(Relayed {
    status: "status" required,
    code: "code" required,
    message: "message" required,
    log: "log" required,
    retry: "retry" required,
    field: "field" default,
    stripe: "stripe" default,
});

/// How one error is answered: the one table behind [`AppError::status`], [`AppError::code`]
/// and [`AppError::is_retryable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Class {
    status: u16,
    code: &'static str,
    /// A redelivery (or the caller's retry) can get past it. Only ever with a 5xx status:
    /// Stripe redelivers only after one.
    retry: bool,
}

const fn class(status: u16, code: &'static str, retry: bool) -> Class {
    Class {
        status,
        code,
        retry,
    }
}

impl AppError {
    /// The one table. Transient faults (Stripe down or slow, an answer that did not arrive
    /// whole, KV down) and this service's configuration (a missing setting, a refused API
    /// key, which an operator fixes within Stripe's retry window) are retried; not what Stripe
    /// said not to retry (`Stripe-Should-Retry: false`: its key replays the same failure),
    /// nor this service's own inconsistencies.
    fn class(&self) -> Class {
        match self {
            Self::NotFound | Self::NoRecord(_) => class(404, "not_found", false),
            Self::MethodNotAllowed { .. } => class(405, "method_not_allowed", false),
            Self::Unauthorized => class(401, "unauthorized", false),
            Self::PayloadTooLarge => class(413, "payload_too_large", false),
            Self::BadForm => class(400, "bad_form", false),
            Self::BadJson(_) => class(400, "bad_json", false),
            Self::BadQuery(_) => class(400, "bad_query", false),
            Self::TooManyRequests => class(429, "rate_limited", false),
            Self::SetupCeilingFull { .. } => class(503, "setup_ceiling_reached", true),
            Self::CrossSiteForm => class(403, "cross_site_form", false),
            Self::Internal(_) => class(500, "internal_error", false),
            Self::Signature(e) => class(400, e.code(), false),
            Self::Event(e) => class(400, e.code(), false),
            // A missing or invalid setting is fixed by the operator; 500 keeps Stripe retrying
            // until then, so no event is lost to a misconfiguration.
            Self::Config(_) => class(500, "configuration_error", true),
            Self::Store(StoreError::Unavailable(_)) => class(503, "store_unavailable", true),
            Self::Store(StoreError::Corrupt { .. }) => class(500, "store_corrupt", false),
            // The session is still open at Stripe: finish Checkout first.
            Self::Billing(
                e @ (BillingError::SessionNotComplete
                | BillingError::SetupNotSucceeded
                | BillingError::IdempotencyKeyReused(_)),
            ) => class(409, e.code(), false),
            Self::Billing(e) => class(400, e.code(), false),
            Self::Identity(CreateError::Invalid(field)) => class(400, field.code(), false),
            Self::Identity(CreateError::Refused(refusal)) => class(409, refusal.code(), false),
            Self::Stripe(e) => stripe_class(e),
            Self::RelatedObjectUnreadable(_) => class(503, "related_object_unreadable", true),
            // Answered from its own fields (see `status`, `code`, `is_retryable`).
            Self::Relayed(_) => class(500, "internal_error", false),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::Relayed(r) => r.status,
            other => other.class().status,
        }
    }

    pub fn code(&self) -> &str {
        match self {
            Self::Relayed(r) => &r.code,
            other => other.class().code,
        }
    }

    /// Seconds until a retry can succeed (`Retry-After`), when this service knows them.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::SetupCeilingFull { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether a redelivery can get past this failure (the webhook then answers 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Relayed(r) => r.retry,
            other => other.class().retry,
        }
    }

    /// The error as it travels back over a Durable Object binding; [`AppError::Relayed`] of
    /// it answers, logs and retries exactly as `self` does.
    pub fn relay(&self) -> Relayed {
        Relayed {
            status: self.status(),
            code: self.code().to_owned(),
            message: self.public_message(),
            log: self.log_text(),
            retry: self.is_retryable(),
            field: self.field().map(str::to_owned),
            stripe: self.stripe_said(),
        }
    }

    /// Stripe's error, when Stripe refused the call (not for a network fault or a deadline).
    pub fn stripe_said(&self) -> Option<StripeSaid> {
        match self {
            Self::Stripe(e) | Self::RelatedObjectUnreadable(e) => {
                e.api_error().map(StripeSaid::from)
            }
            Self::Relayed(r) => r.stripe.clone(),
            _ => None,
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
            Self::Relayed(r) => r.message.clone(),
            other => other.to_string(),
        }
    }

    /// What the operator's log gets: the whole error, except that a Stripe error is reduced to
    /// its status, type, code and request id. Stripe's message can quote what was sent (an
    /// email address), and the log must carry no personal data.
    pub fn log_text(&self) -> String {
        let (Self::Stripe(e) | Self::RelatedObjectUnreadable(e)) = self else {
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

    /// The request field a 4xx is about (`"field"` in the answer).
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Billing(e) => e.field(),
            Self::Identity(CreateError::Invalid(field)) => Some(field.field()),
            Self::Relayed(r) => r.field.as_deref(),
            _ => None,
        }
    }

    /// `{"error":{"code":…,"message":…}}`, with `"field"` for a field that is missing or
    /// wrong, and `"record"` for a record that does not exist.
    pub fn body(&self) -> String {
        let mut error = serde_json::Map::new();
        error.insert("code".into(), self.code().into());
        if let Some(field) = self.field() {
            error.insert("field".into(), field.into());
        }
        if let Self::NoRecord(record) = self {
            error.insert("record".into(), record.name().into());
        }
        error.insert("message".into(), self.public_message().into());
        let mut body = serde_json::Map::new();
        body.insert("error".into(), serde_json::Value::Object(error));
        // `to_string` of the value, not `Display` (see `router::json_string`).
        serde_json::to_string(&serde_json::Value::Object(body)).unwrap_or_default()
    }
}

/// Transient Stripe trouble is 503 (retry later); a request Stripe refused because of what
/// the caller sent is 400 with Stripe's message; a refused API key or an answer that makes no
/// sense is this service's problem (500/502), as is a failure Stripe says not to retry (502);
/// a decline is 402, as Stripe says it.
fn stripe_class(error: &StripeError) -> Class {
    match error {
        e if e.is_transient() => class(503, "stripe_unavailable", true),
        StripeError::CardDeclined(_) => class(402, "card_declined", false),
        StripeError::Api(api) if api.status == 401 || api.status == 403 => {
            class(500, "stripe_configuration_error", true)
        }
        StripeError::Api(api) if api.status == 400 || api.status == 404 => {
            class(400, "stripe_invalid_request", false)
        }
        StripeError::Unsendable(_) => class(500, "stripe_configuration_error", true),
        // A request this service built wrong fails the same way every time.
        StripeError::InvalidRequest(_) => class(500, "stripe_configuration_error", false),
        StripeError::Api(_) => class(502, "stripe_failed", false),
        _ => class(502, "stripe_bad_response", true),
    }
}

fn stripe_message(error: &StripeError) -> String {
    match (stripe_class(error).status, error.api_error()) {
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
    fn what_stripe_said_survives_the_trip_back_from_a_queue_and_a_network_fault_says_nothing() {
        use crate::stripe::ApiError;
        let mut api: ApiError = serde_json::from_str(
            r#"{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds.","param":"payment_method"}"#,
        )
        .unwrap();
        (api.status, api.request_id) = (402, Some("req_123".into()));
        let error = AppError::Stripe(StripeError::CardDeclined(Box::new(api)));
        let said = error.stripe_said().unwrap();
        assert_eq!(
            (
                said.status,
                said.code.as_deref(),
                said.decline_code.as_deref()
            ),
            (402, Some("card_declined"), Some("insufficient_funds"))
        );
        assert_eq!(said.request_id.as_deref(), Some("req_123"));
        let wire = serde_json::to_string(&error.relay()).unwrap();
        let relayed = AppError::Relayed(Box::new(serde_json::from_str(&wire).unwrap()));
        assert_eq!(relayed.stripe_said(), Some(said));
        assert!(
            !relayed.log_text().contains("insufficient funds"),
            "the message stays out of the log"
        );
        let network = AppError::Stripe(StripeError::Network("reset".into()));
        assert_eq!(network.relay().stripe, None);
    }

    #[test]
    fn only_5xx_errors_are_retryable_so_the_retry_rule_agrees_with_the_status() {
        use crate::stripe::ApiError;
        let api = |status: u16, should_retry: Option<bool>| {
            let mut e: ApiError = serde_json::from_str(r#"{"type":"api_error"}"#).unwrap();
            e.status = status;
            e.should_retry = should_retry;
            Box::new(e)
        };
        let errors: Vec<AppError> = vec![
            AppError::NotFound,
            AppError::Unauthorized,
            AppError::BadForm,
            AppError::Internal("x"),
            ConfigError::Missing("STRIPE_SECRET_KEY").into(),
            StoreError::Unavailable("down".into()).into(),
            StoreError::Corrupt {
                key: "k".into(),
                reason: "r".into(),
            }
            .into(),
            BillingError::SessionNotComplete.into(),
            BillingError::InvalidSessionId.into(),
            StripeError::Api(api(400, None)).into(),
            StripeError::Api(api(401, None)).into(),
            StripeError::Api(api(500, None)).into(),
            StripeError::Api(api(500, Some(false))).into(),
            StripeError::CardDeclined(api(402, None)).into(),
            StripeError::Network("reset".into()).into(),
            StripeError::Unsendable("bad header".into()).into(),
            StripeError::InvalidRequest("no key").into(),
            StripeError::Malformed {
                status: 200,
                reason: "x".into(),
            }
            .into(),
        ];
        for error in errors {
            if error.is_retryable() {
                assert!(error.status() >= 500, "{error:?}");
            }
            if error.status() < 500 {
                assert!(!error.is_retryable(), "{error:?}");
            }
            if error.status() == 503 {
                assert!(error.is_retryable(), "{error:?}");
            }
        }
    }

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

    #[test]
    fn a_missing_record_is_not_found_and_names_its_kind_and_a_bad_field_names_the_field() {
        let body =
            |error: AppError| -> serde_json::Value { serde_json::from_str(&error.body()).unwrap() };
        for (record, name) in [
            (Record::Event, "event"),
            (Record::Customer, "customer"),
            (Record::Charge, "charge"),
            (Record::IdentityUser, "identity_user"),
        ] {
            let error = AppError::NoRecord(record);
            assert_eq!((error.status(), error.code()), (404, "not_found"));
            let answer = body(error);
            assert_eq!(answer["error"]["record"], name);
            assert_ne!(answer["error"]["message"], "no such route");
        }
        assert!(body(AppError::NotFound)["error"].get("record").is_none());
        let amount = body(BillingError::InvalidAmount.into());
        assert_eq!(amount["error"]["code"], "invalid_amount");
        assert_eq!(amount["error"]["field"], "amount");
        let user = body(CreateError::Invalid(crate::identity::InvalidField::UserId).into());
        assert_eq!(
            (&user["error"]["code"], &user["error"]["field"]),
            (&"invalid_user_id".into(), &"user_id".into())
        );
        assert!(body(AppError::Unauthorized)["error"].get("field").is_none());
    }
}
