//! A replay's dry run: the event fetched from Stripe as `POST /events/{id}/replay` fetches
//! it, then [`dispatch`] (the handlers and their pure decisions, the same code a replay runs)
//! over the worker's own store and transport in their dry mode ([`DryLog`]): Stripe reads go
//! through (a decision may need them); every write, to Stripe or a notification receiver, is
//! listed and not sent, and the handler stops there, since what follows depends on the answer.
//! Store writes stay in the log, which the run reads back, and are listed.

use crate::console::Preview;
use crate::dry::{DryLog, NOT_SENT};
use crate::error::{AppError, Record};
use crate::event::{is_event_id, Event, Outcome};
use crate::http::Transport;
use crate::services::Services;
use crate::store::{keys, Store};
use crate::stripe::{calls, StripeError};

use super::dispatch;

/// What replaying `event_id` would do, by the replay's own rules: an event recorded handled
/// or ignored is left as it is; any other is fetched from Stripe and handled with nothing
/// carried out. `services`' store and transport must be in dry mode over `log` (the worker's:
/// `EntityStore::dry`, `FetchTransport(Some(log))`), with the webhook's Stripe budget.
pub async fn preview<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    log: &DryLog,
    event_id: &str,
) -> Result<Preview, AppError> {
    if !is_event_id(event_id) {
        return Err(AppError::NoRecord(Record::StripeEvent));
    }
    let recorded = keys::event(event_id).load_tolerant(services.store).await?;
    if let Some(done) = recorded.filter(|r| r.outcome.is_final()) {
        return Ok(Preview {
            event_id: event_id.to_owned(),
            event_type: done.event_type,
            unchanged: true,
            ends: format!(
                "Recorded {}: a replay changes nothing.",
                done.outcome.as_str()
            ),
            ..Preview::default()
        });
    }
    let raw: Box<serde_json::value::RawValue> =
        match services.stripe(&calls::retrieve_event(event_id)).await {
            Err(AppError::Stripe(e)) if e.api_error().is_some_and(|api| api.status == 404) => {
                return Err(AppError::NoRecord(Record::StripeEvent))
            }
            other => other?,
        };
    let event = Event::parse(raw.get().as_bytes())?;
    let result = dispatch(&event, services).await;
    let stopped = log.sends().len();
    let ends = match result {
        Ok(handled) if handled.outcome == Outcome::Handled => "A replay would handle it.".to_owned(),
        Ok(handled) => format!(
            "A replay would record it {}{}.",
            handled.outcome.as_str(),
            handled.reason.map_or(String::new(), |r| format!(": {r}"))
        ),
        Err(step) if stopped > 0 && is_not_sent(&step.error) => format!(
            "A replay would send the last call listed (step {}) and go on by Stripe's answer; the preview stops there.",
            step.step
        ),
        Err(step) => format!(
            "A replay would fail again at step {}: {}",
            step.step,
            step.error.log_text()
        ),
    };
    let mut writes = log.writes();
    writes.push(format!("put event:{event_id} (the event's record)"));
    Ok(Preview {
        event_id: event.id,
        event_type: event.event_type,
        unchanged: false,
        reads: log.reads(),
        sends: log.sends(),
        writes,
        ends,
    })
}

fn is_not_sent(error: &AppError) -> bool {
    matches!(error, AppError::Stripe(StripeError::Unsendable(reason)) if reason == NOT_SENT)
}
