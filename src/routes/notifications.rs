//! Admin routes over the notification outbox (`crate::outbox`); the glue checks
//! `Authorization: Bearer ADMIN_TOKEN` first.

use worker::Response;

use crate::error::{AppError, Record, Result};
use crate::outbox::{self, NotificationsQuery};

use super::{json, record_response, Ctx};

/// `GET /notifications?state=pending|dead&limit=N&cursor=…`: a page of one index.
pub async fn list(url: &str, ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    let query = url
        .split_once('?')
        .map(|(_, rest)| rest.split('#').next().unwrap_or(""));
    let query = NotificationsQuery::parse(query)?;
    let page = outbox::list_notifications(ctx.store()?, &query).await?;
    let body = serde_json::to_string(&page)
        .map_err(|_| AppError::Internal("a page of notifications does not serialise"))?;
    Ok(json(200, body))
}

/// `GET /notifications/{id}`: the outbox record, with its attempts.
pub async fn get(ctx: &Ctx<'_>, id: &str) -> Result<worker::Result<Response>> {
    record_response(
        Record::Notification,
        Some(outbox::load(ctx.store()?, id).await?),
    )
}

/// `POST /notifications/{id}/resend`: one attempt now, whatever the schedule says.
pub async fn resend(ctx: &Ctx<'_>, id: &str) -> Result<worker::Result<Response>> {
    let services = ctx.services()?;
    let target = services.notify_target(ctx.now);
    let answer = outbox::resend(services.store, services.transport, target, id, ctx.now).await?;
    let body = serde_json::to_string(&answer)
        .map_err(|_| AppError::Internal("a resend answer does not serialise"))?;
    Ok(json(200, body))
}
