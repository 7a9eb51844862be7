//! The event index behind `GET /events` (its Durable Object is `routes::event_log`): the
//! query's parameters, the SQL that answers them (values always bound, never interpolated),
//! the rows it writes and reads, and the opaque cursor. Pure.
//!
//! One row per recorded event, newest first by `recorded_at` (then id), so a page and the
//! next one (its cursor) follow time across the whole log, whatever the filters.

use serde::Serialize;

use crate::error::AppError;
use crate::event::{is_event_id, EventRecord, Outcome};
use crate::identity::is_user_id;

/// The table and its indexes: one per filter, each ending in the order of the listing so a
/// filtered page reads only the rows it returns (plus one, to know there is a next page).
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, \
     type TEXT NOT NULL, outcome TEXT NOT NULL, retryable INTEGER, entity TEXT, \
     created INTEGER NOT NULL, recorded_at INTEGER NOT NULL, record TEXT NOT NULL); \
     CREATE INDEX IF NOT EXISTS events_recent ON events (recorded_at, id); \
     CREATE INDEX IF NOT EXISTS events_outcome ON events (outcome, recorded_at, id); \
     CREATE INDEX IF NOT EXISTS events_type ON events (type, recorded_at, id); \
     CREATE INDEX IF NOT EXISTS events_entity ON events (entity, recorded_at, id); \
     CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, at INTEGER NOT NULL)";

/// With every row: when the index first got one (kept), the start of any silence.
pub const MARK_STARTED: &str = "INSERT OR IGNORE INTO marks (name, at) VALUES ('started', ?)";
/// With the row of an event Stripe delivered (not caught up or replayed): its time, if later
/// than the one marked (two deliveries may be indexed out of order).
pub const MARK_DELIVERY: &str = "INSERT INTO marks (name, at) VALUES ('last_delivery', ?) \
     ON CONFLICT (name) DO UPDATE SET at = MAX(at, excluded.at)";
/// Both marks, for the `ops.endpoint_silent` check.
pub const MARKS: &str = "SELECT name, at FROM marks";

/// A row written (or rewritten: a replay records the event again) for one record.
pub const UPSERT: &str = "INSERT OR REPLACE INTO events \
     (id, type, outcome, retryable, entity, created, recorded_at, record) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

/// Rows past the records' own TTL go (`store::EVENT_TTL_SECONDS`): bind the oldest
/// `recorded_at` kept.
pub const PURGE: &str = "DELETE FROM events WHERE recorded_at < ?";

/// The oldest row left: when the next purge is due.
pub const OLDEST: &str = "SELECT MIN(recorded_at) FROM events";

pub const DEFAULT_EVENTS_LIMIT: usize = 20;
pub const MAX_EVENTS_LIMIT: usize = 100;

/// The most an event type may be (Stripe's are well under it).
const MAX_TYPE_LEN: usize = 128;
/// The most a customer id may be (Stripe's ids are at most 255 characters).
const MAX_CUSTOMER_LEN: usize = 255;

/// A value bound to a `?` of the SQL, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Integer(i64),
    Text(String),
    Null,
}

/// `outcome=`: one of the three recorded outcomes, or the failed ones no retry gets past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeFilter {
    Handled,
    Ignored,
    Failed,
    FailedForGood,
}

impl OutcomeFilter {
    fn parse(value: &str) -> Result<Self, AppError> {
        Ok(match value {
            "handled" => Self::Handled,
            "ignored" => Self::Ignored,
            "failed" => Self::Failed,
            "failed_for_good" => Self::FailedForGood,
            _ => {
                return Err(AppError::BadQuery(
                    "`outcome` is one of `handled`, `ignored`, `failed`, `failed_for_good`".into(),
                ))
            }
        })
    }
}

/// Where a page ends: the last row's `recorded_at` and id. The next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub recorded_at: i64,
    pub id: String,
}

impl Cursor {
    /// Opaque on the wire: hex of `{recorded_at}.{id}`, so it needs no escaping in a URL.
    pub fn encode(&self) -> String {
        encode_position(self.recorded_at, &self.id)
    }

