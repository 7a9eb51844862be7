//! The event index (`crate::event_log`): one SQLite-backed Durable Object for the whole
//! deployment (`EventLog`, binding `EVENT_LOG`, `idFromName("events")`) with a row per
//! recorded event, so `GET /events` is one Durable Object request and no KV read, newest first
//! with any filter. KV's `event:{id}` stays the truth: the index is written after the record,
//! and an index write that fails leaves the event out of the list only (`GET /events/{id}`
//! still has it). Rows go with the records' own TTL, by the object's alarm.

use std::cell::Cell;

use worker::{
    durable_object, Date, DurableObject, Env, Method, Request, Response, SqlStorage,
    SqlStorageValue, State,
};

use crate::config::ConfigError;
use crate::error::{AppError, Result};
use crate::event_log::{self, Bound, Entry, EventsQuery};
use crate::http;
use crate::store::EVENT_TTL_SECONDS;
use crate::stripe::fetch::new_request;

use super::Ctx;

/// The Durable Object namespace binding in wrangler.toml.
pub const EVENT_LOG_BINDING: &str = "EVENT_LOG";
/// The one index's name.
const INDEX: &str = "events";
/// Never resolved: a stub's fetch goes to the Durable Object whatever the URL says.
const PUT_URL: &str = "https://event-log.invalid/put";
const QUERY_URL: &str = "https://event-log.invalid/query";

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
    sql.exec(query, bindings)?.raw().collect()
}

#[durable_object(alarm)]
pub struct EventLog {
    state: State,
    /// This instance has created its table and indexes.
    table_created: Cell<bool>,
}

impl DurableObject for EventLog {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            table_created: Cell::new(false),
        }
    }

    /// `POST /put` (an [`Entry`]: its row written, the purge alarm set if none is) or
    /// `POST /query` (a query string [`EventsQuery`] reads: the page's JSON). `sql.exec` is synchronous.
    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        if req.method() != Method::Post {
            return Response::error("not found", 404);
        }
        let path = req.path();
        let text = req.text().await.unwrap_or_default();
        let sql = self.sql()?;
        match path.as_str() {
            "/put" => {
                let Ok(entry) = serde_json::from_str::<Entry>(&text) else {
                    return Response::error("an entry that does not decode", 400);
                };
                let Ok(bound) = entry.bindings() else {
                    return Response::error("an entry that does not encode", 500);
                };
                rows(&sql, event_log::UPSERT, bound)?;
                // Retention never waits for the next write: the alarm is set now.
                if self.state.storage().get_alarm().await?.is_none() {
                    self.schedule_purge(&sql).await?;
                }
                Response::ok("")
            }
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
            _ => Response::error("not found", 404),
        }
    }

    /// Rows older than the records' TTL go; the alarm is set again for the oldest one left.
    async fn alarm(&self) -> worker::Result<Response> {
        let sql = self.sql()?;
        let now = (Date::now().as_millis() / 1000) as i64;
        let keep_from = event_log::keep_from(now, EVENT_TTL_SECONDS);
        rows(&sql, event_log::PURGE, vec![Bound::Integer(keep_from)])?;
        self.schedule_purge(&sql).await?;
        Response::ok("")
    }
}

impl EventLog {
    fn sql(&self) -> worker::Result<SqlStorage> {
        let sql = self.state.storage().sql();
        if !self.table_created.get() {
            sql.exec(event_log::SCHEMA, None)?;
            self.table_created.set(true);
        }
        Ok(sql)
    }

    /// The alarm at the oldest row's expiry (none when the index is empty).
    async fn schedule_purge(&self, sql: &SqlStorage) -> worker::Result<()> {
        let oldest = rows(sql, event_log::OLDEST, vec![])?
            .into_iter()
            .next()
            .and_then(|row| match row.into_iter().next() {
                Some(SqlStorageValue::Integer(at)) => Some(at),
                Some(SqlStorageValue::Float(at)) => Some(at as i64),
                _ => None,
            });
        if let Some(at) = event_log::next_purge(oldest, EVENT_TTL_SECONDS) {
            let now_ms = Date::now().as_millis() as i64;
            self.state
                .storage()
                .set_alarm((at * 1000 - now_ms).max(0))
                .await?;
        }
        Ok(())
    }
}

fn unreachable(_: worker::Error) -> AppError {
    AppError::Internal("the event index did not answer")
}

/// One request to the index; its answer's body, or an error for any status but 200.
async fn call(ctx: &Ctx<'_>, url: &str, body: String) -> Result<String> {
    let namespace = ctx
        .env
        .durable_object(EVENT_LOG_BINDING)
        .map_err(|_| ConfigError::Missing(EVENT_LOG_BINDING))?;
    if ctx.config().is_ok_and(|c| c.cost_meter) {
        worker::console_log!("[meter] do.request event_log");
    }
    let stub = namespace
        .id_from_name(INDEX)
        .and_then(|id| id.get_stub())
        .map_err(unreachable)?;
    let request =
        new_request(url, http::Method::Post, None, Some(&body), None).map_err(unreachable)?;
    let mut response = stub
        .fetch_with_request(request)
        .await
        .map_err(unreachable)?;
    let text = response.text().await.map_err(unreachable)?;
    if response.status_code() != 200 {
        return Err(AppError::Internal("the event index refused a request"));
    }
    Ok(text)
}

/// Writes a recorded event's row. Never fails the delivery: KV's record is the truth, so a
/// failure is a note in the request's log line (the event is then missing from `GET /events`,
/// never from `GET /events/{id}`).
pub async fn record(ctx: &Ctx<'_>, entry: Entry) {
    let id = entry.record.id.clone();
    let written = match serde_json::to_string(&entry) {
        Ok(body) => call(ctx, PUT_URL, body).await.map(|_| ()),
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
    call(ctx, QUERY_URL, query.unwrap_or("").to_owned()).await
}
