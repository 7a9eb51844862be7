//! Admin routes over the notification outbox (`crate::outbox`); the glue checks
//! `Authorization: Bearer ADMIN_TOKEN` first.

use worker::Response;

use crate::error::{AppError, Record, Result};
use crate::outbox;
use crate::record_index::Table;

use super::{json, record_response, Ctx};

/// `GET /notifications?state=&kind=&user=&customer=&since=&until=&limit=&cursor=`: a page of
/// the notifications' index, newest first (one Durable Object request, no KV read).
pub async fn list(url: &str, ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    Ok(json(200, query(ctx, super::query_of(url)).await?))
}

/// The page's JSON for a query string of `GET /notifications` (the admin console's call).
pub async fn query(ctx: &Ctx<'_>, query: Option<&str>) -> Result<String> {
    super::event_log::list(ctx, Table::Notifications, query).await
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