    /// A cursor this route handed out, or `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let (recorded_at, id) = decode_position(text, 256, is_event_id)?;
        Some(Self { recorded_at, id })
    }
}

/// A page's end on the wire, for the event log and the list indexes alike: hex of
/// `{at}.{id}`, so it needs no escaping in a URL.
pub fn encode_position(at: i64, id: &str) -> String {
    hex::encode(format!("{at}.{id}"))
}

/// The `(at, id)` of a cursor [`encode_position`] made, or `None` for anything else: at most
/// `max_len` characters, `at` 1–12 digits, and an id `id_ok` accepts. A function pointer, not
/// a generic, so the wasm holds one copy.
pub fn decode_position(
    text: &str,
    max_len: usize,
    id_ok: fn(&str) -> bool,
) -> Option<(i64, String)> {
    if text.len() > max_len {
        return None;
    }
    let text = String::from_utf8(hex::decode(text).ok()?).ok()?;
    let (at, id) = text.split_once('.')?;
    let digits = !at.is_empty() && at.len() <= 12 && at.bytes().all(|b| b.is_ascii_digit());
    if !digits || !id_ok(id) {
        return None;
    }
    Some((at.parse().ok()?, id.to_owned()))
}

/// `GET /events?…`, validated. Every filter is optional; they combine with AND. It crosses
/// to the index as the query string itself, parsed again there (no serde code for it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventsQuery {
    pub outcome: Option<OutcomeFilter>,
    pub event_type: Option<String>,
    /// `customer:{id}` or `user:{id}`: the entity whose queue handled the event.
    pub entity: Option<String>,
    /// `recorded_at >= since`.
    pub since: Option<i64>,
    /// `recorded_at < until`.
    pub until: Option<i64>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

const KNOWN: &str = "the known ones are `outcome`, `type`, `customer`, `user`, `since`, `until`, \
     `limit` and `cursor`";

impl EventsQuery {
    /// Reads the query string (without `?`). A parameter given twice, an unknown one or a
    /// value out of shape is a 400 `bad_query` that names the parameter and never quotes the
    /// value.
    pub fn parse(query: Option<&str>) -> Result<Self, AppError> {
        let mut parsed = Self {
            limit: DEFAULT_EVENTS_LIMIT,
            ..Self::default()
        };
        let seen = take_each_once(query, |name, value| parsed.take(name, value))?;
        if seen.iter().any(|n| n == "customer") && seen.iter().any(|n| n == "user") {
            return Err(AppError::BadQuery(
                "give `customer` or `user`, not both: an event belongs to one of them".into(),
            ));
        }
        check_range(parsed.since, parsed.until)?;
        Ok(parsed)
    }

    fn take(&mut self, name: &str, value: &str) -> Result<(), AppError> {
        match name {
            "outcome" => self.outcome = Some(OutcomeFilter::parse(value)?),
            "type" => self.event_type = Some(parse_type(value)?),
            "customer" => self.entity = Some(format!("customer:{}", parse_customer(value)?)),
            "user" if is_user_id(value) => self.entity = Some(format!("user:{value}")),
            "user" => {
                return Err(AppError::BadQuery(
                    "`user` is not a user id (letters, digits, `_` and `-`)".into(),
                ))
            }
            "since" => self.since = Some(parse_seconds("since", value)?),
            "until" => self.until = Some(parse_seconds("until", value)?),
            "limit" => self.limit = parse_limit(value)?,
            "cursor" if value.is_empty() => self.cursor = None,
            "cursor" => {
                self.cursor = Some(Cursor::decode(value).ok_or_else(|| {
                    AppError::BadQuery("`cursor` is not a cursor returned by this route".into())
                })?)
            }
            _ => return Err(AppError::BadQuery(format!("unknown parameter; {KNOWN}"))),
        }
        Ok(())
    }

