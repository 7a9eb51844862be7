//! Event catch-up and replay over KV, Stripe's Events API and `process_event`: the scheduled
//! step, `GET /catch-up` and `POST /events/{id}/replay` (admin).

use serde_json::value::RawValue;
use worker::Response;

use crate::catchup::run::{self, EventPage, Port};
use crate::catchup::thin::{is_thin_due, ThinBounds, ThinEventPage};
use crate::catchup::{is_due, looks_silent, Bounds, RunReport};
use crate::error::{AppError, Result};
use crate::event::thin::ThinEvent;
use crate::event::Event;
use crate::notify::Notification;
use crate::router::{json_object, json_string};
use crate::store::keys;
use crate::stripe::StripeRequest;
use crate::webhook::Receipt;

use super::{json, webhook, Ctx};

/// Stripe and the delivery path, for one request or scheduled event.
struct Live<'c, 'a>(&'c Ctx<'a>);

impl Port for Live<'_, '_> {
    async fn list_events(&self, request: &StripeRequest) -> Result<EventPage> {
        self.0.services()?.for_webhook().stripe(request).await
    }

    async fn retrieve_event(&self, request: &StripeRequest) -> Result<Box<RawValue>> {
        self.0.services()?.for_webhook().stripe(request).await
    }

    /// Every verified event goes through `process_event`, so a catch-up or a replay racing a
    /// late delivery sends the same idempotency keys and makes no second effect.
    async fn process_event(&self, event: Event) -> Result<Receipt> {
        webhook::process_event(self.0, event, false).await
    }

    async fn list_thin_events(&self, request: &StripeRequest) -> Result<ThinEventPage> {
        self.0.services()?.for_webhook().stripe(request).await
    }

    /// As `routes::webhook::post` takes a verified thin event.
    async fn process_thin(&self, thin: ThinEvent) -> Result<Receipt> {
        webhook::process_thin(self.0, &thin, false).await
    }
}

/// The thin catch-up step (`CATCHUP_THIN_EVENTS=true`): a bounded run the minute after the v1
/// catch-up is due, else `None`.
pub async fn thin_step(ctx: &Ctx<'_>) -> Result<Option<RunReport>> {
    let config = ctx.config()?;
    if !config.catchup_thin_events || !is_thin_due(ctx.now, config.catchup_every_minutes) {
        return Ok(None);
    }
    let settle = config.catchup_settle_seconds as i64;
    let bounds = ThinBounds::FREE_PLAN;
    let report = run::run_thin(ctx.store()?, &Live(ctx), ctx.now, settle, bounds).await?;
    Ok(Some(report))
}

/// The scheduled step: a bounded run when one is due (`CATCHUP_EVERY_MINUTES`), else `None`.
pub async fn step(ctx: &Ctx<'_>) -> Result<Option<RunReport>> {
    let config = ctx.config()?;
    if !is_due(ctx.now, config.catchup_every_minutes) {
        return Ok(None);
    }
    let settle = config.catchup_settle_seconds as i64;
    let report = run::run(ctx.store()?, &Live(ctx), ctx.now, settle, Bounds::FREE_PLAN).await?;
    if report.processed > 0 {
        let run = crate::json::to_value(&report)
            .map_err(|_| AppError::Internal("a catch-up report does not serialise"))?;
        ctx.services()?
            .notify(Notification::catchup_found_undelivered(report.at, run))
            .await?;
        alert_if_silent(ctx, report.processed).await?;
    }
    Ok(Some(report))
}

/// `ops.endpoint_silent`, once per silence: catch-up found events Stripe did not deliver and
/// no delivery arrived for `ENDPOINT_SILENT_AFTER_MINUTES` (the index's marks: one Durable
/// Object request, only on a run that found something and only with `OPS_NOTIFY_URL`).
async fn alert_if_silent(ctx: &Ctx<'_>, found: u32) -> Result<()> {
    let config = ctx.config()?;
    if config.ops_notify_url.is_none() {
        return Ok(());
    }
    let after = i64::from(config.endpoint_silent_after_minutes) * 60;
    let marks = super::event_log::marks(ctx).await?;
    let since = marks.silent_since();
    match since.filter(|_| looks_silent(found, since, ctx.now, after)) {
        Some(since) => {
            let alert = Notification::endpoint_silent(since, marks.last_delivery, ctx.now, found);
            Ok(ctx.services()?.notify(alert).await?)
        }
        None => Ok(()),
    }
}

/// `GET /catch-up`: the cursor, the scan in progress and the last run that found something.
pub async fn get(ctx: &Ctx<'_>) -> Result<worker::Result<Response>> {
    let state = keys::catchup_state().load(ctx.store()?).await?;
    let config = ctx.config()?;
    let thin = match config.catchup_thin_events {
        true => Some(keys::catchup_thin_state().load(ctx.store()?).await?),
        false => None,
    };
    let bounds = |pages: u32, limit: u32, processed: u32| {
        json_object(vec![
            ("pages", pages.into()),
            ("limit", limit.into()),
            ("processed", processed.into()),
        ])
    };
    let thin = thin.map(|state| {
        let plan = ThinBounds::FREE_PLAN;
        json_object(vec![
            ("state", crate::json::to_value(&state).unwrap_or_default()),
            ("bounds", bounds(plan.pages, plan.limit, plan.processed)),
        ])
    });
    let plan = Bounds::FREE_PLAN;
    let body = json_object(vec![
        ("state", crate::json::to_value(&state).unwrap_or_default()),
        ("thin_events", thin.unwrap_or_default()),
        ("started", state.is_some().into()),
        ("every_minutes", config.catchup_every_minutes.into()),
        ("settle_seconds", config.catchup_settle_seconds.into()),
        ("bounds", bounds(plan.pages, plan.limit, plan.processed)),
    ]);
    Ok(json(200, json_string(&body)))
}

/// `POST /events/{id}/replay`: fetches the event from Stripe and processes it, also when it is
/// recorded failed for good; a handled one changes nothing and says so.
pub async fn replay(ctx: &Ctx<'_>, event_id: &str) -> Result<worker::Result<Response>> {
    let answer = replayed(ctx, event_id).await?;
    let body = serde_json::to_string(&answer)
        .map_err(|_| AppError::Internal("a replay answer does not serialise"))?;
    Ok(json(200, body))
}

/// The replay itself, for the JSON route and the console's confirm step alike.
pub async fn replayed(ctx: &Ctx<'_>, event_id: &str) -> Result<run::ReplayAnswer> {
    run::replay(ctx.store()?, &Live(ctx), event_id).await
}
