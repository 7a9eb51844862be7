//! Thin events (`object: "v2.core.event"`), what an event destination with
//! `event_payload: thin` delivers. Pure.
//!
//! A thin event carries no object, only `related_object {id, type, url}` (stripe-node's
//! `V2/Core/Events.d.ts`: `EventBase`, `RelatedObject`), and its payload is unversioned: it is
//! never acted on from its own body. For a `v1.<type>` this service handles, the related object
//! is read as it is now at the pinned API version ([`ThinEvent::plan`]) and handled as the
//! snapshot event `<type>` would be ([`ThinEvent::into_event`]), through the same dedupe,
//! dispatch and record. When one change makes both a snapshot and a thin event (both kinds
//! of destination registered), the thin one names its twin in `snapshot_event`; both are
//! deduped under the twin's id ([`ThinEvent::acts_as`]), so the change acts once.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{is_event_id, Event, EventData, EventError, EventKind};
use crate::stripe::calls;
use crate::stripe::StripeRequest;

/// The `object` of a thin event's body; a snapshot event's is `event`.
pub const THIN_OBJECT: &str = "v2.core.event";

/// A thin event's `type` is its snapshot type behind this prefix (`v1.checkout.session.completed`).
pub const V1_PREFIX: &str = "v1.";

/// Which kind of event a verified body is, by its `object` (read before the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    Snapshot,
    Thin,
}

impl Envelope {
    /// `object: "v2.core.event"` is thin; anything else is read as a snapshot event, whose
    /// parser says what is wrong with it.
    pub fn of(body: &[u8]) -> Self {
        struct Object<'a> {
            object: Option<&'a str>,
        }
        // `json::decode_map!` by hand: the macro takes no lifetime. The text borrowed, as
        // before: an `object` with escapes does not decode (so it is not thin).
        impl<'de: 'a, 'a> Deserialize<'de> for Object<'a> {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Fields;
                impl<'de> serde::de::Visitor<'de> for Fields {
                    type Value = Object<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("struct Object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<Object<'de>, A::Error> {
                        let mut object = None;
                        let keys = crate::json::KeyIndex {
                            fields: &["object"],
                            deny: false,
                        };
                        while let Some(index) = map.next_key_seed(keys)? {
                            match index {
                                0 => crate::json::field(&mut map, &mut object, "object")?,
                                _ => {
                                    map.next_value::<serde::de::IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(Object {
                            object: object.unwrap_or_default(),
                        })
                    }
                }
                deserializer.deserialize_map(Fields)
            }
        }
        match std::str::from_utf8(body).map(serde_json::from_str::<Object>) {
            Ok(Ok(Object {
                object: Some(THIN_OBJECT),
            })) => Self::Thin,
            _ => Self::Snapshot,
        }
    }
}

/// `related_object` (`V2.Core.Events.RelatedObject`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedObject {
    pub id: String,
    pub object_type: String,
    pub url: String,
}
crate::json::decode_map!(RelatedObject {
    id: "id" required,
    object_type: "type" required,
    url: "url" required,
});

/// The fields of a thin event this service reads (`EventBase` and the notification's
/// `related_object`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinEvent {
    pub id: String,
    pub event_type: String,
    /// An RFC 3339 time (`"2024-09-17T06:20:52.246Z"`), not unix seconds as in v1.
    pub created: String,
    pub livemode: bool,
    pub related_object: Option<RelatedObject>,
    /// The id of the snapshot event of the same change, when Stripe made one.
    pub snapshot_event: Option<String>,
}
crate::json::decode_map!(ThinEvent {
    id: "id" required,
    event_type: "type" required,
    created: "created" required,
    livemode: "livemode" required,
    related_object: "related_object" default,
    snapshot_event: "snapshot_event" default,
});

/// Stripe could not generate an event (so it never delivered it, nor lists it), and says so
/// once the failure is resolved. Public preview: not in the pinned SDK's types (stripe-node
/// 23.1.0 `V2/Core/Events.d.ts` has no `v2.core.health.*` type); modelled from Stripe's docs
/// (docs.stripe.com/webhooks/handle-irrecoverable-events, the v2 event types page, and the
/// `2026-11-18` changelog entry adding `data.severity`).
pub const EVENT_GENERATION_FAILURE_RESOLVED: &str =
    "v2.core.health.event_generation_failure.resolved";

