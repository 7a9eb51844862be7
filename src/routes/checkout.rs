//! `GET /` and `POST /create-checkout-session`: save a card with Checkout in setup mode.

use worker::{Request, Response};

use crate::billing::SetupRequest;
use crate::error::{AppError, Result};
use crate::handlers::setup;
use crate::pages;

use crate::router::{form_field, form_fields, MAX_FORM_BYTES};

use super::{app_origin, random_bits, read_capped, Ctx};

pub fn home() -> worker::Result<Response> {
    super::html(200, pages::HOME)
}

pub async fn create(req: &mut Request, ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    let config = ctx.config()?;
    let content_type = req.headers().get("content-type").ok().flatten();
    let body = read_capped(req, MAX_FORM_BYTES, || AppError::BadForm).await?;
    let fields = form_fields(content_type.as_deref(), &body)?;
    let setup = SetupRequest::parse(
        form_field(&fields, "customer"),
        form_field(&fields, "currency"),
        &config.default_currency,
    )?;
    let origin = app_origin(config, req, AppError::BadForm)?;
    let random = random_bits()?;
    let services = ctx.services()?;
    let url = setup::open_setup_session(&services, &setup, &origin, random).await?;
    Ok(see_other(&url))
}

fn see_other(location: &str) -> worker::Result<Response> {
    let response = Response::empty()?.with_status(303);
    response.headers().set("location", location)?;
    response.headers().set("cache-control", "no-store")?;
    Ok(response)
}
