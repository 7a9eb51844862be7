//! Notifications, the pure part: the outbox record kept under `notification:{id}`, the JSON
//! POST to `NOTIFY_URL` it becomes, what an attempt's answer does to it, the retry schedule,
//! and the names of the two indexes that find records without listing the whole outbox.
//! Loading, saving and sending are I/O and live in `services.rs` (one attempt) and
//! `outbox.rs` (the scheduled retries and the admin routes).
//!
//! Ids are derived from what caused the notification (an event id or a PaymentIntent id and
//! the kind), so a redelivered event finds the record and does not notify twice once it is
//! delivered. The first attempt is made inline, with a short timeout (a webhook must answer
//! Stripe quickly); a failed one is scheduled again by [`next_delay`] for up to
//! [`RETRY_WINDOW_SECONDS`], then the record is `dead`. Delivery is at least once: the
//! receiver drops a repeat by id (`Idempotency-Key`).

use serde::{Deserialize, Serialize};

use crate::event::EventRecord;
use crate::http::{HttpRequest, HttpResponse, Method, SendFailure};

/// 2: `state`, the list of `attempts` and the retry window (1 had a `delivered` flag and a
/// count). A version-1 record does not decode and is read as absent.
pub const NOTIFICATION_RECORD_VERSION: u32 = 2;
/// One attempt, this long at most.
pub const DELIVERY_TIMEOUT_MS: u64 = 3_000;

/// The waits after the first, second, third and fourth failed attempt of a window; every
/// later one waits [`LATER_DELAY_SECONDS`].
pub const FIRST_DELAYS_SECONDS: [i64; 4] = [60, 5 * 60, 30 * 60, 2 * 60 * 60];
pub const LATER_DELAY_SECONDS: i64 = 6 * 60 * 60;
/// A notification is retried this long after the first attempt of its window (Stripe's own
/// retry window for webhooks), then marked dead.
pub const RETRY_WINDOW_SECONDS: i64 = 3 * 24 * 60 * 60;
/// The attempts kept on a record; only a resend of a dead record (a new window of at most
/// 16 attempts) or many manual resends reach it, and the oldest are dropped first.
pub const MAX_RECORDED_ATTEMPTS: usize = 100;

/// How long to wait after the `n`-th failed attempt of a window (`n` from 1).
pub fn next_delay(n: u32) -> i64 {
    match n {
        0 => 0,
        n => FIRST_DELAYS_SECONDS
            .get(n as usize - 1)
            .copied()
            .unwrap_or(LATER_DELAY_SECONDS),
    }
}

/// Who the notification is for. Its JSON is serde's adjacently tagged form
/// (`{"type":"user","id":"u_1"}`, `{"type":"operator"}`), written and read by hand: the
/// derive buffered the object into serde's `Content` to take the keys in either order, a
/// second decoder in the wasm. Same JSON both ways (a test pins it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// An application user (Identity flows), by the app's own user id.
    User(String),
    /// A Stripe customer (billing flows).
    Customer(String),
    /// The people who run this deployment: an operational alert (`ops.*`), sent to
    /// `OPS_NOTIFY_URL`, not to the app's `NOTIFY_URL`.
    Operator,
}

impl Serialize for Recipient {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (kind, id) = match self {
            Self::User(id) => ("user", Some(id)),
            Self::Customer(id) => ("customer", Some(id)),
            Self::Operator => ("operator", None),
        };
        let mut object = serializer.serialize_struct("Recipient", 1 + usize::from(id.is_some()))?;
        object.serialize_field("type", kind)?;
        if let Some(id) = id {
            object.serialize_field("id", id)?;
        }
        object.end()
    }
}

/// A recipient's object as read, before its kind and id are checked against each other.
struct RecipientFields {
    kind: String,
    id: Option<String>,
}
crate::json::decode_map!(RecipientFields {
    kind: "type" required,
    id: "id" default,
});

impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let fields = <RecipientFields as Deserialize>::deserialize(deserializer)?;
        match (fields.kind.as_str(), fields.id) {
            ("user", Some(id)) => Ok(Self::User(id)),
            ("customer", Some(id)) => Ok(Self::Customer(id)),
            ("operator", None) => Ok(Self::Operator),
            ("user" | "customer", None) => Err(D::Error::missing_field("id")),
            ("operator", Some(_)) => Err(D::Error::custom("the operator has no id")),
            (other, _) => Err(D::Error::unknown_variant(
                other,
                &["user", "customer", "operator"],
            )),
        }
    }
}

/// An event Stripe will not deliver again failed here: only a replay works it again.
pub const OPS_EVENT_FAILED_FOR_GOOD: &str = "ops.event_failed_for_good";
/// Stripe says it never generated an event (`v2.core.health.event_generation_failure.resolved`):
/// no delivery, catch-up or replay will bring it; its object needs a look.
pub const OPS_EVENT_GENERATION_FAILURE: &str = "ops.event_generation_failure";
/// A notification's retry window ended with no delivery: only a resend revives it.
pub const OPS_NOTIFICATION_DEAD: &str = "ops.notification_dead";
/// Catch-up processed events Stripe had not delivered (an outage, a wrong secret, a disabled
/// endpoint): worth knowing why.
pub const OPS_CATCHUP_FOUND_UNDELIVERED: &str = "ops.catchup_found_undelivered";
/// No delivery for `ENDPOINT_SILENT_AFTER_MINUTES` while catch-up finds events Stripe did not
/// deliver: the endpoint looks disabled (Stripe disables one that keeps failing).
pub const OPS_ENDPOINT_SILENT: &str = "ops.endpoint_silent";

/// The admin console's page for an alert whose JSON route is `admin_path`: the event's or the
/// notification's own page, else the overview.
pub fn console_path(admin_path: Option<&str>) -> String {
    match admin_path {
        Some(path) if path.starts_with("/events/") || path.starts_with("/notifications/") => {
            format!("/admin{path}")
        }
        _ => "/admin".to_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not delivered yet: due again at `next_attempt_at` (when `NOTIFY_URL` is set).
    Pending,
    /// A 2xx answer came back.
    Delivered,
    /// Every attempt of its window failed; only `POST /notifications/{id}/resend` revives it.
    Dead,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }
}

/// The most of the sink's answer that is read: only its status counts, so a sink that
/// streams a large body costs this much memory and no more.
pub const MAX_SINK_RESPONSE_BYTES: usize = 4 * 1024;

/// One attempt: when, and the sink's status or why there was none. Never a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub at: i64,
    /// The sink's answer (2xx: delivered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// No answer: [`ERROR_NETWORK`], [`ERROR_UNSENDABLE`] or [`ERROR_UNSIGNED`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
crate::json::decode_map!(Attempt {
    at: "at" required,
    status: "status" default,
    error: "error" default,
});

/// No answer in time: connection refused or reset, a timeout, an abort.
pub const ERROR_NETWORK: &str = "network";
/// The runtime refused to build the request (e.g. a bad header value).
pub const ERROR_UNSENDABLE: &str = "unsendable";
/// `NOTIFY_SIGNING_SECRET` is not set: nothing is sent unsigned.
pub const ERROR_UNSIGNED: &str = "unsigned";

/// The value under `notification:{id}`; the first five fields are the body POSTed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub version: u32,
    pub id: String,
    /// What happened, e.g. `identity.verified`, `charge.recovery`.
    pub kind: String,
    pub recipient: Recipient,
    pub payload: serde_json::Map<String, serde_json::Value>,
    /// Unix seconds of the first write.
    pub created_at: i64,
    pub state: State,
    /// Every attempt, oldest first (at most [`MAX_RECORDED_ATTEMPTS`]).
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// When a pending notification is due again; `None` before any attempt (no `NOTIFY_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<i64>,
    /// The first attempt of the current retry window (a resend of a dead one starts another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_started_at: Option<i64>,
    /// The attempts of the current window: they choose the next wait.
    #[serde(default)]
    pub window_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_at: Option<i64>,
}
crate::json::decode_map!(Notification {
    version: "version" required,
    id: "id" required,
    kind: "kind" required,
    recipient: "recipient" required,
    payload: "payload" required,
    created_at: "created_at" required,
    state: "state" required,
    attempts: "attempts" default,
    next_attempt_at: "next_attempt_at" default,
    window_started_at: "window_started_at" default,
    window_attempts: "window_attempts" default,
    delivered_at: "delivered_at" default,
    dead_at: "dead_at" default,
});

