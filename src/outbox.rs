//! The notification outbox beyond the first attempt: the scheduled retries of due
//! notifications (bounded per run, resumable), and the admin routes that list pending and
//! dead ones and resend one. Pure apart from the `Store` and `Transport` ports; one attempt
//! is `services::attempt_notification`.
//!
//! Due notifications are found through the index `outbox:{due:010}:{id}` (KV lists keys in
//! key order, so the earliest due come first), never by listing `notification:`. The record
//! is the truth and the index a pointer to it: an entry whose record is no longer pending at
//! that due time is stale and dropped.

use serde::Serialize;

use crate::admin::{parse_cursor, parse_limit, DEFAULT_EVENTS_LIMIT};
use crate::config::{ConfigError, NOTIFY_URL};
use crate::error::{AppError, Record};
use crate::http::Transport;
use crate::notify::{
    is_notification_id, may_clear_hint, must_list_due, parse_due_index, Notification, State,
    DEAD_PREFIX, DUE_PREFIX,
};
use crate::services::{attempt_notification, send_notification, NotifyTarget};
use crate::store::{keys, Store, StoreError};

/// What one retry may cost in subrequests at most: the record's read, the POST, the new
/// index entry, the record's write with its list row (a Durable Object request) and the old
/// entry's delete. KV and Durable Object operations are counted as if they were subrequests,
/// so a run stays within the Free plan's 50 either way.
pub const SUBREQUESTS_PER_RETRY: usize = 6;
/// What raising an operator's alert may cost: the record's read and write (with its list
/// row), the POST, and on a failed attempt the index entry, the hint and the record's write
/// (with its row) again.
pub const SUBREQUESTS_PER_ALERT: usize = 8;
/// What a run costs besides its retries: the hint's read and the list (or the hint's write
/// or delete, which come instead of a retry's share: see `retry_due`).
pub const SUBREQUESTS_PER_RUN: usize = 2;
/// The retry step's share of a scheduled run's 50 subrequests (Workers Free plan); the rest
/// is left to the run's other steps. The hint, one list and 4 retries (3 + 4 × 6), or 3 and
/// a hint write.
pub const RETRY_SUBREQUEST_BUDGET: usize = 27;

/// What a retry run did, for its log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetryReport {
    /// Due entries worked on (stale ones included).
    pub due: usize,
    pub delivered: usize,
    /// Failed again and due later.
    pub rescheduled: usize,
    /// Failed for the last time of their window.
    pub dead: usize,
    /// Index entries whose record had moved on (delivered, rescheduled, dead or gone): dropped.
    pub stale: usize,
    /// The budget ended before the due entries did: the next run goes on from there.
    pub more: bool,
    /// Why nothing was tried (no `NOTIFY_URL`; no hint that anything is due).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<&'static str>,
}

