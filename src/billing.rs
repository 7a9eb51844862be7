//! Cards saved with Checkout setup mode, and charges made later. Pure: it decides what to ask
//! Stripe and what to store; the routes carry it out.

use serde::{Deserialize, Serialize};

use crate::objects::{CheckoutSession, Metadata};
use crate::stripe::{calls, IdempotencyKey, StripeRequest};

/// The placeholder Checkout replaces with the session id in `success_url`; sent literally.
pub const SESSION_ID_PLACEHOLDER: &str = "{CHECKOUT_SESSION_ID}";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    #[error("customer must be a Stripe customer id (cus_…)")]
    InvalidCustomer,
    #[error("currency must be a three-letter ISO code")]
    InvalidCurrency,
}

impl BillingError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidCustomer => "invalid_customer",
            Self::InvalidCurrency => "invalid_currency",
        }
    }
}

/// The value under `checkout:{cs_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRecord {
    pub version: u32,
    pub id: String,
    pub mode: String,
    pub customer: Option<String>,
    pub status: String,
    #[serde(default)]
    pub setup_intent: Option<String>,
    #[serde(default)]
    pub payment_method: Option<String>,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

pub const CHECKOUT_RECORD_VERSION: u32 = 1;

/// What `POST /create-checkout-session` was asked for, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupRequest {
    pub customer: Option<String>,
    pub currency: String,
}

impl SetupRequest {
    /// `customer` and `currency` from the form; blank fields count as absent.
    pub fn parse(
        customer: Option<&str>,
        currency: Option<&str>,
        default_currency: &str,
    ) -> Result<Self, BillingError> {
        let customer = customer.map(str::trim).filter(|c| !c.is_empty());
        if let Some(id) = customer {
            let valid = id.strip_prefix("cus_").is_some_and(|rest| !rest.is_empty())
                && crate::stripe::is_stripe_id(id);
            if !valid {
                return Err(BillingError::InvalidCustomer);
            }
        }
        let currency = currency
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .unwrap_or(default_currency);
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(BillingError::InvalidCurrency);
        }
        Ok(Self {
            customer: customer.map(str::to_owned),
            currency: currency.to_ascii_lowercase(),
        })
    }

    /// The Checkout Session to create, returning to `{app_base_url}/success` and `/`.
    pub fn to_stripe(&self, app_base_url: &str, key: IdempotencyKey) -> StripeRequest {
        let success_url = format!("{app_base_url}/success?session_id={SESSION_ID_PLACEHOLDER}");
        let cancel_url = format!("{app_base_url}/");
        calls::create_setup_session(
            &calls::SetupSession {
                currency: &self.currency,
                customer: self.customer.as_deref(),
                success_url: &success_url,
                cancel_url: &cancel_url,
                metadata: &Metadata::new(),
            },
            key,
        )
    }
}

impl CheckoutRecord {
    pub fn opened(session: &CheckoutSession, now: i64) -> Self {
        Self {
            version: CHECKOUT_RECORD_VERSION,
            id: session.id.clone(),
            mode: session.mode.clone(),
            customer: session.customer.clone(),
            status: session.status.clone().unwrap_or_else(|| "open".to_owned()),
            setup_intent: None,
            payment_method: None,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setup_request_is_validated_and_normalised() {
        assert_eq!(
            SetupRequest::parse(Some(" cus_123 "), Some("EUR"), "usd").unwrap(),
            SetupRequest {
                customer: Some("cus_123".into()),
                currency: "eur".into()
            }
        );
        assert_eq!(
            SetupRequest::parse(Some(""), None, "usd").unwrap(),
            SetupRequest {
                customer: None,
                currency: "usd".into()
            }
        );
        for bad in ["cus_", "pm_123", "cus_1/../x", "cus_1 2"] {
            assert_eq!(
                SetupRequest::parse(Some(bad), None, "usd"),
                Err(BillingError::InvalidCustomer),
                "{bad}"
            );
        }
        for bad in ["us", "dollars", "u$d"] {
            assert_eq!(
                SetupRequest::parse(None, Some(bad), "usd"),
                Err(BillingError::InvalidCurrency),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_session_returns_to_the_success_page_with_the_literal_placeholder() {
        let request = SetupRequest::parse(None, None, "usd")
            .unwrap()
            .to_stripe("https://app.test", IdempotencyKey::random([1; 16]));
        let body = request.form.encode();
        assert!(
            body.starts_with("mode=setup&currency=usd&payment_method_types[]=card&"),
            "{body}"
        );
        assert!(body.contains("success_url=https%3A%2F%2Fapp.test%2Fsuccess%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D"), "{body}");
        assert!(!body.contains("customer="), "{body}");
    }
}
