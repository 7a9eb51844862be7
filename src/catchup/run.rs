//! One catch-up run and one replay, over the store and a [`Port`] the adapter gives
//! (`routes::catchup`): Stripe's Events API, and processing an event exactly as a delivery's
//! verified event is (`routes::webhook::process_event`). Events fetched with the secret key are
//! Stripe's own, so there is no signature to check. Tested natively with `MemoryStore` and a
//! scripted port (`tests/core/catchup.rs`).

use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{AppError, Record};
use crate::event::{is_event_id, Event, EventRecord, Outcome};
use crate::handlers::HANDLED_EVENT_TYPES;
use crate::store::{keys, Store};
use crate::stripe::{calls, StripeError, StripeRequest};
use crate::webhook::Receipt;

use super::thin::{ThinBounds, ThinCatchupState, ThinEventPage};
use super::{decide, Bounds, CatchupState, Decision, RunReport};
use crate::event::thin::{handled_thin_types, ThinEvent};

/// A page of `GET /v1/events` as Stripe answers it (`object: "list"`, `data`, `has_more`);
/// each event stays raw until it is read as a delivered one is ([`Event::parse`]).
#[derive(Debug)]
pub struct EventPage {
    pub data: Vec<Box<RawValue>>,
    pub has_more: bool,
}
crate::json::decode_map!(EventPage {
    data: "data" required,
    has_more: "has_more" required,
});

/// What a run and a replay need besides the store.
#[allow(async_fn_in_trait)]
pub trait Port {
    /// One page of `GET /v1/events`.
    async fn list_events(&self, request: &StripeRequest) -> Result<EventPage, AppError>;
    /// `GET /v1/events/{id}`, raw.
    async fn retrieve_event(&self, request: &StripeRequest) -> Result<Box<RawValue>, AppError>;
    /// The one path every event takes, however it arrived: dedupe, dispatch, record.
    async fn process_event(&self, event: Event) -> Result<Receipt, AppError>;
    /// One page of `GET /v2/core/events`.
    async fn list_thin_events(&self, request: &StripeRequest) -> Result<ThinEventPage, AppError>;
    /// A thin event as a delivered one is taken: its related object read, then the snapshot
    /// path (`webhook::read_thin`, `process_event`, `webhook::link_thin`).
    async fn process_thin(&self, thin: ThinEvent) -> Result<Receipt, AppError>;
}

/// The id of a listed entry that does not read as an event, to page past it.
struct IdOnly {
    id: String,
}
crate::json::decode_map!(IdOnly {
    id: "id" required,
});