/// Retries the notifications due at `now`, earliest first, within `budget` subrequests.
/// Each one is moved in the index by its attempt (to a later due time, or out), so the next
/// run starts where this one stopped; a run that dies halfway leaves the rest due. The due
/// index is listed only when the hint (`notify::DUE_HINT_KEY`) says it may hold entries, or
/// on the hourly sweep; a run that finds it empty clears a settled hint, one that finds
/// entries without a hint writes it.
pub async fn retry_due(
    store: &impl Store,
    transport: &impl Transport,
    target: Option<NotifyTarget<'_>>,
    now: i64,
    budget: usize,
) -> Result<RetryReport, StoreError> {
    let mut report = RetryReport::default();
    let Some(target) = target else {
        report.skipped = Some("NOTIFY_URL is not set");
        return Ok(report);
    };
    // The hint's own write or delete takes one subrequest; with OPS_NOTIFY_URL a retry that
    // ends a notification's window raises an alert, which must still fit after it.
    let room = budget.saturating_sub(SUBREQUESTS_PER_RUN + 1);
    let reserve = target.ops_url.map_or(0, |_| SUBREQUESTS_PER_ALERT);
    let max = room.saturating_sub(reserve) / SUBREQUESTS_PER_RETRY;
    if max == 0 {
        return Ok(report);
    }
    let hint_key = keys::outbox_hint();
    let hint = hint_key.load_tolerant(store).await?;
    if !must_list_due(hint, now) {
        report.skipped = Some("nothing is due (no hint)");
        return Ok(report);
    }
    let page = store.list(DUE_PREFIX, max, None).await?;
    match hint {
        Some(written)
            if page.keys.is_empty() && page.cursor.is_none() && may_clear_hint(written, now) =>
        {
            store.delete(hint_key.as_str()).await?;
        }
        None if !page.keys.is_empty() => hint_key.save(store, &now, None).await?,
        _ => {}
    }
    let mut all_due = true;
    // An alert for a notification gone dead is a send too: it takes a retry's share.
    let (mut spent, mut budget_ended) = (0, false);
    for name in &page.keys {
        if spent + SUBREQUESTS_PER_RETRY + reserve > room {
            budget_ended = true;
            break;
        }
        spent += SUBREQUESTS_PER_RETRY;
        let Some((due, id)) = parse_due_index(name) else {
            store.delete(name).await?;
            report.stale += 1;
            continue;
        };
        if due > now {
            all_due = false;
            break;
        }
        report.due += 1;
        let record = keys::notification(id).load_tolerant(store).await?;
        let Some(record) =
            record.filter(|r| r.state == State::Pending && r.next_attempt_at == Some(due))
        else {
            store.delete(name).await?;
            report.stale += 1;
            continue;
        };
        let record = attempt_notification(store, transport, &target, record, now).await?;
        match record.state {
            State::Delivered => report.delivered += 1,
            State::Pending => report.rescheduled += 1,
            State::Dead => report.dead += 1,
        }
        if let Some(alert) = record.dead_alert() {
            spent += SUBREQUESTS_PER_ALERT;
            send_notification(store, transport, Some(target.clone()), alert, now).await?;
        }
    }
    report.more = budget_ended || (all_due && page.cursor.is_some());
    Ok(report)
}

/// A page of the outbox's KV indexes (`state=pending|dead&limit=N&cursor=…`), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationsQuery {
    pub state: State,
    pub limit: usize,
    pub cursor: Option<String>,
}

impl NotificationsQuery {
    /// `state` is required (`pending` or `dead`); `limit` and `cursor` as for `GET /events`.
    pub fn parse(query: Option<&str>) -> Result<Self, AppError> {
        let pairs = crate::form::pairs(query.unwrap_or("").as_bytes());
        let (mut state, mut limit, mut cursor) = (None, None, None);
        for (name, value) in pairs {
            let twice = || AppError::BadQuery(format!("`{name}` is given twice"));
            match name.as_str() {
                "state" if state.is_some() => return Err(twice()),
                "state" => {
                    state = Some(match value.as_str() {
                        "pending" => State::Pending,
                        "dead" => State::Dead,
                        _ => return Err(bad_state()),
                    })
                }
                "limit" if limit.is_some() => return Err(twice()),
                "limit" => limit = Some(parse_limit(&value)?),
                "cursor" if cursor.is_some() => return Err(twice()),
                "cursor" => cursor = Some(parse_cursor(value)?),
                _ => {
                    return Err(AppError::BadQuery(
                        "unknown parameter; the known ones are `state`, `limit` and `cursor`"
                            .into(),
                    ))
                }
            }
        }
        Ok(Self {
            state: state.ok_or_else(bad_state)?,
            limit: limit.unwrap_or(DEFAULT_EVENTS_LIMIT),
            cursor: cursor.flatten(),
        })
    }
}

fn bad_state() -> AppError {
    AppError::BadQuery("`state` must be `pending` or `dead`".into())
}

/// The body of `GET /notifications`: `{"notifications":[…],"cursor":…|null}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotificationsPage {
    pub notifications: Vec<Notification>,
    /// Pass back as `?cursor=` for the next page; `null` on the last page.
    pub cursor: Option<String>,
}