/// The `data` of that event, read with `GET /v2/core/events/{id}` (the thin event carries
/// none). Every field is optional here: a preview shape may change, and the alert is raised
/// with what there is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventGenerationFailure {
    pub alert_id: Option<String>,
    pub grouping_key: Option<String>,
    pub summary: Option<String>,
    pub resolved_at: Option<String>,
    /// `critical` or `non_critical` (added in `2026-11-18.preview`).
    pub severity: Option<String>,
    pub impact: Option<Impact>,
}
crate::json::decode_map!(EventGenerationFailure {
    alert_id: "alert_id" default,
    grouping_key: "grouping_key" default,
    summary: "summary" default,
    resolved_at: "resolved_at" default,
    severity: "severity" default,
    impact: "impact" default,
});

/// What the missing event would have been about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Impact {
    /// The type of the event that was never generated (`payment_intent.requires_action`).
    pub event_type: Option<String>,
    pub related_object_id: Option<String>,
    pub related_object: Option<RelatedObject>,
}
crate::json::decode_map!(Impact {
    event_type: "event_type" default,
    related_object_id: "related_object_id" default,
    related_object: "related_object" default,
});

impl EventGenerationFailure {
    /// Reads `data` of the retrieved event (`{"data": {...}}`); `None` when it has none.
    pub fn from_event(body: &str) -> Option<Self> {
        struct Retrieved {
            data: Option<EventGenerationFailure>,
        }
        crate::json::decode_map!(Retrieved { data: "data" default });
        serde_json::from_str::<Retrieved>(body).ok()?.data
    }

    /// The object whose event is missing, when the alert names it.
    pub fn object_id(&self) -> Option<&str> {
        let impact = self.impact.as_ref()?;
        impact
            .related_object_id
            .as_deref()
            .or(impact.related_object.as_ref().map(|o| o.id.as_str()))
    }

    /// The operator's alert as a notification's payload (`ops.event_generation_failure`).
    pub fn alert_payload(&self, event_id: &str) -> serde_json::Map<String, serde_json::Value> {
        let impact = self.impact.as_ref();
        let mut payload = serde_json::Map::new();
        payload.insert("event_id".into(), event_id.into());
        payload.insert(
            "missing_event_type".into(),
            impact.and_then(|i| i.event_type.clone()).into(),
        );
        payload.insert(
            "object_id".into(),
            self.object_id().map(str::to_owned).into(),
        );
        payload.insert("alert_id".into(), self.alert_id.clone().into());
        payload.insert("severity".into(), self.severity.clone().into());
        payload.insert("resolved_at".into(), self.resolved_at.clone().into());
        payload.insert("admin_path".into(), format!("/events/{event_id}").into());
        payload.insert(
            "action".into(),
            "act on that object's current state (retrieve it from Stripe); there is no event \
             to replay"
                .into(),
        );
        payload
    }

    /// The operator's alert, for the log line: what was never delivered and what to do.
    /// Ids and Stripe's own words only (no personal data: `summary` is Stripe's text).
    pub fn alert(&self, event_id: &str) -> String {
        let or = |v: Option<&str>| v.unwrap_or("unknown").to_owned();
        let impact = self.impact.as_ref();
        format!(
            "ALERT event_generation_failure {event_id}: Stripe never generated a {} event for {} \
             (alert {}, severity {}, resolved {}); act on that object's current state: \
             POST /events/{{id}}/replay cannot, as there is no event",
            or(impact.and_then(|i| i.event_type.as_deref())),
            or(self.object_id()),
            or(self.alert_id.as_deref()),
            or(self.severity.as_deref()),
            or(self.resolved_at.as_deref()),
        )
    }
}

/// What to do with a verified thin event.
#[derive(Debug)]
pub enum ThinPlan {
    /// A type this service acts on: read the related object with `request`, then handle it
    /// as the snapshot event of `kind`.
    Read {
        kind: EventKind,
        request: StripeRequest,
    },
    /// Not a type this service acts on: recorded ignored, nothing read.
    Ignore,
    /// An event Stripe never generated: read the alert (`GET /v2/core/events/{id}`), record
    /// it and raise it to the operator.
    HealthAlert { request: StripeRequest },
}

