//! The Stripe API client: request building, error decoding and the retry policy are pure;
//! the network, the clock, sleeping and randomness come through the small [`Transport`] port
//! (Workers fetch in production, a scripted fake in native tests).
//!
//! Rules, after Stripe's own SDKs: form-encoded bodies with bracketed keys; `Authorization:
//! Bearer`; a pinned `Stripe-Version`; an `Idempotency-Key` on every POST, the same on every
//! retry; retries for network errors, 409, 429, 5xx and `Stripe-Should-Retry: true`, never for
//! `Stripe-Should-Retry: false`; exponential backoff with jitter inside an overall deadline.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::config::SecretString;
use crate::http::{HttpRequest, HttpResponse, Method, SendFailure, Transport};
use crate::objects::{Metadata, PaymentIntent, SetupIntent};

#[cfg(target_arch = "wasm32")]
pub mod fetch;

// ---------------------------------------------------------------------------------------------
// Form encoding

/// Form parameters in Stripe's bracket notation, kept in insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.0.push((key.into(), value.to_string()));
        self
    }

    pub fn set_opt(self, key: impl Into<String>, value: Option<impl ToString>) -> Self {
        match value {
            Some(value) => self.set(key, value),
            None => self,
        }
    }

    /// `metadata[key]=value` for each entry.
    pub fn metadata(self, metadata: &Metadata) -> Self {
        metadata
            .iter()
            .fold(self, |form, (k, v)| form.set(format!("metadata[{k}]"), v))
    }

    /// `expand[]=field`.
    pub fn expand(self, field: &str) -> Self {
        self.set("expand[]", field)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `application/x-www-form-urlencoded`, escaped by serde_urlencoded. Brackets are then
    /// written literally, as Stripe's SDKs do, which keeps keys readable in logs and the stand-in.
    pub fn encode(&self) -> String {
        serde_urlencoded::to_string(&self.0)
            .unwrap_or_default()
            .replace("%5B", "[")
            .replace("%5D", "]")
    }
}

// ---------------------------------------------------------------------------------------------
// Idempotency keys

/// Stripe keeps a key for 24 hours and compares the parameters sent with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// For a write made while handling an event: the same event and step always give the same
    /// key, so racing or repeated deliveries make the effect once at Stripe.
    pub fn for_event(event_id: &str, step: &str) -> Self {
        Self(format!("{event_id}:{step}"))
    }

    /// For a write with a caller-chosen key (e.g. a charge request's `idempotency_key`).
    pub fn scoped(scope: &str, key: &str) -> Self {
        Self(format!("{scope}:{key}"))
    }

    /// Whether a caller may name a write with `key`: 1 to `max_len` printable ASCII
    /// characters, `max_len` leaving room for the scope within Stripe's 255.
    pub fn is_valid_caller_key(key: &str, max_len: usize) -> bool {
        !key.is_empty() && key.len() <= max_len && key.bytes().all(|b| b.is_ascii_graphic())
    }

    /// For a write with no natural key: 128 random bits.
    pub fn random(random: [u8; 16]) -> Self {
        Self(hex::encode(random))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// One Stripe API call, before base URL and credentials are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeRequest {
    pub method: Method,
    /// Path under the base URL, e.g. `/v1/customers`.
    pub path: String,
    pub form: Form,
    /// Required on POST: [`StripeClient::send`] refuses a POST without one.
    pub idempotency_key: Option<IdempotencyKey>,
}

impl StripeRequest {
    pub fn get(path: impl Into<String>, query: Form) -> Self {
        Self {
            method: Method::Get,
            path: path.into(),
            form: query,
            idempotency_key: None,
        }
    }

    pub fn post(path: impl Into<String>, form: Form, key: IdempotencyKey) -> Self {
        Self {
            method: Method::Post,
            path: path.into(),
            form,
            idempotency_key: Some(key),
        }
    }
}

/// Stripe ids go into paths: only their own alphabet is let through.
pub fn is_stripe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The calls this service makes (DESIGN.md, "Stripe API calls").
pub mod calls {
    use super::*;

