//! Cards saved with Checkout setup mode, and charges made later. Pure: it decides what to ask
//! Stripe and what to store; `handlers::billing` carries it out and the routes adapt HTTP.
//!
//! - Setup completion ([`plan_setup`]): from a completed setup-mode Checkout Session and its
//!   SetupIntent, which customer to use (the session's, or a new one) and whether the payment
//!   method still has to be attached. The Stripe writes carry keys derived from the session id
//!   ([`completion_key`]), so the webhook and the success page make each effect once at Stripe.
//! - Charges ([`ChargeRequest`], [`ChargeRecord`]): validation, the off-session PaymentIntent,
//!   the record after success or decline, the recovery Checkout Session, and the follow-up
//!   events, whose status never goes backwards.

use serde::{Deserialize, Serialize};

use crate::objects::{Card, CheckoutSession, Metadata, PaymentIntent, SetupIntent};
use crate::stripe::{calls, is_stripe_id, ApiError, IdempotencyKey, StripeRequest};

/// The placeholder Checkout replaces with the session id in `success_url`; sent literally.
pub const SESSION_ID_PLACEHOLDER: &str = "{CHECKOUT_SESSION_ID}";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    #[error("customer must be a Stripe customer id (cus_…)")]
    InvalidCustomer,
    #[error("currency must be a three-letter ISO code")]
    InvalidCurrency,
    #[error(
        "amount must be a positive integer in the currency's smallest unit, at most {MAX_AMOUNT}"
    )]
    InvalidAmount,
    #[error("description must be at most {MAX_DESCRIPTION_CHARS} characters")]
    InvalidDescription,
    #[error("idempotency_key must be 1 to {MAX_CALLER_KEY_LEN} printable ASCII characters")]
    InvalidIdempotencyKey,
    #[error("payment_method must be a Stripe payment method id (pm_…)")]
    InvalidPaymentMethod,
    #[error("no card has been saved for this customer here; save one with the setup flow first")]
    UnknownCustomer,
    #[error("the customer has no saved payment method; save a card or pass payment_method")]
    NoSavedPaymentMethod,
    #[error("session_id must be a Checkout Session id (cs_…)")]
    InvalidSessionId,
    #[error("the Checkout Session is not complete yet")]
    SessionNotComplete,
    #[error("the Checkout Session has no SetupIntent")]
    NoSetupIntent,
    #[error("the SetupIntent has no payment method")]
    NoPaymentMethod,
}

impl BillingError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidCustomer => "invalid_customer",
            Self::InvalidCurrency => "invalid_currency",
            Self::InvalidAmount => "invalid_amount",
            Self::InvalidDescription => "invalid_description",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::InvalidPaymentMethod => "invalid_payment_method",
            Self::UnknownCustomer => "unknown_customer",
            Self::NoSavedPaymentMethod => "no_saved_payment_method",
            Self::InvalidSessionId => "invalid_session_id",
            Self::SessionNotComplete => "session_not_complete",
            Self::NoSetupIntent => "no_setup_intent",
            Self::NoPaymentMethod => "no_payment_method",
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
    /// For a recovery session (`mode=payment`): the declined PaymentIntent it pays for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovers: Option<String>,
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
        if customer.is_some_and(|id| !is_prefixed_id(id, "cus_")) {
            return Err(BillingError::InvalidCustomer);
        }
        Ok(Self {
            customer: customer.map(str::to_owned),
            currency: parse_currency(currency, default_currency)?,
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
                metadata: &ours(),
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
            recovers: session.metadata.get(RECOVERS_METADATA).cloned(),
            updated_at: now,
        }
    }

    /// A setup completion already recorded: a repeat (the other path, a redelivery) is a no-op.
    pub fn is_completed_setup(&self) -> bool {
        self.mode == "setup" && self.status == "complete" && self.payment_method.is_some()
    }
}

/// Metadata key on a recovery Checkout Session naming the declined PaymentIntent it pays for.
pub const RECOVERS_METADATA: &str = "payment_intent";

/// Metadata on every Checkout Session this service creates. Other integrations on the same
/// Stripe account complete sessions too: only ours make this service create customers, attach
/// cards or mark charges paid.
pub const CREATED_BY_METADATA: &str = "created_by";
pub const CREATED_BY: &str = "stripe-edge-webhooks";

fn ours() -> Metadata {
    let mut metadata = Metadata::new();
    metadata.insert(CREATED_BY_METADATA.into(), CREATED_BY.into());
    metadata
}

/// Whether this service created the session.
pub fn is_ours(session: &CheckoutSession) -> bool {
    session
        .metadata
        .get(CREATED_BY_METADATA)
        .map(String::as_str)
        == Some(CREATED_BY)
}
/// Stripe's largest amount (eight digits in the smallest unit).
pub const MAX_AMOUNT: i64 = 99_999_999;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Leaves room for the `charge:` scope within Stripe's 255-character key limit.
pub const MAX_CALLER_KEY_LEN: usize = 200;
/// The recovery line item's name when the charge had no description.
pub const DEFAULT_PRODUCT_NAME: &str = "Payment";

/// `prefix` followed by at least one character of a Stripe id.
pub fn is_prefixed_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty()) && is_stripe_id(id)
}

/// A three-letter code, lower-cased; absent or blank means `default_currency`.
fn parse_currency(currency: Option<&str>, default_currency: &str) -> Result<String, BillingError> {
    let currency = currency
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .unwrap_or(default_currency);
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(BillingError::InvalidCurrency);
    }
    Ok(currency.to_ascii_lowercase())
}

/// The `session_id` query parameter of the `/success` URL (the first one), validated.
pub fn session_id_from_url(url: &str) -> Result<String, BillingError> {
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(q))
        .unwrap_or("");
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|_| BillingError::InvalidSessionId)?;
    pairs
        .into_iter()
        .find(|(k, _)| k == "session_id")
        .map(|(_, v)| v)
        .filter(|id| is_prefixed_id(id, "cs_"))
        .ok_or(BillingError::InvalidSessionId)
}

// ---------------------------------------------------------------------------------------------
// Setup completion

pub const CUSTOMER_RECORD_VERSION: u32 = 1;

