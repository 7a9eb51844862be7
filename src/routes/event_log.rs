//! The event index (`crate::event_log`): one SQLite-backed Durable Object for the whole
//! deployment (`EventLog`, binding `EVENT_LOG`, `idFromName("events")`) with a row per
//! recorded event, so `GET /events` is one Durable Object request and no KV read, newest first
//! with any filter. KV's `event:{id}` stays the truth: the index is written after the record,
//! and an index write that fails leaves the event out of the list only (`GET /events/{id}`
//! still has it). Rows go with the records' own TTL, by the object's alarm.
//!
//! The same object holds the list indexes (`crate::record_index`: charges, Identity users,
//! notifications), written by the KV adapter (`store::kv`) with every write of their records
//! and answering `GET /charges`, `GET /identity/users` and `GET /notifications` the same way:
//! one Durable Object request, no KV read.

use std::cell::Cell;
use std::rc::Rc;

use wasm_bindgen::prelude::wasm_bindgen;
use worker::worker_sys::{web_sys, DurableObjectState};
use worker::{Date, Env, Method, Request, Response, SqlStorage, SqlStorageValue, State};

use crate::config::ConfigError;
use crate::error::{AppError, Result};
use crate::event_log::{self, Bound, Entry, EventsQuery, Marks};
use crate::record_index::{Batch, ListQuery, Row, Table};
use crate::store::index::{IndexClient, EVENT_LOG_BINDING};
use crate::store::sql::all_rows;
use crate::store::EVENT_TTL_SECONDS;

use super::{promise, settle, Ctx};

const TABLES: [Table; 3] = [Table::Charges, Table::Users, Table::Notifications];

fn value_of(bound: Bound) -> SqlStorageValue {
    match bound {
        Bound::Integer(n) => n.into(),
        Bound::Text(text) => text.into(),
        Bound::Null => SqlStorageValue::Null,
    }
}

fn rows(
    sql: &SqlStorage,
    query: &str,
    bound: Vec<Bound>,
) -> worker::Result<Vec<Vec<SqlStorageValue>>> {
    let bindings: Vec<SqlStorageValue> = bound.into_iter().map(value_of).collect();
    all_rows(&sql.exec(query, bindings)?)
}

/// The Durable Object, exported by hand: the class, its constructor, `fetch` and `alarm` as
/// `#[durable_object(alarm)]` exported them, over the worker's one promise helper
/// (`routes::promise`). Each call's future is `'static`, so the index is behind an `Rc`.
#[wasm_bindgen]
pub struct EventLog(Rc<Index>);

#[wasm_bindgen]
impl EventLog {
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, _env: Env) -> Self {
        Self(Rc::new(Index {
            state: State::from(state),
            table_created: Cell::new(false),
            alarm_at: Cell::new(None),
        }))
    }

    /// Answers a request (see [`Index::fetch`]).
    pub fn fetch(&self, req: web_sys::Request) -> js_sys::Promise {
        let index = Rc::clone(&self.0);
        promise(Box::pin(async move {
            settle(index.fetch(Request::from(req)).await)
        }))
    }

    /// Purges expired rows (see [`Index::alarm`]).
    pub fn alarm(&self) -> js_sys::Promise {
        let index = Rc::clone(&self.0);
        promise(Box::pin(async move { settle(index.alarm().await) }))
    }
}

/// The index's storage and what this instance knows of it.
struct Index {
    state: State,
    /// This instance has created its table and indexes.
    table_created: Cell<bool>,
    /// This instance knows the purge alarm is set (it set it, or read it back): a put then
    /// needs no `getAlarm`. Unset when the alarm runs, which sets it again if rows are left.
    alarm_at: Cell<Option<i64>>,
}

