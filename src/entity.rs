//! Whose records a piece of work read-modify-writes: the entity whose queue (one Durable
//! Object each, `idFromName(entity)`) runs it, one piece at a time. Two pieces of work that
//! write the same record must name the same entity, so each kind of work is mapped here, once.
//!
//! - Identity events and `POST /identity/verification-sessions`: the app's user. For an
//!   event, the user we recorded the session for (`identity:session:{vs}`, read by the route
//!   before choosing the queue when the payload names no user: a redaction erases
//!   `metadata`), else `metadata.user_id`, which every VerificationSession made here carries
//!   (an event naming another user than the one recorded is refused in that queue); a
//!   session naming neither is its own entity (its events are ignored there, writing nothing
//!   of a user's).
//! - Billing events: the customer the object names (a recovery session, a setup session
//!   bound to a customer, an off-session PaymentIntent), else the Checkout Session (a public
//!   setup session has no customer until this service creates one for it) or the
//!   PaymentIntent; `POST /charges` and `GET /success` get the key their events get.
//! - Events of other types write only their own `event:{id}` and need no queue; an expired
//!   setup session writes nothing at all (`billing::leaves_nothing`).

use crate::event::{Event, EventKind};
use crate::identity::is_user_id;
use crate::objects::{CheckoutSession, PaymentIntent, VerificationSession};
use crate::stripe::is_stripe_id;

/// The name of one entity's queue. Each kind has its own prefix, so an id of one kind never
/// names another's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity(String);

impl Entity {
    pub fn user(user_id: &str) -> Self {
        Self(format!("user:{user_id}"))
    }

    pub fn customer(customer_id: &str) -> Self {
        Self(format!("customer:{customer_id}"))
    }

    fn verification_session(id: &str) -> Self {
        Self(format!("verification_session:{id}"))
    }

    fn checkout_session(id: &str) -> Self {
        Self(format!("checkout_session:{id}"))
    }

