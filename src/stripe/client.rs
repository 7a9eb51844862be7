//! The client core, shaped like async-stripe's: builds the HTTP request (base URL,
//! credentials, pinned version, idempotency key) and runs it through the [`Transport`] with
//! the retry policy.

use serde::de::DeserializeOwned;

use crate::config::SecretString;
use crate::http::{HttpRequest, Method, SendFailure, Transport};

use super::*;

// ---------------------------------------------------------------------------------------------
// Transport port and the client

/// The most of a Stripe answer that is read. Every object this service asks for is a few KiB
/// (a page of 25 events, the largest, some hundreds); an answer past this is not Stripe's.
pub const MAX_STRIPE_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

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
            max_response_bytes: MAX_STRIPE_RESPONSE_BYTES,
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
