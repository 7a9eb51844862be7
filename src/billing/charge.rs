//! Off-session charges, pure: validation, the PaymentIntent, the record after success or
//! decline, the recovery Checkout Session, and the follow-up events, whose status never goes
//! backwards.

use serde::Serialize;

use crate::objects::{CheckoutSession, PaymentIntent};
use crate::router::json_object;
use crate::stripe::{calls, ApiError, IdempotencyKey, StripeRequest};

use super::*;

/// The JSON body of `POST /charges`, as sent. Every field stays raw so that a missing or
/// mistyped field gets its own code (`invalid_customer`, …) and message rather than serde's.
#[derive(Debug, Clone, Default)]
pub struct ChargeInput {
    pub customer: Option<serde_json::Value>,
    pub amount: Option<serde_json::Value>,
    pub currency: Option<serde_json::Value>,
    pub description: Option<serde_json::Value>,
    pub idempotency_key: Option<serde_json::Value>,
    pub payment_method: Option<serde_json::Value>,
}
crate::json::decode_map!(ChargeInput deny_unknown_fields {
    customer: "customer" default,
    amount: "amount" default,
    currency: "currency" default,
    description: "description" default,
    idempotency_key: "idempotency_key" default,
    payment_method: "payment_method" default,
});

/// A string field, or `error` when it is there but not a string.
fn text(
    value: Option<serde_json::Value>,
    error: BillingError,
) -> Result<Option<String>, BillingError> {
    crate::router::json_text(value).map_err(|()| error)
}

/// A validated charge request.
/// Serialisable: it travels to the customer's queue (`crate::queue::Work`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChargeRequest {
    pub customer: String,
    pub amount: i64,
    pub currency: String,
    pub description: Option<String>,
    /// Required: the one thing that makes a retried request the same charge.
    pub idempotency_key: String,
    pub payment_method: Option<String>,
}
crate::json::decode_map!(ChargeRequest {
    customer: "customer" required,
    amount: "amount" required,
    currency: "currency" required,
    description: "description" default,
    idempotency_key: "idempotency_key" required,
    payment_method: "payment_method" default,
});

