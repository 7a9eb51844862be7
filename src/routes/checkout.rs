//! `GET /` and `POST /create-checkout-session`: save a card with Checkout in setup mode.

use worker::{Request, Response};

use crate::billing::{CheckoutRecord, SetupRequest};
use crate::error::{AppError, Result};
use crate::objects::CheckoutSession;
use crate::store::keys;
use crate::stripe::IdempotencyKey;

use crate::router::{form_field, form_fields, MAX_FORM_BYTES};

use super::{app_origin, random_bits, read_capped, Ctx};

const HOME: &str = r#"<!doctype html>
<html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Save a card</title>
<body style="font-family:system-ui,sans-serif;max-width:32em;margin:3em auto;padding:0 1em">
<h1>Save a card for later</h1>
<p>You will be sent to Stripe Checkout to enter a card. Nothing is charged now.</p>
<form method="post" action="/create-checkout-session">
<label>Customer id (optional) <input name="customer" placeholder="cus_…" pattern="cus_[A-Za-z0-9_]+"></label>
<input type="hidden" name="currency" value="">
<p><button type="submit">Save a card</button></p>
</form>
</body></html>
"#;

pub fn home() -> worker::Result<Response> {
    let response = Response::from_html(HOME)?;
    response.headers().set("cache-control", "no-store")?;
    Ok(response)
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
    let request = setup.to_stripe(&origin, IdempotencyKey::random(random_bits()?));

    let services = ctx.services()?;
    let session: CheckoutSession = services.stripe(&request).await?;
    let url = session.url.clone().ok_or(AppError::Internal(
        "Stripe returned a Checkout Session without a url",
    ))?;
    keys::checkout(&session.id)
        .save(
            services.store,
            &CheckoutRecord::opened(&session, ctx.now),
            None,
        )
        .await?;
    if !url.starts_with("https://") && !url.starts_with("http://") {
        return Err(AppError::Internal(
            "Stripe returned a Checkout url that is not http(s)",
        ));
    }
    Ok(see_other(&url))
}

fn see_other(location: &str) -> worker::Result<Response> {
    let response = Response::empty()?.with_status(303);
    response.headers().set("location", location)?;
    response.headers().set("cache-control", "no-store")?;
    Ok(response)
}