impl Index {
    /// `POST /put` (an [`Entry`]: its row written, the purge alarm set if none is), `POST
    /// /batch` (a [`Batch`]: an entity queue's rows of one piece of work),
    /// `POST /query` (a query string [`EventsQuery`] reads: the page's JSON), `POST /marks`,
    /// `POST /count` (Unix seconds: the [`event_log::Counts`] since then), or a list index's
    /// request (`/put/{table}`, `/delete/{table}`, `/query/{table}`). `sql.exec` is synchronous.
    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        if req.method() != Method::Post {
            return Response::error("not found", 404);
        }
        let path = req.path();
        let text = req.text().await.unwrap_or_default();
        let sql = self.sql()?;
        match path.as_str() {
            "/put" => self.put_event(&sql, &text).await,
            "/batch" => self.put_batch(&sql, &text).await,
            "/query" => {
                // The worker validated it already; a query that does not parse is not its.
                let Ok(query) = EventsQuery::parse(Some(&text)) else {
                    return Response::error("a query that does not parse", 400);
                };
                let (statement, bound) = query.sql();
                let records: Vec<String> = rows(&sql, &statement, bound)?
                    .into_iter()
                    .filter_map(|row| match row.into_iter().next() {
                        Some(SqlStorageValue::String(text)) => Some(text),
                        _ => None,
                    })
                    .collect();
                match query
                    .page(&records)
                    .map(|page| serde_json::to_string(&page))
                {
                    Ok(Ok(body)) => Response::ok(body),
                    _ => Response::error("an indexed record does not decode", 500),
                }
            }
            "/count" => {
                let Ok(since) = text.parse::<i64>() else {
                    return Response::error("a time that does not parse", 400);
                };
                let mut counts = event_log::Counts::default();
                for row in rows(&sql, event_log::COUNT_SINCE, vec![Bound::Integer(since)])? {
                    if let [SqlStorageValue::String(outcome), for_good, count] = row.as_slice() {
                        counts.add(outcome, integer(for_good) == 1, integer(count));
                    }
                }
                Response::ok(serde_json::to_string(&counts).unwrap_or_default())
            }
            "/marks" => Response::ok(serde_json::to_string(&read_marks(&sql)?).unwrap_or_default()),
            other => self.table_request(&sql, other, text).await,
        }
    }

    /// Rows older than the records' TTL go, and the list indexes' expired rows (as KV's copies
    /// expire); the alarm is set again for the next expiry left.
    async fn alarm(&self) -> worker::Result<Response> {
        self.alarm_at.set(None);
        let sql = self.sql()?;
        let now = (Date::now().as_millis() / 1000) as i64;
        let keep_from = event_log::keep_from(now, EVENT_TTL_SECONDS);
        rows(&sql, event_log::PURGE, vec![Bound::Integer(keep_from)])?;
        for table in TABLES {
            rows(&sql, &table.purge(), vec![Bound::Integer(now)])?;
        }
        self.schedule_purge(&sql).await?;
        Response::ok("")
    }
}

/// An [`Entry`]'s row and the marks it moves; when its row is due for purging (`None` outer:
/// a record that does not encode).
fn write_entry(sql: &SqlStorage, entry: &Entry) -> worker::Result<Option<Option<i64>>> {
    let Ok(bound) = entry.bindings() else {
        return Ok(None);
    };
    rows(sql, event_log::UPSERT, bound)?;
    let now = (Date::now().as_millis() / 1000) as i64;
    rows(sql, event_log::MARK_STARTED, vec![Bound::Integer(now)])?;
    if entry.delivered {
        let at = Bound::Integer(entry.record.recorded_at);
        rows(sql, event_log::MARK_DELIVERY, vec![at])?;
    }
    Ok(Some(event_log::next_purge(
        Some(entry.record.recorded_at),
        EVENT_TTL_SECONDS,
    )))
}

/// The earlier of two optional times.
fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The single integer a `SELECT MIN(…)` answers (none for an empty table).
fn first_integer(found: Vec<Vec<SqlStorageValue>>) -> Option<i64> {
    found
        .into_iter()
        .next()
        .and_then(|row| match row.into_iter().next() {
            Some(SqlStorageValue::Integer(at)) => Some(at),
            Some(SqlStorageValue::Float(at)) => Some(at as i64),
            _ => None,
        })
}

/// The marks table as [`Marks`].
fn read_marks(sql: &SqlStorage) -> worker::Result<Marks> {
    let mut marks = Marks::default();
    for row in rows(sql, event_log::MARKS, vec![])? {
        if let [SqlStorageValue::String(name), SqlStorageValue::Integer(at)] = row.as_slice() {
            match name.as_str() {
                "last_delivery" => marks.last_delivery = Some(*at),
                "started" => marks.started = Some(*at),
                _ => {}
            }
        }
    }
    Ok(marks)
}