impl Notification {
    /// `source` is what caused it (an event or object id); with `kind` it makes the id.
    pub fn new(
        source: &str,
        kind: &str,
        recipient: Recipient,
        payload: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        Self {
            version: NOTIFICATION_RECORD_VERSION,
            id: format!("{source}.{kind}"),
            kind: kind.to_owned(),
            recipient,
            payload,
            created_at: 0,
            state: State::Pending,
            attempts: Vec::new(),
            next_attempt_at: None,
            window_started_at: None,
            window_attempts: 0,
            delivered_at: None,
            dead_at: None,
        }
    }

    pub fn is_delivered(&self) -> bool {
        self.state == State::Delivered
    }

    /// Delivered or dead: nothing more will be tried (unless an operator resends it), so it
    /// and its dead-index entry are kept for a stated time, not for ever.
    pub fn is_finished(&self) -> bool {
        self.state != State::Pending
    }

    /// An operator's alert (`ops.*`, to `OPS_NOTIFY_URL`). Each carries `console_path`, the
    /// admin console's page for it (`/admin/events/{id}`, `/admin/notifications/{id}`, or the
    /// overview `/admin`), beside `admin_path`, the JSON route.
    pub fn ops_alert(
        source: &str,
        kind: &str,
        mut payload: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        let admin_path = payload.get("admin_path").and_then(|p| p.as_str());
        payload.insert("console_path".into(), console_path(admin_path).into());
        Self::new(source, kind, Recipient::Operator, payload)
    }

    /// The alert that the endpoint looks disabled: catch-up found `found` events Stripe did
    /// not deliver, and no delivery arrived since `silent_since` (`last_delivery`: the last
    /// one, if any). Its id is the silence's start, so it is raised once per silence: a
    /// delivery starts the next one.
    pub fn endpoint_silent(
        silent_since: i64,
        last_delivery: Option<i64>,
        now: i64,
        found: u32,
    ) -> Self {
        let mut payload = serde_json::Map::new();
        payload.insert("last_delivery_at".into(), last_delivery.into());
        payload.insert("silent_since".into(), silent_since.into());
        payload.insert("silent_seconds".into(), (now - silent_since).into());
        payload.insert("found_undelivered".into(), found.into());
        payload.insert("admin_path".into(), "/catch-up".into());
        payload.insert(
            "action".into(),
            "open the webhook endpoint in Stripe's Dashboard (Workbench, Webhooks): re-enable it \
             if Stripe disabled it, check its URL and STRIPE_WEBHOOK_SECRET; catch-up brings \
             the events meanwhile"
                .into(),
        );
        Self::ops_alert(
            &format!("silent.{silent_since}"),
            OPS_ENDPOINT_SILENT,
            payload,
        )
    }

    /// The operator's alert for an event recorded failed for good. Its id derives from the
    /// event's, so it is raised once however often the event fails again.
    pub fn event_failed_for_good(record: &EventRecord) -> Self {
        let mut payload = serde_json::Map::new();
        payload.insert("event_id".into(), record.id.clone().into());
        payload.insert("event_type".into(), record.event_type.clone().into());
        payload.insert("failed_step".into(), record.failed_step.clone().into());
        payload.insert("error".into(), record.error.clone().into());
        if let Some(said) = record.stripe_error.as_ref() {
            payload.insert(
                "stripe_error".into(),
                crate::json::to_value(said).unwrap_or_default(),
            );
        }
        payload.insert("admin_path".into(), format!("/events/{}", record.id).into());
        payload.insert(
            "action".into(),
            "mend the cause (see stripe_error), then POST /events/{id}/replay".into(),
        );
        Self::ops_alert(&record.id, OPS_EVENT_FAILED_FOR_GOOD, payload)
    }

