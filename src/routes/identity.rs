//! `POST /identity/verification-sessions`, `GET /identity/users` and `GET /identity/users/{id}`
//! (admin).

use worker::{Request, Response};

use crate::error::{AppError, Result};
use crate::handlers::identity::{self, CreateSession, CreateSessionInput};
use crate::queue::Work;
use crate::record_index::Table;

use super::{json, read_json, record_response, Ctx};

pub async fn create_session(req: &mut Request, ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    ctx.config()?;
    let input: CreateSessionInput = read_json(req).await?;
    // Refused here, before a queue is named after the user id.
    let request = CreateSession::parse(input)?;
    request.validate().map_err(AppError::from)?;
    let work = Work::CreateSession(request);
    let created = super::entity::run::<identity::Created>(ctx, &work)
        .await?
        .ok_or(AppError::Internal("a session creation has no user"))?;
    let body = serde_json::to_string(&created)
        .map_err(|_| AppError::Internal("a created session does not serialise"))?;
    Ok(json(201, body))
}

/// `GET /identity/users?status=&since=&until=&limit=&cursor=`: a page of the users' index,
/// newest `updated_at` first (one Durable Object request, no KV read).
pub async fn list_users(url: &str, ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    Ok(super::json(
        200,
        query_users(ctx, super::query_of(url)).await?,
    ))
}

/// The page's JSON for a query string of `GET /identity/users` (the admin console's call).
pub async fn query_users(ctx: &Ctx<'_>, query: Option<&str>) -> Result<String> {
    super::event_log::list(ctx, Table::Users, query).await
}

pub async fn get_user(ctx: &Ctx<'_>, user_id: &str) -> Result<worker::Result<Response>> {
    record_response(
        crate::error::Record::IdentityUser,
        user(ctx, user_id).await?,
    )
}

/// A user's verification state and sessions, as `GET /identity/users/{id}` shows them.
pub async fn user(ctx: &Ctx<'_>, user_id: &str) -> Result<Option<serde_json::Value>> {
    let max_attempts = ctx.config()?.identity_max_attempts;
    identity::user_view(ctx.store()?, user_id, max_attempts).await
}