/// One bounded run: continues the scan in progress (or starts one), processes what is not
/// recorded with a final outcome, and stores the cursor and the report once, unless the run
/// found nothing at all (an idle run writes nothing: KV's Free plan allows 1,000 writes a
/// day). An error of the store or of the list call ends the run with nothing stored; the next
/// run does the same work again, every effect being idempotent.
pub async fn run<S: Store, P: Port>(
    store: &S,
    port: &P,
    now: i64,
    settle_seconds: i64,
    bounds: Bounds,
) -> Result<RunReport, AppError> {
    let key = keys::catchup_state();
    let stored = key.load_tolerant(store).await?;
    let mut state = stored.clone().unwrap_or_else(|| CatchupState::initial(now));
    let mut report = RunReport::new(now);
    if !state.begin(now, settle_seconds) {
        report.stopped = "not_due_yet".into();
        report.since = state.since;
        return Ok(report);
    }
    'pages: loop {
        if report.pages >= bounds.pages {
            report.stopped = "page_budget".into();
            break;
        }
        let Some(request) = state.page_request(&bounds, HANDLED_EVENT_TYPES) else {
            break;
        };
        let page = port.list_events(&request).await?;
        report.pages += 1;
        // A loop, not `collect::<Result<_, _>>()` (its own adapter in the wasm).
        let mut listed: Vec<(String, Option<Event>)> = Vec::with_capacity(page.data.len());
        for raw in &page.data {
            listed.push(match Event::parse(raw.get().as_bytes()) {
                Ok(event) => (event.id.clone(), Some(event)),
                Err(_) => serde_json::from_str::<IdOnly>(raw.get())
                    .map(|entry| (entry.id, None))
                    .map_err(|_| StripeError::Malformed {
                        status: 200,
                        reason: "a listed event has no id".into(),
                    })?,
            });
        }
        let record_keys: Vec<String> = listed
            .iter()
            .map(|(id, _)| keys::event(id).as_str().to_owned())
            .collect();
        let records = store.get_many(&record_keys).await?;
        for ((id, event), text) in listed.into_iter().zip(records) {
            let Some(event) = event else {
                report.listed += 1;
                report.malformed += 1;
                state.considered(&id);
                continue;
            };
            // A record that does not decode counts as absent, as for a delivery.
            let record = text.and_then(|t| keys::event(&id).decode(&t).ok());
            if crate::billing::leaves_nothing(&event) {
                report.inert += 1;
                report.listed += 1;
                state.considered(&id);
                continue;
            }
            match decide(record.as_ref()) {
                Decision::Done => report.already_done += 1,
                Decision::FailedForGood => report.note_failed_for_good(&id),
                Decision::Process => {
                    if report.processed >= bounds.processed {
                        report.stopped = "event_budget".into();
                        break 'pages;
                    }
                    report.processed += 1;
                    let created = event.created;
                    if note(&mut report, &id, port.process_event(event).await) {
                        state.left_unhandled(created);
                    }
                }
            }
            report.listed += 1;
            state.considered(&id);
        }
        if !page.has_more {
            state.end_scan();
            report.stopped = "caught_up".into();
            break;
        }
    }
    report.since = state.since;
    let idle = report.listed == 0 && stored.as_ref().is_none_or(|s| s.scan.is_none());
    if !idle {
        state.last_run = Some(report.clone());
        key.save(store, &state, None).await?;
    }
    Ok(report)
}

/// One bounded run of the thin catch-up (`catchup::thin`): as [`run`], over
/// `GET /v2/core/events`, each thin event not recorded with a final outcome taken as a
/// delivered one is (`Port::process_thin`). Stores its cursor once, unless idle.
pub async fn run_thin<S: Store, P: Port>(
    store: &S,
    port: &P,
    now: i64,
    settle_seconds: i64,
    bounds: ThinBounds,
) -> Result<RunReport, AppError> {
    let key = keys::catchup_thin_state();
    let stored = key.load_tolerant(store).await?;
    let mut state = stored
        .clone()
        .unwrap_or_else(|| ThinCatchupState::initial(now));
    let mut report = RunReport::new(now);
    if !state.begin(now, settle_seconds) {
        report.stopped = "not_due_yet".into();
        report.since = state.since;
        return Ok(report);
    }
    let types = handled_thin_types();
    report.stopped = "caught_up".into();
    while let Some(request) = state.page_request(&bounds, &types) {
        if report.pages >= bounds.pages {
            report.stopped = "page_budget".into();
            break;
        }
        let page = port.list_thin_events(&request).await?;
        report.pages += 1;
        if !thin_page(store, port, &page, &mut state, &mut report, bounds).await? {
            report.stopped = "event_budget".into();
            break;
        }
        if state.page_done(page.next_page_url)? {
            state.end_scan();
            break;
        }
    }
    report.since = state.since;
    let idle = report.listed == 0 && stored.as_ref().is_none_or(|s| s.scan.is_none());
    if !idle {
        state.last_run = Some(report.clone());
        key.save(store, &state, None).await?;
    }
    Ok(report)
}

/// Works one page of thin events; `false` when the event budget ran out on it (the page is
/// then read again by the next run: what it handled is recorded, so it costs a KV read).
async fn thin_page<S: Store, P: Port>(
    store: &S,
    port: &P,
    page: &ThinEventPage,
    state: &mut ThinCatchupState,
    report: &mut RunReport,
    bounds: ThinBounds,
) -> Result<bool, AppError> {
    let listed: Vec<Option<ThinEvent>> = page
        .data
        .iter()
        .map(|raw| ThinEvent::parse(raw.get().as_bytes()).ok())
        .collect();
    let record_keys: Vec<String> = listed
        .iter()
        .flatten()
        .map(|t| keys::event(&t.id).as_str().to_owned())
        .collect();
    let mut records = store.get_many(&record_keys).await?.into_iter();
    for thin in listed {
        let Some(thin) = thin else {
            report.listed += 1;
            report.malformed += 1;
            continue;
        };
        let record = records.next().flatten();
        let record = record.and_then(|t| keys::event(&thin.id).decode(&t).ok());
        report.listed += 1;
        match decide(record.as_ref()) {
            Decision::Done => report.already_done += 1,
            Decision::FailedForGood => report.note_failed_for_good(&thin.id),
            Decision::Process if report.processed >= bounds.processed => return Ok(false),
            Decision::Process => {
                report.processed += 1;
                let (id, created) = (thin.id.clone(), thin.created_seconds().unwrap_or_default());
                if note(report, &id, port.process_thin(thin).await) {
                    state.left_unhandled(created);
                }
            }
        }
    }
    Ok(true)
}