    /// The operator's alert for a catch-up run that processed events Stripe had not
    /// delivered (`run` is its report, as `GET /catch-up` shows it), one per such run.
    pub fn catchup_found_undelivered(at: i64, run: serde_json::Value) -> Self {
        let mut payload = serde_json::Map::new();
        payload.insert("run".into(), run);
        payload.insert("admin_path".into(), "/catch-up".into());
        payload.insert(
            "action".into(),
            "find why Stripe's deliveries did not arrive (its Dashboard shows each attempt): \
             an outage, a wrong STRIPE_WEBHOOK_SECRET, a disabled destination"
                .into(),
        );
        Self::ops_alert(
            &format!("catchup.{at}"),
            OPS_CATCHUP_FOUND_UNDELIVERED,
            payload,
        )
    }

    /// The operator's alert for this notification gone dead; none for an alert itself (the
    /// operator's sink is the one that is down).
    pub fn dead_alert(&self) -> Option<Self> {
        if self.state != State::Dead || self.recipient == Recipient::Operator {
            return None;
        }
        let mut payload = serde_json::Map::new();
        payload.insert("notification_id".into(), self.id.clone().into());
        payload.insert("kind".into(), self.kind.clone().into());
        payload.insert("attempts".into(), self.window_attempts.into());
        payload.insert("last_failure".into(), self.last_failure().into());
        payload.insert(
            "admin_path".into(),
            format!("/notifications/{}", self.id).into(),
        );
        payload.insert(
            "action".into(),
            "mend the sink, then POST /notifications/{id}/resend".into(),
        );
        Some(Self::ops_alert(&self.id, OPS_NOTIFICATION_DEAD, payload))
    }
}

/// What the sink receives: the record without its delivery bookkeeping.
#[derive(Serialize)]
struct Outgoing<'a> {
    id: &'a str,
    kind: &'a str,
    recipient: &'a Recipient,
    payload: &'a serde_json::Map<String, serde_json::Value>,
    created_at: i64,
}