/// One page of the outbox's own KV indexes, as the retries see them: pending notifications in
/// due order (earliest first), dead ones in id order. Stale entries are left out, so a page
/// may hold fewer than `limit`. `GET /notifications` reads the index Durable Object instead
/// (`crate::record_index`); this view checks the retries' indexes in tests.
pub async fn list_notifications(
    store: &impl Store,
    query: &NotificationsQuery,
) -> Result<NotificationsPage, StoreError> {
    let prefix = match query.state {
        State::Dead => DEAD_PREFIX,
        _ => DUE_PREFIX,
    };
    let page = store
        .list(prefix, query.limit, query.cursor.as_deref())
        .await?;
    let entries: Vec<(Option<i64>, &str)> = page
        .keys
        .iter()
        .filter_map(|name| match query.state {
            State::Dead => name
                .strip_prefix(DEAD_PREFIX)
                .filter(|id| is_notification_id(id))
                .map(|id| (None, id)),
            _ => parse_due_index(name).map(|(due, id)| (Some(due), id)),
        })
        .collect();
    let record_keys: Vec<_> = entries
        .iter()
        .map(|(_, id)| keys::notification(id))
        .collect();
    let names: Vec<String> = record_keys.iter().map(|k| k.as_str().to_owned()).collect();
    let values = store.get_many(&names).await?;
    let mut notifications = Vec::with_capacity(values.len());
    for ((due, _), (key, value)) in entries.iter().zip(record_keys.iter().zip(values)) {
        let Some(text) = value else { continue };
        let record = key.decode(&text)?;
        let current = record.state == query.state
            && (query.state == State::Dead || record.next_attempt_at == *due);
        if current {
            notifications.push(record);
        }
    }
    Ok(NotificationsPage {
        notifications,
        cursor: page.cursor,
    })
}

/// The stored record of a notification (`GET /notifications/{id}`); 404 for an id this
/// service does not make or does not have.
pub async fn load(store: &impl Store, id: &str) -> Result<Notification, AppError> {
    if !is_notification_id(id) {
        return Err(AppError::NoRecord(Record::Notification));
    }
    keys::notification(id)
        .load(store)
        .await?
        .ok_or(AppError::NoRecord(Record::Notification))
}

/// What `POST /notifications/{id}/resend` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resend {
    /// Whether an attempt was made (`false`: it had been delivered already, nothing was sent).
    pub resent: bool,
    /// The record after it: the attempt is the last of `attempts`.
    pub notification: Notification,
}

/// Sends the notification now and records the attempt, whatever its schedule; a dead one is
/// revived with a new retry window. A delivered one is left as it is.
pub async fn resend(
    store: &impl Store,
    transport: &impl Transport,
    target: Option<NotifyTarget<'_>>,
    id: &str,
    now: i64,
) -> Result<Resend, AppError> {
    let record = load(store, id).await?;
    if record.is_delivered() {
        return Ok(Resend {
            resent: false,
            notification: record,
        });
    }
    let target = target.ok_or(AppError::Config(ConfigError::Missing(NOTIFY_URL)))?;
    let notification = attempt_notification(store, transport, &target, record, now).await?;
    Ok(Resend {
        resent: true,
        notification,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(query: &str) -> String {
        match NotificationsQuery::parse(Some(query)) {
            Err(AppError::BadQuery(message)) => message,
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn the_query_names_a_state_and_pages_like_events() {
        let query = NotificationsQuery::parse(Some("state=dead&limit=5&cursor=abc")).unwrap();
        assert_eq!(
            query,
            NotificationsQuery {
                state: State::Dead,
                limit: 5,
                cursor: Some("abc".into())
            }
        );
        let pending = NotificationsQuery::parse(Some("state=pending")).unwrap();
        assert_eq!((pending.limit, pending.cursor), (20, None));
        assert!(bad("").contains("`state`"));
        assert!(bad("state=delivered").contains("`pending` or `dead`"));
        assert!(bad("state=pending&state=dead").contains("twice"));
        assert!(bad("state=dead&limit=0").contains("`limit`"));
        assert!(bad("state=dead&limit=1&limit=2").contains("twice"));
        assert!(bad("state=dead&x=1").contains("unknown parameter"));
        assert!(!bad("state=dead&cursor=%3Cscript%3E").contains("script"));
    }
}