/// The value under `customer:{cus_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord {
    pub version: u32,
    pub id: String,
    pub default_payment_method: Option<String>,
    #[serde(default)]
    pub card_brand: Option<String>,
    #[serde(default)]
    pub card_last4: Option<String>,
    /// The Checkout Session that saved the default payment method.
    #[serde(default)]
    pub checkout_session: Option<String>,
    /// That session's `created`: a card saved by an older session never replaces the card
    /// of a newer one, whatever order their completions are handled in.
    #[serde(default)]
    pub saved_by_session_created: i64,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

impl CustomerRecord {
    /// Whether `self` (about to be stored) should replace `stored`.
    pub fn replaces(&self, stored: Option<&CustomerRecord>) -> bool {
        stored.is_none_or(|stored| stored.saved_by_session_created <= self.saved_by_session_created)
    }
}

/// Which customer the saved card belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerStep {
    /// The session (or its SetupIntent) named one: Checkout attached the card to it.
    Existing(String),
    /// None was named: create one, with the email the customer gave Checkout when present.
    Create { email: Option<String> },
}

/// What completing a setup-mode session takes, decided from the session and its SetupIntent.
#[derive(Debug, Clone, PartialEq)]
pub struct SetupPlan {
    pub session_id: String,
    pub session_created: i64,
    pub setup_intent: String,
    pub payment_method: String,
    /// Card details, when the SetupIntent came with its payment method expanded.
    pub card: Option<Card>,
    pub customer: CustomerStep,
    /// The payment method is not yet attached to the customer.
    pub attach: bool,
}

/// The Idempotency-Key of a completion write (`customer`, `attach`): derived from the Checkout
/// Session id alone, so the webhook and the success page send the same key (with the same
/// parameters) and Stripe makes the effect once, whichever comes first or when they race.
pub fn completion_key(session_id: &str, step: &str) -> IdempotencyKey {
    IdempotencyKey::scoped(&format!("checkout.{session_id}"), step)
}

/// Decides how to complete a setup-mode session. `setup_intent` is the session's (retrieved
/// by the webhook path, expanded by the success page).
pub fn plan_setup(
    session: &CheckoutSession,
    setup_intent: &SetupIntent,
) -> Result<SetupPlan, BillingError> {
    if session.status.as_deref() != Some("complete") {
        return Err(BillingError::SessionNotComplete);
    }
    let named = session
        .setup_intent
        .as_ref()
        .ok_or(BillingError::NoSetupIntent)?;
    if named.id() != setup_intent.id {
        return Err(BillingError::NoSetupIntent);
    }
    let method = setup_intent
        .payment_method
        .as_ref()
        .ok_or(BillingError::NoPaymentMethod)?;
    let payment_method = method.id().to_owned();
    if !is_prefixed_id(&payment_method, "pm_") {
        return Err(BillingError::NoPaymentMethod);
    }
    let card = method.object().and_then(|pm| pm.card.clone());
    let attached_to = method.object().and_then(|pm| pm.customer.as_deref());
    let (customer, attach) = match session.customer.as_ref().or(setup_intent.customer.as_ref()) {
        Some(customer) => {
            let attached = setup_intent.customer.as_ref() == Some(customer)
                || attached_to == Some(customer.as_str());
            (CustomerStep::Existing(customer.clone()), !attached)
        }
        None => {
            let email = session
                .customer_details
                .as_ref()
                .and_then(|d| d.email.clone())
                .filter(|e| !e.is_empty());
            (CustomerStep::Create { email }, true)
        }
    };
    Ok(SetupPlan {
        session_id: session.id.clone(),
        session_created: session.created,
        setup_intent: setup_intent.id.clone(),
        payment_method,
        card,
        customer,
        attach,
    })
}

impl SetupPlan {
    /// `POST /v1/customers` for [`CustomerStep::Create`]. Its parameters depend on the
    /// session alone, so both completion paths send the same request with the same key.
    pub fn create_customer(&self, email: Option<&str>) -> StripeRequest {
        let mut metadata = Metadata::new();
        metadata.insert("checkout_session".into(), self.session_id.clone());
        calls::create_customer(
            email,
            &metadata,
            completion_key(&self.session_id, "customer"),
        )
    }

    /// `POST /v1/payment_methods/{pm}/attach`, when the card is not attached to `customer`.
    pub fn attach(&self, customer: &str) -> Option<StripeRequest> {
        self.attach.then(|| {
            calls::attach_payment_method(
                &self.payment_method,
                customer,
                completion_key(&self.session_id, "attach"),
            )
        })
    }

    /// What to store once the customer is known; `card` from the attach answer, if any.
    pub fn records(
        &self,
        customer: &str,
        card: Option<&Card>,
        now: i64,
    ) -> (CustomerRecord, CheckoutRecord) {
        let card = card.or(self.card.as_ref());
        let customer_record = CustomerRecord {
            version: CUSTOMER_RECORD_VERSION,
            id: customer.to_owned(),
            default_payment_method: Some(self.payment_method.clone()),
            card_brand: card.and_then(|c| c.brand.clone()),
            card_last4: card.and_then(|c| c.last4.clone()),
            checkout_session: Some(self.session_id.clone()),
            saved_by_session_created: self.session_created,
            updated_at: now,
        };
        let checkout = CheckoutRecord {
            version: CHECKOUT_RECORD_VERSION,
            id: self.session_id.clone(),
            mode: "setup".into(),
            customer: Some(customer.to_owned()),
            status: "complete".into(),
            setup_intent: Some(self.setup_intent.clone()),
            payment_method: Some(self.payment_method.clone()),
            recovers: None,
            updated_at: now,
        };
        (customer_record, checkout)
    }
}

// ---------------------------------------------------------------------------------------------
// Charges

/// The JSON body of `POST /charges`, as sent. `amount` stays raw so that a wrong value gets
/// its own message rather than serde's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargeInput {
    pub customer: String,
    pub amount: serde_json::Value,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub payment_method: Option<String>,
}

/// A validated charge request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub customer: String,
    pub amount: i64,
    pub currency: String,
    pub description: Option<String>,
    pub idempotency_key: Option<String>,
    pub payment_method: Option<String>,
}