/// What one attempt came to, as [`Notification::record_attempt`] books it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptAnswer<'a> {
    Answered(&'a HttpResponse),
    Failed(&'a SendFailure),
    /// Not sent: no signing secret.
    Unsigned,
}

impl<'a> From<Result<&'a HttpResponse, &'a SendFailure>> for AttemptAnswer<'a> {
    fn from(answer: Result<&'a HttpResponse, &'a SendFailure>) -> Self {
        match answer {
            Ok(response) => Self::Answered(response),
            Err(failure) => Self::Failed(failure),
        }
    }
}

impl Notification {
    /// This notification as first written, or as it continues a stored, pending one: the
    /// first write time, the attempts and the retry window are kept.
    pub fn resume(self, existing: Option<Notification>, now: i64) -> Self {
        match existing {
            Some(stored) => Notification {
                payload: self.payload,
                recipient: self.recipient,
                ..stored
            },
            None => Notification {
                created_at: now,
                ..self
            },
        }
    }

    /// The POST to the sink. The `Idempotency-Key` lets the receiver drop a repeat if our
    /// record of the delivery was lost.
    pub fn request(&self, url: &str) -> Result<HttpRequest, serde_json::Error> {
        let body = serde_json::to_string(&Outgoing {
            id: &self.id,
            kind: &self.kind,
            recipient: &self.recipient,
            payload: &self.payload,
            created_at: self.created_at,
        })?;
        Ok(HttpRequest {
            method: Method::Post,
            url: url.to_owned(),
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("idempotency-key", self.id.clone()),
            ],
            body: Some(body),
            max_response_bytes: MAX_SINK_RESPONSE_BYTES,
        })
    }

    /// Books one attempt made at `now` and its answer: delivered on a 2xx; otherwise due
    /// again after [`next_delay`], or dead when that would be past the window's end.
    pub fn record_attempt(&mut self, answer: AttemptAnswer<'_>, now: i64) {
        let (status, error) = match answer {
            AttemptAnswer::Answered(response) => (Some(response.status), None),
            AttemptAnswer::Failed(SendFailure::Network(_)) => (None, Some(ERROR_NETWORK)),
            AttemptAnswer::Failed(SendFailure::Unsendable(_)) => (None, Some(ERROR_UNSENDABLE)),
            AttemptAnswer::Unsigned => (None, Some(ERROR_UNSIGNED)),
        };
        self.attempts.push(Attempt {
            at: now,
            status,
            error: error.map(str::to_owned),
        });
        // The oldest go first; `remove` rather than `drain`, whose adapter is this crate's
        // only one (bench/RESULTS.md, notes).
        while self.attempts.len() > MAX_RECORDED_ATTEMPTS {
            self.attempts.remove(0);
        }
        let window_started_at = *self.window_started_at.get_or_insert(now);
        self.window_attempts += 1;
        if status.is_some_and(|s| (200..300).contains(&s)) {
            self.state = State::Delivered;
            self.delivered_at = Some(now);
            self.next_attempt_at = None;
            return;
        }
        let due = now + next_delay(self.window_attempts);
        if due > window_started_at + RETRY_WINDOW_SECONDS {
            self.state = State::Dead;
            self.dead_at = Some(now);
            self.next_attempt_at = None;
        } else {
            self.state = State::Pending;
            self.next_attempt_at = Some(due);
        }
    }

    /// A dead notification made pending again for an attempt now, with a new window.
    pub fn revive(&mut self) {
        if self.state == State::Dead {
            self.state = State::Pending;
            self.dead_at = None;
            self.window_started_at = None;
            self.window_attempts = 0;
        }
    }

    /// The index entry that finds this record: the due index while pending and scheduled,
    /// the dead index once dead, none otherwise.
    pub fn index_name(&self) -> Option<String> {
        match (self.state, self.next_attempt_at) {
            (State::Pending, Some(due)) => Some(due_index_name(due, &self.id)),
            (State::Dead, _) => Some(dead_index_name(&self.id)),
            _ => None,
        }
    }

    /// Why the last attempt failed, for a log note: a status or an error code.
    pub fn last_failure(&self) -> Option<String> {
        let last = self.attempts.last().filter(|_| !self.is_delivered())?;
        Some(match (&last.status, &last.error) {
            (Some(status), _) => format!("the sink answered {status}"),
            (None, Some(error)) => error.clone(),
            (None, None) => "unknown".into(),
        })
    }
}

/// The index of pending notifications by due time: `outbox:{due:010}:{id}`. KV lists keys
/// in key order, and ten zero-padded digits order them by time (until the year 2286).
pub const DUE_PREFIX: &str = "outbox:";
/// The index of dead notifications: `outbox_dead:{id}`.
pub const DEAD_PREFIX: &str = "outbox_dead:";

pub fn due_index_name(due: i64, id: &str) -> String {
    format!("{DUE_PREFIX}{:010}:{id}", due.max(0))
}

/// The due time and id of a due-index key name; `None` for anything else.
pub fn parse_due_index(name: &str) -> Option<(i64, &str)> {
    let rest = name.strip_prefix(DUE_PREFIX)?;
    let (due, id) = rest.split_once(':')?;
    if due.len() != 10 || !due.bytes().all(|b| b.is_ascii_digit()) || !is_notification_id(id) {
        return None;
    }
    Some((due.parse().ok()?, id))
}

pub fn dead_index_name(id: &str) -> String {
    format!("{DEAD_PREFIX}{id}")
}

/// The hint that the due index may hold entries: its value is the unix time it was written.
/// A scheduled run reads it (a cheap KV read) and lists the due index only when it is there,
/// or on the first run of each hour ([`SWEEP_SECONDS`]), so an idle deployment does not spend
/// a KV list (1,000 a day on the Free plan) every minute.
pub const DUE_HINT_KEY: &str = "outbox_hint";
/// Every this often a run lists the due index whatever the hint says, so an entry whose hint
/// was lost in a race (a run clearing it just as a new entry is written) waits an hour at most.
pub const SWEEP_SECONDS: i64 = 60 * 60;
/// A hint younger than this is kept even when the due index lists empty: KV lists can lag a
/// write by up to 60 s.
pub const HINT_SETTLE_SECONDS: i64 = 120;