impl ThinEvent {
    /// Parses a verified thin body. Call only after the signature holds.
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let event: ThinEvent = serde_json::from_str(super::text(body)?)
            .map_err(|e| EventError::NotAnEvent(format!("thin event: {}", super::describe(&e))))?;
        if !is_event_id(&event.id) {
            return Err(EventError::InvalidId);
        }
        if event
            .snapshot_event
            .as_deref()
            .is_some_and(|s| !is_event_id(s))
        {
            return Err(EventError::NotAnEvent(
                "snapshot_event is not an event id".into(),
            ));
        }
        event.created_seconds()?;
        Ok(event)
    }

    /// `created` in unix seconds (the ordering key of state transitions, as a v1 event's).
    pub fn created_seconds(&self) -> Result<i64, EventError> {
        parse_rfc3339(&self.created)
            .ok_or_else(|| EventError::NotAnEvent("created is not an RFC 3339 time".into()))
    }

    /// The snapshot kind of a `v1.` type this service acts on.
    pub fn kind(&self) -> Option<EventKind> {
        kind_of_thin_type(&self.event_type)
    }

    /// The id this event is deduped and recorded under: its snapshot twin's when it names
    /// one (so whichever of the two arrives first acts, and the other is a duplicate), else
    /// its own.
    pub fn acts_as(&self) -> &str {
        self.snapshot_event.as_deref().unwrap_or(&self.id)
    }

    /// The one read a handled type needs: its related object's retrieve at the pinned
    /// version (`calls::retrieve_event_object`, the same request an event in another API
    /// version is re-read with). `related_object.url` must be that path: a thin event is
    /// never acted on from its own payload, and an URL pointing elsewhere is refused.
    pub fn plan(&self) -> Result<ThinPlan, EventError> {
        if self.event_type == EVENT_GENERATION_FAILURE_RESOLVED {
            let request = calls::retrieve_thin_event(&self.id);
            return Ok(ThinPlan::HealthAlert { request });
        }
        let Some(kind) = self.kind() else {
            return Ok(ThinPlan::Ignore);
        };
        let malformed = |what: &str| EventError::NotAnEvent(format!("related_object: {what}"));
        let related = self
            .related_object
            .as_ref()
            .ok_or_else(|| malformed("missing"))?;
        let request = calls::retrieve_event_object(kind, &related.id)
            .ok_or_else(|| malformed("id is not of the event type's object"))?;
        if related.url != request.path {
            return Err(malformed("url is not the object's retrieve path"));
        }
        Ok(ThinPlan::Read { kind, request })
    }

    /// The snapshot event this thin one stands for, on the object as Stripe holds it now
    /// (read at `pinned_version`), under the id it is deduped by.
    pub fn into_event(
        self,
        kind: EventKind,
        object: Box<RawValue>,
        pinned_version: &str,
    ) -> Result<Event, EventError> {
        Ok(Event {
            id: self.acts_as().to_owned(),
            event_type: kind.as_str().to_owned(),
            created: self.created_seconds()?,
            livemode: self.livemode,
            api_version: Some(pinned_version.to_owned()),
            data: EventData { object },
        })
    }

    /// Refuses an event of the other mode than the secret key's, as for a snapshot event.
    pub fn check_mode(&self, key_livemode: bool) -> Result<(), EventError> {
        super::check_mode(self.livemode, key_livemode)
    }
}

/// `v1.checkout.session.completed` → `CheckoutSessionCompleted`; `None` for any other type.
pub fn kind_of_thin_type(thin_type: &str) -> Option<EventKind> {
    EventKind::parse(thin_type.strip_prefix(V1_PREFIX)?)
}