impl ChargeRequest {
    pub fn parse(input: ChargeInput, default_currency: &str) -> Result<Self, BillingError> {
        let customer = input.customer.trim();
        if !is_prefixed_id(customer, "cus_") {
            return Err(BillingError::InvalidCustomer);
        }
        let amount = input
            .amount
            .as_i64()
            .filter(|a| (1..=MAX_AMOUNT).contains(a))
            .ok_or(BillingError::InvalidAmount)?;
        let currency = parse_currency(input.currency.as_deref(), default_currency)?;
        let description = input
            .description
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
        {
            return Err(BillingError::InvalidDescription);
        }
        let idempotency_key = match input.idempotency_key {
            None => None,
            Some(key) => {
                if !IdempotencyKey::is_valid_caller_key(&key, MAX_CALLER_KEY_LEN) {
                    return Err(BillingError::InvalidIdempotencyKey);
                }
                Some(key)
            }
        };
        let payment_method = match input.payment_method.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(pm) if is_prefixed_id(pm, "pm_") => Some(pm.to_owned()),
            Some(_) => return Err(BillingError::InvalidPaymentMethod),
        };
        Ok(Self {
            customer: customer.to_owned(),
            amount,
            currency,
            description,
            idempotency_key,
            payment_method,
        })
    }

    /// The PaymentIntent's key: from the caller's key (a retried request makes one charge), or
    /// 128 random bits.
    pub fn key(&self, random: [u8; 16]) -> IdempotencyKey {
        match &self.idempotency_key {
            Some(key) => IdempotencyKey::scoped("charge", key),
            None => IdempotencyKey::random(random),
        }
    }

    /// The payment method to charge: the one given, else the customer's saved default.
    pub fn payment_method<'a>(
        &'a self,
        customer: Option<&'a CustomerRecord>,
    ) -> Result<&'a str, BillingError> {
        let customer = customer.ok_or(BillingError::UnknownCustomer)?;
        self.payment_method
            .as_deref()
            .or(customer.default_payment_method.as_deref())
            .ok_or(BillingError::NoSavedPaymentMethod)
    }

    /// `POST /v1/payment_intents` with `off_session=true&confirm=true`.
    pub fn to_stripe(&self, payment_method: &str, key: IdempotencyKey) -> StripeRequest {
        calls::create_off_session_payment_intent(
            &calls::OffSessionCharge {
                customer: &self.customer,
                payment_method,
                amount: self.amount,
                currency: &self.currency,
                description: self.description.as_deref(),
                metadata: &Metadata::new(),
            },
            key,
        )
    }
}

pub const CHARGE_RECORD_VERSION: u32 = 1;

/// Why the last attempt failed, as Stripe said (`last_payment_error` or the 402 error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl ChargeError {
    pub fn from_api(error: &ApiError) -> Self {
        Self {
            code: error.code.clone(),
            decline_code: error.decline_code.clone(),
            message: error.message.clone(),
        }
    }
}

/// The Checkout Session (`mode=payment`) offered to the customer after a decline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    pub checkout_session: String,
    pub url: Option<String>,
    /// `open`, then `paid`.
    pub status: String,
    /// The PaymentIntent that paid through the recovery session.
    #[serde(default)]
    pub payment_intent: Option<String>,
}

/// The value under `charge:{pi_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRecord {
    pub version: u32,
    /// The off-session PaymentIntent.
    pub id: String,
    pub customer: Option<String>,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub payment_method: Option<String>,
    /// The PaymentIntent's status, or `recovered` once the recovery session was paid.
    pub status: String,
    /// Paid, by the PaymentIntent or through the recovery session.
    pub paid: bool,
    #[serde(default)]
    pub last_error: Option<ChargeError>,
    #[serde(default)]
    pub recovery: Option<Recovery>,
    pub created_at: i64,
    /// Unix seconds of the state recorded: the event's `created`, or the time of the request.
    pub updated_at: i64,
}

pub const RECOVERED: &str = "recovered";

/// A status that never changes again.
fn is_final_status(status: &str) -> bool {
    matches!(status, "succeeded" | "canceled" | RECOVERED)
}

/// What `payment_intent.*` events carry besides the PaymentIntent fields in `objects`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LastPaymentError {
    #[serde(default)]
    pub last_payment_error: Option<ChargeError>,
}

