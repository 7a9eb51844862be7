//! What a webhook handler or a route may use besides its input: the store, Stripe, the
//! notification outbox, the clock, and a trace of what was done for the request's log line.
//! Generic over the two ports, so every flow runs natively against `MemoryStore` and a fake
//! transport.

use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::config::Config;
use crate::error::AppError;
use crate::http::Transport;
use crate::notify::{
    AttemptAnswer, Notification, Recipient, State, DELIVERY_TIMEOUT_MS, DUE_PREFIX,
};
use crate::signature::{sign_with_all, WebhookSecrets};
use crate::store::{keys, Store, StoreError};
use crate::stripe::{RetryPolicy, StripeClient, StripeError, StripeRequest};

/// Collected while a request is handled and written into its one log line: ids and short
/// notes only, never a secret, a body or personal data.
#[derive(Debug, Default)]
pub struct Trace(RefCell<TraceData>);

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct TraceData {
    /// `Request-Id` of every Stripe response, successes and errors alike (Stripe support asks
    /// for them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stripe_request_ids: Vec<String>,
    /// Things worth an operator's attention that did not fail the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}
crate::json::decode_map!(TraceData {
    stripe_request_ids: "stripe_request_ids" default,
    notes: "notes" default,
});

impl Trace {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn note(&self, note: impl Into<String>) {
        self.0.borrow_mut().notes.push(note.into());
    }

    pub fn stripe_request_id(&self, id: &str) {
        self.0.borrow_mut().stripe_request_ids.push(id.to_owned());
    }

    pub fn snapshot(&self) -> TraceData {
        self.0.borrow().clone()
    }

    /// What another trace collected (an entity's queue, over its binding) joins this one.
    pub fn absorb(&self, other: TraceData) {
        let mut data = self.0.borrow_mut();
        data.stripe_request_ids.extend(other.stripe_request_ids);
        data.notes.extend(other.notes);
    }
}

pub struct Services<'a, S, T> {
    pub store: &'a S,
    pub transport: &'a T,
    pub config: &'a Config,
    /// Unix seconds, from the runtime's clock.
    pub now: i64,
    pub trace: &'a Trace,
    policy: RetryPolicy,
    /// When set (webhooks), all Stripe calls together end by this `transport.now_ms()`.
    budget_ends_ms: Option<f64>,
}

/// All Stripe calls of one webhook delivery together: Stripe waits for an answer only so long,
/// and a timed-out delivery counts as failed anyway.
pub const WEBHOOK_STRIPE_BUDGET_MS: u64 = 10_000;

impl<'a, S: Store, T: Transport> Services<'a, S, T> {
    pub fn new(
        store: &'a S,
        transport: &'a T,
        config: &'a Config,
        now: i64,
        trace: &'a Trace,
    ) -> Self {
        Self {
            store,
            transport,
            config,
            now,
            trace,
            policy: RetryPolicy::default(),
            budget_ends_ms: None,
        }
    }

    /// Stripe calls made while handling a webhook must leave time to answer Stripe, which
    /// gives up on a delivery after a few seconds more than this.
    pub fn for_webhook(mut self) -> Self {
        self.policy = RetryPolicy::for_webhook();
        self.budget_ends_ms = Some(self.transport.now_ms() + WEBHOOK_STRIPE_BUDGET_MS as f64);
        self
    }

    /// One Stripe call with the retry policy, decoded as `R`; its request id goes into the trace.
    pub async fn stripe<R: DeserializeOwned>(
        &self,
        request: &StripeRequest,
    ) -> Result<R, AppError> {
        decode_raw(&self.stripe_raw(request).await?)
    }

    /// Like [`Self::stripe`], but a 402 comes back as the decline instead of an error.
    pub async fn stripe_or_decline<R: DeserializeOwned>(
        &self,
        request: &StripeRequest,
    ) -> Result<Result<R, Box<crate::stripe::ApiError>>, AppError> {
        match self.stripe_raw(request).await {
            Ok(raw) => Ok(Ok(decode_raw(&raw)?)),
            Err(AppError::Stripe(StripeError::CardDeclined(declined))) => Ok(Err(declined)),
            Err(other) => Err(other),
        }
    }