/// Whether a run at `now` lists the due index: when the hint is there, or on the sweep.
pub fn must_list_due(hint: Option<i64>, now: i64) -> bool {
    hint.is_some() || now.rem_euclid(SWEEP_SECONDS) < 60
}

/// Whether a run at `now` that found the due index empty may delete a hint written at `hint`.
pub fn may_clear_hint(hint: i64, now: i64) -> bool {
    hint <= now - HINT_SETTLE_SECONDS
}

/// An id this service makes: `{source}.{kind}` from Stripe ids and kinds, so letters,
/// digits, `_`, `-` and `.`, at most 200 characters (a KV key is at most 512 bytes).
pub fn is_notification_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_000_000;

    fn sample() -> Notification {
        Notification::new(
            "evt_1",
            "identity.verified",
            Recipient::User("u_1".into()),
            serde_json::Map::new(),
        )
        .resume(None, T0)
    }

    fn answered(status: u16) -> HttpResponse {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: String::new(),
            truncated: false,
        }
    }

    #[test]
    fn every_ops_alert_links_its_console_page() {
        let mut dead = sample();
        dead.state = State::Dead;
        let record = EventRecord {
            version: 1,
            id: "evt_9".into(),
            event_type: "setup_intent.succeeded".into(),
            created: T0,
            livemode: false,
            outcome: crate::event::Outcome::Failed,
            failed_step: Some("retrieve".into()),
            error: None,
            stripe_error: None,
            retryable: Some(false),
            reason: None,
            snapshot_event: None,
            recorded_at: T0,
        };
        let generation = Notification::ops_alert(
            "evt_g",
            OPS_EVENT_GENERATION_FAILURE,
            [("admin_path".to_owned(), "/events/evt_g".into())]
                .into_iter()
                .collect(),
        );
        for (alert, path) in [
            (
                Notification::event_failed_for_good(&record),
                "/admin/events/evt_9",
            ),
            (
                dead.dead_alert().unwrap(),
                "/admin/notifications/evt_1.identity.verified",
            ),
            (
                Notification::catchup_found_undelivered(T0, serde_json::Value::Null),
                "/admin",
            ),
            (
                Notification::endpoint_silent(T0 - 7200, Some(T0 - 7200), T0, 2),
                "/admin",
            ),
            (generation, "/admin/events/evt_g"),
        ] {
            assert_eq!(alert.recipient, Recipient::Operator, "{}", alert.kind);
            assert!(alert.kind.starts_with("ops."));
            assert_eq!(alert.payload["console_path"], path, "{}", alert.kind);
        }
    }

    #[test]
    fn the_endpoint_silent_alert_is_one_per_silence() {
        let alert = Notification::endpoint_silent(100, None, 100 + 7200, 3);
        assert_eq!(alert.id, "silent.100.ops.endpoint_silent");
        assert!(is_notification_id(&alert.id));
        assert_eq!(alert.payload["silent_seconds"], 7200);
        assert_eq!(alert.payload["found_undelivered"], 3);
        assert_eq!(alert.payload["last_delivery_at"], serde_json::Value::Null);
        let later = Notification::endpoint_silent(100, None, 100 + 9000, 1);
        assert_eq!(later.id, alert.id, "the same silence: the same alert");
        let next = Notification::endpoint_silent(5000, Some(5000), 5000 + 7200, 1);
        assert_ne!(next.id, alert.id, "a delivery starts another silence");
    }

    #[test]
    fn the_backoff_is_1_5_30_minutes_2_hours_then_every_6_hours() {
        let delays: Vec<i64> = (1..=7).map(next_delay).collect();
        assert_eq!(
            delays,
            [60, 300, 1_800, 7_200, 21_600, 21_600, 21_600],
            "waits after the 1st..7th failure"
        );
        assert_eq!(next_delay(1_000), LATER_DELAY_SECONDS);
    }

    #[test]
    fn a_sink_that_never_answers_2xx_is_tried_for_3_days_then_dead() {
        let mut n = sample();
        let failure = answered(503);
        let mut now = T0;
        let mut dues = Vec::new();
        loop {
            n.record_attempt(AttemptAnswer::Answered(&failure), now);
            match n.state {
                State::Pending => {
                    let due = n.next_attempt_at.unwrap();
                    assert!(due > now, "always later than the attempt");
                    dues.push(due - T0);
                    now = due;
                }
                State::Dead => break,
                State::Delivered => unreachable!(),
            }
        }
        // Retries at +1 min, +6 min, +36 min, +2 h 36 min, then every 6 h while within 3 days.
        assert_eq!(&dues[..4], &[60, 360, 2_160, 9_360]);
        assert!(dues[4..].windows(2).all(|w| w[1] - w[0] == 21_600));
        assert!(*dues.last().unwrap() <= RETRY_WINDOW_SECONDS);
        assert!(dues.last().unwrap() + 21_600 > RETRY_WINDOW_SECONDS);
        assert_eq!(n.attempts.len(), 16, "one inline attempt and 15 retries");
        assert_eq!(n.window_attempts, 16);
        assert_eq!(n.dead_at, Some(now));
        assert!(n.dead_at.unwrap() - T0 <= RETRY_WINDOW_SECONDS);
        assert_eq!(n.next_attempt_at, None);
        assert!(n
            .attempts
            .iter()
            .all(|a| a.status == Some(503) && a.error.is_none()));
    }

    #[test]
    fn late_runs_never_stretch_the_window() {
        // The cron may run late; a retry whose next wait ends past the window is the last.
        let mut n = sample();
        let failure = SendFailure::Network("connection refused".into());
        n.record_attempt(AttemptAnswer::Failed(&failure), T0);
        n.record_attempt(
            AttemptAnswer::Failed(&failure),
            T0 + RETRY_WINDOW_SECONDS - 10,
        );
        assert_eq!(n.state, State::Dead);
        assert_eq!(n.attempts[1].error.as_deref(), Some(ERROR_NETWORK));
    }

    #[test]
    fn a_2xx_delivers_and_each_attempt_keeps_only_its_status_or_error_code() {
        let mut n = sample();
        n.record_attempt(AttemptAnswer::Unsigned, T0);
        assert_eq!(n.next_attempt_at, Some(T0 + 60));
        let unsendable = SendFailure::Unsendable("invalid header value".into());
        n.record_attempt(AttemptAnswer::Failed(&unsendable), T0 + 60);
        assert_eq!(n.next_attempt_at, Some(T0 + 60 + 300));
        n.record_attempt(AttemptAnswer::Answered(&answered(204)), T0 + 400);
        assert_eq!(
            (n.state, n.delivered_at, n.next_attempt_at),
            (State::Delivered, Some(T0 + 400), None)
        );
        let json = serde_json::to_value(&n.attempts).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"at": T0, "error": "unsigned"},
                {"at": T0 + 60, "error": "unsendable"},
                {"at": T0 + 400, "status": 204},
            ])
        );
        assert_eq!(n.last_failure(), None);
    }

    #[test]
    fn a_revived_record_gets_a_new_window_and_keeps_its_history() {
        let mut n = sample();
        let failure = answered(500);
        let mut now = T0;
        while n.state != State::Dead {
            n.record_attempt(AttemptAnswer::Answered(&failure), now);
            now = n.next_attempt_at.unwrap_or(now);
        }
        let later = T0 + 10 * 24 * 3600;
        n.revive();
        assert_eq!(
            (n.state, n.window_attempts, n.dead_at),
            (State::Pending, 0, None)
        );
        n.record_attempt(AttemptAnswer::Answered(&failure), later);
        assert_eq!(
            n.next_attempt_at,
            Some(later + 60),
            "the schedule starts again"
        );
        assert_eq!(n.window_started_at, Some(later));
        assert_eq!(n.attempts.len(), 17);
        assert_eq!(n.last_failure().as_deref(), Some("the sink answered 500"));
    }

    #[test]
    fn the_attempt_list_is_bounded() {
        let mut n = sample();
        let failure = answered(500);
        for i in 0..(MAX_RECORDED_ATTEMPTS as i64 + 5) {
            n.revive();
            n.record_attempt(AttemptAnswer::Answered(&failure), T0 + i);
        }
        assert_eq!(n.attempts.len(), MAX_RECORDED_ATTEMPTS);
        assert_eq!(n.attempts[0].at, T0 + 5, "the oldest are dropped");
    }

    #[test]
    fn a_resumed_record_keeps_its_history_and_takes_the_new_payload() {
        let mut stored = sample();
        stored.record_attempt(AttemptAnswer::Answered(&answered(503)), T0);
        let mut payload = serde_json::Map::new();
        payload.insert("x".into(), 1.into());
        let again = Notification::new(
            "evt_1",
            "identity.verified",
            Recipient::User("u_1".into()),
            payload,
        )
        .resume(Some(stored.clone()), T0 + 30);
        assert_eq!(again.created_at, T0);
        assert_eq!(again.attempts, stored.attempts);
        assert_eq!(again.next_attempt_at, Some(T0 + 60));
        assert_eq!(again.payload["x"], 1);
    }

    #[test]
    fn due_index_keys_sort_by_time_and_parse_back() {
        let early = due_index_name(999_999_999, "evt_b.identity.verified");
        let late = due_index_name(1_795_000_000, "evt_a.identity.verified");
        assert_eq!(early, "outbox:0999999999:evt_b.identity.verified");
        assert!(early < late, "key order is due order");
        assert_eq!(
            parse_due_index(&late),
            Some((1_795_000_000, "evt_a.identity.verified"))
        );
        for bad in [
            "outbox:12345:evt_a.x",
            "outbox:179500000a:evt_a.x",
            "outbox:1795000000:",
            "outbox:1795000000:a/b",
            "outbox_dead:evt_a.x",
            "notification:evt_a.x",
        ] {
            assert_eq!(parse_due_index(bad), None, "{bad}");
        }
        assert!(!dead_index_name("x").starts_with(DUE_PREFIX));
    }

    #[test]
    fn notification_ids_are_the_ones_this_service_makes() {
        for id in [
            "evt_1Abc.identity.verified",
            "pi_3x.2.charge.recovery",
            "evt_e2e1795.identity.requires_input",
        ] {
            assert!(is_notification_id(id), "{id}");
        }
        for id in ["", "a/b", "a b", "é", &"a".repeat(201)] {
            assert!(!is_notification_id(id), "{id}");
        }
    }

    /// The stored JSON of each recipient, both ways, and what it refuses: pinned for the
    /// hand-written (de)serialiser, which replaced serde's adjacently tagged derive.
    #[test]
    fn a_recipient_keeps_its_stored_json() {
        let cases = [
            (
                Recipient::User("u_1".into()),
                r#"{"type":"user","id":"u_1"}"#,
            ),
            (
                Recipient::Customer("cus_\"1".into()),
                r#"{"type":"customer","id":"cus_\"1"}"#,
            ),
            (Recipient::Operator, r#"{"type":"operator"}"#),
        ];
        for (recipient, json) in cases {
            assert_eq!(serde_json::to_string(&recipient).unwrap(), json);
            assert_eq!(serde_json::from_str::<Recipient>(json).unwrap(), recipient);
        }
        for (json, recipient) in [
            (
                r#"{"id":"u_2","type":"user"}"#,
                Recipient::User("u_2".into()),
            ),
            (
                r#"{"x":[1],"type":"customer","id":"c"}"#,
                Recipient::Customer("c".into()),
            ),
            (r#"{"type":"operator","id":null}"#, Recipient::Operator),
        ] {
            assert_eq!(
                serde_json::from_str::<Recipient>(json).unwrap(),
                recipient,
                "{json}"
            );
        }
        for json in [
            r#"{"type":"user"}"#,
            r#"{"type":"user","id":null}"#,
            r#"{"type":"user","id":7}"#,
            r#"{"type":"operator","id":"x"}"#,
            r#"{"type":"admin","id":"x"}"#,
            r#"{"id":"x"}"#,
            r#"["user","x"]"#,
            r#""operator""#,
        ] {
            assert!(serde_json::from_str::<Recipient>(json).is_err(), "{json}");
        }
    }
}
