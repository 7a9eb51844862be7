//! Admin read routes; the glue checks `Authorization: Bearer ADMIN_TOKEN` first.

use worker::{Request, Response};

use crate::error::{AppError, Record, Result};
use crate::event::is_event_id;
use crate::event_log::EventsQuery;
use crate::store::keys;

use super::{json, Ctx};

/// `GET /events/{id}`: the stored outcome of an event.
pub async fn get_event(ctx: &Ctx<'_>, event_id: &str) -> Result<worker::Result<Response>> {
    if !is_event_id(event_id) {
        return Err(AppError::NoRecord(Record::Event));
    }
    let record = keys::event(event_id)
        .load(ctx.store()?)
        .await?
        .ok_or(AppError::NoRecord(Record::Event))?;
    let body = serde_json::to_string(&record)
        .map_err(|_| AppError::Internal("a stored event record does not serialise"))?;
    Ok(json(200, body))
}

/// `GET /events?…`: a page of recorded events, newest first, from the event index
/// (`routes::event_log`): one Durable Object request, no KV read.
pub async fn list_events(req: &Request, ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    let url = req.inner().url();
    let query = super::query_of(&url);
    // Validated here, so a bad query is a 400 without a Durable Object request.
    EventsQuery::parse(query)?;
    let body = super::event_log::query(ctx, query).await?;
    Ok(json(200, body))
}
