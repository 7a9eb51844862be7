//! `POST /identity/verification-sessions` and `GET /identity/users/{id}` (admin).

use worker::{Env, Request, Response};

use crate::error::{AppError, Result};
use crate::services::Trace;

pub async fn create_session(
    _req: &mut Request,
    _env: &Env,
    _now: i64,
    _trace: &Trace,
) -> Result<worker::Result<Response>> {
    Err(AppError::NotFound)
}

pub async fn get_user(_env: &Env, _id: &str) -> Result<worker::Result<Response>> {
    Err(AppError::NotFound)
}