    /// Every call goes through this one instantiation of the client's retry loop (the loop
    /// is generic in the answer's type, and a copy per Stripe object costs wasm size); the
    /// answer is decoded afterwards by [`decode_raw`].
    async fn stripe_raw(&self, request: &StripeRequest) -> Result<Box<RawValue>, AppError> {
        let key = self.config.stripe_secret_key()?;
        let mut policy = self.policy;
        if let Some(ends) = self.budget_ends_ms {
            let left = (ends - self.transport.now_ms()).max(0.0) as u64;
            if left == 0 {
                return Err(StripeError::Deadline { attempts: 0 }.into());
            }
            policy.deadline_ms = policy.deadline_ms.min(left);
        }
        let client = StripeClient::new(
            self.transport,
            &self.config.stripe_api_base,
            &self.config.stripe_api_version,
            key,
        )
        .with_policy(policy);
        let stamped = crate::provenance::stamped(request, &self.config.deployment_id);
        match client
            .send::<Box<RawValue>>(stamped.as_ref().unwrap_or(request))
            .await
        {
            Ok(reply) => {
                if let Some(id) = &reply.request_id {
                    self.trace.stripe_request_id(id);
                }
                Ok(reply.object)
            }
            Err(error) => {
                if let Some(id) = error.api_error().and_then(|e| e.request_id.as_deref()) {
                    self.trace.stripe_request_id(id);
                }
                Err(error.into())
            }
        }
    }

    /// Writes the outbox record and delivers it to `NOTIFY_URL` when set. Only a store failure
    /// is an error: an undelivered notification stays in the outbox, due again by the retry
    /// schedule, and is noted in the log.
    pub async fn notify(&self, notification: Notification) -> Result<(), StoreError> {
        let target = self.notify_target(self.now);
        let record =
            send_notification(self.store, self.transport, target, notification, self.now).await?;
        if let Some(failure) = record.last_failure() {
            self.trace.note(format!(
                "notification {} not delivered ({failure}); {}",
                record.id,
                match record.next_attempt_at {
                    Some(due) => format!("due again at {due}"),
                    None => record.state.as_str().to_owned(),
                }
            ));
        }
        Ok(())
    }

    /// Where notifications go, signed at `signed_at` (the wall clock, which the receiver
    /// compares with its own); `None` without `NOTIFY_URL` and `OPS_NOTIFY_URL`.
    pub fn notify_target(&self, signed_at: i64) -> Option<NotifyTarget<'a>> {
        let config: &'a Config = self.config;
        let (url, ops_url) = (
            config.notify_url.as_deref(),
            config.ops_notify_url.as_deref(),
        );
        (url.is_some() || ops_url.is_some()).then(|| NotifyTarget {
            url,
            ops_url,
            signing: config.notify_signing_secrets().cloned(),
            signed_at,
        })
    }
}

/// Where notifications go (`NOTIFY_URL`, and `OPS_NOTIFY_URL` for the operator's alerts) and
/// what signs them (`NOTIFY_SIGNING_SECRET`).
#[derive(Debug, Clone)]
pub struct NotifyTarget<'a> {
    pub url: Option<&'a str>,
    pub ops_url: Option<&'a str>,
    /// `None`: nothing is sent. An unsigned notification could be forged by anyone who
    /// learns the URL, so the receiver must be able to tell ours apart.
    pub signing: Option<WebhookSecrets>,
    /// Unix seconds the signature carries: the wall clock at sending.
    pub signed_at: i64,
}

impl<'a> NotifyTarget<'a> {
    /// The sink of one recipient's notifications; `None`: that kind is not sent here, and
    /// its record waits in the outbox.
    pub fn url_for(&self, recipient: &Recipient) -> Option<&'a str> {
        match recipient {
            Recipient::Operator => self.ops_url,
            Recipient::User(_) | Recipient::Customer(_) => self.url,
        }
    }
}

/// The header a receiver verifies (`tools/verify-notification.mjs`), made as Stripe signs
/// its webhooks: `t=…,v1=HMAC-SHA256("{t}.{body}")`, one `v1` per secret while rolling.
pub const NOTIFY_SIGNATURE_HEADER: &str = "notify-signature";