/// The thin type of every handled kind (`v1.` + the snapshot type), for registration and
/// `GET /v2/core/events?types=`.
pub fn handled_thin_types() -> Vec<String> {
    EventKind::TYPES
        .iter()
        .map(|t| format!("{V1_PREFIX}{t}"))
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` to unix seconds (the fraction dropped).
/// Strict: Stripe writes UTC with milliseconds; anything else that is not RFC 3339 is refused.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then_some(())?;
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-')
        && at(7, b'-')
        && (at(10, b'T') || at(10, b't'))
        && at(13, b':')
        && at(16, b':'))
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut rest = 19;
    if at(rest, b'.') {
        rest += 1;
        let digits = b[rest..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        rest += digits;
    }
    let offset = match b.get(rest..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let minutes = num(rest + 1, 2)? * 60 + num(rest + 4, 2)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second < 61;
    valid.then(|| {
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset
    })
}

/// Unix seconds as the RFC 3339 time API v2 takes (`2026-10-01T12:00:05Z`): the `created`
/// filter of `GET /v2/core/events` is a timestamp in Stripe's docs, a string in API v2.
pub fn format_rfc3339(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The date of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const THIN: &str = r#"{"id":"evt_test_65RThin","object":"v2.core.event","type":"v1.checkout.session.completed","livemode":false,"created":"2026-10-01T12:00:05.123Z","context":null,"reason":{"type":"request","request":{"id":"req_1","idempotency_key":"k"}},"related_object":{"id":"cs_test_1","type":"checkout.session","url":"/v1/checkout/sessions/cs_test_1"},"snapshot_event":"evt_1Snap"}"#;

    #[test]
    fn the_envelope_is_told_by_the_verified_body_s_object() {
        assert_eq!(Envelope::of(THIN.as_bytes()), Envelope::Thin);
        assert_eq!(
            Envelope::of(br#"{"object":"event","id":"evt_1"}"#),
            Envelope::Snapshot
        );
        for other in [&b"not json"[..], b"{}", br#"{"object":5}"#, b"[]"] {
            assert_eq!(Envelope::of(other), Envelope::Snapshot);
        }
    }

    #[test]
    fn a_handled_thin_type_reads_its_related_object_and_acts_as_its_snapshot_twin() {
        let thin = ThinEvent::parse(THIN.as_bytes()).unwrap();
        assert_eq!(thin.kind(), Some(EventKind::CheckoutSessionCompleted));
        assert_eq!(thin.acts_as(), "evt_1Snap");
        let ThinPlan::Read { kind, request } = thin.plan().unwrap() else {
            panic!("a handled type is read")
        };
        assert_eq!(request.path, "/v1/checkout/sessions/cs_test_1");
        let object = RawValue::from_string(r#"{"id":"cs_test_1"}"#.into()).unwrap();
        let event = thin.into_event(kind, object, "2026-09-30.endive").unwrap();
        assert_eq!(
            (event.id.as_str(), event.event_type.as_str(), event.created),
            ("evt_1Snap", "checkout.session.completed", 1_790_856_005)
        );
        assert_eq!(event.api_version.as_deref(), Some("2026-09-30.endive"));

        let alone = THIN.replace(r#","snapshot_event":"evt_1Snap""#, "");
        let alone = ThinEvent::parse(alone.as_bytes()).unwrap();
        assert_eq!(alone.acts_as(), "evt_test_65RThin", "no twin: its own id");
    }

    #[test]
    fn every_handled_kind_has_a_thin_type_and_other_types_are_ignored_unread() {
        let types = handled_thin_types();
        assert_eq!(types.len(), EventKind::ALL.len());
        for (t, kind) in types.iter().zip(EventKind::ALL) {
            assert_eq!(kind_of_thin_type(t), Some(*kind));
        }
        for other in [
            "checkout.session.completed",
            "v1.customer.created",
            "v2.core.event_destination.ping",
        ] {
            assert_eq!(kind_of_thin_type(other), None, "{other}");
        }
        let ping = THIN.replace("v1.checkout.session.completed", "v1.customer.created");
        let ping = ThinEvent::parse(ping.as_bytes()).unwrap();
        assert!(matches!(ping.plan().unwrap(), ThinPlan::Ignore));
    }

    #[test]
    fn an_event_generation_failure_is_read_from_the_events_api_and_alerts_with_its_impact() {
        let body = r#"{"id":"evt_test_65Health","object":"v2.core.event","type":"v2.core.health.event_generation_failure.resolved","created":"2026-10-01T12:00:05.123Z","livemode":false}"#;
        let thin = ThinEvent::parse(body.as_bytes()).unwrap();
        let ThinPlan::HealthAlert { request } = thin.plan().unwrap() else {
            panic!("the alert is read")
        };
        assert_eq!(request.path, "/v2/core/events/evt_test_65Health");
        let retrieved = r#"{"id":"evt_test_65Health","data":{"alert_id":"halert_1","grouping_key":"_grouping_1","impact":{"event_type":"payment_intent.requires_action","related_object_id":"pi_1","context":null},"resolved_at":"2026-10-01T12:00:00.000Z","summary":"Stripe failed to generate events","severity":"critical"}}"#;
        let failure = EventGenerationFailure::from_event(retrieved).unwrap();
        assert_eq!(failure.object_id(), Some("pi_1"));
        let alert = failure.alert(&thin.id);
        for part in [
            "payment_intent.requires_action",
            "pi_1",
            "halert_1",
            "critical",
            "evt_test_65Health",
        ] {
            assert!(alert.contains(part), "{alert}");
        }
        // A preview shape that changed still raises the alert with what there is.
        let odd = EventGenerationFailure::from_event(r#"{"data":{"impact":{"related_object":{"id":"cs_1","type":"checkout.session","url":"/v1/checkout/sessions/cs_1"}}}}"#).unwrap();
        assert_eq!(odd.object_id(), Some("cs_1"));
        assert!(odd.alert("evt_x").contains("a unknown event for cs_1"));
        assert_eq!(EventGenerationFailure::from_event(r#"{"data":null}"#), None);
    }

    #[test]
    fn a_related_object_that_is_not_the_type_s_own_is_refused() {
        for (from, to) in [
            (
                r#""url":"/v1/checkout/sessions/cs_test_1""#,
                r#""url":"https://evil.example/x""#,
            ),
            (
                r#""url":"/v1/checkout/sessions/cs_test_1""#,
                r#""url":"/v1/customers/cs_test_1""#,
            ),
            (r#""id":"cs_test_1""#, r#""id":"pi_1""#),
            (
                r#","related_object":{"id":"cs_test_1","type":"checkout.session","url":"/v1/checkout/sessions/cs_test_1"}"#,
                "",
            ),
        ] {
            let body = THIN.replace(from, to);
            let thin = ThinEvent::parse(body.as_bytes()).unwrap();
            assert!(
                matches!(thin.plan(), Err(EventError::NotAnEvent(_))),
                "{to}"
            );
        }
    }

    #[test]
    fn thin_bodies_that_are_not_thin_events_are_refused() {
        for (from, to) in [
            ("evt_test_65RThin", "cus_1"),
            (r#""evt_1Snap""#, r#""not an id""#),
            ("2026-10-01T12:00:05.123Z", "1790856005"),
            ("2026-10-01T12:00:05.123Z", "yesterday"),
            (r#""livemode":false"#, r#""livemode":"no""#),
        ] {
            let body = THIN.replace(from, to);
            assert!(ThinEvent::parse(body.as_bytes()).is_err(), "{to}");
        }
    }

    #[test]
    fn unix_seconds_format_as_rfc3339_and_read_back() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_726_554_052), "2024-09-17T06:20:52Z");
        assert_eq!(format_rfc3339(1_709_164_800), "2024-02-29T00:00:00Z");
        for t in [
            0,
            1,
            951_782_400,
            1_790_856_005,
            4_102_444_799,
            253_402_300_799,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t), "{t}");
        }
    }

    #[test]
    fn rfc3339_times_read_as_unix_seconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-09-17T06:20:52.246Z"),
            Some(1_726_554_052)
        );
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(
            parse_rfc3339("2024-09-17T08:20:52+02:00"),
            Some(1_726_554_052)
        );
        assert_eq!(
            parse_rfc3339("2024-09-17T04:20:52.9-02:00"),
            Some(1_726_554_052)
        );
        for bad in [
            "",
            "2024-09-17",
            "2024-09-17T06:20:52",
            "2024-09-17T06:20:52.Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-09-17T24:00:00Z",
            "2024-09-17T06:20:52Zjunk",
            "+024-09-17T06:20:52Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