    fn payment_intent(id: &str) -> Self {
        Self(format!("payment_intent:{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A user's or a customer's queue keeps its records; the queue of a public setup session,
    /// or of a payment or verification session of no user or customer, keeps nothing once its
    /// work is done and KV has every record (its object deletes its storage).
    pub fn keeps_records(&self) -> bool {
        self.0.starts_with("user:") || self.0.starts_with("customer:")
    }

    /// A Checkout Session's entity: its customer, else the session itself.
    pub fn of_checkout_session(session: &CheckoutSession) -> Option<Self> {
        match session.customer.as_deref().filter(|c| is_stripe_id(c)) {
            Some(customer) => Some(Self::customer(customer)),
            None => is_stripe_id(&session.id).then(|| Self::checkout_session(&session.id)),
        }
    }

    /// The VerificationSession whose record names the owner of an Identity event
    /// (`identity:session:{id}`): what the route reads before [`Self::of_event`].
    /// Only when the payload names no user (a redaction erased the metadata, or it was
    /// deleted): otherwise the payload's user is the queue, and the handler there refuses an
    /// event whose user is not the one recorded (`identity::owner_changed`), so no user's
    /// records are written outside that user's queue. (Reading only then keeps the hot path
    /// free of a KV read before the queue.)
    pub fn recorded_owner_of(event: &Event) -> Option<String> {
        let kind = event.kind()?;
        crate::identity::SessionEvent::from_kind(kind)?;
        let session: VerificationSession = event.object().ok()?;
        let names_a_user = session
            .metadata
            .get("user_id")
            .is_some_and(|u| is_user_id(u.trim()));
        (!names_a_user && is_stripe_id(&session.id)).then_some(session.id)
    }

    /// The entity of a verified event; `None` for a type this service does not act on, or an
    /// object that does not decode (its handler refuses it before writing anything).
    /// `recorded_user`: for an Identity event, the user recorded for its session (see
    /// [`Self::recorded_owner_of`]), which decides over the payload.
    pub fn of_event(event: &Event, recorded_user: Option<&str>) -> Option<Self> {
        match event.kind()? {
            EventKind::VerificationSessionCreated
            | EventKind::VerificationSessionProcessing
            | EventKind::VerificationSessionVerified
            | EventKind::VerificationSessionRequiresInput
            | EventKind::VerificationSessionCanceled
            | EventKind::VerificationSessionRedacted => {
                let session: VerificationSession = event.object().ok()?;
                // As `identity::user_of` reads it: our record first, then the metadata.
                let from_metadata = session.metadata.get("user_id").map(|u| u.trim());
                match recorded_user.or(from_metadata) {
                    Some(user) if is_user_id(user) => Some(Self::user(user)),
                    _ => is_stripe_id(&session.id).then(|| Self::verification_session(&session.id)),
                }
            }
            // An expired setup session leaves nothing to do (`billing::leaves_nothing`): no queue.
            EventKind::CheckoutSessionExpired if crate::billing::leaves_nothing(event) => None,
            EventKind::CheckoutSessionCompleted
            | EventKind::CheckoutSessionAsyncPaymentSucceeded
            | EventKind::CheckoutSessionAsyncPaymentFailed
            | EventKind::CheckoutSessionExpired => Self::of_checkout_session(&event.object().ok()?),
            EventKind::PaymentIntentSucceeded | EventKind::PaymentIntentPaymentFailed => {
                let pi: PaymentIntent = event.object().ok()?;
                match pi.customer.as_deref().filter(|c| is_stripe_id(c)) {
                    Some(customer) => Some(Self::customer(customer)),
                    None => is_stripe_id(&pi.id).then(|| Self::payment_intent(&pi.id)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, object: serde_json::Value) -> Event {
        let body = serde_json::json!({
            "id": "evt_1", "object": "event", "type": kind, "created": 1, "livemode": false,
            "data": { "object": object },
        });
        Event::parse(body.to_string().as_bytes()).unwrap()
    }

    fn vs(user: Option<&str>) -> serde_json::Value {
        let metadata = match user {
            Some(user) => serde_json::json!({ "user_id": user }),
            None => serde_json::json!({}),
        };
        serde_json::json!({ "id": "vs_1", "object": "identity.verification_session",
            "status": "verified", "created": 1, "metadata": metadata })
    }

    fn cs(customer: Option<&str>, mode: &str) -> serde_json::Value {
        serde_json::json!({ "id": "cs_1", "object": "checkout.session", "mode": mode,
            "status": "complete", "created": 1, "customer": customer, "metadata": {} })
    }

    fn pi(customer: Option<&str>) -> serde_json::Value {
        serde_json::json!({ "id": "pi_1", "object": "payment_intent", "status": "succeeded",
            "amount": 100, "currency": "usd", "customer": customer, "metadata": {} })
    }

    fn of(kind: &str, object: serde_json::Value) -> Option<String> {
        Entity::of_event(&event(kind, object), None).map(|e| e.0)
    }

    #[test]
    fn every_identity_event_of_a_user_goes_to_that_users_queue() {
        for kind in EventKind::TYPES
            .iter()
            .filter(|t| t.starts_with("identity."))
        {
            assert_eq!(
                of(kind, vs(Some("ann@x.io"))).as_deref(),
                Some("user:ann@x.io"),
                "{kind}"
            );
            // Trimmed as the state machine trims it: the same user, the same queue.
            assert_eq!(
                of(kind, vs(Some(" ann@x.io "))).as_deref(),
                Some("user:ann@x.io")
            );
        }
        // The creation route's key is the same one.
        assert_eq!(Entity::user("ann@x.io").as_str(), "user:ann@x.io");
    }

    #[test]
    fn the_recorded_owner_decides_over_the_payload() {
        for kind in EventKind::TYPES
            .iter()
            .filter(|t| t.starts_with("identity."))
        {
            let e = event(kind, vs(None));
            // A redaction erased the metadata: the session's record names the user.
            assert_eq!(Entity::recorded_owner_of(&e).as_deref(), Some("vs_1"));
            assert_eq!(
                Entity::of_event(&e, Some("ann@x.io")),
                Some(Entity::user("ann@x.io"))
            );
            // A payload naming a user is routed by it, without a read; the handler there
            // refuses it if the session was recorded for someone else.
            let named = event(kind, vs(Some("bob")));
            assert_eq!(Entity::recorded_owner_of(&named), None);
            assert_eq!(Entity::of_event(&named, None), Some(Entity::user("bob")));
        }
        let billing = event("payment_intent.succeeded", pi(None));
        assert_eq!(Entity::recorded_owner_of(&billing), None);
    }

    #[test]
    fn a_session_without_a_user_is_its_own_entity() {
        let kind = "identity.verification_session.verified";
        assert_eq!(
            of(kind, vs(None)).as_deref(),
            Some("verification_session:vs_1")
        );
        assert_eq!(
            of(kind, vs(Some("no spaces allowed"))).as_deref(),
            Some("verification_session:vs_1")
        );
    }

    #[test]
    fn billing_events_go_to_their_customers_queue_whatever_the_object() {
        for kind in EventKind::TYPES
            .iter()
            .filter(|t| t.starts_with("checkout.session."))
        {
            // An expired setup session leaves nothing to do: no queue at all.
            let expired_setup = *kind == "checkout.session.expired";
            for mode in ["setup", "payment"] {
                let queue = (!(expired_setup && mode == "setup")).then_some("customer:cus_9");
                assert_eq!(
                    of(kind, cs(Some("cus_9"), mode)).as_deref(),
                    queue,
                    "{kind}"
                );
            }
            // A public setup session has no customer yet: the session is the entity.
            let queue = (!expired_setup).then_some("checkout_session:cs_1");
            assert_eq!(of(kind, cs(None, "setup")).as_deref(), queue, "{kind}");
        }
        for kind in ["payment_intent.succeeded", "payment_intent.payment_failed"] {
            assert_eq!(
                of(kind, pi(Some("cus_9"))).as_deref(),
                Some("customer:cus_9")
            );
            assert_eq!(of(kind, pi(None)).as_deref(), Some("payment_intent:pi_1"));
        }
        // An expanded customer is the same customer.
        let mut expanded = pi(None);
        expanded["customer"] = serde_json::json!({ "id": "cus_9", "object": "customer" });
        assert_eq!(
            of("payment_intent.succeeded", expanded).as_deref(),
            Some("customer:cus_9")
        );
        assert_eq!(Entity::customer("cus_9").as_str(), "customer:cus_9");
    }

    #[test]
    fn other_types_and_undecodable_objects_need_no_queue() {
        assert_eq!(
            of("customer.created", serde_json::json!({ "id": "cus_1" })),
            None
        );
        assert_eq!(
            of(
                "payment_intent.succeeded",
                serde_json::json!({ "id": "pi_1" })
            ),
            None
        );
        assert_eq!(
            of("checkout.session.completed", serde_json::json!({ "id": 5 })),
            None
        );
    }

    #[test]
    fn only_users_and_customers_keep_their_queues_records() {
        assert!(Entity::user("u").keeps_records() && Entity::customer("cus_1").keeps_records());
        for ephemeral in [
            Entity::checkout_session("cs_1"),
            Entity::payment_intent("pi_1"),
            Entity::verification_session("vs_1"),
        ] {
            assert!(!ephemeral.keeps_records(), "{ephemeral:?}");
        }
    }

    #[test]
    fn ids_of_one_kind_never_name_another_kinds_queue() {
        let names = [
            Entity::user("cus_1").0,
            Entity::customer("cus_1").0,
            Entity::verification_session("cus_1").0,
            Entity::checkout_session("cus_1").0,
            Entity::payment_intent("cus_1").0,
        ];
        let distinct: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
    }
}
