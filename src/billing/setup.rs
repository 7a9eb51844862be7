//! Saving a card with Checkout in setup mode, pure: the session this service opens, its
//! record, and from a completed session and its SetupIntent which customer to use and whether
//! the payment method still has to be attached ([`plan_setup`]). The Stripe writes carry keys
//! derived from the session id ([`completion_key`]), so the webhook and the success page make
//! each effect once at Stripe.

use serde::Serialize;

use crate::objects::{Card, CheckoutSession, PaymentMethod, SetupIntent};
use crate::stripe::{calls, IdempotencyKey, StripeRequest};

use super::*;

/// The value under `checkout:{cs_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// Stripe's `payment_status` for a payment session (`paid` once paid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_status: Option<String>,
    /// A payment session's `amount_total` and `currency` (smallest unit), which its success
    /// page shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}
crate::json::decode_map!(CheckoutRecord {
    version: "version" required,
    id: "id" required,
    mode: "mode" required,
    customer: "customer" default,
    status: "status" required,
    setup_intent: "setup_intent" default,
    payment_method: "payment_method" default,
    recovers: "recovers" default,
    payment_status: "payment_status" default,
    amount_total: "amount_total" default,
    currency: "currency" default,
    updated_at: "updated_at" required,
});

/// An open session's record expires after this: Stripe expires a session after 24 h, and an
/// anonymous form must not leave records that never go away.
pub const OPEN_CHECKOUT_TTL_SECONDS: u64 = 2 * 24 * 60 * 60;

pub const CHECKOUT_RECORD_VERSION: u32 = 1;

/// A setup session to open, validated: from the anonymous form (no customer: a new one is
/// created when the card is saved), or bound by the app to one of its customers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupRequest {
    /// Only for a session the app binds (`POST /setup-sessions`).
    pub customer: Option<String>,
    pub currency: String,
    /// Where on `APP_BASE_URL` Checkout returns to (`session_id` is added).
    pub success_path: String,
}

/// The JSON body of `POST /setup-sessions` (admin).
/// Fields stay raw so that a missing or mistyped one gets its own code.
#[derive(Debug, Clone, Default)]
pub struct SetupSessionInput {
    pub customer: Option<serde_json::Value>,
    pub currency: Option<serde_json::Value>,
    pub success_path: Option<serde_json::Value>,
}
crate::json::decode_map!(SetupSessionInput deny_unknown_fields {
    customer: "customer" default,
    currency: "currency" default,
    success_path: "success_path" default,
});

impl SetupRequest {
    /// The anonymous form's fields. A `customer` is refused, not ignored, and before Stripe
    /// is asked anything: whether a customer exists is never revealed to the public.
    pub fn public(
        customer: Option<&str>,
        currency: Option<&str>,
        default_currency: &str,
    ) -> Result<Self, BillingError> {
        if customer.is_some_and(|c| !c.trim().is_empty()) {
            return Err(BillingError::CustomerNotAllowed);
        }
        Ok(Self {
            customer: None,
            currency: parse_currency(currency, default_currency)?,
            success_path: DEFAULT_SUCCESS_PATH.to_owned(),
        })
    }

    /// A session the app binds to its customer.
    pub fn bound(input: SetupSessionInput, default_currency: &str) -> Result<Self, BillingError> {
        let text = |value, error| crate::router::json_text(value).map_err(|()| error);
        let customer = text(input.customer, BillingError::InvalidCustomer)?.unwrap_or_default();
        let customer = customer.trim();
        if !is_prefixed_id(customer, "cus_") {
            return Err(BillingError::InvalidCustomer);
        }
        let currency = text(input.currency, BillingError::InvalidCurrency)?;
        let success_path = match text(input.success_path, BillingError::InvalidSuccessPath)? {
            None => DEFAULT_SUCCESS_PATH.to_owned(),
            Some(path) if is_success_path(&path) => path,
            Some(_) => return Err(BillingError::InvalidSuccessPath),
        };
        Ok(Self {
            customer: Some(customer.to_owned()),
            currency: parse_currency(currency.as_deref(), default_currency)?,
            success_path,
        })
    }

    /// The Checkout Session to create, returning to `{app_base_url}{success_path}` and `/`.
    pub fn to_stripe(&self, app_base_url: &str, key: IdempotencyKey) -> StripeRequest {
        let separator = if self.success_path.contains('?') {
            '&'
        } else {
            '?'
        };
        let success_url = format!(
            "{app_base_url}{}{separator}session_id={SESSION_ID_PLACEHOLDER}",
            self.success_path
        );
        let cancel_url = format!("{app_base_url}/");
        let mut metadata = Metadata::new();
        if self.customer.is_some() {
            metadata.insert(BOUND_METADATA.into(), BOUND_BY_APP.into());
        }
        calls::create_setup_session(
            &calls::SetupSession {
                currency: &self.currency,
                customer: self.customer.as_deref(),
                success_url: &success_url,
                cancel_url: &cancel_url,
                metadata: &metadata,
            },
            key,
        )
    }
}