    /// The page's SQL and its bindings: one more row than `limit`, to tell whether a next
    /// page exists.
    pub fn sql(&self) -> (String, Vec<Bound>) {
        let mut sql = String::from("SELECT record FROM events");
        let mut clauses: Vec<&str> = Vec::new();
        let mut bound = Vec::new();
        match self.outcome {
            Some(OutcomeFilter::FailedForGood) => {
                clauses.push("outcome = 'failed' AND retryable = 0");
            }
            Some(filter) => {
                clauses.push("outcome = ?");
                let outcome = match filter {
                    OutcomeFilter::Handled => Outcome::Handled,
                    OutcomeFilter::Ignored => Outcome::Ignored,
                    _ => Outcome::Failed,
                };
                bound.push(Bound::Text(outcome.as_str().to_owned()));
            }
            None => {}
        }
        if let Some(event_type) = &self.event_type {
            clauses.push("type = ?");
            bound.push(Bound::Text(event_type.clone()));
        }
        if let Some(entity) = &self.entity {
            clauses.push("entity = ?");
            bound.push(Bound::Text(entity.clone()));
        }
        if let Some(since) = self.since {
            clauses.push("recorded_at >= ?");
            bound.push(Bound::Integer(since));
        }
        if let Some(until) = self.until {
            clauses.push("recorded_at < ?");
            bound.push(Bound::Integer(until));
        }
        if let Some(cursor) = &self.cursor {
            clauses.push("(recorded_at < ? OR (recorded_at = ? AND id < ?))");
            bound.push(Bound::Integer(cursor.recorded_at));
            bound.push(Bound::Integer(cursor.recorded_at));
            bound.push(Bound::Text(cursor.id.clone()));
        }
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(" ORDER BY recorded_at DESC, id DESC LIMIT ?");
        bound.push(Bound::Integer(self.limit as i64 + 1));
        (sql, bound)
    }

    /// The page from the rows the SQL returned (each the record's JSON, newest first). A row
    /// that does not decode is an error, as for `GET /events/{id}`.
    pub fn page(&self, rows: &[String]) -> Result<EventsPage, AppError> {
        // A loop, not `collect::<Result<Vec<_>, _>>()`: each such collect compiles its own
        // adapter (bench/RESULTS.md, notes).
        let mut events = Vec::with_capacity(rows.len().min(self.limit));
        for text in rows.iter().take(self.limit) {
            let record = serde_json::from_str::<EventRecord>(text)
                .map_err(|_| AppError::Internal("an indexed event record does not decode"))?;
            events.push(record);
        }
        events.truncate(self.limit);
        let cursor = (rows.len() > self.limit)
            .then(|| events.last())
            .flatten()
            .map(|last| {
                Cursor {
                    recorded_at: last.recorded_at,
                    id: last.id.clone(),
                }
                .encode()
            });
        Ok(EventsPage { events, cursor })
    }
}

/// The body of `GET /events`: `{"events":[…],"cursor":…|null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventsPage {
    pub events: Vec<EventRecord>,
    /// Pass back as `?cursor=` for the next page; `null` on the last page.
    pub cursor: Option<String>,
}

/// What the worker sends the index for one recorded event: the record and the entity whose
/// queue handled it (`user:…`, `customer:…`, or none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub record: EventRecord,
    pub entity: Option<String>,
    /// Stripe delivered it to `POST /webhook` (not a catch-up or a replay): the index marks
    /// the time, which the `ops.endpoint_silent` alert reads.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delivered: bool,
}
crate::json::decode_map!(Entry {
    record: "record" required,
    entity: "entity" default,
    delivered: "delivered" default,
});

/// The index's marks (`GET` by the catch-up step): the last delivery, and when the index
/// began (the silence before any delivery starts there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Marks {
    pub last_delivery: Option<i64>,
    pub started: Option<i64>,
}
crate::json::decode_map!(Marks {
    last_delivery: "last_delivery" default,
    started: "started" default,
});

impl Marks {
    /// Since when no delivery arrived (`None`: the index has no row yet).
    pub fn silent_since(&self) -> Option<i64> {
        self.last_delivery.or(self.started)
    }
}