    pub struct SetupSession<'a> {
        pub currency: &'a str,
        pub customer: Option<&'a str>,
        pub success_url: &'a str,
        pub cancel_url: &'a str,
        pub metadata: &'a Metadata,
    }

    pub fn create_setup_session(p: &SetupSession<'_>, key: IdempotencyKey) -> StripeRequest {
        let form = Form::new()
            .set("mode", "setup")
            .set("currency", p.currency)
            .set_opt("customer", p.customer)
            .set("payment_method_types[]", "card")
            .set("success_url", p.success_url)
            .set("cancel_url", p.cancel_url)
            .metadata(p.metadata);
        StripeRequest::post("/v1/checkout/sessions", form, key)
    }

    pub struct PaymentSession<'a> {
        pub customer: &'a str,
        pub amount: i64,
        pub currency: &'a str,
        pub product_name: &'a str,
        pub success_url: &'a str,
        pub cancel_url: &'a str,
        pub metadata: &'a Metadata,
    }

    pub fn create_payment_session(p: &PaymentSession<'_>, key: IdempotencyKey) -> StripeRequest {
        let form = Form::new()
            .set("mode", "payment")
            .set("customer", p.customer)
            .set("line_items[0][quantity]", 1)
            .set("line_items[0][price_data][currency]", p.currency)
            .set("line_items[0][price_data][unit_amount]", p.amount)
            .set(
                "line_items[0][price_data][product_data][name]",
                p.product_name,
            )
            .set("success_url", p.success_url)
            .set("cancel_url", p.cancel_url)
            .metadata(p.metadata);
        StripeRequest::post("/v1/checkout/sessions", form, key)
    }

    pub fn retrieve_checkout_session(id: &str, expand_setup_intent: bool) -> StripeRequest {
        let query = if expand_setup_intent {
            Form::new().expand("setup_intent")
        } else {
            Form::new()
        };
        StripeRequest::get(format!("/v1/checkout/sessions/{id}"), query)
    }

    pub fn retrieve_setup_intent(id: &str) -> StripeRequest {
        StripeRequest::get(format!("/v1/setup_intents/{id}"), Form::new())
    }

    pub fn create_customer(
        email: Option<&str>,
        metadata: &Metadata,
        key: IdempotencyKey,
    ) -> StripeRequest {
        let form = Form::new().set_opt("email", email).metadata(metadata);
        StripeRequest::post("/v1/customers", form, key)
    }

    pub fn attach_payment_method(
        payment_method: &str,
        customer: &str,
        key: IdempotencyKey,
    ) -> StripeRequest {
        let form = Form::new().set("customer", customer);
        StripeRequest::post(
            format!("/v1/payment_methods/{payment_method}/attach"),
            form,
            key,
        )
    }

    pub struct OffSessionCharge<'a> {
        pub customer: &'a str,
        pub payment_method: &'a str,
        pub amount: i64,
        pub currency: &'a str,
        pub description: Option<&'a str>,
        pub metadata: &'a Metadata,
    }

    pub fn create_off_session_payment_intent(
        p: &OffSessionCharge<'_>,
        key: IdempotencyKey,
    ) -> StripeRequest {
        let form = Form::new()
            .set("amount", p.amount)
            .set("currency", p.currency)
            .set("customer", p.customer)
            .set("payment_method", p.payment_method)
            .set("off_session", true)
            .set("confirm", true)
            .set_opt("description", p.description)
            .metadata(p.metadata);
        StripeRequest::post("/v1/payment_intents", form, key)
    }

    pub fn create_verification_session(
        kind: &str,
        user_id: &str,
        return_url: Option<&str>,
        key: IdempotencyKey,
    ) -> StripeRequest {
        let form = Form::new()
            .set("type", kind)
            .set("metadata[user_id]", user_id)
            .set_opt("return_url", return_url);
        StripeRequest::post("/v1/identity/verification_sessions", form, key)
    }

    pub fn create_webhook_endpoint(
        url: &str,
        events: &[&str],
        api_version: &str,
        key: IdempotencyKey,
    ) -> StripeRequest {
        let form = events
            .iter()
            .fold(Form::new().set("url", url), |form, event| {
                form.set("enabled_events[]", event)
            })
            .set("api_version", api_version);
        StripeRequest::post("/v1/webhook_endpoints", form, key)
    }
}

// ---------------------------------------------------------------------------------------------
// Responses and errors

/// Stripe's error object (`{"error":{…}}`), with the HTTP status it came with.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    #[serde(skip)]
    pub request_id: Option<String>,
    /// Stripe's `Stripe-Should-Retry` answer, when it gave one: it overrules the status.
    #[serde(skip)]
    pub should_retry: Option<bool>,
    #[serde(rename = "type", default)]
    pub error_type: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
    #[serde(default)]
    pub payment_intent: Option<PaymentIntent>,
    #[serde(default)]
    pub setup_intent: Option<SetupIntent>,
}

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

/// A decoded success and what is worth logging about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<T> {
    pub object: T,
    pub request_id: Option<String>,
    pub attempts: u32,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ApiError,
}