/// Records the notification (unless it was already delivered, or is dead: only a resend
/// revives that) and delivers it when `target` is set, in one attempt. Returns the record
/// as stored. Ids are derived from what caused the notification, so a redelivered event finds
/// the record and does not notify twice once it is delivered; a failed attempt is indexed
/// for the scheduled retries and never fails the webhook.
pub async fn send_notification(
    store: &impl Store,
    transport: &impl Transport,
    target: Option<NotifyTarget<'_>>,
    notification: Notification,
    now: i64,
) -> Result<Notification, StoreError> {
    // An operator's alert with no `OPS_NOTIFY_URL` to go to is not kept: nobody would see it.
    let nowhere = |t: &NotifyTarget<'_>| t.url_for(&Recipient::Operator).is_none();
    if notification.recipient == Recipient::Operator && target.as_ref().is_none_or(nowhere) {
        return Ok(notification);
    }
    let key = keys::notification(&notification.id);
    let existing = match key.load_tolerant(store).await? {
        Some(done) if done.state != State::Pending => return Ok(done),
        existing => existing,
    };
    let record = notification.resume(existing, now);
    // The outbox record is written before the attempt, so a crash in between loses nothing
    // (the event is redelivered, finds it pending and attempts again).
    key.save(store, &record, finished_ttl(&record)).await?;
    match target {
        Some(target) => attempt_notification(store, transport, &target, record, now).await,
        None => Ok(record),
    }
}

/// A delivered or dead notification (and its `outbox_dead:` entry) expires; a pending one is
/// kept until it finishes.
fn finished_ttl(record: &Notification) -> Option<u64> {
    record
        .is_finished()
        .then_some(crate::store::FINISHED_TTL_SECONDS)
}

/// One attempt of a stored notification at `now` (a dead one is revived first, with a new
/// retry window), booked on the record and its index: the new index entry is written
/// first, then the record, then the old entry is removed. A crash between two of those
/// writes leaves an extra entry, which the retry run finds stale and drops, never a pending
/// record without one.
pub async fn attempt_notification(
    store: &impl Store,
    transport: &impl Transport,
    target: &NotifyTarget<'_>,
    mut record: Notification,
    now: i64,
) -> Result<Notification, StoreError> {
    let Some(url) = target.url_for(&record.recipient) else {
        return Ok(record);
    };
    let key = keys::notification(&record.id);
    let old_index = record.index_name();
    record.revive();
    match &target.signing {
        None => record.record_attempt(AttemptAnswer::Unsigned, now),
        Some(secrets) => {
            let mut request = record.request(url).map_err(|e| StoreError::Corrupt {
                key: key.as_str().to_owned(),
                reason: e.to_string(),
            })?;
            let body = request.body.as_deref().unwrap_or("").as_bytes();
            let signature = sign_with_all(body, secrets, target.signed_at);
            request.headers.push((NOTIFY_SIGNATURE_HEADER, signature));
            let answer = transport.send(&request, DELIVERY_TIMEOUT_MS).await;
            record.record_attempt(answer.as_ref().into(), now);
        }
    }
    let new_index = record.index_name();
    if let Some(name) = new_index
        .as_ref()
        .filter(|n| old_index.as_ref() != Some(*n))
    {
        keys::outbox_entry(name)
            .save(store, &(), finished_ttl(&record))
            .await?;
        // Entering the due index (a first failure, a failed resend): tell the scheduled runs
        // to list it. A move within the due index needs no hint: the run that moves it has one.
        let was_due = old_index
            .as_deref()
            .is_some_and(|o| o.starts_with(DUE_PREFIX));
        if name.starts_with(DUE_PREFIX) && !was_due {
            keys::outbox_hint().save(store, &now, None).await?;
        }
    }
    key.save(store, &record, finished_ttl(&record)).await?;
    if let Some(name) = old_index.filter(|o| new_index.as_ref() != Some(o)) {
        store.delete(&name).await?;
    }
    Ok(record)
}

/// A 2xx answer as `R`. One that does not have the expected shape is Stripe's `Malformed`, as
/// the client would have said had it decoded the answer itself.
pub fn decode_raw<R: DeserializeOwned>(raw: &RawValue) -> Result<R, AppError> {
    serde_json::from_str(raw.get()).map_err(unexpected_shape)
}

