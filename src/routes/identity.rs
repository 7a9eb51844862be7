//! `POST /identity/verification-sessions` and `GET /identity/users/{id}` (admin).

use worker::{Env, Request, Response};

use crate::error::Result;
use crate::handlers::identity::{self, CreateSession};
use crate::services::{Services, Trace};
use crate::stripe::fetch::FetchTransport;

use super::{json, load_config, read_json, record_response, state};

pub async fn create_session(
    req: &mut Request,
    env: &Env,
    now: i64,
    trace: &Trace,
) -> Result<worker::Result<Response>> {
    let config = load_config(env)?;
    let request: CreateSession = read_json(req).await?;
    let store = state(env)?;
    let services = Services::new(&store, &FetchTransport, &config, now, trace);
    let created = identity::create_session(&request, &services).await?;
    let body = serde_json::to_string(&created)
        .map_err(|_| crate::error::AppError::Internal("a created session does not serialise"))?;
    Ok(json(201, body))
}

pub async fn get_user(env: &Env, user_id: &str) -> Result<worker::Result<Response>> {
    let config = load_config(env)?;
    let view = identity::user_view(&state(env)?, user_id, config.identity_max_attempts).await?;
    record_response(view)
}