impl Index {
    /// An [`Entry`]'s row, the marks (the index's start; a delivery's time), and the purge
    /// alarm if none is set.
    async fn put_event(&self, sql: &SqlStorage, text: &str) -> worker::Result<Response> {
        let Ok(entry) = serde_json::from_str::<Entry>(text) else {
            return Response::error("an entry that does not decode", 400);
        };
        let Some(due) = write_entry(sql, &entry)? else {
            return Response::error("an entry that does not encode", 500);
        };
        self.ensure_purge(sql, due).await?;
        Response::ok("")
    }

    /// `POST /batch` (a [`Batch`], from an entity's queue once its work is done): the event's
    /// row and the list rows, as `/put` and `/put/{table}` would write them, then the purge
    /// alarm once. Refused whole if any part does not decode (nothing is written: the
    /// statements run only after every part was checked).
    async fn put_batch(&self, sql: &SqlStorage, text: &str) -> worker::Result<Response> {
        let Ok(batch) = serde_json::from_str::<Batch>(text) else {
            return Response::error("a batch that does not decode", 400);
        };
        let mut list_rows = Vec::with_capacity(batch.rows.len());
        for (table, row) in batch.tables() {
            match table.and_then(|table| Some((table, row.bindings(table)?))) {
                Some((table, bound)) => list_rows.push((table, bound, row.expires_at)),
                None => return Response::error("a row that does not decode", 400),
            }
        }
        let mut due = None;
        if let Some(entry) = &batch.event {
            let Some(at) = write_entry(sql, entry)? else {
                return Response::error("an entry that does not encode", 500);
            };
            due = at;
        }
        for (table, bound, expires_at) in list_rows {
            rows(sql, &table.upsert(), bound)?;
            due = earliest(due, expires_at);
        }
        self.ensure_purge(sql, due).await?;
        Response::ok("")
    }

    fn sql(&self) -> worker::Result<SqlStorage> {
        let sql = self.state.storage().sql();
        if !self.table_created.get() {
            sql.exec(event_log::SCHEMA, None)?;
            for table in TABLES {
                sql.exec(&table.schema(), None)?;
            }
            self.table_created.set(true);
        }
        Ok(sql)
    }

    /// `POST /put/{table}` (a [`Row`]), `/delete/{table}` (an id) or `/query/{table}` (a
    /// query string [`ListQuery::parse`] reads: the page's JSON).
    async fn table_request(
        &self,
        sql: &SqlStorage,
        path: &str,
        text: String,
    ) -> worker::Result<Response> {
        let Some((action, table)) = path[1..]
            .split_once('/')
            .and_then(|(action, name)| Some((action, Table::from_name(name)?)))
        else {
            return Response::error("not found", 404);
        };
        match action {
            "put" => {
                let row = serde_json::from_str::<Row>(&text).ok();
                let expires_at = row.as_ref().and_then(|row| row.expires_at);
                let Some(bound) = row.and_then(|row| row.bindings(table)) else {
                    return Response::error("a row that does not decode", 400);
                };
                rows(sql, &table.upsert(), bound)?;
                self.ensure_purge(sql, expires_at).await?;
                Response::ok("")
            }
            "delete" => {
                rows(sql, &table.delete(), vec![Bound::Text(text)])?;
                Response::ok("")
            }
            "query" => {
                let Ok(query) = ListQuery::parse(table, Some(&text)) else {
                    return Response::error("a query that does not parse", 400);
                };
                let (statement, bound) = query.sql();
                let found: Vec<(i64, String, String)> = rows(sql, &statement, bound)?
                    .into_iter()
                    .filter_map(|row| match <[SqlStorageValue; 3]>::try_from(row).ok()? {
                        [SqlStorageValue::Integer(at), SqlStorageValue::String(id), SqlStorageValue::String(record)] => {
                            Some((at, id, record))
                        }
                        _ => None,
                    })
                    .collect();
                Response::ok(query.page(&found))
            }
            _ => Response::error("not found", 404),
        }
    }

    /// Retention never waits for the next write: after a put the purge alarm is set, and a
    /// row due (`due`, Unix seconds) before it moves it earlier (a list row can set it 90 days
    /// out, and events must still go after 30). Once this instance knows when the alarm is
    /// (it set it, or read it back) a put needs no `getAlarm`.
    async fn ensure_purge(&self, sql: &SqlStorage, due: Option<i64>) -> worker::Result<()> {
        let at = match self.alarm_at.get() {
            Some(at) => Some(at),
            None => self.state.storage().get_alarm().await?.map(|ms| ms / 1000),
        };
        match (at, due) {
            (None, _) => self.schedule_purge(sql).await,
            (Some(at), Some(due)) if due < at => self.set_purge_alarm(due).await,
            (Some(at), _) => {
                self.alarm_at.set(Some(at));
                Ok(())
            }
        }
    }