/// Not generic: one copy, not one per type decoded.
#[inline(never)]
fn unexpected_shape(error: serde_json::Error) -> AppError {
    StripeError::Malformed {
        status: 200,
        reason: format!(
            "unexpected shape at line {} column {}",
            error.line(),
            error.column()
        ),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::SendFailure;
    use crate::notify::{Notification, Recipient, State, ERROR_NETWORK, ERROR_UNSIGNED};
    use crate::store::MemoryStore;
    use crate::testing::FakeTransport;
    use pollster::block_on;

    const SIGNING: &str = "nsec_test_one,nsec_test_two";
    const ID: &str = "evt_1.identity.verified";

    fn signed(url: &str, signed_at: i64) -> NotifyTarget<'_> {
        NotifyTarget {
            url: Some(url),
            ops_url: None,
            signing: WebhookSecrets::from_comma_separated(SIGNING),
            signed_at,
        }
    }

    fn send(
        store: &MemoryStore,
        transport: &FakeTransport,
        target: Option<NotifyTarget<'_>>,
        now: i64,
    ) -> Notification {
        block_on(send_notification(store, transport, target, sample(), now)).unwrap()
    }

    fn stored(store: &MemoryStore) -> Notification {
        block_on(keys::notification(ID).load(store))
            .unwrap()
            .unwrap()
    }

    /// The names of the outbox's index entries.
    fn index(store: &MemoryStore) -> Vec<String> {
        let mut names = block_on(store.list("outbox", 100, None)).unwrap().keys;
        names.retain(|name| name != crate::notify::DUE_HINT_KEY);
        names.sort();
        names
    }

    #[test]
    fn every_notification_is_signed_like_a_stripe_webhook_and_never_sent_unsigned() {
        let store = MemoryStore::new();
        let transport = FakeTransport::new(|_| Ok(FakeTransport::json(200, "{}")));
        // Signed at the wall clock, whatever time the attempt is booked at.
        send(
            &store,
            &transport,
            Some(signed("https://sink.test/n", 1_700_000_000)),
            1_600_000_000,
        );
        let sent = transport.sent();
        let header = sent[0].header(NOTIFY_SIGNATURE_HEADER).expect("signed");
        assert!(header.starts_with("t=1700000000,"), "{header}");
        let body = sent[0].body.as_deref().unwrap().as_bytes();
        for secret in ["nsec_test_one", "nsec_test_two"] {
            let one = WebhookSecrets::from_comma_separated(secret).unwrap();
            assert!(
                crate::signature::verify(body, Some(header), &one, 300, 1_700_000_000).is_ok(),
                "{secret}"
            );
        }
        let other = WebhookSecrets::from_comma_separated("nsec_forger").unwrap();
        assert!(crate::signature::verify(body, Some(header), &other, 300, 1_700_000_000).is_err());

        let unsigned = NotifyTarget {
            url: Some("https://sink.test/n"),
            ops_url: None,
            signing: None,
            signed_at: 1,
        };
        let store = MemoryStore::new();
        let transport = FakeTransport::new(|_| panic!("nothing is sent unsigned"));
        let record = send(&store, &transport, Some(unsigned), 1);
        assert_eq!(record.state, State::Pending);
        assert_eq!(record.attempts[0].error.as_deref(), Some(ERROR_UNSIGNED));
        assert_eq!(index(&store), ["outbox:0000000061:evt_1.identity.verified"]);
    }

    fn sample() -> Notification {
        let mut payload = serde_json::Map::new();
        payload.insert("status".into(), "verified".into());
        Notification::new(
            "evt_1",
            "identity.verified",
            Recipient::User("u_1".into()),
            payload,
        )
    }

    #[test]
    fn without_a_url_the_record_is_kept_pending_and_not_scheduled() {
        let store = MemoryStore::new();
        let transport = FakeTransport::new(|_| panic!("no delivery without a url"));
        let record = send(&store, &transport, None, 100);
        assert_eq!((record.state, record.created_at), (State::Pending, 100));
        assert!(record.attempts.is_empty());
        assert_eq!(stored(&store), record);
        assert!(index(&store).is_empty());
    }

    #[test]
    fn a_delivery_posts_json_and_marks_the_record_once() {
        let store = MemoryStore::new();
        let transport = FakeTransport::new(|_| Ok(FakeTransport::json(204, "")));
        let target = || Some(signed("https://sink.test/n", 100));
        let record = send(&store, &transport, target(), 100);
        assert!(record.is_delivered());
        assert_eq!(record.attempts.len(), 1);
        assert!(index(&store).is_empty(), "nothing to retry");
        let sent = transport.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].url, "https://sink.test/n");
        assert_eq!(sent[0].header("idempotency-key"), Some(ID));
        let body: serde_json::Value = serde_json::from_str(sent[0].body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body["recipient"],
            serde_json::json!({"type": "user", "id": "u_1"})
        );
        assert_eq!(body["payload"]["status"], "verified");
        for bookkeeping in ["state", "attempts", "delivered_at", "next_attempt_at"] {
            assert!(body.get(bookkeeping).is_none(), "{bookkeeping}");
        }
        // The same notification again (a redelivered event) sends nothing.
        send(&store, &transport, target(), 200);
        assert_eq!(transport.sent().len(), 1);
    }

    #[test]
    fn a_failed_delivery_is_indexed_by_its_due_time_and_moved_on_each_attempt() {
        let store = MemoryStore::new();
        let failing = FakeTransport::new(|_| Ok(FakeTransport::json(500, "{}")));
        let record = send(
            &store,
            &failing,
            Some(signed("https://sink.test/n", 100)),
            100,
        );
        assert_eq!(record.state, State::Pending);
        assert_eq!(record.attempts[0].status, Some(500));
        assert_eq!(record.next_attempt_at, Some(160));
        assert_eq!(index(&store), ["outbox:0000000160:evt_1.identity.verified"]);
        let hint = || block_on(keys::outbox_hint().load(&store)).unwrap();
        assert_eq!(hint(), Some(100), "the scheduled runs are told to list");
        // A redelivered event attempts again inline, in the same window.
        let down = FakeTransport::new(|_| Err(SendFailure::Network("connection refused".into())));
        let record = send(&store, &down, Some(signed("https://sink.test/n", 150)), 150);
        assert_eq!(record.attempts.len(), 2);
        assert_eq!(record.attempts[1].error.as_deref(), Some(ERROR_NETWORK));
        assert_eq!(
            record.next_attempt_at,
            Some(450),
            "5 minutes after the second"
        );
        assert_eq!(index(&store), ["outbox:0000000450:evt_1.identity.verified"]);
        let ok = FakeTransport::new(|_| Ok(FakeTransport::json(200, "{}")));
        let record = send(&store, &ok, Some(signed("https://sink.test/n", 300)), 300);
        assert_eq!(
            (
                record.state,
                record.created_at,
                record.delivered_at,
                record.attempts.len()
            ),
            (State::Delivered, 100, Some(300), 3)
        );
        assert!(index(&store).is_empty(), "delivered: out of the index");
        assert_eq!(stored(&store), record);
    }

    #[test]
    fn a_dead_notification_is_left_alone_by_a_redelivered_event() {
        let store = MemoryStore::new();
        let mut dead = sample().resume(None, 100);
        dead.state = State::Dead;
        block_on(keys::notification(ID).save(&store, &dead, None)).unwrap();
        let transport = FakeTransport::new(|_| panic!("only a resend revives it"));
        let record = send(
            &store,
            &transport,
            Some(signed("https://sink.test/n", 1)),
            200,
        );
        assert_eq!(record, dead);
    }

    #[test]
    fn a_store_outage_is_an_error() {
        let store = MemoryStore::new();
        store.set_failing(true);
        let transport = FakeTransport::new(|_| panic!("nothing is sent when the outbox is down"));
        assert!(block_on(send_notification(
            &store,
            &transport,
            Some(signed("https://sink.test", 1)),
            sample(),
            1
        ))
        .is_err());
    }

    #[test]
    fn an_index_write_failing_leaves_the_old_entry_so_nothing_is_lost() {
        let store = MemoryStore::new();
        let failing = FakeTransport::new(|_| Ok(FakeTransport::json(503, "{}")));
        send(
            &store,
            &failing,
            Some(signed("https://sink.test/n", 100)),
            100,
        );
        store.fail_writes_to(Some("outbox:"));
        let record = stored(&store);
        assert!(block_on(attempt_notification(
            &store,
            &failing,
            &signed("https://sink.test/n", 160),
            record,
            160
        ))
        .is_err());
        store.fail_writes_to(None);
        assert_eq!(index(&store), ["outbox:0000000160:evt_1.identity.verified"]);
        assert_eq!(stored(&store).next_attempt_at, Some(160));
    }
}
