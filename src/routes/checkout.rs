//! `GET /` and `POST /create-checkout-session`: the anonymous "Save a card" form, which opens
//! a customerless setup session (switched off with `PUBLIC_SETUP=false`); and
//! `POST /setup-sessions` (admin), a setup session the app binds to one of its customers.

use worker::{Request, Response};

use crate::billing::{SetupRequest, SetupSessionInput};
use crate::error::{AppError, Result};
use crate::handlers::setup;
use crate::pages;

use crate::router::{form_field, form_fields, is_same_origin_post, origin_of, MAX_FORM_BYTES};

use super::{
    app_origin, json, random_bits, read_capped, read_json, within_rate_limit, Ctx,
    SETUP_RATE_LIMITER,
};

pub fn home(ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    if !ctx.config()?.public_setup {
        return Err(AppError::NotFound);
    }
    Ok(super::html(ctx, 200, &pages::home()))
}

/// Always a page or a redirect: a browser posted the form. Failures never quote Stripe.
pub async fn create(req: &mut Request, ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    match open_public(req, ctx).await {
        Ok(url) => Ok(see_other(&url)),
        Err(error) => {
            if error.status() >= 500 {
                ctx.trace
                    .note(format!("public setup failed: {}", error.log_text()));
            }
            let (status, body) = pages::setup_error_page(&error);
            // Past the global ceiling: when there is room again.
            Ok(super::html(ctx, status, &body).and_then(|page| {
                if let Some(seconds) = error.retry_after() {
                    page.headers().set("retry-after", &seconds.to_string())?;
                }
                Ok(page)
            }))
        }
    }
}

async fn open_public(req: &mut Request, ctx: &Ctx<'_>) -> Result<String> {
    let config = ctx.config()?;
    if !config.public_setup {
        return Err(AppError::NotFound);
    }
    let origin = app_origin(config, req)?;
    // APP_BASE_URL may carry a path; a browser's `Origin` is scheme, host and port only.
    let own = req.inner().url();
    let own_origins = [
        origin_of(&origin).unwrap_or(&origin),
        origin_of(&own).unwrap_or(""),
    ];
    let header = |name: &str| req.headers().get(name).ok().flatten();
    if !is_same_origin_post(
        header("sec-fetch-site").as_deref(),
        header("origin").as_deref(),
        &own_origins,
    ) {
        return Err(AppError::CrossSiteForm);
    }
    within_rate_limit(ctx, SETUP_RATE_LIMITER, req).await?;
    let content_type = header("content-type");
    let body = read_capped(req, MAX_FORM_BYTES, || AppError::BadForm).await?;
    let fields = form_fields(content_type.as_deref(), &body)?;
    let setup = SetupRequest::public(
        form_field(&fields, "customer"),
        form_field(&fields, "currency"),
        &config.default_currency,
    )?;
    // Counted only for a request about to reach Stripe; the form refused above costs nothing.
    super::ceiling::take(ctx).await?;
    let random = random_bits()?;
    let services = ctx.services()?;
    Ok(
        setup::open_setup_session(&services, &setup, &origin, random)
            .await?
            .url,
    )
}

/// `POST /setup-sessions` (admin): `{customer, currency?, success_path?}` → 201 `{id, url}`.
pub async fn bind(req: &mut Request, ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    let config = ctx.config()?;
    let origin = app_origin(config, req)?;
    let input: SetupSessionInput = read_json(req).await?;
    let setup = SetupRequest::bound(input, &config.default_currency)?;
    let random = random_bits()?;
    let services = ctx.services()?;
    let opened = setup::open_setup_session(&services, &setup, &origin, random).await?;
    let body =
        crate::router::json_object(vec![("id", opened.id.into()), ("url", opened.url.into())]);
    let body = crate::router::json_string(&body);
    Ok(json(201, body))
}

fn see_other(location: &str) -> worker::Result<Response> {
    let response = Response::empty()?.with_status(303);
    response.headers().set("location", location)?;
    response.headers().set("cache-control", "no-store")?;
    Ok(response)
}