impl Entry {
    /// The values for [`UPSERT`], in its column order.
    pub fn bindings(&self) -> Result<Vec<Bound>, AppError> {
        let record = &self.record;
        let json = serde_json::to_string(record)
            .map_err(|_| AppError::Internal("an event record does not serialise"))?;
        let retryable = match (record.outcome, record.retryable) {
            (Outcome::Failed, Some(false)) => Bound::Integer(0),
            // A failed record without the field was written before it existed: retryable.
            (Outcome::Failed, _) => Bound::Integer(1),
            _ => Bound::Null,
        };
        Ok(vec![
            Bound::Text(record.id.clone()),
            Bound::Text(record.event_type.clone()),
            Bound::Text(record.outcome.as_str().to_owned()),
            retryable,
            self.entity.clone().map_or(Bound::Null, Bound::Text),
            Bound::Integer(record.created),
            Bound::Integer(record.recorded_at),
            Bound::Text(json),
        ])
    }
}

/// An event type as Stripe writes them: lowercase words, digits, `_` and `.`.
pub(crate) fn parse_type(value: &str) -> Result<String, AppError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_TYPE_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._".contains(&b));
    if !ok {
        return Err(AppError::BadQuery(
            "`type` is an event type, e.g. `checkout.session.completed`".into(),
        ));
    }
    Ok(value.to_owned())
}

pub(crate) fn parse_customer(value: &str) -> Result<&str, AppError> {
    let ok = value.len() <= MAX_CUSTOMER_LEN
        && value.strip_prefix("cus_").is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if !ok {
        return Err(AppError::BadQuery(
            "`customer` is a customer id (`cus_…`)".into(),
        ));
    }
    Ok(value)
}

/// Reads a query string (without `?`) pair by pair into `take`, each parameter at most once:
/// one given twice is a 400 `bad_query` naming it, met in order as `take`'s own errors are
/// (the list routes' rule as well as `GET /events`'). The names given, in order.
pub fn take_each_once(
    query: Option<&str>,
    mut take: impl FnMut(&str, &str) -> Result<(), AppError>,
) -> Result<Vec<String>, AppError> {
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in crate::form::pairs(query.unwrap_or("").as_bytes()) {
        if seen.contains(&name) {
            return Err(AppError::BadQuery(format!("`{name}` is given twice")));
        }
        take(&name, &value)?;
        seen.push(name);
    }
    Ok(seen)
}

/// A time range's bounds (`since` inclusive, `until` exclusive): `since` must come first.
pub fn check_range(since: Option<i64>, until: Option<i64>) -> Result<(), AppError> {
    match (since, until) {
        (Some(since), Some(until)) if since >= until => {
            Err(AppError::BadQuery("`since` must be before `until`".into()))
        }
        _ => Ok(()),
    }
}

/// A page's `limit`: a whole number from 1 to 100.
pub fn parse_limit(value: &str) -> Result<usize, AppError> {
    let bad = || {
        AppError::BadQuery(format!(
            "`limit` must be a whole number from 1 to {MAX_EVENTS_LIMIT}"
        ))
    };
    if value.is_empty() || value.len() > 3 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match value.parse::<usize>() {
        Ok(limit) if (1..=MAX_EVENTS_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(bad()),
    }
}

pub(crate) fn parse_seconds(name: &str, value: &str) -> Result<i64, AppError> {
    let ok = !value.is_empty() && value.len() <= 12 && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse::<i64>() {
        Ok(seconds) if ok => Ok(seconds),
        _ => Err(AppError::BadQuery(format!(
            "`{name}` is a time in Unix seconds, e.g. 1700000000"
        ))),
    }
}

/// The oldest `recorded_at` the index keeps at `now`: the records' own TTL.
pub fn keep_from(now: i64, ttl_seconds: u64) -> i64 {
    now - ttl_seconds as i64
}

/// When the alarm should next purge, given the oldest row left (none: no alarm needed).
pub fn next_purge(oldest: Option<i64>, ttl_seconds: u64) -> Option<i64> {
    oldest.map(|at| at + ttl_seconds as i64)
}

/// Events recorded since a time (bind it), by outcome and whether a failure is for good: the
/// console's overview. One row per group, read by [`Counts::add`].
pub const COUNT_SINCE: &str = "SELECT outcome, retryable IS 0, COUNT(*) FROM events \
     WHERE recorded_at >= ? GROUP BY 1, 2";

/// Events by outcome, failures split into those Stripe retries and those failed for good.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub handled: i64,
    pub ignored: i64,
    pub failed_retrying: i64,
    pub failed_for_good: i64,
}
crate::json::decode_map!(Counts {
    handled: "handled" required,
    ignored: "ignored" required,
    failed_retrying: "failed_retrying" required,
    failed_for_good: "failed_for_good" required,
});

