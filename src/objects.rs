//! The Stripe objects this service reads, from API responses and from `event.data.object`.
//! Only the fields used are declared; everything else Stripe sends is skipped, so new
//! fields never break decoding and the wasm carries no generated API surface.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub type Metadata = BTreeMap<String, String>;

/// A field Stripe returns as an id, or as the object when asked with `expand[]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Expandable<T> {
    Id(String),
    Object(Box<T>),
}

impl<T: HasId> Expandable<T> {
    pub fn id(&self) -> &str {
        match self {
            Self::Id(id) => id,
            Self::Object(object) => object.id(),
        }
    }

    pub fn object(&self) -> Option<&T> {
        match self {
            Self::Id(_) => None,
            Self::Object(object) => Some(object),
        }
    }
}

pub trait HasId {
    fn id(&self) -> &str;
}

macro_rules! has_id {
    ($($t:ty),*) => {$(impl HasId for $t { fn id(&self) -> &str { &self.id } })*};
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Customer {
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Card {
    #[serde(default)]
    pub brand: Option<String>,
    #[serde(default)]
    pub last4: Option<String>,
    #[serde(default)]
    pub exp_month: Option<u32>,
    #[serde(default)]
    pub exp_year: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PaymentMethod {
    pub id: String,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub card: Option<Card>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SetupIntent {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub payment_method: Option<Expandable<PaymentMethod>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CustomerDetails {
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CheckoutSession {
    pub id: String,
    pub mode: String,
    /// Unix seconds; orders two sessions that saved a card for the same customer.
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub payment_status: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub customer_details: Option<CustomerDetails>,
    #[serde(default)]
    pub setup_intent: Option<Expandable<SetupIntent>>,
    #[serde(default)]
    pub payment_intent: Option<String>,
    #[serde(default)]
    pub amount_total: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PaymentIntent {
    pub id: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub payment_method: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct VerificationLastError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct VerificationSession {
    pub id: String,
    pub status: String,
    /// Unix seconds; orders a user's sessions (the newest one is the user's state).
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub last_error: Option<VerificationLastError>,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    /// Only in the response to the create call.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub enabled_events: Vec<String>,
}

has_id!(
    Customer,
    PaymentMethod,
    SetupIntent,
    CheckoutSession,
    PaymentIntent,
    VerificationSession,
    WebhookEndpoint
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expandable_field_reads_as_an_id_or_an_object() {
        let by_id: CheckoutSession =
            serde_json::from_str(r#"{"id":"cs_1","mode":"setup","setup_intent":"seti_1"}"#)
                .unwrap();
        let si = by_id.setup_intent.unwrap();
        assert_eq!((si.id(), si.object()), ("seti_1", None));

        let expanded: CheckoutSession = serde_json::from_str(
            r#"{"id":"cs_1","mode":"setup","setup_intent":{"id":"seti_1","object":"setup_intent","status":"succeeded","payment_method":"pm_1"}}"#,
        )
        .unwrap();
        let si = expanded.setup_intent.unwrap();
        assert_eq!(si.id(), "seti_1");
        assert_eq!(
            si.object().unwrap().payment_method.as_ref().unwrap().id(),
            "pm_1"
        );
    }

    #[test]
    fn unknown_fields_and_nulls_are_tolerated() {
        let pi: PaymentIntent = serde_json::from_str(
            r#"{"id":"pi_1","object":"payment_intent","status":"requires_payment_method","amount":1099,"currency":"usd","customer":null,"payment_method":null,"metadata":{},"new_field":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(pi.customer, None);
        assert_eq!(pi.amount, 1099);
    }
}
