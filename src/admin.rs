//! Admin reads that span many keys: the page of recorded events behind `GET /events`. Pure
//! apart from the `Store` port.
//!
//! KV lists keys in key order, never by time, and event ids are random: a page is a slice of
//! the `event:` keys in id order, and only within the page are records sorted newest first
//! (by `recorded_at`). Walking every page with the cursor sees every recorded event.

use serde::Serialize;

use crate::error::AppError;
use crate::event::is_event_id;
use crate::event::EventRecord;
use crate::store::{keys, Store, StoreError};

pub const DEFAULT_EVENTS_LIMIT: usize = 20;
pub const MAX_EVENTS_LIMIT: usize = 100;
/// KV cursors are a few hundred characters at most; anything longer is not one of ours.
const MAX_CURSOR_LEN: usize = 1024;

/// `GET /events?limit=N&cursor=…`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsQuery {
    pub limit: usize,
    pub cursor: Option<String>,
}

impl Default for EventsQuery {
    fn default() -> Self {
        Self {
            limit: DEFAULT_EVENTS_LIMIT,
            cursor: None,
        }
    }
}

impl EventsQuery {
    /// Reads the query string (without `?`). `limit` is 1 to 100 (default 20); `cursor` is
    /// what the previous page returned; other parameters are refused so a typo is not
    /// silently ignored. Errors name the parameter, never quote the value.
    pub fn parse(query: Option<&str>) -> Result<Self, AppError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|_| AppError::BadQuery("the query string does not decode".into()))?;
        let mut parsed = Self::default();
        let (mut seen_limit, mut seen_cursor) = (false, false);
        for (name, value) in pairs {
            match name.as_str() {
                "limit" => {
                    if std::mem::replace(&mut seen_limit, true) {
                        return Err(AppError::BadQuery("`limit` is given twice".into()));
                    }
                    parsed.limit = parse_limit(&value)?;
                }
                "cursor" => {
                    if std::mem::replace(&mut seen_cursor, true) {
                        return Err(AppError::BadQuery("`cursor` is given twice".into()));
                    }
                    parsed.cursor = parse_cursor(value)?;
                }
                _ => {
                    return Err(AppError::BadQuery(
                        "unknown parameter; the known ones are `limit` and `cursor`".into(),
                    ))
                }
            }
        }
        Ok(parsed)
    }
}

/// A page's `cursor` as KV handed it out (empty: none), or a 400 that does not quote it.
pub fn parse_cursor(value: String) -> Result<Option<String>, AppError> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > MAX_CURSOR_LEN
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=_-.".contains(&b))
    {
        return Err(AppError::BadQuery(
            "`cursor` is not a cursor returned by this route".into(),
        ));
    }
    Ok(Some(value))
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

/// The body of `GET /events`: `{"events":[…],"cursor":…|null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventsPage {
    pub events: Vec<EventRecord>,
    /// Pass back as `?cursor=` for the next page; `null` on the last page.
    pub cursor: Option<String>,
}

/// One page of `event:` records, newest first within the page. A key that expired between
/// the list and the read is skipped; a record that does not decode is an error, as for
/// `GET /events/{id}`.
pub async fn list_events(
    store: &impl Store,
    query: &EventsQuery,
) -> Result<EventsPage, StoreError> {
    let page = store
        .list(keys::EVENT_PREFIX, query.limit, query.cursor.as_deref())
        .await?;
    // Only well-formed `event:{id}` keys, read together (concurrently on KV).
    let event_keys: Vec<_> = page
        .keys
        .iter()
        .filter_map(|name| name.strip_prefix(keys::EVENT_PREFIX))
        .filter(|id| is_event_id(id))
        .map(keys::event)
        .collect();
    let names: Vec<String> = event_keys.iter().map(|k| k.as_str().to_owned()).collect();
    let values = store.get_many(&names).await?;
    let mut events = Vec::with_capacity(values.len());
    for (key, value) in event_keys.iter().zip(values) {
        if let Some(text) = value {
            events.push(key.decode(&text)?);
        }
    }
    events.sort_by(|a, b| {
        b.recorded_at
            .cmp(&a.recorded_at)
            .then_with(|| b.created.cmp(&a.created))
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(EventsPage {
        events,
        cursor: page.cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(query: &str) -> String {
        match EventsQuery::parse(Some(query)) {
            Err(AppError::BadQuery(message)) => message,
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn the_limit_defaults_to_20_and_is_1_to_100() {
        assert_eq!(EventsQuery::parse(None).unwrap(), EventsQuery::default());
        assert_eq!(EventsQuery::parse(Some("")).unwrap().limit, 20);
        assert_eq!(EventsQuery::parse(Some("limit=1")).unwrap().limit, 1);
        assert_eq!(EventsQuery::parse(Some("limit=100")).unwrap().limit, 100);
        for query in [
            "limit=0",
            "limit=101",
            "limit=-1",
            "limit=",
            "limit=abc",
            "limit=1.5",
            "limit=+5",
            "limit=0010",
            "limit=99999999999999999999",
        ] {
            assert!(bad(query).contains("`limit`"), "{query}");
        }
    }

    #[test]
    fn cursors_pass_through_and_odd_input_is_refused_without_quoting_it() {
        let query = EventsQuery::parse(Some("limit=5&cursor=AAAbbb%2Bx%2F%3D")).unwrap();
        assert_eq!(query.limit, 5);
        assert_eq!(query.cursor.as_deref(), Some("AAAbbb+x/="));
        assert_eq!(EventsQuery::parse(Some("cursor=")).unwrap().cursor, None);
        assert!(!bad("cursor=%3Cscript%3E").contains("script"));
        assert!(bad(&format!("cursor={}", "a".repeat(MAX_CURSOR_LEN + 1))).contains("`cursor`"));
        assert!(bad("limt=5").contains("unknown parameter"));
        assert!(bad("limit=5&limit=6").contains("twice"));
        assert!(bad("cursor=a&cursor=b").contains("twice"));
    }

    #[test]
    fn a_bad_query_is_a_400_bad_query() {
        let error = EventsQuery::parse(Some("limit=0")).unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(error.code(), "bad_query");
        assert!(error
            .body()
            .contains("`limit` must be a whole number from 1 to 100"));
    }
}
