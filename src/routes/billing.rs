//! `GET /success`, `POST /charges`, `GET /charges`, `GET /customers/{id}`, `GET /charges/{id}`.

use worker::{Request, Response};

use crate::billing::{
    is_prefixed_id, session_id_from_url, ChargeInput, ChargeRecord, ChargeRequest, CustomerRecord,
};
use crate::error::{AppError, Record, Result};
use crate::handlers::setup::{self, SuccessStep};
use crate::queue::{success_page, ChargeWork, Work};
use crate::record_index::Table;
use crate::store::keys;

use super::{
    app_origin, json, read_json, record_response, within_rate_limit, Ctx, SUCCESS_RATE_LIMITER,
};

/// The page Checkout returns to. Always a page, never JSON: a browser is looking at it. The
/// record and Stripe are read here; the completion is recorded in the entity's queue, with
/// that customer's events.
pub async fn success(req: &mut Request, ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    let url = req.inner().url();
    let step = async {
        within_rate_limit(ctx, SUCCESS_RATE_LIMITER, req).await?;
        let session_id = session_id_from_url(&url)?;
        let services = ctx.services()?;
        setup::success_step(&services, &session_id).await
    }
    .await;
    let (status, body) = match step {
        Ok(SuccessStep::Done(view)) => (view.status(), view.render()),
        Ok(SuccessStep::Complete { raw, .. }) => {
            let work = Work::Success(raw);
            match super::entity::run::<(u16, String)>(ctx, &work).await {
                Ok(Some(page)) => page,
                Ok(None) => success_page(Err(AppError::NotFound), ctx.trace),
                Err(error) => success_page(Err(error), ctx.trace),
            }
        }
        Err(error) => success_page(Err(error), ctx.trace),
    };
    Ok(super::html(ctx, status, &body))
}

pub async fn create_charge(req: &mut Request, ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    let config = ctx.config()?;
    // The recovery session returns here.
    let origin = app_origin(config, req)?;
    let input: ChargeInput = read_json(req).await?;
    let request = ChargeRequest::parse(input, &config.default_currency)?;
    // In the customer's queue, with the customer's events (a paid recovery, a decline).
    let work = Work::Charge(ChargeWork { request, origin });
    let record = super::entity::run::<ChargeRecord>(ctx, &work)
        .await?
        .ok_or(AppError::Internal("a charge has no customer"))?;
    let (status, body) = record.answer();
    Ok(json(status, crate::router::json_string(&body)))
}

pub async fn get_customer(ctx: &Ctx<'_>, id: &str) -> Result<worker::Result<Response>> {
    record_response(Record::Customer, customer_record(ctx, id).await?)
}

/// `GET /charges?status=&recovery=&customer=&since=&until=&limit=&cursor=`: a page of the
/// charges' index, newest first (one Durable Object request, no KV read).
pub async fn list_charges(url: &str, ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    Ok(json(200, query_charges(ctx, super::query_of(url)).await?))
}

/// The page's JSON for a query string of `GET /charges` (the admin console's call).
pub async fn query_charges(ctx: &Ctx<'_>, query: Option<&str>) -> Result<String> {
    super::event_log::list(ctx, Table::Charges, query).await
}

pub async fn get_charge(ctx: &Ctx<'_>, id: &str) -> Result<worker::Result<Response>> {
    record_response(Record::Charge, charge_record(ctx, id).await?)
}

/// `customer:{id}` (`None` for an id that is not a customer's): the JSON route and the console.
pub async fn customer_record(ctx: &Ctx<'_>, id: &str) -> Result<Option<CustomerRecord>> {
    if !is_prefixed_id(id, "cus_") {
        return Ok(None);
    }
    Ok(keys::customer(id).load(ctx.store()?).await?)
}

/// `charge:{id}` (`None` for an id that is not a PaymentIntent's).
pub async fn charge_record(ctx: &Ctx<'_>, id: &str) -> Result<Option<ChargeRecord>> {
    if !is_prefixed_id(id, "pi_") {
        return Ok(None);
    }
    Ok(keys::charge(id).load(ctx.store()?).await?)
}