/// Turns one HTTP response into a value or a [`StripeError`].
pub fn decode<T: DeserializeOwned>(response: &HttpResponse) -> Result<T, StripeError> {
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

// ---------------------------------------------------------------------------------------------
// Retry policy

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub initial_delay_ms: u64,
    pub max_delay_ms: u64,
    /// One attempt may take this long before it is abandoned.
    pub attempt_timeout_ms: u64,
    /// All attempts and waits together: a Worker request should answer Stripe well within
    /// its own webhook timeout, and a browser well within patience.
    pub deadline_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay_ms: 250,
            max_delay_ms: 2_000,
            attempt_timeout_ms: 8_000,
            deadline_ms: 15_000,
        }
    }
}

/// Why the last attempt did not give a final answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptFailure {
    Network,
    Status {
        status: u16,
        should_retry: Option<bool>,
    },
}

impl RetryPolicy {
    /// For calls made while handling a webhook: fewer and shorter attempts, so that a
    /// handler's few calls together still answer Stripe well within its delivery timeout.
    /// A failure is then a 5xx and Stripe redelivers later, which is the better retry.
    pub fn for_webhook() -> Self {
        Self {
            max_attempts: 2,
            initial_delay_ms: 200,
            max_delay_ms: 1_000,
            attempt_timeout_ms: 4_000,
            deadline_ms: 6_000,
        }
    }

    /// `Stripe-Should-Retry` decides when present; otherwise network errors, 409 (lock
    /// timeouts), 429 and 5xx are retried, and every other status is final.
    pub fn is_retryable(failure: AttemptFailure) -> bool {
        match failure {
            AttemptFailure::Network => true,
            AttemptFailure::Status {
                should_retry: Some(decided),
                ..
            } => decided,
            AttemptFailure::Status {
                status,
                should_retry: None,
            } => status == 409 || status == 429 || status >= 500,
        }
    }

    /// The wait before attempt `retry + 1` (`retry` counts from 1): doubling from the initial
    /// delay up to the cap, then "equal jitter" (half fixed, half random) so that many
    /// isolates retrying together spread out. `random` is uniform in `[0, 1)`.
    pub fn backoff_ms(&self, retry: u32, random: f64) -> u64 {
        let doubled = self
            .initial_delay_ms
            .saturating_mul(1u64 << retry.saturating_sub(1).min(20));
        let capped = doubled.min(self.max_delay_ms);
        let half = capped / 2;
        half + (half as f64 * random.clamp(0.0, 1.0)) as u64
    }
}

// ---------------------------------------------------------------------------------------------
// Transport port and the client

pub struct StripeClient<'a, T> {
    transport: &'a T,
    api_base: &'a str,
    api_version: &'a str,
    secret_key: &'a SecretString,
    policy: RetryPolicy,
}

impl<T> std::fmt::Debug for StripeClient<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("api_base", &self.api_base)
            .field("api_version", &self.api_version)
            .field("secret_key", self.secret_key)
            .finish()
    }
}

const USER_AGENT: &str = concat!("stripe-edge-webhooks/", env!("CARGO_PKG_VERSION"));