/// This service's own success page.
pub const DEFAULT_SUCCESS_PATH: &str = "/success";

/// A path (and query) on `APP_BASE_URL`: `/` but not `//` (another host), printable ASCII
/// without `#` or `\`, short.
fn is_success_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && path.len() <= MAX_SUCCESS_PATH_CHARS
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'#' && b != b'\\')
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
            payment_status: session.payment_status.clone(),
            amount_total: session.amount_total.filter(|_| session.mode == "payment"),
            currency: session
                .currency
                .clone()
                .filter(|_| session.mode == "payment"),
            updated_at: now,
        }
    }

    /// How long to keep the record: an open session's expires; a finished one's is kept.
    pub fn ttl_seconds(&self) -> Option<u64> {
        (self.status == "open").then_some(OPEN_CHECKOUT_TTL_SECONDS)
    }

    /// A paid payment session already recorded: its success page needs no Stripe call.
    pub fn is_paid_payment(&self) -> bool {
        self.mode == "payment"
            && self.status == "complete"
            && self.payment_status.as_deref() == Some("paid")
    }

    /// A setup completion already recorded: a repeat (the other path, a redelivery) is a no-op.
    pub fn is_completed_setup(&self) -> bool {
        self.mode == "setup" && self.status == "complete" && self.payment_method.is_some()
    }
}

pub const CUSTOMER_RECORD_VERSION: u32 = 1;

/// The value under `customer:{cus_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
crate::json::decode_map!(CustomerRecord {
    version: "version" required,
    id: "id" required,
    default_payment_method: "default_payment_method" default,
    card_brand: "card_brand" default,
    card_last4: "card_last4" default,
    checkout_session: "checkout_session" default,
    saved_by_session_created: "saved_by_session_created" default,
    updated_at: "updated_at" required,
});

impl CustomerRecord {
    /// The customer's default after a paid recovery session: the payment method it was paid
    /// with (kept for off-session use by `setup_future_usage`), ordered like a saved card by
    /// the session's `created`, so a recovery newer than the last setup wins and an older one
    /// does not.
    pub fn from_recovery(
        customer: &str,
        session: &CheckoutSession,
        payment_method: &PaymentMethod,
        now: i64,
    ) -> Option<Self> {
        if !is_prefixed_id(customer, "cus_") || !is_prefixed_id(&payment_method.id, "pm_") {
            return None;
        }
        // Only a card becomes the default: it can be charged off-session in any currency the
        // account charges in, where a bank debit is tied to its own (SEPA Direct Debit to
        // EUR, ACH to USD, Bacs to GBP) and settles days later.
        if payment_method.kind.as_deref() != Some("card") {
            return None;
        }
        Some(Self::saved(
            customer,
            &payment_method.id,
            payment_method.card.as_ref(),
            (&session.id, session.created),
            now,
        ))
    }

    /// `payment_method` (with its card's brand and last4, when known) as the customer's
    /// default, saved by the session `(id, created)`: one constructor for a card saved in
    /// setup mode and for a paid recovery's.
    fn saved(
        customer: &str,
        payment_method: &str,
        card: Option<&Card>,
        (session_id, session_created): (&str, i64),
        now: i64,
    ) -> Self {
        Self {
            version: CUSTOMER_RECORD_VERSION,
            id: customer.to_owned(),
            default_payment_method: Some(payment_method.to_owned()),
            card_brand: card.and_then(|c| c.brand.clone()),
            card_last4: card.and_then(|c| c.last4.clone()),
            checkout_session: Some(session_id.to_owned()),
            saved_by_session_created: session_created,
            updated_at: now,
        }
    }

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
    if setup_intent.status != "succeeded" {
        return Err(BillingError::SetupNotSucceeded);
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
    let named = session.customer.as_ref().or(setup_intent.customer.as_ref());
    // Only a session the app bound may save a card for an existing customer (and so become
    // that customer's default for off-session charges).
    if named.is_some() && !is_bound(session) {
        return Err(BillingError::UnboundCustomer);
    }
    let (customer, attach) = match named {
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
        let customer_record = CustomerRecord::saved(
            customer,
            &self.payment_method,
            card.or(self.card.as_ref()),
            (&self.session_id, self.session_created),
            now,
        );
        let checkout = CheckoutRecord {
            version: CHECKOUT_RECORD_VERSION,
            id: self.session_id.clone(),
            mode: "setup".into(),
            customer: Some(customer.to_owned()),
            status: "complete".into(),
            setup_intent: Some(self.setup_intent.clone()),
            payment_method: Some(self.payment_method.clone()),
            recovers: None,
            payment_status: None,
            amount_total: None,
            currency: None,
            updated_at: now,
        };
        (customer_record, checkout)
    }
}
