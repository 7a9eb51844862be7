//! Which Stripe objects this deployment made: the one rule for every kind it acts on
//! (Checkout Sessions, Identity VerificationSessions, PaymentIntents, Customers). Pure.
//!
//! Other integrations use the same Stripe account: another product, a second deployment of
//! this service (staging beside production on one test account), a script with a restricted
//! key. Their objects send the same events to every endpoint subscribed to the type, signed
//! with each endpoint's own secret. So a signature proves Stripe sent an event, not that this
//! deployment made its object. Every object created here carries
//! `metadata[created_by]={DEPLOYMENT_ID}` (stamped on each creation request by
//! `Services::stripe`, from the request's [`StripeRequest::creates`] flag), and an event acts
//! only on an object with this deployment's marker, or one recorded here at its creation (a
//! redacted VerificationSession has no metadata left: its record says whose it is).

use crate::objects::Metadata;
use crate::stripe::StripeRequest;

/// The metadata key of the marker.
pub const CREATED_BY_METADATA: &str = "created_by";

/// `DEPLOYMENT_ID` when unset: the worker's name in `wrangler.toml`. Two deployments on one
/// Stripe account each set their own.
pub const DEFAULT_DEPLOYMENT_ID: &str = "stripe-edge-webhooks";

/// Why an event was recorded `ignored` without acting: its object was not made here.
pub const NOT_MADE_HERE: &str = "not_created_by_this_deployment";

/// Whether an object with this metadata was made by deployment `deployment_id`.
pub fn made_here(metadata: &Metadata, deployment_id: &str) -> bool {
    metadata.get(CREATED_BY_METADATA).map(String::as_str) == Some(deployment_id)
}

/// The request as sent: a creation carries this deployment's marker, once (a value the
/// builder put under the key is replaced); any other request is sent as it is.
pub fn stamped(request: &StripeRequest, deployment_id: &str) -> Option<StripeRequest> {
    if !request.creates {
        return None;
    }
    let key = format!("metadata[{CREATED_BY_METADATA}]");
    let mut stamped = request.clone();
    stamped.form = request
        .form
        .pairs()
        .iter()
        .filter(|(k, _)| *k != key)
        .fold(crate::stripe::Form::new(), |form, (k, v)| form.set(k, v))
        .set(key, deployment_id);
    Some(stamped)
}

/// A `DEPLOYMENT_ID`: 1–64 characters of `[A-Za-z0-9_.-]` (a Stripe metadata value may
/// hold 500).
pub fn is_deployment_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::{calls, IdempotencyKey};

    fn marker(request: &StripeRequest) -> Vec<&str> {
        request
            .form
            .pairs()
            .iter()
            .filter(|(k, _)| k == "metadata[created_by]")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn every_creation_carries_one_marker_of_this_deployment_and_reads_back_as_ours() {
        let key = || IdempotencyKey::random([7; 16]);
        let mut old = Metadata::new();
        old.insert("created_by".into(), "someone-else".into());
        old.insert("payment_intent".into(), "pi_1".into());
        let creations = [
            calls::create_verification_session("document", "ann", None, key()),
            calls::create_customer(Some("a@x.io"), &Metadata::new(), key()),
            calls::create_setup_session(
                &calls::SetupSession {
                    currency: "usd",
                    customer: None,
                    success_url: "https://x.test/s",
                    cancel_url: "https://x.test/",
                    metadata: &old,
                },
                key(),
            ),
            calls::create_off_session_payment_intent(
                &calls::OffSessionCharge {
                    customer: "cus_1",
                    payment_method: "pm_1",
                    amount: 100,
                    currency: "usd",
                    description: None,
                    metadata: &Metadata::new(),
                },
                key(),
            ),
        ];
        for request in &creations {
            let sent = stamped(request, "prod-eu").expect("a creation is stamped");
            assert_eq!(marker(&sent), ["prod-eu"], "{}", request.path);
            let metadata: Metadata = sent
                .form
                .pairs()
                .iter()
                .filter_map(|(k, v)| {
                    let k = k.strip_prefix("metadata[")?.strip_suffix(']')?;
                    Some((k.to_owned(), v.clone()))
                })
                .collect();
            assert!(made_here(&metadata, "prod-eu"));
            assert!(!made_here(&metadata, "staging"));
        }
        // The other metadata is kept.
        assert!(stamped(&creations[2], "prod-eu")
            .unwrap()
            .form
            .pairs()
            .contains(&("metadata[payment_intent]".into(), "pi_1".into())));
    }

    #[test]
    fn reads_and_other_writes_are_sent_as_they_are() {
        let key = IdempotencyKey::random([1; 16]);
        for request in [
            calls::retrieve_checkout_session("cs_1"),
            calls::retrieve_event("evt_1"),
            calls::attach_payment_method("pm_1", "cus_1", key),
        ] {
            assert_eq!(stamped(&request, "prod"), None, "{}", request.path);
        }
    }

    #[test]
    fn an_object_without_the_marker_or_with_another_is_not_ours() {
        let mut metadata = Metadata::new();
        assert!(!made_here(&metadata, DEFAULT_DEPLOYMENT_ID));
        metadata.insert("user_id".into(), "victim".into());
        assert!(!made_here(&metadata, DEFAULT_DEPLOYMENT_ID));
        metadata.insert("created_by".into(), "stripe-edge-webhooks-staging".into());
        assert!(!made_here(&metadata, DEFAULT_DEPLOYMENT_ID));
        assert!(made_here(&metadata, "stripe-edge-webhooks-staging"));
    }

    #[test]
    fn deployment_ids_are_short_and_plain() {
        for ok in ["stripe-edge-webhooks", "prod.eu_1", "a"] {
            assert!(is_deployment_id(ok), "{ok}");
        }
        for bad in ["", "a b", "a]b", "x=y", &"a".repeat(65)] {
            assert!(!is_deployment_id(bad), "{bad}");
        }
    }
}
