//! `GET /success`, `POST /charges`, `GET /customers/{id}`, `GET /charges/{id}`.

use worker::{Request, Response};

use crate::billing::{is_prefixed_id, session_id_from_url, ChargeInput, ChargeRequest};
use crate::error::{AppError, Result};
use crate::handlers::{charges, setup};
use crate::pages;
use crate::store::keys;

use super::{
    app_origin, json, random_bits, read_json, record_response, within_rate_limit, Ctx,
    SUCCESS_RATE_LIMITER,
};

/// The page Checkout returns to. Always a page, never JSON: a browser is looking at it.
pub async fn success(req: &mut Request, ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    let url = req.inner().url();
    let result = async {
        within_rate_limit(ctx, SUCCESS_RATE_LIMITER, req).await?;
        let session_id = session_id_from_url(&url)?;
        let services = ctx.services()?;
        setup::complete_from_success_page(&services, &session_id).await
    }
    .await;
    let (status, body) = match result {
        Ok(view) => (view.status(), view.render()),
        Err(error) => {
            if error.status() >= 500 {
                // Status, type, code and request id of a Stripe error, never its message.
                ctx.trace
                    .note(format!("success page failed: {}", error.log_text()));
            }
            pages::success_error_page(&error)
        }
    };
    Ok(super::html(ctx, status, &body))
}

pub async fn create_charge(req: &mut Request, ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    let config = ctx.config()?;
    // The recovery session returns here.
    let origin = app_origin(config, req)?;
    let input: ChargeInput = read_json(req).await?;
    let request = ChargeRequest::parse(input, &config.default_currency)?;
    let random = random_bits()?;
    let services = ctx.services()?;
    let record = charges::create_charge(&services, &request, random, &origin).await?;
    let (status, body) = record.answer();
    Ok(json(status, body.to_string()))
}

pub async fn get_customer(ctx: &Ctx<'_>, id: &str) -> Result<worker::Result<Response>> {
    if !is_prefixed_id(id, "cus_") {
        return Err(AppError::NotFound);
    }
    record_response(keys::customer(id).load(ctx.store()?).await?)
}

pub async fn get_charge(ctx: &Ctx<'_>, id: &str) -> Result<worker::Result<Response>> {
    if !is_prefixed_id(id, "pi_") {
        return Err(AppError::NotFound);
    }
    record_response(keys::charge(id).load(ctx.store()?).await?)
}
