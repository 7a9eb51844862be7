//! `POST /webhook`: reads the raw body and the signature header, hands them to the core.
//! The hot path: it reads the request as the runtime gave it (no `worker::Request`) and the
//! settings from the per-isolate cache.

use worker::worker_sys::web_sys::Request;

use crate::entity::Entity;
use crate::error::{AppError, Result};
use crate::event::thin::ThinEvent;
use crate::event::{Event, EventError};
use crate::queue::{IndexAs, Work};
use crate::signature::SIGNATURE_HEADER;
use crate::store::keys;
use crate::webhook::{
    link_thin, process, read_thin, verified_event, Delivery, Receipt, ThinNext, Verified,
    MAX_BODY_BYTES,
};

use super::{event_log, read_body_capped, Ctx};

pub async fn post(req: &Request, ctx: &Ctx<'_>) -> Result<Receipt> {
    // Refuse by the announced length before reading; the core checks the real length too.
    let announced = req.headers().get("content-length").ok().flatten();
    let announced = announced.and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(AppError::PayloadTooLarge);
    }
    let config = ctx.config()?;
    let secrets = config.webhook_secrets()?;
    let signature_header = req.headers().get(SIGNATURE_HEADER).ok().flatten();
    let unreadable =
        || AppError::Event(EventError::NotAnEvent("the body could not be read".into()));
    let body = if announced.is_some() {
        // A Content-Length within the cap (checked above) frames the body, so the runtime
        // can hand it over in one piece: one promise and one copy into wasm memory, where
        // streaming it costs a promise and a few closures per chunk. The real length is
        // checked before that copy (wasm memory never shrinks), and again by the core.
        let promise = req.array_buffer().map_err(|_| unreadable())?;
        let buffer = js_sys::futures::JsFuture::from(promise)
            .await
            .map_err(|_| unreadable())?;
        let bytes = js_sys::Uint8Array::new(&buffer);
        if bytes.length() as usize > MAX_BODY_BYTES {
            return Err(AppError::PayloadTooLarge);
        }
        bytes.to_vec()
    } else {
        read_body_capped(req.body(), MAX_BODY_BYTES, unreadable).await?
    };
    let delivery = Delivery {
        body: &body,
        signature_header: signature_header.as_deref(),
        now: ctx.now,
    };
    match verified_event(secrets, config.webhook_tolerance_seconds, delivery)? {
        Verified::Snapshot(event) => process_event(ctx, event, true).await,
        Verified::Thin(thin) => process_thin(ctx, &thin, true).await,
    }
}

/// A verified thin event, delivered or caught up. The related object is read here, before the
/// queue: its owner names the queue. One it stands for is processed as that snapshot event
/// ([`process_event`], which indexes it); one that ends here (a type not acted on, Stripe's
/// health alert, a read that failed) has its own record indexed. `delivered`: Stripe sent it
/// to `POST /webhook` (not a catch-up or a replay).
pub async fn process_thin(ctx: &Ctx<'_>, thin: &ThinEvent, delivered: bool) -> Result<Receipt> {
    let services = ctx.services()?.for_webhook();
    let unqueued = IndexAs {
        entity: None,
        delivered,
    };
    let indexed = |result| index(ctx, &thin.id, unqueued, result);
    match read_thin(&services, thin, ctx.now).await {
        Ok(ThinNext::Done(receipt)) => indexed(Ok(receipt)).await,
        Ok(ThinNext::Handle(event)) => {
            let processed = process_event(ctx, event, delivered).await?;
            Ok(link_thin(&services, thin, processed, ctx.now).await?)
        }
        Err(error) => indexed(Err(error.into())).await,
    }
}

/// Every verified event goes through here, however it arrived (a delivery, a catch-up, a
/// replay), so each gets the same dedupe, handling and idempotency keys. An event of a type
/// acted on runs in its entity's queue (`routes::entity`), after every earlier piece of work
/// of that user or customer: racing events end as if delivered one by one.
/// The queue is the one of the owner we recorded for the event's object when there is one
/// (`Entity::recorded_owner_of`): a redacted session's payload no longer names its user.
pub async fn process_event(ctx: &Ctx<'_>, event: Event, delivered: bool) -> Result<Receipt> {
    let recorded_user = match Entity::recorded_owner_of(&event) {
        Some(session) => keys::identity_session(&session)
            .load_tolerant(ctx.store()?)
            .await?
            .and_then(|record| record.user_id),
        None => None,
    };
    let entity = Entity::of_event(&event, recorded_user.as_deref());
    let event_id = event.id.clone();
    let index_as = IndexAs {
        entity: entity.as_ref().map(|e| e.as_str().to_owned()),
        delivered,
    };
    let work = Work::Event(event);
    let queued = super::entity::run_in::<Receipt>(ctx, entity, &work, Some(index_as.clone()));
    let result = match queued.await {
        Ok(Some(receipt)) => Ok(receipt),
        Ok(None) => {
            let Work::Event(event) = work else {
                unreachable!("built as an event above")
            };
            let services = ctx.services()?.for_webhook();
            process(&services, event, ctx.now).await.map_err(Into::into)
        }
        Err(error) => Err(error),
    };
    index(ctx, &event_id, index_as, result).await
}

/// The event index (`routes::event_log`) gets the record this processing wrote, unless the
/// entity's queue sent its row already (with the work's list rows, `queue::run`): carried
/// back in the receipt when the queue did not, or, when the processing answered an error (a
/// failure a retry can get past), read back from KV (one read, on failures only). A
/// duplicate wrote nothing.
async fn index(
    ctx: &Ctx<'_>,
    event_id: &str,
    index_as: IndexAs,
    result: Result<Receipt>,
) -> Result<Receipt> {
    let record = match &result {
        Ok(receipt) => receipt.record.clone().map(|record| *record),
        // The processing's error is the answer, whatever this read comes to.
        Err(_) => match ctx.store() {
            Ok(store) => keys::event(event_id)
                .load_tolerant(store)
                .await
                .unwrap_or_default(),
            Err(_) => None,
        },
    };
    if let Some(record) = record {
        event_log::record(ctx, index_as.entry(record)).await;
    }
    result
}

/// The body of the 200 answer, without building it through a JSON value each time.
pub fn received(duplicate: bool) -> String {
    if duplicate {
        r#"{"received":true,"duplicate":true}"#
    } else {
        r#"{"received":true,"duplicate":false}"#
    }
    .to_owned()
}
