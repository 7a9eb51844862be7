//! `GET /success`, `POST /charges`, `GET /customers/{id}`, `GET /charges/{id}`.

use worker::{Env, Request, Response};

use crate::error::{AppError, Result};
use crate::services::Trace;

pub async fn success(
    _req: &mut Request,
    _env: &Env,
    _now: i64,
    _trace: &Trace,
) -> Result<worker::Result<Response>> {
    Err(AppError::NotFound)
}

pub async fn create_charge(
    _req: &mut Request,
    _env: &Env,
    _now: i64,
    _trace: &Trace,
) -> Result<worker::Result<Response>> {
    Err(AppError::NotFound)
}

pub async fn get_customer(_env: &Env, _id: &str) -> Result<worker::Result<Response>> {
    Err(AppError::NotFound)
}

pub async fn get_charge(_env: &Env, _id: &str) -> Result<worker::Result<Response>> {
    Err(AppError::NotFound)
}