impl ChargeRecord {
    /// The record of a PaymentIntent as Stripe answered it, at `now`.
    pub fn from_payment_intent(
        pi: &PaymentIntent,
        description: Option<&str>,
        error: Option<ChargeError>,
        now: i64,
    ) -> Self {
        Self {
            version: CHARGE_RECORD_VERSION,
            id: pi.id.clone(),
            customer: pi.customer.clone(),
            amount: pi.amount,
            currency: pi.currency.clone(),
            description: description.map(str::to_owned),
            payment_method: pi.payment_method.clone(),
            status: pi.status.clone(),
            paid: pi.status == "succeeded",
            last_error: error,
            recovery: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Folds the answer to a (possibly repeated) `POST /charges` into what is stored: a paid or
    /// otherwise final record stays as it is; a recovery session already made is kept.
    pub fn merge_answer(existing: Option<Self>, answer: Self) -> Self {
        match existing {
            Some(existing) if existing.paid || is_final_status(&existing.status) => existing,
            // A repeated request gets Stripe's replay of the first answer, which is never newer
            // than what is stored (events may have moved the charge on since): it may only add
            // the recovery session the first attempt did not get to record.
            Some(existing) => Self {
                recovery: existing.recovery.or(answer.recovery),
                ..existing
            },
            None => answer,
        }
    }

    /// Whether storing `self` (what [`Self::merge_answer`] made) over `existing` records
    /// anything: only a recovery session that `existing` lacks. Writing the stored state again
    /// could overwrite a newer one written meanwhile (the recovery paid, by the webhook), since
    /// KV has no compare-and-set and a read may be stale for up to a minute.
    pub fn adds_to(&self, existing: Option<&Self>) -> bool {
        match existing {
            None => true,
            Some(existing) if existing.paid || is_final_status(&existing.status) => false,
            Some(existing) => existing.recovery.is_none() && self.recovery.is_some(),
        }
    }

    /// Declined and without a recovery session yet.
    pub fn needs_recovery(&self) -> bool {
        !self.paid && self.status == "requires_payment_method" && self.recovery.is_none()
    }

    /// The recovery Checkout Session: same customer, amount and currency, named after the
    /// description; keyed by the PaymentIntent so a repeat makes no second session.
    pub fn recovery_request(&self, app_base_url: &str) -> Option<StripeRequest> {
        let customer = self.customer.as_deref()?;
        let success_url = format!("{app_base_url}/success?session_id={SESSION_ID_PLACEHOLDER}");
        let cancel_url = format!("{app_base_url}/");
        let mut metadata = ours();
        metadata.insert(RECOVERS_METADATA.into(), self.id.clone());
        Some(calls::create_payment_session(
            &calls::PaymentSession {
                customer,
                amount: self.amount,
                currency: &self.currency,
                product_name: self.description.as_deref().unwrap_or(DEFAULT_PRODUCT_NAME),
                success_url: &success_url,
                cancel_url: &cancel_url,
                metadata: &metadata,
            },
            IdempotencyKey::scoped(&self.id, "recovery"),
        ))
    }

    pub fn with_recovery(mut self, session: &CheckoutSession) -> Self {
        self.recovery = Some(Recovery {
            checkout_session: session.id.clone(),
            url: session.url.clone(),
            status: "open".into(),
            payment_intent: None,
        });
        self
    }

    /// A `payment_intent.succeeded` / `payment_failed` event for this charge, created at
    /// `created`: the new record, or `None` when it changes nothing. A final status never
    /// changes; an older event never overwrites a newer state.
    pub fn apply_event(
        &self,
        pi: &PaymentIntent,
        error: Option<ChargeError>,
        created: i64,
    ) -> Option<Self> {
        if self.paid || is_final_status(&self.status) {
            return None;
        }
        if !is_final_status(&pi.status) && created < self.updated_at {
            return None;
        }
        let last_error = if pi.status == "succeeded" {
            self.last_error.clone()
        } else {
            error.or_else(|| self.last_error.clone())
        };
        if pi.status == self.status && last_error == self.last_error {
            return None;
        }
        Some(Self {
            status: pi.status.clone(),
            paid: pi.status == "succeeded",
            last_error,
            payment_method: pi.payment_method.clone().or(self.payment_method.clone()),
            updated_at: created.max(self.updated_at),
            ..self.clone()
        })
    }

    /// The recovery session `session` was paid: the charge it recovers, marked paid. `None`
    /// when the session is not a paid recovery session. Without a record (never stored here,
    /// or not yet visible), one is made from the session.
    pub fn recovered(existing: Option<&Self>, session: &CheckoutSession, at: i64) -> Option<Self> {
        let pi_id = session.metadata.get(RECOVERS_METADATA)?;
        if session.mode != "payment" || session.payment_status.as_deref() != Some("paid") {
            return None;
        }
        let recovery = Recovery {
            checkout_session: session.id.clone(),
            url: existing
                .and_then(|r| r.recovery.as_ref())
                .and_then(|r| r.url.clone()),
            status: "paid".into(),
            payment_intent: session.payment_intent.clone(),
        };
        let record = match existing {
            Some(existing) if existing.paid => return None,
            Some(existing) => Self {
                status: RECOVERED.into(),
                paid: true,
                recovery: Some(recovery),
                updated_at: at.max(existing.updated_at),
                ..existing.clone()
            },
            None => Self {
                version: CHARGE_RECORD_VERSION,
                id: pi_id.clone(),
                customer: session.customer.clone(),
                amount: session.amount_total.unwrap_or(0),
                currency: session.currency.clone().unwrap_or_default(),
                description: None,
                payment_method: None,
                status: RECOVERED.into(),
                paid: true,
                last_error: None,
                recovery: Some(recovery),
                created_at: at,
                updated_at: at,
            },
        };
        Some(record)
    }

    /// What the customer is told after a decline: where to pay instead.
    pub fn recovery_notification(&self) -> serde_json::Map<String, serde_json::Value> {
        let error = self.last_error.clone().unwrap_or(ChargeError {
            code: None,
            decline_code: None,
            message: None,
        });
        let value = serde_json::json!({
            "payment_intent": self.id,
            "amount": self.amount,
            "currency": self.currency,
            "code": error.code,
            "decline_code": error.decline_code,
            "message": error.message,
            "recovery_url": self.recovery.as_ref().and_then(|r| r.url.clone()),
        });
        match value {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// The body `POST /charges` answers with: `{payment_intent, status}`, plus `error` and
    /// `recovery_url` after a decline.
    pub fn answer(&self) -> (u16, serde_json::Value) {
        if self.paid || self.status != "requires_payment_method" {
            return (
                200,
                serde_json::json!({ "payment_intent": self.id, "status": self.status }),
            );
        }
        let error = self.last_error.as_ref();
        (
            402,
            serde_json::json!({
                "payment_intent": self.id,
                "status": self.status,
                "error": {
                    "code": error.and_then(|e| e.code.clone()),
                    "decline_code": error.and_then(|e| e.decline_code.clone()),
                    "message": error.and_then(|e| e.message.clone()),
                },
                "recovery_url": self.recovery.as_ref().and_then(|r| r.url.clone()),
            }),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Pages

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A small page; `title` and `paragraphs` are text, escaped here.
pub fn page(title: &str, paragraphs: &[String]) -> String {
    let body: String = paragraphs
        .iter()
        .map(|p| format!("<p>{}</p>\n", escape_html(p)))
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n<title>{title}</title>\n<body style=\"font-family:system-ui,sans-serif;max-width:32em;margin:3em auto;padding:0 1em\">\n<h1>{title}</h1>\n{body}<p><a href=\"/\">Back</a></p>\n</body></html>\n",
        title = escape_html(title),
    )
}

/// What the success page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuccessView {
    CardSaved {
        customer: String,
        brand: Option<String>,
        last4: Option<String>,
    },
    PaymentReceived {
        session: String,
    },
}

impl SuccessView {
    pub fn render(&self) -> String {
        match self {
            Self::CardSaved {
                customer,
                brand,
                last4,
            } => {
                let card = match (brand, last4) {
                    (Some(brand), Some(last4)) => format!("Your {brand} card ending in {last4}"),
                    (None, Some(last4)) => format!("Your card ending in {last4}"),
                    _ => "Your card".to_owned(),
                };
                page(
                    "Card saved",
                    &[
                        format!("{card} is saved for later payments. Nothing was charged."),
                        format!("Customer reference: {customer}"),
                    ],
                )
            }
            Self::PaymentReceived { session } => page(
                "Payment received",
                &[
                    "Thank you: your payment went through.".to_owned(),
                    format!("Reference: {session}"),
                ],
            ),
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
            body.starts_with("mode=setup&currency=usd&allowed_payment_method_types[]=card&"),
            "{body}"
        );
        assert!(body.contains("success_url=https%3A%2F%2Fapp.test%2Fsuccess%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D"), "{body}");
        assert!(!body.contains("customer="), "{body}");
        assert!(
            body.contains("metadata[created_by]=stripe-edge-webhooks"),
            "{body}"
        );
    }

    fn session(json: serde_json::Value) -> CheckoutSession {
        serde_json::from_value(json).unwrap()
    }

    fn setup_intent(json: serde_json::Value) -> SetupIntent {
        serde_json::from_value(json).unwrap()
    }

    fn params(request: &StripeRequest) -> Vec<(String, String)> {
        request.form.pairs().to_vec()
    }

    fn param<'a>(request: &'a StripeRequest, key: &str) -> Option<&'a str> {
        request
            .form
            .pairs()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_session_without_a_customer_creates_one_with_the_checkout_email_and_attaches() {
        let s = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete", "customer": null,
            "customer_details": {"email": "a@example.com"}, "setup_intent": "seti_1"
        }));
        let si = setup_intent(serde_json::json!({
            "id": "seti_1", "status": "succeeded", "customer": null, "payment_method": "pm_1"
        }));
        let plan = plan_setup(&s, &si).unwrap();
        assert_eq!(
            plan.customer,
            CustomerStep::Create {
                email: Some("a@example.com".into())
            }
        );
        assert!(plan.attach);
        let create = plan.create_customer(Some("a@example.com"));
        assert_eq!(create.path, "/v1/customers");
        assert_eq!(
            create.idempotency_key.as_ref().unwrap().as_str(),
            "checkout.cs_1:customer"
        );
        assert_eq!(
            params(&create),
            vec![
                ("email".to_owned(), "a@example.com".to_owned()),
                ("metadata[checkout_session]".to_owned(), "cs_1".to_owned())
            ]
        );
        let attach = plan.attach("cus_9").unwrap();
        assert_eq!(attach.path, "/v1/payment_methods/pm_1/attach");
        assert_eq!(param(&attach, "customer"), Some("cus_9"));
        assert_eq!(
            attach.idempotency_key.as_ref().unwrap().as_str(),
            "checkout.cs_1:attach"
        );
    }

    #[test]
    fn without_an_email_the_customer_is_created_without_one() {
        let s = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete", "setup_intent": "seti_1"
        }));
        let si = setup_intent(
            serde_json::json!({"id": "seti_1", "status": "succeeded", "payment_method": "pm_1"}),
        );
        let plan = plan_setup(&s, &si).unwrap();
        assert_eq!(plan.customer, CustomerStep::Create { email: None });
        assert_eq!(param(&plan.create_customer(None), "email"), None);
    }

    #[test]
    fn a_session_with_a_customer_needs_no_customer_and_no_attach() {
        let s = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete", "customer": "cus_1",
            "setup_intent": "seti_1"
        }));
        let si = setup_intent(serde_json::json!({
            "id": "seti_1", "status": "succeeded", "customer": "cus_1", "payment_method": "pm_1"
        }));
        let plan = plan_setup(&s, &si).unwrap();
        assert_eq!(plan.customer, CustomerStep::Existing("cus_1".into()));
        assert!(!plan.attach);
        assert_eq!(plan.attach("cus_1"), None);
    }

    #[test]
    fn a_payment_method_not_attached_to_the_named_customer_is_attached() {
        // The SetupIntent does not name the customer, and the expanded payment method
        // belongs to nobody yet.
        let s = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete", "customer": "cus_1",
            "setup_intent": "seti_1"
        }));
        let si = setup_intent(serde_json::json!({
            "id": "seti_1", "status": "succeeded", "customer": null,
            "payment_method": {"id": "pm_1", "customer": null, "card": {"brand": "visa", "last4": "4242"}}
        }));
        let plan = plan_setup(&s, &si).unwrap();
        assert_eq!(plan.customer, CustomerStep::Existing("cus_1".into()));
        assert!(plan.attach);
        let (customer, _) = plan.records("cus_1", None, 5);
        assert_eq!(
            (
                customer.card_brand.as_deref(),
                customer.card_last4.as_deref()
            ),
            (Some("visa"), Some("4242"))
        );
        // Attached already (expanded payment method says so): nothing to do.
        let si = setup_intent(serde_json::json!({
            "id": "seti_1", "status": "succeeded", "customer": null,
            "payment_method": {"id": "pm_1", "customer": "cus_1"}
        }));
        assert!(!plan_setup(&s, &si).unwrap().attach);
    }

    #[test]
    fn sessions_that_cannot_complete_are_refused() {
        let si = setup_intent(
            serde_json::json!({"id": "seti_1", "status": "succeeded", "payment_method": "pm_1"}),
        );
        let open = session(
            serde_json::json!({"id": "cs_1", "mode": "setup", "status": "open", "setup_intent": "seti_1"}),
        );
        assert_eq!(
            plan_setup(&open, &si),
            Err(BillingError::SessionNotComplete)
        );
        let none =
            session(serde_json::json!({"id": "cs_1", "mode": "setup", "status": "complete"}));
        assert_eq!(plan_setup(&none, &si), Err(BillingError::NoSetupIntent));
        let other = session(
            serde_json::json!({"id": "cs_1", "mode": "setup", "status": "complete", "setup_intent": "seti_2"}),
        );
        assert_eq!(plan_setup(&other, &si), Err(BillingError::NoSetupIntent));
        let complete = session(
            serde_json::json!({"id": "cs_1", "mode": "setup", "status": "complete", "setup_intent": "seti_1"}),
        );
        let no_pm =
            setup_intent(serde_json::json!({"id": "seti_1", "status": "requires_payment_method"}));
        assert_eq!(
            plan_setup(&complete, &no_pm),
            Err(BillingError::NoPaymentMethod)
        );
    }

    #[test]
    fn completion_keys_depend_on_the_session_only_and_are_stable() {
        assert_eq!(
            completion_key("cs_1", "customer"),
            completion_key("cs_1", "customer")
        );
        assert_ne!(
            completion_key("cs_1", "customer"),
            completion_key("cs_2", "customer")
        );
        assert_ne!(
            completion_key("cs_1", "customer"),
            completion_key("cs_1", "attach")
        );
        // The webhook (session from the event, SetupIntent retrieved) and the success page
        // (session retrieved with the SetupIntent expanded) send identical requests.
        let from_event = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete",
            "customer_details": {"email": "a@example.com"}, "setup_intent": "seti_1"
        }));
        let retrieved = setup_intent(
            serde_json::json!({"id": "seti_1", "status": "succeeded", "payment_method": "pm_1"}),
        );
        let expanded = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete",
            "customer_details": {"email": "a@example.com"},
            "setup_intent": {"id": "seti_1", "status": "succeeded", "payment_method": "pm_1"}
        }));
        let a = plan_setup(&from_event, &retrieved).unwrap();
        let b = plan_setup(&expanded, &retrieved).unwrap();
        assert_eq!(
            a.create_customer(Some("a@example.com")),
            b.create_customer(Some("a@example.com"))
        );
        assert_eq!(a.attach("cus_1"), b.attach("cus_1"));
    }

    #[test]
    fn the_records_say_what_was_saved() {
        let s = session(serde_json::json!({
            "id": "cs_1", "mode": "setup", "status": "complete", "setup_intent": "seti_1"
        }));
        let si = setup_intent(
            serde_json::json!({"id": "seti_1", "status": "succeeded", "payment_method": "pm_1"}),
        );
        let plan = plan_setup(&s, &si).unwrap();
        let card: Card =
            serde_json::from_value(serde_json::json!({"brand": "mastercard", "last4": "4444"}))
                .unwrap();
        let (customer, checkout) = plan.records("cus_1", Some(&card), 100);
        assert_eq!(customer.default_payment_method.as_deref(), Some("pm_1"));
        assert_eq!(customer.card_last4.as_deref(), Some("4444"));
        assert_eq!((customer.version, customer.updated_at), (1, 100));
        assert!(checkout.is_completed_setup());
        assert_eq!(checkout.customer.as_deref(), Some("cus_1"));
        assert_eq!(checkout.setup_intent.as_deref(), Some("seti_1"));
        let open = CheckoutRecord::opened(&s, 1);
        assert!(!CheckoutRecord {
            status: "open".into(),
            ..open
        }
        .is_completed_setup());
    }

    fn input(json: serde_json::Value) -> ChargeInput {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn charge_requests_are_validated_field_by_field() {
        let ok = ChargeRequest::parse(
            input(serde_json::json!({"customer": "cus_1", "amount": 1099, "currency": "EUR", "description": " Order 7 "})),
            "usd",
        )
        .unwrap();
        assert_eq!(
            (ok.amount, ok.currency.as_str(), ok.description.as_deref()),
            (1099, "eur", Some("Order 7"))
        );
        let defaulted = ChargeRequest::parse(
            input(serde_json::json!({"customer": "cus_1", "amount": 1})),
            "usd",
        )
        .unwrap();
        assert_eq!(defaulted.currency, "usd");
        let cases = [
            (
                serde_json::json!({"customer": "pm_1", "amount": 1}),
                BillingError::InvalidCustomer,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 0}),
                BillingError::InvalidAmount,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": -5}),
                BillingError::InvalidAmount,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 10.5}),
                BillingError::InvalidAmount,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": "1099"}),
                BillingError::InvalidAmount,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 100_000_000}),
                BillingError::InvalidAmount,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "currency": "dollars"}),
                BillingError::InvalidCurrency,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "description": "x".repeat(501)}),
                BillingError::InvalidDescription,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "idempotency_key": ""}),
                BillingError::InvalidIdempotencyKey,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "idempotency_key": "a b"}),
                BillingError::InvalidIdempotencyKey,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "idempotency_key": "é"}),
                BillingError::InvalidIdempotencyKey,
            ),
            (
                serde_json::json!({"customer": "cus_1", "amount": 1, "payment_method": "card_1"}),
                BillingError::InvalidPaymentMethod,
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(
                ChargeRequest::parse(input(json.clone()), "usd"),
                Err(expected),
                "{json}"
            );
        }
        assert!(serde_json::from_value::<ChargeInput>(
            serde_json::json!({"customer": "cus_1", "amount": 1, "amout": 2})
        )
        .is_err());
    }

    fn saved(pm: Option<&str>) -> CustomerRecord {
        CustomerRecord {
            version: 1,
            id: "cus_1".into(),
            default_payment_method: pm.map(str::to_owned),
            card_brand: None,
            card_last4: None,
            checkout_session: None,
            saved_by_session_created: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn the_charge_uses_the_saved_card_or_the_one_given() {
        let request = ChargeRequest::parse(
            input(serde_json::json!({"customer": "cus_1", "amount": 5})),
            "usd",
        )
        .unwrap();
        assert_eq!(
            request.payment_method(None),
            Err(BillingError::UnknownCustomer)
        );
        assert_eq!(
            request.payment_method(Some(&saved(None))),
            Err(BillingError::NoSavedPaymentMethod)
        );
        assert_eq!(
            request.payment_method(Some(&saved(Some("pm_1")))),
            Ok("pm_1")
        );
        let explicit = ChargeRequest::parse(
            input(serde_json::json!({"customer": "cus_1", "amount": 5, "payment_method": "pm_2"})),
            "usd",
        )
        .unwrap();
        assert_eq!(
            explicit.payment_method(Some(&saved(Some("pm_1")))),
            Ok("pm_2")
        );
        assert_eq!(explicit.payment_method(Some(&saved(None))), Ok("pm_2"));
    }

    #[test]
    fn the_payment_intent_is_off_session_and_confirmed_with_a_stable_caller_key() {
        let request = ChargeRequest::parse(
            input(serde_json::json!({"customer": "cus_1", "amount": 1099, "currency": "usd", "description": "Order 7", "idempotency_key": "order-7"})),
            "usd",
        )
        .unwrap();
        let key = request.key([1; 16]);
        assert_eq!(key.as_str(), "charge:order-7");
        assert_eq!(
            key,
            request.key([2; 16]),
            "the caller's key, not randomness"
        );
        let pi = request.to_stripe("pm_1", key);
        assert_eq!(pi.path, "/v1/payment_intents");
        assert_eq!(
            pi.form.encode(),
            "amount=1099&currency=usd&customer=cus_1&payment_method=pm_1&off_session=true&confirm=true&allowed_payment_method_types[]=card&description=Order+7"
        );
        let anonymous = ChargeRequest::parse(
            input(serde_json::json!({"customer": "cus_1", "amount": 5})),
            "usd",
        )
        .unwrap();
        assert_ne!(anonymous.key([1; 16]), anonymous.key([2; 16]));
    }

    fn intent(json: serde_json::Value) -> PaymentIntent {
        serde_json::from_value(json).unwrap()
    }

    fn declined_record(decline_code: &str, code: &str) -> ChargeRecord {
        let pi = intent(serde_json::json!({
            "id": "pi_1", "status": "requires_payment_method", "amount": 1099, "currency": "usd",
            "customer": "cus_1", "payment_method": "pm_1"
        }));
        let error: ApiError = serde_json::from_value(serde_json::json!({
            "type": "card_error", "code": code, "decline_code": decline_code, "message": "Your card was declined."
        }))
        .unwrap();
        ChargeRecord::from_payment_intent(
            &pi,
            Some("Order 7"),
            Some(ChargeError::from_api(&error)),
            100,
        )
    }

    #[test]
    fn a_success_is_recorded_paid_and_answered_200() {
        let pi = intent(serde_json::json!({
            "id": "pi_1", "status": "succeeded", "amount": 1099, "currency": "usd",
            "customer": "cus_1", "payment_method": "pm_1"
        }));
        let record = ChargeRecord::from_payment_intent(&pi, None, None, 100);
        assert!(record.paid);
        assert!(!record.needs_recovery());
        assert_eq!(
            record.answer(),
            (
                200,
                serde_json::json!({"payment_intent": "pi_1", "status": "succeeded"})
            )
        );
    }

    #[test]
    fn each_decline_is_recorded_and_answered_402_with_the_recovery_url() {
        for (code, decline_code) in [
            ("card_declined", "insufficient_funds"),
            ("card_declined", "generic_decline"),
            ("authentication_required", "authentication_required"),
            ("expired_card", "expired_card"),
        ] {
            let record = declined_record(decline_code, code);
            assert!(!record.paid);
            assert!(record.needs_recovery(), "{code}");
            let error = record.last_error.clone().unwrap();
            assert_eq!(
                (error.code.as_deref(), error.decline_code.as_deref()),
                (Some(code), Some(decline_code))
            );
            let session = session(serde_json::json!({
                "id": "cs_r", "mode": "payment", "url": "https://checkout.test/cs_r"
            }));
            let record = record.with_recovery(&session);
            assert!(!record.needs_recovery());
            let (status, body) = record.answer();
            assert_eq!(status, 402);
            assert_eq!(
                body,
                serde_json::json!({
                    "payment_intent": "pi_1",
                    "status": "requires_payment_method",
                    "error": {"code": code, "decline_code": decline_code, "message": "Your card was declined."},
                    "recovery_url": "https://checkout.test/cs_r"
                })
            );
            let payload = record.recovery_notification();
            assert_eq!(payload["recovery_url"], "https://checkout.test/cs_r");
            assert_eq!(payload["decline_code"], decline_code);
            assert_eq!(
                (payload["amount"].as_i64(), payload["currency"].as_str()),
                (Some(1099), Some("usd"))
            );
        }
    }

    #[test]
    fn the_recovery_session_charges_the_same_amount_to_the_same_customer() {
        let request = declined_record("insufficient_funds", "card_declined")
            .recovery_request("https://app.test")
            .unwrap();
        assert_eq!(request.path, "/v1/checkout/sessions");
        assert_eq!(
            request.idempotency_key.as_ref().unwrap().as_str(),
            "pi_1:recovery"
        );
        let expected = [
            ("mode", "payment"),
            ("customer", "cus_1"),
            ("line_items[0][quantity]", "1"),
            ("line_items[0][price_data][currency]", "usd"),
            ("line_items[0][price_data][unit_amount]", "1099"),
            ("line_items[0][price_data][product_data][name]", "Order 7"),
            (
                "success_url",
                "https://app.test/success?session_id={CHECKOUT_SESSION_ID}",
            ),
            ("cancel_url", "https://app.test/"),
            ("metadata[created_by]", "stripe-edge-webhooks"),
            ("metadata[payment_intent]", "pi_1"),
        ];
        assert_eq!(
            params(&request),
            expected
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        );
        let unnamed = ChargeRecord {
            description: None,
            ..declined_record("x", "card_declined")
        };
        let request = unnamed.recovery_request("https://app.test").unwrap();
        assert_eq!(
            param(&request, "line_items[0][price_data][product_data][name]"),
            Some(DEFAULT_PRODUCT_NAME)
        );
        // The same charge always asks with the same key: a retry makes no second session.
        assert_eq!(
            unnamed
                .recovery_request("https://app.test")
                .unwrap()
                .idempotency_key,
            request.idempotency_key
        );
    }

    #[test]
    fn a_repeated_answer_keeps_the_recovery_and_never_undoes_a_payment() {
        let declined = declined_record("insufficient_funds", "card_declined");
        let with_recovery = declined.clone().with_recovery(&session(
            serde_json::json!({"id": "cs_r", "mode": "payment", "url": "https://c.test/r"}),
        ));
        let merged = ChargeRecord::merge_answer(
            Some(with_recovery.clone()),
            ChargeRecord {
                created_at: 200,
                updated_at: 200,
                ..declined.clone()
            },
        );
        assert_eq!(merged.recovery, with_recovery.recovery);
        assert_eq!(merged.created_at, 100);
        let paid = ChargeRecord {
            status: RECOVERED.into(),
            paid: true,
            ..with_recovery
        };
        assert_eq!(
            ChargeRecord::merge_answer(Some(paid.clone()), declined.clone()),
            paid
        );
        assert_eq!(ChargeRecord::merge_answer(None, declined.clone()), declined);
    }

    #[test]
    fn a_repeat_never_writes_over_what_is_stored() {
        let declined = declined_record("insufficient_funds", "card_declined");
        let with_recovery = declined.clone().with_recovery(&session(
            serde_json::json!({"id": "cs_r", "mode": "payment", "url": "https://c.test/r"}),
        ));
        let paid = ChargeRecord {
            status: RECOVERED.into(),
            paid: true,
            ..with_recovery.clone()
        };
        // An event recorded a later failure of the same PaymentIntent meanwhile.
        let later = ChargeRecord {
            last_error: declined_record("lost_card", "card_declined").last_error,
            updated_at: 300,
            ..declined.clone()
        };
        // Stripe's replay of the first answer to a repeated request.
        let replay = ChargeRecord {
            updated_at: 200,
            ..declined.clone()
        };
        assert!(declined.adds_to(None), "the first answer is written");
        for stored in [&declined, &with_recovery, &paid, &later] {
            let merged = ChargeRecord::merge_answer(Some(stored.clone()), replay.clone());
            assert_eq!(&merged, stored, "the stored state wins");
            assert!(!merged.adds_to(Some(stored)), "and nothing is written");
        }
        // What a repeat may add is the recovery session the first attempt did not record,
        // which the recovery step writes itself.
        assert!(with_recovery.adds_to(Some(&declined)));
    }

    #[test]
    fn charge_status_never_goes_backwards() {
        let declined = declined_record("insufficient_funds", "card_declined"); // updated_at 100
        let succeeded = intent(serde_json::json!({
            "id": "pi_1", "status": "succeeded", "amount": 1099, "currency": "usd", "payment_method": "pm_2"
        }));
        let failed = intent(serde_json::json!({
            "id": "pi_1", "status": "requires_payment_method", "amount": 1099, "currency": "usd"
        }));
        let paid = declined.apply_event(&succeeded, None, 150).unwrap();
        assert_eq!(
            (paid.status.as_str(), paid.paid, paid.updated_at),
            ("succeeded", true, 150)
        );
        assert_eq!(paid.payment_method.as_deref(), Some("pm_2"));
        // A payment_failed older than the stored success, or even newer: nothing changes.
        assert_eq!(paid.apply_event(&failed, None, 120), None);
        assert_eq!(paid.apply_event(&failed, None, 200), None);
        // A success is final even when its event is older than the last failure seen.
        assert!(declined.apply_event(&succeeded, None, 50).unwrap().paid);
        // A failure older than the stored state is ignored; a newer one updates the error.
        let newer_error = ChargeError {
            code: Some("card_declined".into()),
            decline_code: Some("lost_card".into()),
            message: None,
        };
        assert_eq!(
            declined.apply_event(&failed, Some(newer_error.clone()), 90),
            None
        );
        let updated = declined
            .apply_event(&failed, Some(newer_error.clone()), 110)
            .unwrap();
        assert_eq!(updated.last_error, Some(newer_error));
        // The same state again changes nothing.
        assert_eq!(
            declined.apply_event(&failed, declined.last_error.clone(), 110),
            None
        );
    }

    #[test]
    fn a_paid_recovery_session_marks_its_charge_recovered() {
        let open = declined_record("insufficient_funds", "card_declined").with_recovery(&session(
            serde_json::json!({"id": "cs_r", "mode": "payment", "url": "https://c.test/r"}),
        ));
        let paid_session = session(serde_json::json!({
            "id": "cs_r", "mode": "payment", "status": "complete", "payment_status": "paid",
            "payment_intent": "pi_new", "customer": "cus_1", "amount_total": 1099, "currency": "usd",
            "metadata": {"payment_intent": "pi_1"}
        }));
        let recovered = ChargeRecord::recovered(Some(&open), &paid_session, 300).unwrap();
        assert_eq!(
            (recovered.status.as_str(), recovered.paid),
            (RECOVERED, true)
        );
        let recovery = recovered.recovery.clone().unwrap();
        assert_eq!(
            (
                recovery.status.as_str(),
                recovery.payment_intent.as_deref(),
                recovery.url.as_deref()
            ),
            ("paid", Some("pi_new"), Some("https://c.test/r"))
        );
        assert_eq!(recovered.answer().0, 200);
        // Once paid, a repeat changes nothing, and events for the old intent do not undo it.
        assert_eq!(
            ChargeRecord::recovered(Some(&recovered), &paid_session, 400),
            None
        );
        let failed = intent(serde_json::json!({
            "id": "pi_1", "status": "requires_payment_method", "amount": 1099, "currency": "usd"
        }));
        assert_eq!(recovered.apply_event(&failed, None, 500), None);
        // Without the record (not visible yet), it is made from the session.
        let made = ChargeRecord::recovered(None, &paid_session, 300).unwrap();
        assert_eq!(
            (made.id.as_str(), made.amount, made.paid),
            ("pi_1", 1099, true)
        );
        // Not a recovery session, or not paid: nothing.
        let unpaid = session(serde_json::json!({
            "id": "cs_r", "mode": "payment", "status": "complete", "payment_status": "unpaid",
            "metadata": {"payment_intent": "pi_1"}
        }));
        assert_eq!(ChargeRecord::recovered(Some(&open), &unpaid, 300), None);
        let foreign = session(serde_json::json!({
            "id": "cs_x", "mode": "payment", "status": "complete", "payment_status": "paid"
        }));
        assert_eq!(ChargeRecord::recovered(None, &foreign, 300), None);
    }

    #[test]
    fn the_session_id_is_read_from_the_success_url() {
        assert_eq!(
            session_id_from_url("https://app.test/success?session_id=cs_test_a1B2").unwrap(),
            "cs_test_a1B2"
        );
        assert_eq!(
            session_id_from_url("https://app.test/success?x=1&session_id=cs_1#top").unwrap(),
            "cs_1"
        );
        for bad in [
            "https://app.test/success",
            "https://app.test/success?session_id=",
            "https://app.test/success?session_id={CHECKOUT_SESSION_ID}",
            "https://app.test/success?session_id=pi_1",
            "https://app.test/success?session_id=cs_1%2F..%2Fx",
            "https://app.test/success?session_id=cs_<script>",
        ] {
            assert_eq!(
                session_id_from_url(bad),
                Err(BillingError::InvalidSessionId),
                "{bad}"
            );
        }
    }

    #[test]
    fn pages_escape_what_they_echo() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let html = SuccessView::CardSaved {
            customer: "cus_1".into(),
            brand: Some("<b>visa</b>".into()),
            last4: Some("4242".into()),
        }
        .render();
        assert!(
            html.contains("&lt;b&gt;visa&lt;/b&gt; card ending in 4242"),
            "{html}"
        );
        assert!(!html.contains("<b>"));
        assert!(html.contains("cus_1"));
    }
}