    async fn set_purge_alarm(&self, at: i64) -> worker::Result<()> {
        let now_ms = Date::now().as_millis() as i64;
        self.state
            .storage()
            .set_alarm((at * 1000 - now_ms).max(0))
            .await?;
        self.alarm_at.set(Some(at));
        Ok(())
    }

    /// The alarm at the next expiry: the oldest event's, or a list index row's (none when
    /// nothing expires).
    async fn schedule_purge(&self, sql: &SqlStorage) -> worker::Result<()> {
        let oldest = first_integer(rows(sql, event_log::OLDEST, vec![])?);
        let mut next = event_log::next_purge(oldest, EVENT_TTL_SECONDS);
        for table in TABLES {
            let expiry = first_integer(rows(sql, &table.next_expiry(), vec![])?);
            next = earliest(next, expiry);
        }
        match next {
            Some(at) => self.set_purge_alarm(at).await,
            None => Ok(()),
        }
    }
}

/// A SQLite integer as the runtime hands it over (a JS number may come back as a float).
fn integer(value: &SqlStorageValue) -> i64 {
    match value {
        SqlStorageValue::Integer(n) => *n,
        SqlStorageValue::Float(n) => *n as i64,
        _ => 0,
    }
}

/// One request to the index; its answer's body, or an error for any status but 200.
async fn call(ctx: &Ctx<'_>, path: &str, body: String) -> Result<String> {
    let namespace = ctx
        .env
        .durable_object(EVENT_LOG_BINDING)
        .map_err(|_| ConfigError::Missing(EVENT_LOG_BINDING))?;
    let meter = ctx.config().is_ok_and(|c| c.cost_meter);
    IndexClient::new(namespace, meter)
        .call(path, body)
        .await
        .map_err(|_| AppError::Internal("the event index did not answer"))
}

/// Writes a recorded event's row. Never fails the delivery: KV's record is the truth, so a
/// failure is a note in the request's log line (the event is then missing from `GET /events`,
/// never from `GET /events/{id}`).
pub async fn record(ctx: &Ctx<'_>, entry: Entry) {
    let id = entry.record.id.clone();
    let written = match serde_json::to_string(&entry) {
        Ok(body) => call(ctx, "/put", body).await.map(|_| ()),
        Err(_) => Err(AppError::Internal("an index entry does not serialise")),
    };
    if let Err(error) = written {
        ctx.trace.note(format!(
            "event {id} not indexed (GET /events/{id} has it): {}",
            error.log_text()
        ));
    }
}

/// `GET /events`' page for a query string [`EventsQuery::parse`] accepted: the body as the
/// index wrote it.
pub async fn query(ctx: &Ctx<'_>, query: Option<&str>) -> Result<String> {
    call(ctx, "/query", query.unwrap_or("").to_owned()).await
}

/// The index's marks: the last delivery from Stripe and when the index began
/// (`ops.endpoint_silent`).
pub async fn marks(ctx: &Ctx<'_>) -> Result<Marks> {
    let body = call(ctx, "/marks", String::new()).await?;
    serde_json::from_str(&body).map_err(|_| AppError::Internal("the index's marks do not decode"))
}

/// A page of one list index (`GET /charges`, `GET /identity/users`, `GET /notifications`)
/// for a query string: validated here (a bad one is a 400 `bad_query` without a Durable
/// Object request), then one request to the index; the body is the page's JSON. The admin
/// console calls it too.
pub async fn list(ctx: &Ctx<'_>, table: Table, query: Option<&str>) -> Result<String> {
    ListQuery::parse(table, query)?;
    let path = format!("/query/{}", table.name());
    call(ctx, &path, query.unwrap_or("").to_owned()).await
}

/// Events recorded since `since` (Unix seconds), by outcome: the console's overview.
pub async fn count(ctx: &Ctx<'_>, since: i64) -> Result<event_log::Counts> {
    let body = call(ctx, "/count", since.to_string()).await?;
    serde_json::from_str(&body)
        .map_err(|_| AppError::Internal("the event index's counts do not decode"))
}
