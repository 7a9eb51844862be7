//! The retry policy, after Stripe's own SDKs: which failures are retried, and the backoff
//! with jitter inside an overall deadline. Pure; the clock and the sleep come through the
//! transport.

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

#[cfg(test)]
mod tests {
    use super::*;

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