/// What processing one listed event came to, in the report, for both catch-ups; `true` when a
/// retry can get past its failure (the caller's cursor then stays before it).
fn note(report: &mut RunReport, id: &str, result: Result<Receipt, AppError>) -> bool {
    match result {
        Ok(receipt) if receipt.duplicate => report.already_done += 1,
        // `process` answers Ok(failed) only for a failure no retry gets past.
        Ok(receipt) if receipt.outcome == Outcome::Failed => report.note_failed_for_good(id),
        Ok(_) => report.handled += 1,
        // Refused as its delivery would be (400: an object not of the documented shape,
        // another mode than the key's), in this isolate or relayed from the entity's queue:
        // nothing stored; no retry changes it.
        Err(refused) if !refused.is_retryable() && refused.status() == 400 => {
            report.note_refused(refused.code())
        }
        Err(_) => {
            report.note_retry_later(id);
            return true;
        }
    }
    false
}

/// What `POST /events/{id}/replay` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayAnswer {
    /// `false`: the event was already handled (or ignored), and nothing was done.
    pub replayed: bool,
    pub event_id: String,
    pub outcome: Outcome,
    pub message: &'static str,
    /// The record as it stood, when nothing was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<EventRecord>,
}

/// Fetches the event from Stripe and processes it as a delivery, also when it is recorded
/// failed for good (the fix after the cause is mended). An event recorded handled or ignored
/// is not fetched: a replay of it changes nothing, and says so. An id Stripe does not know
/// (or no longer keeps: 30 days) is a 404.
pub async fn replay<S: Store, P: Port>(
    store: &S,
    port: &P,
    event_id: &str,
) -> Result<ReplayAnswer, AppError> {
    if !is_event_id(event_id) {
        return Err(AppError::NoRecord(Record::StripeEvent));
    }
    if let Some(done) = keys::event(event_id)
        .load_tolerant(store)
        .await?
        .filter(|r| r.outcome.is_final())
    {
        return Ok(ReplayAnswer {
            outcome: done.outcome,
            record: Some(done),
            ..unchanged(event_id)
        });
    }
    let raw = match port.retrieve_event(&calls::retrieve_event(event_id)).await {
        Err(AppError::Stripe(e)) if e.api_error().is_some_and(|api| api.status == 404) => {
            return Err(AppError::NoRecord(Record::StripeEvent))
        }
        other => other?,
    };
    let event = Event::parse(raw.get().as_bytes())?;
    if event.id != event_id {
        return Err(AppError::Internal("Stripe answered another event"));
    }
    let receipt = port.process_event(event).await?;
    if receipt.duplicate {
        // A delivery or a catch-up finished it meanwhile.
        let record = keys::event(event_id).load_tolerant(store).await?;
        return Ok(ReplayAnswer {
            outcome: receipt.outcome,
            record,
            ..unchanged(event_id)
        });
    }
    Ok(ReplayAnswer {
        replayed: true,
        event_id: event_id.to_owned(),
        outcome: receipt.outcome,
        message: if receipt.outcome == Outcome::Failed {
            "processed again, and failed for good again: see the record"
        } else {
            "processed"
        },
        record: None,
    })
}

fn unchanged(event_id: &str) -> ReplayAnswer {
    ReplayAnswer {
        replayed: false,
        event_id: event_id.to_owned(),
        outcome: Outcome::Handled,
        message: "already handled: a replay changes nothing",
        record: None,
    }
}
