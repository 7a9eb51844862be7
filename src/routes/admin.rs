//! Admin read routes, behind `Authorization: Bearer ADMIN_TOKEN`.

use worker::{Env, Request, Response};

use crate::admin::{self, EventsQuery};
use crate::auth::authorize_admin;
use crate::error::{AppError, Result};
use crate::event::is_event_id;
use crate::store::keys;

use super::{json, load_config, state};

pub fn authorize(req: &Request, env: &Env) -> Result<()> {
    let config = load_config(env)?;
    let authorization = req.headers().get("authorization").ok().flatten();
    authorize_admin(config.admin_token(), authorization.as_deref())
}

/// `GET /events/{id}`: the stored outcome of an event.
pub async fn get_event(env: &Env, event_id: &str) -> Result<worker::Result<Response>> {
    if !is_event_id(event_id) {
        return Err(AppError::NotFound);
    }
    let record = keys::event(event_id)
        .load(&state(env)?)
        .await?
        .ok_or(AppError::NotFound)?;
    let body = serde_json::to_string(&record)
        .map_err(|_| AppError::Internal("a stored event record does not serialise"))?;
    Ok(json(200, body))
}

/// `GET /events?limit=N&cursor=…`: a page of recorded events (see `crate::admin` for the order).
pub async fn list_events(req: &Request, env: &Env) -> Result<worker::Result<Response>> {
    let url = req.inner().url();
    let query = url
        .split_once('?')
        .map(|(_, rest)| rest.split('#').next().unwrap_or(""));
    let query = EventsQuery::parse(query)?;
    let page = admin::list_events(&state(env)?, &query).await?;
    let body = serde_json::to_string(&page)
        .map_err(|_| AppError::Internal("a page of event records does not serialise"))?;
    Ok(json(200, body))
}