impl<'a, T: Transport> StripeClient<'a, T> {
    pub fn new(
        transport: &'a T,
        api_base: &'a str,
        api_version: &'a str,
        secret_key: &'a SecretString,
    ) -> Self {
        Self {
            transport,
            api_base,
            api_version,
            secret_key,
            policy: RetryPolicy::default(),
        }
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The exact HTTP request for a call: the same bytes on every attempt.
    pub fn build(&self, request: &StripeRequest) -> Result<HttpRequest, StripeError> {
        let mut headers = vec![
            (
                "authorization",
                format!("Bearer {}", self.secret_key.expose()),
            ),
            ("stripe-version", self.api_version.to_owned()),
            ("user-agent", USER_AGENT.to_owned()),
        ];
        let mut url = format!("{}{}", self.api_base, request.path);
        let body = match request.method {
            Method::Get => {
                if !request.form.is_empty() {
                    url.push('?');
                    url.push_str(&request.form.encode());
                }
                None
            }
            Method::Post => {
                let key = request
                    .idempotency_key
                    .as_ref()
                    .ok_or(StripeError::InvalidRequest(
                        "a POST needs an idempotency key",
                    ))?;
                headers.push(("idempotency-key", key.as_str().to_owned()));
                headers.push((
                    "content-type",
                    "application/x-www-form-urlencoded".to_owned(),
                ));
                Some(request.form.encode())
            }
        };
        Ok(HttpRequest {
            method: request.method,
            url,
            headers,
            body,
        })
    }

    /// Sends with retries and decodes the result.
    pub async fn send<R: DeserializeOwned>(
        &self,
        request: &StripeRequest,
    ) -> Result<Reply<R>, StripeError> {
        let http = self.build(request)?;
        let started = self.transport.now_ms();
        let deadline = started + self.policy.deadline_ms as f64;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = (deadline - self.transport.now_ms()).max(0.0) as u64;
            let timeout = self.policy.attempt_timeout_ms.min(remaining);
            if timeout == 0 {
                return Err(StripeError::Deadline {
                    attempts: attempt - 1,
                });
            }
            let (failure, final_error) = match self.transport.send(&http, timeout).await {
                Ok(response) => {
                    let request_id = response.header("request-id").map(str::to_owned);
                    match decode::<R>(&response) {
                        Ok(object) => {
                            return Ok(Reply {
                                object,
                                request_id,
                                attempts: attempt,
                            })
                        }
                        Err(error) => (
                            AttemptFailure::Status {
                                status: response.status,
                                should_retry: response.should_retry(),
                            },
                            error,
                        ),
                    }
                }
                Err(SendFailure::Network(reason)) => {
                    (AttemptFailure::Network, StripeError::Network(reason))
                }
                Err(SendFailure::Unsendable(reason)) => {
                    return Err(StripeError::Unsendable(reason))
                }
            };
            // A 2xx that does not decode is not retried: the write may have happened.
            let success_undecodable = matches!(
                failure,
                AttemptFailure::Status {
                    status: 200..=299,
                    ..
                }
            );
            if success_undecodable
                || !RetryPolicy::is_retryable(failure)
                || attempt >= self.policy.max_attempts
            {
                return Err(final_error);
            }
            let wait = self.policy.backoff_ms(attempt, self.transport.random());
            if self.transport.now_ms() + wait as f64 >= deadline {
                return Err(match final_error {
                    StripeError::Network(_) => StripeError::Deadline { attempts: attempt },
                    other => other,
                });
            }
            self.transport.sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_parameters_use_brackets_and_escape_values() {
        let mut metadata = Metadata::new();
        metadata.insert("user_id".into(), "u 1&2".into());
        let form = Form::new()
            .set("line_items[0][price_data][currency]", "usd")
            .set("off_session", true)
            .set("confirm", false)
            .expand("setup_intent")
            .metadata(&metadata)
            .set(
                "success_url",
                "https://x.test/success?session_id={CHECKOUT_SESSION_ID}",
            );
        assert_eq!(
            form.encode(),
            "line_items[0][price_data][currency]=usd&off_session=true&confirm=false&expand[]=setup_intent\
             &metadata[user_id]=u+1%262\
             &success_url=https%3A%2F%2Fx.test%2Fsuccess%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D"
        );
    }

    #[test]
    fn brackets_are_literal_everywhere_like_stripe_node_and_other_specials_escaped() {
        assert_eq!(
            Form::new().set("description", "a[b]").encode(),
            "description=a[b]"
        );
        assert_eq!(
            Form::new().set("description", "a=b&c+d").encode(),
            "description=a%3Db%26c%2Bd"
        );
    }

    #[test]
    fn idempotency_keys_are_stable_per_event_step() {
        assert_eq!(
            IdempotencyKey::for_event("evt_1", "attach").as_str(),
            "evt_1:attach"
        );
        assert_eq!(
            IdempotencyKey::for_event("evt_1", "attach"),
            IdempotencyKey::for_event("evt_1", "attach")
        );
        assert_ne!(
            IdempotencyKey::for_event("evt_1", "attach"),
            IdempotencyKey::for_event("evt_2", "attach")
        );
        assert_eq!(IdempotencyKey::random([0xab; 16]).as_str().len(), 32);
    }

    #[test]
    fn retryability_follows_stripe_should_retry_first() {
        use AttemptFailure::*;
        assert!(RetryPolicy::is_retryable(Network));
        for status in [409, 429, 500, 502, 503] {
            assert!(
                RetryPolicy::is_retryable(Status {
                    status,
                    should_retry: None
                }),
                "{status}"
            );
            assert!(
                !RetryPolicy::is_retryable(Status {
                    status,
                    should_retry: Some(false)
                }),
                "{status}"
            );
        }
        for status in [400, 401, 402, 403, 404] {
            assert!(
                !RetryPolicy::is_retryable(Status {
                    status,
                    should_retry: None
                }),
                "{status}"
            );
        }
        assert!(RetryPolicy::is_retryable(Status {
            status: 400,
            should_retry: Some(true)
        }));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(
            (p.backoff_ms(1, 0.0), p.backoff_ms(1, 0.999_999)),
            (125, 249)
        );
        assert_eq!(
            (p.backoff_ms(2, 0.0), p.backoff_ms(2, 0.999_999)),
            (250, 499)
        );
        assert_eq!(
            (p.backoff_ms(3, 0.0), p.backoff_ms(3, 0.999_999)),
            (500, 999)
        );
        assert_eq!((p.backoff_ms(10, 0.0), p.backoff_ms(10, 1.0)), (1000, 2000));
        assert_eq!(p.backoff_ms(u32::MAX, 0.5), 1500);
    }
}