impl ChargeRequest {
    pub fn parse(input: ChargeInput, default_currency: &str) -> Result<Self, BillingError> {
        let customer = text(input.customer, BillingError::InvalidCustomer)?.unwrap_or_default();
        let customer = customer.trim();
        if !is_prefixed_id(customer, "cus_") {
            return Err(BillingError::InvalidCustomer);
        }
        let amount = input
            .amount
            .as_ref()
            .and_then(serde_json::Value::as_i64)
            .filter(|a| (1..=MAX_AMOUNT).contains(a))
            .ok_or(BillingError::InvalidAmount)?;
        let currency = text(input.currency, BillingError::InvalidCurrency)?;
        let currency = parse_currency(currency.as_deref(), default_currency)?;
        let description = text(input.description, BillingError::InvalidDescription)?
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
        {
            return Err(BillingError::InvalidDescription);
        }
        let idempotency_key = text(input.idempotency_key, BillingError::InvalidIdempotencyKey)?
            .ok_or(BillingError::MissingIdempotencyKey)?;
        if !IdempotencyKey::is_valid_caller_key(&idempotency_key, MAX_CALLER_KEY_LEN) {
            return Err(BillingError::InvalidIdempotencyKey);
        }
        let payment_method = text(input.payment_method, BillingError::InvalidPaymentMethod)?;
        let payment_method = match payment_method.as_deref().map(str::trim) {
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

    /// The PaymentIntent's key: the caller's key, scoped by the customer, so that the same
    /// caller key sent for two customers can never be answered with one's PaymentIntent.
    pub fn stripe_key(&self) -> IdempotencyKey {
        charge_stripe_key(&self.customer, &self.idempotency_key)
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

    /// After Stripe refused the payment method and made no PaymentIntent: one without a
    /// payment method, not confirmed, to carry the charge's record and recovery. Its key is
    /// the charge's, numbered.
    pub fn to_stripe_unconfirmed(&self) -> StripeRequest {
        let key = IdempotencyKey::scoped(self.stripe_key().as_str(), "unconfirmed");
        calls::create_payment_intent_holder(
            &calls::HeldCharge {
                customer: &self.customer,
                amount: self.amount,
                currency: &self.currency,
                description: self.description.as_deref(),
            },
            key,
        )
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

/// The Idempotency-Key of the PaymentIntent a caller key makes: `charge:{customer}:{key}`.
/// Scoped by the customer, so that whatever our records say, Stripe itself can never answer
/// one customer's request with another's PaymentIntent. When both are too long for Stripe's
/// 255 characters, their SHA-256 is sent instead.
pub fn charge_stripe_key(customer: &str, caller_key: &str) -> IdempotencyKey {
    let scope = format!("charge:{customer}");
    if scope.len() + 1 + caller_key.len() <= 255 {
        IdempotencyKey::scoped(&scope, caller_key)
    } else {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(customer)
            .chain_update([0])
            .chain_update(caller_key)
            .finalize();
        IdempotencyKey::scoped("charge:sha256", &hex::encode(digest))
    }
}

/// The current version of [`ChargeKeyRecord`]: 2 records the whole request.
pub const CHARGE_KEY_RECORD_VERSION: u32 = 2;

/// The value under `charge_key:{idempotency_key}`: the charge a caller key is, recorded before
/// Stripe is asked and kept for good. A repeat with the same request is
/// answered from it (and `charge:{pi}`), never by a second create, whatever its age: Stripe
/// may forget its own key after 24 hours and would then make a new PaymentIntent. A repeat
/// with another request is refused ([`Self::differs_from`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChargeKeyRecord {
    pub version: u32,
    /// The payment method the charge was sent with: the customer's default may change later
    /// (a paid recovery session makes its card the default).
    pub payment_method: String,
    /// The PaymentIntent the key made, once Stripe answered.
    #[serde(default)]
    pub payment_intent: Option<String>,
    /// The request the key was first used with (version 2; version 1 records lack them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
crate::json::decode_map!(ChargeKeyRecord {
    version: "version" required,
    payment_method: "payment_method" required,
    payment_intent: "payment_intent" default,
    customer: "customer" default,
    amount: "amount" default,
    currency: "currency" default,
    description: "description" default,
});

impl ChargeKeyRecord {
    /// The key's first use: `request`, sent with `payment_method`.
    pub fn first_use(request: &ChargeRequest, payment_method: &str) -> Self {
        Self {
            version: CHARGE_KEY_RECORD_VERSION,
            payment_method: payment_method.to_owned(),
            payment_intent: None,
            customer: Some(request.customer.clone()),
            amount: Some(request.amount),
            currency: Some(request.currency.clone()),
            description: request.description.clone(),
        }
    }

    /// The field in which `request` is not the key's first use, if any: such a repeat is
    /// another charge under a used key (409), refused before anything is sent or written.
    pub fn differs_from(&self, request: &ChargeRequest) -> Option<&'static str> {
        let differs = |kept: Option<&str>, sent: &str| kept.is_some_and(|k| k != sent);
        first_difference(&[
            (
                "customer",
                differs(self.customer.as_deref(), &request.customer),
            ),
            ("amount", self.amount.is_some_and(|a| a != request.amount)),
            (
                "currency",
                differs(self.currency.as_deref(), &request.currency),
            ),
            (
                "description",
                self.version >= 2 && self.description != request.description,
            ),
            (
                "payment_method",
                request
                    .payment_method
                    .as_deref()
                    .is_some_and(|pm| pm != self.payment_method),
            ),
        ])
    }

    /// Stripe's key for the create: a version 1 record's charge was sent with the key of its
    /// time (`charge:{key}`), and a retry must send that one.
    pub fn stripe_key(&self, request: &ChargeRequest) -> IdempotencyKey {
        if self.version >= 2 {
            request.stripe_key()
        } else {
            IdempotencyKey::scoped("charge", &request.idempotency_key)
        }
    }
}

/// The first field of `checks` that differs, in the order a caller reads a request.
fn first_difference(checks: &[(&'static str, bool)]) -> Option<&'static str> {
    checks
        .iter()
        .find(|(_, differs)| *differs)
        .map(|(field, _)| *field)
}

/// Why the last attempt failed, as Stripe said (`last_payment_error` or the 402 error).
pub use crate::objects::PaymentError as ChargeError;

impl ChargeError {
    pub fn from_api(error: &ApiError) -> Self {
        Self {
            code: error.code.clone(),
            decline_code: error.decline_code.clone(),
            message: error.message.clone(),
        }
    }
}

/// Whether Stripe refused a charge because of the payment method it was sent with, before any
/// money moved: a 400 about `payment_method` (detached, not the customer's, in a state that
/// cannot pay) or with one of the codes Stripe gives a method that cannot pay this charge
/// (`LastPaymentError.Code` in the SDK's PaymentIntents.d.ts; Stripe's error codes page).
/// Such a charge is recovered like a decline: the customer pays with another method.
pub fn refused_for_method(error: &ApiError) -> bool {
    const METHOD_CODES: [&str; 5] = [
        "payment_intent_incompatible_payment_method",
        "payment_method_currency_mismatch",
        "payment_method_not_available",
        "payment_method_unactivated",
        "payment_method_unexpected_state",
    ];
    error.status == 400
        && (error.param.as_deref() == Some("payment_method")
            || error
                .code
                .as_deref()
                .is_some_and(|code| METHOD_CODES.contains(&code)))
}

/// The Checkout Session (`mode=payment`) offered to the customer after a decline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recovery {
    pub checkout_session: String,
    pub url: Option<String>,
    /// [`RecoveryStatus`]'s words: `open`, then `paid`; or `processing` (completed with a
    /// delayed payment method, not paid yet), then `paid` or `failed`; or `expired`.
    pub status: String,
    /// The PaymentIntent that paid through the recovery session.
    #[serde(default)]
    pub payment_intent: Option<String>,
    /// 1 for the first recovery session of the charge; a new one after an expired or failed
    /// one counts up, and numbers its Idempotency-Key.
    pub attempt: u32,
}
crate::json::decode_map!(Recovery {
    checkout_session: "checkout_session" required,
    url: "url" default,
    status: "status" required,
    payment_intent: "payment_intent" default,
    attempt: "attempt" default = first_attempt,
});

fn first_attempt() -> u32 {
    1
}

/// What happened to a recovery session without it being paid, from its
/// `checkout.session.*` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryStatus {
    /// Completed with a delayed payment method (`payment_status: unpaid`): the money is on
    /// its way; `async_payment_succeeded` or `_failed` follows.
    Processing,
    /// `checkout.session.async_payment_failed`: the delayed payment did not arrive.
    Failed,
    /// `checkout.session.expired`: the link is dead (24 h by default).
    Expired,
}

impl RecoveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }
}

/// The value under `charge:{pi_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
crate::json::decode_map!(ChargeRecord {
    version: "version" required,
    id: "id" required,
    customer: "customer" default,
    amount: "amount" required,
    currency: "currency" required,
    description: "description" default,
    payment_method: "payment_method" default,
    status: "status" required,
    paid: "paid" required,
    last_error: "last_error" default,
    recovery: "recovery" default,
    created_at: "created_at" required,
    updated_at: "updated_at" required,
});

pub const RECOVERED: &str = "recovered";

/// The Idempotency-Key of a charge's recovery session: `{pi}:recovery` for the first, then
/// `{pi}:recovery.{n}`, so a repeated `POST /charges` replays the current session and a new
/// one is made only after the last expired or failed.
pub fn recovery_key(payment_intent: &str, attempt: u32) -> IdempotencyKey {
    if attempt <= 1 {
        IdempotencyKey::scoped(payment_intent, "recovery")
    } else {
        IdempotencyKey::scoped(payment_intent, &format!("recovery.{attempt}"))
    }
}

/// A status that never changes again.
fn is_final_status(status: &str) -> bool {
    matches!(status, "succeeded" | "canceled" | RECOVERED)
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
            payment_method: pi.payment_method.as_ref().map(|pm| pm.id().to_owned()),
            status: pi.status.clone(),
            paid: pi.status == "succeeded",
            last_error: error.or_else(|| pi.last_payment_error.clone()),
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

    /// Declined, and without a recovery session that can still be paid: none yet, or the
    /// last one expired or its delayed payment failed.
    pub fn needs_recovery(&self) -> bool {
        !self.paid
            && self.status == "requires_payment_method"
            && self.recovery.as_ref().is_none_or(|r| {
                r.status == RecoveryStatus::Expired.as_str()
                    || r.status == RecoveryStatus::Failed.as_str()
            })
    }

    /// The number of the next recovery session.
    fn next_recovery_attempt(&self) -> u32 {
        self.recovery.as_ref().map_or(1, |r| r.attempt + 1)
    }

    /// The recovery Checkout Session: same customer, amount and currency, named after the
    /// description; keyed by the PaymentIntent so a repeat makes no second session.
    pub fn recovery_request(&self, app_base_url: &str) -> Option<StripeRequest> {
        let customer = self.customer.as_deref()?;
        let success_url = format!("{app_base_url}/success?session_id={SESSION_ID_PLACEHOLDER}");
        let cancel_url = format!("{app_base_url}/");
        let mut metadata = Metadata::new();
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
            recovery_key(&self.id, self.next_recovery_attempt()),
        ))
    }

    pub fn with_recovery(mut self, session: &CheckoutSession) -> Self {
        let attempt = self.next_recovery_attempt();
        self.recovery = Some(Recovery {
            checkout_session: session.id.clone(),
            url: session.url.clone(),
            status: "open".into(),
            payment_intent: None,
            attempt,
        });
        self
    }

    /// A recovery session of this charge moved on without being paid (`status`): the record
    /// to store, or `None` when it changes nothing. Only the current recovery session counts
    /// (events of an older, replaced one change nothing), and a paid charge never changes.
    pub fn recovery_moved(
        &self,
        session: &CheckoutSession,
        status: RecoveryStatus,
        at: i64,
    ) -> Option<Self> {
        let recovery = self.recovery.as_ref()?;
        if self.paid || recovery.checkout_session != session.id || recovery.status == "paid" {
            return None;
        }
        // A delayed payment's outcome is final for the session; only an open session can
        // complete or expire.
        let allowed = match status {
            RecoveryStatus::Processing | RecoveryStatus::Expired => recovery.status == "open",
            RecoveryStatus::Failed => matches!(recovery.status.as_str(), "open" | "processing"),
        };
        allowed.then(|| Self {
            recovery: Some(Recovery {
                status: status.as_str().into(),
                ..recovery.clone()
            }),
            updated_at: at.max(self.updated_at),
            ..self.clone()
        })
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
            payment_method: pi
                .payment_method
                .as_ref()
                .map(|pm| pm.id().to_owned())
                .or(self.payment_method.clone()),
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
        let current = existing.and_then(|r| r.recovery.as_ref());
        let recovery = Recovery {
            checkout_session: session.id.clone(),
            url: current
                .filter(|r| r.checkout_session == session.id)
                .and_then(|r| r.url.clone()),
            status: "paid".into(),
            payment_intent: session.payment_intent.as_ref().map(|pi| pi.id().to_owned()),
            attempt: current.map_or(1, |r| r.attempt),
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
        let value = json_object(vec![
            ("payment_intent", self.id.clone().into()),
            ("amount", self.amount.into()),
            ("currency", self.currency.clone().into()),
            ("code", error.code.into()),
            ("decline_code", error.decline_code.into()),
            ("message", error.message.into()),
            ("recovery_url", self.recovery_url().into()),
        ]);
        match value {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// Whether the money is on its way but not arrived: the PaymentIntent is `processing`
    /// (a bank debit), or the recovery session was paid with a delayed method.
    pub fn in_flight(&self) -> bool {
        !self.paid
            && (self.status == "processing"
                || self
                    .recovery
                    .as_ref()
                    .is_some_and(|r| r.status == RecoveryStatus::Processing.as_str()))
    }

    /// The body `POST /charges` answers with, and its status: whether the money arrived
    /// (`paid`) and the PaymentIntent's `status` always. Paid: 200. On its way: 202, with where
    /// the outcome shows. Not paid: 402, with Stripe's reason and the recovery link.
    pub fn answer(&self) -> (u16, serde_json::Value) {
        let mut fields = vec![
            ("payment_intent", self.id.clone().into()),
            ("status", self.status.clone().into()),
            ("paid", self.paid.into()),
        ];
        if self.paid {
            return (200, json_object(fields));
        }
        if self.in_flight() {
            fields.push(("message", format!("the payment is on its way, not arrived: GET /charges/{} says when it is paid; if it fails, the customer gets a recovery link (charge.recovery notification) as after a decline", self.id).into()));
            return (202, json_object(fields));
        }
        let error = self.last_error.as_ref();
        let error = json_object(vec![
            ("code", error.and_then(|e| e.code.clone()).into()),
            (
                "decline_code",
                error.and_then(|e| e.decline_code.clone()).into(),
            ),
            ("message", error.and_then(|e| e.message.clone()).into()),
        ]);
        fields.push(("error", error));
        fields.push(("recovery_url", self.recovery_url().into()));
        (402, json_object(fields))
    }

    /// The recovery session's URL, once there is one.
    fn recovery_url(&self) -> Option<String> {
        self.recovery.as_ref().and_then(|r| r.url.clone())
    }

    /// The field in which `request` is not this charge (for keys recorded before they kept
    /// the request, see [`ChargeKeyRecord::differs_from`]).
    pub fn differs_from(&self, request: &ChargeRequest) -> Option<&'static str> {
        first_difference(&[
            (
                "customer",
                self.customer
                    .as_deref()
                    .is_some_and(|c| c != request.customer),
            ),
            ("amount", self.amount != request.amount),
            ("currency", self.currency != request.currency),
        ])
    }
}