impl Counts {
    /// One row of [`COUNT_SINCE`]; an outcome this version does not know is left out.
    pub fn add(&mut self, outcome: &str, not_retryable: bool, count: i64) {
        let slot = match (outcome, not_retryable) {
            ("handled", _) => &mut self.handled,
            ("ignored", _) => &mut self.ignored,
            ("failed", false) => &mut self.failed_retrying,
            ("failed", true) => &mut self.failed_for_good,
            _ => return,
        };
        *slot += count;
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn counts_split_failures_by_whether_stripe_retries() {
        let mut counts = Counts::default();
        for (outcome, for_good, n) in [
            ("handled", false, 3),
            ("failed", true, 2),
            ("failed", false, 1),
            ("ignored", false, 4),
            ("odd", true, 9),
        ] {
            counts.add(outcome, for_good, n);
        }
        assert_eq!(
            counts,
            Counts {
                handled: 3,
                ignored: 4,
                failed_retrying: 1,
                failed_for_good: 2
            }
        );
        assert!(COUNT_SINCE.contains("recorded_at >= ?"));
    }
    use super::*;

    fn bad(query: &str) -> String {
        match EventsQuery::parse(Some(query)) {
            Err(AppError::BadQuery(message)) => message,
            other => panic!("{query}: {other:?}"),
        }
    }

    fn record(
        id: &str,
        recorded_at: i64,
        outcome: Outcome,
        retryable: Option<bool>,
    ) -> EventRecord {
        EventRecord {
            version: crate::event::EVENT_RECORD_VERSION,
            id: id.to_owned(),
            event_type: "setup_intent.succeeded".into(),
            created: recorded_at - 1,
            livemode: false,
            outcome,
            failed_step: None,
            error: None,
            stripe_error: None,
            retryable,
            reason: None,
            snapshot_event: None,
            recorded_at,
        }
    }

    #[test]
    fn no_parameters_is_the_newest_twenty() {
        let query = EventsQuery::parse(None).unwrap();
        assert_eq!(query.limit, 20);
        let (sql, bound) = query.sql();
        assert_eq!(
            sql,
            "SELECT record FROM events ORDER BY recorded_at DESC, id DESC LIMIT ?"
        );
        assert_eq!(bound, vec![Bound::Integer(21)]);
    }

    #[test]
    fn every_filter_is_bound_never_interpolated() {
        let query = EventsQuery::parse(Some(
            "outcome=failed&type=setup_intent.succeeded&customer=cus_1x&since=100&until=200&limit=5",
        ))
        .unwrap();
        let (sql, bound) = query.sql();
        assert_eq!(
            sql,
            "SELECT record FROM events WHERE outcome = ? AND type = ? AND entity = ? \
             AND recorded_at >= ? AND recorded_at < ? ORDER BY recorded_at DESC, id DESC LIMIT ?"
        );
        assert_eq!(
            bound,
            vec![
                Bound::Text("failed".into()),
                Bound::Text("setup_intent.succeeded".into()),
                Bound::Text("customer:cus_1x".into()),
                Bound::Integer(100),
                Bound::Integer(200),
                Bound::Integer(6),
            ]
        );
        assert!(!sql.contains("cus_1x") && !sql.contains("setup_intent"));
    }

    #[test]
    fn failed_for_good_is_failed_and_not_retryable_and_users_are_their_entity() {
        let query = EventsQuery::parse(Some("outcome=failed_for_good&user=u_1")).unwrap();
        let (sql, bound) = query.sql();
        assert!(sql.contains("WHERE outcome = 'failed' AND retryable = 0 AND entity = ?"));
        assert_eq!(bound[0], Bound::Text("user:u_1".into()));
        for (value, outcome) in [("handled", "handled"), ("ignored", "ignored")] {
            let (_, bound) = EventsQuery::parse(Some(&format!("outcome={value}")))
                .unwrap()
                .sql();
            assert_eq!(bound[0], Bound::Text(outcome.into()));
        }
    }

    #[test]
    fn the_cursor_continues_after_the_last_row_in_time_then_id() {
        let cursor = Cursor {
            recorded_at: 1_700_000_000,
            id: "evt_9".into(),
        };
        let encoded = cursor.encode();
        assert_eq!(Cursor::decode(&encoded), Some(cursor.clone()));
        let query = EventsQuery::parse(Some(&format!("cursor={encoded}&outcome=ignored"))).unwrap();
        assert_eq!(query.cursor, Some(cursor));
        let (sql, bound) = query.sql();
        assert!(sql.contains("AND (recorded_at < ? OR (recorded_at = ? AND id < ?)) ORDER BY"));
        assert_eq!(
            &bound[1..],
            &[
                Bound::Integer(1_700_000_000),
                Bound::Integer(1_700_000_000),
                Bound::Text("evt_9".into()),
                Bound::Integer(21),
            ]
        );
        assert_eq!(EventsQuery::parse(Some("cursor=")).unwrap().cursor, None);
    }

    #[test]
    fn a_forged_cursor_is_refused_without_quoting_it() {
        let forged = [
            "<script>".to_owned(),
            "zz".to_owned(),
            hex::encode("abc.evt_1"),
            hex::encode("1700000000"),
            hex::encode("1700000000.not an id"),
            hex::encode("-5.evt_1"),
            hex::encode(format!("1.{}", "e".repeat(300))),
            "6".repeat(1000),
        ];
        for cursor in forged {
            let message = bad(&format!("cursor={}", urlencode(&cursor)));
            assert_eq!(message, "`cursor` is not a cursor returned by this route");
        }
    }

    fn urlencode(text: &str) -> String {
        crate::form::encode(&[("x", text)])[2..].to_owned()
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for (query, name) in [
            ("outcome=done", "`outcome`"),
            ("outcome=", "`outcome`"),
            ("type=Checkout", "`type`"),
            ("type=", "`type`"),
            ("type=a%20b", "`type`"),
            ("customer=cust_1", "`customer`"),
            ("customer=cus_", "`customer`"),
            ("customer=cus_1%27", "`customer`"),
            ("user=a%20b", "`user`"),
            ("user=", "`user`"),
            ("since=-1", "`since`"),
            ("since=1.5", "`since`"),
            ("until=9999999999999", "`until`"),
            ("limit=0", "`limit`"),
            ("limit=101", "`limit`"),
            ("since=5&until=5", "`since`"),
            ("customer=cus_1&user=u_1", "`customer`"),
            ("outcome=failed&outcome=handled", "`outcome` is given twice"),
        ] {
            let message = bad(query);
            assert!(message.contains(name), "{query}: {message}");
            assert!(!message.contains("Checkout") && !message.contains("cust_1"));
        }
        let message = bad("state=failed");
        assert!(message.contains("unknown parameter"), "{message}");
        for known in [
            "`outcome`",
            "`type`",
            "`customer`",
            "`user`",
            "`since`",
            "`until`",
        ] {
            assert!(message.contains(known), "{known}");
        }
        let error = EventsQuery::parse(Some("limit=0")).unwrap_err();
        assert_eq!((error.status(), error.code()), (400, "bad_query"));
    }

    #[test]
    fn a_page_of_limit_rows_and_a_cursor_when_there_are_more() {
        let query = EventsQuery::parse(Some("limit=2")).unwrap();
        let rows: Vec<String> = [("evt_c", 30), ("evt_b", 20), ("evt_a", 20)]
            .iter()
            .map(|(id, at)| {
                serde_json::to_string(&record(id, *at, Outcome::Handled, None)).unwrap()
            })
            .collect();
        let page = query.page(&rows).unwrap();
        let ids: Vec<&str> = page.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["evt_c", "evt_b"]);
        let cursor = Cursor::decode(page.cursor.as_deref().unwrap()).unwrap();
        assert_eq!((cursor.recorded_at, cursor.id.as_str()), (20, "evt_b"));
        let last = query.page(&rows[..2]).unwrap();
        assert_eq!((last.events.len(), last.cursor), (2, None));
        assert!(query.page(&["{".to_owned()]).is_err());
        let body = serde_json::to_string(&query.page(&[]).unwrap()).unwrap();
        assert_eq!(body, r#"{"events":[],"cursor":null}"#);
    }

    #[test]
    fn an_entry_binds_its_columns_and_marks_failures_retryable_or_not() {
        let entry = |outcome, retryable| Entry {
            record: record("evt_1", 50, outcome, retryable),
            entity: Some("customer:cus_1".into()),
            delivered: false,
        };
        let bound = entry(Outcome::Failed, Some(false)).bindings().unwrap();
        assert_eq!(bound.len(), UPSERT.matches('?').count());
        assert_eq!(
            bound[..3],
            [
                Bound::Text("evt_1".into()),
                Bound::Text("setup_intent.succeeded".into()),
                Bound::Text("failed".into()),
            ]
        );
        assert_eq!(bound[3], Bound::Integer(0));
        assert_eq!(bound[4], Bound::Text("customer:cus_1".into()));
        assert_eq!(bound[5..7], [Bound::Integer(49), Bound::Integer(50)]);
        let Bound::Text(json) = &bound[7] else {
            panic!()
        };
        assert_eq!(
            serde_json::from_str::<EventRecord>(json).unwrap(),
            entry(Outcome::Failed, Some(false)).record
        );
        assert_eq!(
            entry(Outcome::Failed, Some(true)).bindings().unwrap()[3],
            Bound::Integer(1)
        );
        assert_eq!(
            entry(Outcome::Failed, None).bindings().unwrap()[3],
            Bound::Integer(1)
        );
        assert_eq!(
            entry(Outcome::Handled, None).bindings().unwrap()[3],
            Bound::Null
        );
        let no_entity = Entry {
            entity: None,
            ..entry(Outcome::Ignored, None)
        };
        assert_eq!(no_entity.bindings().unwrap()[4], Bound::Null);
    }

    #[test]
    fn a_delivered_entry_says_so_and_silence_starts_at_the_last_delivery() {
        let mut entry = Entry {
            record: record("evt_1", 50, Outcome::Handled, None),
            entity: None,
            delivered: false,
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert!(!json.contains("delivered"), "{json}");
        entry.delivered = true;
        let json = serde_json::to_string(&entry).unwrap();
        assert!(serde_json::from_str::<Entry>(&json).unwrap().delivered);
        let marks = |last_delivery, started| Marks {
            last_delivery,
            started,
        };
        assert_eq!(marks(Some(90), Some(10)).silent_since(), Some(90));
        assert_eq!(marks(None, Some(10)).silent_since(), Some(10));
        assert_eq!(marks(None, None).silent_since(), None);
    }

    #[test]
    fn retention_follows_the_records_ttl() {
        let ttl = crate::store::EVENT_TTL_SECONDS;
        assert_eq!(keep_from(10_000_000, ttl), 10_000_000 - 30 * 86_400);
        assert_eq!(next_purge(Some(100), ttl), Some(100 + 30 * 86_400));
        assert_eq!(next_purge(None, ttl), None);
    }
}
