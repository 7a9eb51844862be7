//! One Stripe API call before base URL and credentials: form encoding in Stripe's bracket
//! notation, idempotency keys, and the request itself. Pure.

use crate::http::Method;
use crate::objects::Metadata;

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

    /// `application/x-www-form-urlencoded` (`crate::form`). Brackets are then written
    /// literally, as Stripe's SDKs do, which keeps keys readable in logs and the stand-in.
    pub fn encode(&self) -> String {
        crate::form::encode(&self.0)
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
    /// The request creates a Stripe object: it is sent with this deployment's marker
    /// (`crate::provenance::stamped`).
    pub creates: bool,
}

impl StripeRequest {
    pub fn get(path: impl Into<String>, query: Form) -> Self {
        Self {
            method: Method::Get,
            path: path.into(),
            form: query,
            idempotency_key: None,
            creates: false,
        }
    }

    pub fn post(path: impl Into<String>, form: Form, key: IdempotencyKey) -> Self {
        Self {
            method: Method::Post,
            path: path.into(),
            form,
            idempotency_key: Some(key),
            creates: false,
        }
    }

    /// A POST that creates an object (see [`Self::creates`]).
    pub fn create(path: impl Into<String>, form: Form, key: IdempotencyKey) -> Self {
        Self {
            creates: true,
            ..Self::post(path, form, key)
        }
    }
}

/// Stripe ids go into paths: only their own alphabet is let through.
pub fn is_stripe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `prefix` followed by at least one character of a Stripe id: the one check for ids of a
/// known kind (`evt_`, `cs_`, `cus_`, `pi_`, …).
pub fn is_prefixed_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty()) && is_stripe_id(id)
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
}
