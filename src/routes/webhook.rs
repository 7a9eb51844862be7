//! `POST /webhook`: reads the raw body and the signature header, hands them to the core.

use worker::{Env, Request};

use crate::error::{AppError, Result};
use crate::event::EventError;
use crate::services::{Services, Trace};
use crate::signature::SIGNATURE_HEADER;
use crate::stripe::fetch::FetchTransport;
use crate::webhook::{receive, Delivery, Receipt, MAX_BODY_BYTES};

use super::{load_config, read_capped, state};

pub async fn post(req: &mut Request, env: &Env, now: i64, trace: &Trace) -> Result<Receipt> {
    // Refuse by the announced length before reading; the core checks the real length too.
    let announced = req.headers().get("content-length").ok().flatten();
    if announced
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(AppError::PayloadTooLarge);
    }
    let config = load_config(env)?;
    let secrets = config.webhook_secrets()?;
    let signature_header = req.headers().get(SIGNATURE_HEADER).ok().flatten();
    let body = read_capped(req, MAX_BODY_BYTES, || {
        AppError::Event(EventError::NotAnEvent("the body could not be read".into()))
    })
    .await?;
    let delivery = Delivery {
        body: &body,
        signature_header: signature_header.as_deref(),
        now,
    };
    let store = state(env)?;
    let services = Services::new(&store, &FetchTransport, &config, now, trace).for_webhook();
    Ok(receive(
        &services,
        secrets,
        config.webhook_tolerance_seconds,
        delivery,
    )
    .await?)
}
