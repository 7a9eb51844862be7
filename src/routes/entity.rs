//! Each entity's queue: a SQLite-backed Durable Object (`EntityQueue`, one per entity by
//! `idFromName`, binding `ENTITIES`) that runs the work of one user or customer one piece at a
//! time ([`crate::queue`]), over the entity's own table and KV ([`EntityStore`]). And the
//! worker's side of it: [`run`] sends a piece of work there and reads the answer back.
//!
//! Nothing outside this worker reaches a Durable Object: it has no route of its own, only the
//! binding, and the worker sends it only work it built itself (an event after its signature
//! held, a request after validation).

use std::cell::Cell;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::worker_sys::{web_sys, DurableObjectState};
use worker::{Date, Env, Method, Request, Response, State};

use crate::config::{ConfigError, DEFAULT_EPHEMERAL_GRACE_SECONDS};
use crate::entity::Entity;
use crate::error::{AppError, Result};
use crate::http;
use crate::queue::{self, Answer, IndexAs, Work, INDEX_HEADER};
use crate::serial::FifoLock;
use crate::services::{Services, Trace};
use crate::store::entity::{upkeep, EntityStore, Upkeep};
use crate::store::sql::SqlTable;
use crate::store::StoreError;
use crate::stripe::fetch::{new_request, text_of, FETCH};

use super::{promise, settle, shared_config, state, Ctx};

/// The Durable Object namespace binding in wrangler.toml.
pub const ENTITIES_BINDING: &str = "ENTITIES";

/// The one request a queue answers. The host is never resolved: a stub's fetch goes to the
/// Durable Object whatever the URL says.
const WORK_URL: &str = "https://entity-queue.invalid/work";
/// Set on the work of an entity that keeps nothing after it (`Entity::keeps_records`): the
/// object names no entity, so the worker says it.
const EPHEMERAL_HEADER: &str = "entity-ephemeral";

/// The Durable Object, exported by hand: the class, its constructor, `fetch` and `alarm` as
/// `#[durable_object(alarm)]` exported them, over the worker's one promise helper
/// (`routes::promise`). Each call's future is `'static`, so the queue is behind an `Rc`.
#[wasm_bindgen]
pub struct EntityQueue(Rc<Queue>);

#[wasm_bindgen]
impl EntityQueue {
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> Self {
        Self(Rc::new(Queue {
            state: State::from(state),
            env,
            turns: FifoLock::new(),
            table_created: Cell::new(false),
        }))
    }

    /// Runs the work (see [`Queue::fetch`]).
    pub fn fetch(&self, req: web_sys::Request) -> js_sys::Promise {
        let queue = Rc::clone(&self.0);
        promise(Box::pin(async move {
            settle(queue.fetch(Request::from(req)).await)
        }))
    }

    /// Purges what expired and deletes an empty object's storage.
    pub fn alarm(&self) -> js_sys::Promise {
        let queue = Rc::clone(&self.0);
        promise(Box::pin(async move { settle(queue.alarm().await) }))
    }
}

/// An entity's queue: its storage, its bindings and its turns.
struct Queue {
    state: State,
    env: Env,
    /// One piece of work at a time, in arrival order: a Durable Object starts its next
    /// request at every await of a KV call or a fetch.
    turns: FifoLock,
    /// This instance has created its table (`SqlTable::open`); unset when its storage is
    /// deleted.
    table_created: Cell<bool>,
}

impl Queue {
    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        if req.method() != Method::Post || req.path() != "/work" {
            return Response::error("not found", 404);
        }
        let trace = Trace::new();
        // Text, then `from_str`: the one decoder instantiation the worker already has.
        let text = req.text().await.unwrap_or_default();
        let ephemeral = req.headers().get(EPHEMERAL_HEADER).ok().flatten().is_some();
        let index = req.headers().get(INDEX_HEADER).ok().flatten();
        let index = index.as_deref().and_then(IndexAs::from_header);
        let body = match serde_json::from_str::<Work>(&text) {
            Ok(work) => {
                let _turn = self.turns.lock().await;
                let body = self.run(work, index, &trace).await;
                // Retention never waits for the next piece of work: the alarm is set now.
                if let Err(error) = self.upkeep(ephemeral, false).await {
                    trace.note(format!("entity upkeep failed: {}", error.log_text()));
                }
                body
            }
            Err(_) => queue::refused(
                AppError::Internal("a queue got work it cannot read"),
                &trace,
            ),
        };
        Response::ok(body)
    }

    /// Expired rows go; an object with nothing left deletes all its storage.
    async fn alarm(&self) -> worker::Result<Response> {
        let _turn = self.turns.lock().await;
        if let Err(error) = self.upkeep(false, true).await {
            worker::console_error!("entity alarm failed: {}", error.log_text());
        }
        Response::ok("")
    }

    /// After a piece of work (`in_alarm` false) an empty table gets an alarm for now, and the
    /// alarm (`in_alarm` true) deletes the storage; otherwise the alarm is set at the earliest
    /// expiry. See `store::entity::upkeep`.
    async fn upkeep(&self, ephemeral: bool, in_alarm: bool) -> Result<()> {
        let storage = self.state.storage();
        let table = SqlTable::open(storage.sql(), &self.table_created)?;
        let now_ms = Date::now().as_millis() as i64;
        let config = shared_config(&self.env).ok();
        let grace = config
            .as_ref()
            .map_or(DEFAULT_EPHEMERAL_GRACE_SECONDS, |c| {
                c.ephemeral_grace_seconds
            });
        let ephemeral_until = ephemeral.then_some(now_ms / 1000 + i64::from(grace));
        let upkeep = upkeep(&table, now_ms / 1000, ephemeral_until)?;
        let meter = config.is_some_and(|c| c.cost_meter);
        let failed = |e: worker::Error| unreachable_queue("storage", e);
        match upkeep {
            Upkeep::DeleteAll if in_alarm => {
                self.table_created.set(false);
                storage.delete_all().await.map_err(failed)?;
                if meter {
                    worker::console_log!("[meter] do.alarm delete_all");
                }
            }
            Upkeep::DeleteAll => storage.set_alarm(0i64).await.map_err(failed)?,
            Upkeep::AlarmAt(at) => {
                let offset = (at * 1000 - now_ms).max(0);
                storage.set_alarm(offset).await.map_err(failed)?;
                if meter && in_alarm {
                    worker::console_log!("[meter] do.alarm purged");
                }
            }
            Upkeep::Keep => {}
        }
        Ok(())
    }

    async fn run(&self, work: Work, index: Option<IndexAs>, trace: &Trace) -> String {
        let now = (Date::now().as_millis() / 1000) as i64;
        let prepared = (|| {
            let config = shared_config(&self.env)?;
            let kv = state(&self.env, config.cost_meter)?.deferring();
            let table = SqlTable::open(self.state.storage().sql(), &self.table_created)?;
            Ok::<_, AppError>((config, kv, table))
        })();
        let (config, kv, table) = match prepared {
            Ok(parts) => parts,
            Err(error) => return queue::refused(error, trace),
        };
        let store = EntityStore::new(&table, kv, now);
        if let Err(error) = store.catch_up().await {
            return queue::refused(error.into(), trace);
        }
        let services = Services::new(&store, &FETCH, &config, now, trace);
        let services = if work.is_event() {
            services.for_webhook()
        } else {
            services
        };
        queue::run(work, index, &services).await
    }
}

fn unreachable_queue(what: &str, error: worker::Error) -> AppError {
    AppError::Store(StoreError::Unavailable(format!(
        "entity queue {what}: {error}"
    )))
}

/// Runs `work` in its entity's queue and reads back its result; the queue's trace joins the
/// request's. Work of no entity (an event of a type not acted on) runs here, in the worker.
pub async fn run<T: DeserializeOwned>(ctx: &Ctx<'_>, work: &Work) -> Result<Option<T>> {
    run_in(ctx, work.entity(), work, None).await
}

/// [`run`] in the queue of `entity` (an event's, chosen with its recorded owner); `index`:
/// the event's row goes to the event index with the work's list rows, from the queue.
pub async fn run_in<T: DeserializeOwned>(
    ctx: &Ctx<'_>,
    entity: Option<Entity>,
    work: &Work,
    index: Option<IndexAs>,
) -> Result<Option<T>> {
    let Some(entity) = entity else {
        return Ok(None);
    };
    if ctx.config().is_ok_and(|c| c.cost_meter) {
        worker::console_log!("[meter] do.request entity");
    }
    let namespace = ctx
        .env
        .durable_object(ENTITIES_BINDING)
        .map_err(|_| ConfigError::Missing(ENTITIES_BINDING))?;
    let stub = namespace
        .id_from_name(entity.as_str())
        .and_then(|id| id.get_stub())
        .map_err(|e| unreachable_queue("stub", e))?;
    let body = serde_json::to_string(work)
        .map_err(|_| AppError::Internal("work for a queue does not serialise"))?;
    let headers = worker::Headers::new();
    if !entity.keeps_records() {
        headers
            .set(EPHEMERAL_HEADER, "1")
            .map_err(|e| unreachable_queue("request", e))?;
    }
    // A value a header cannot carry leaves the event's row to the worker, as without it.
    if let Some(index) = index {
        let _ = headers.set(INDEX_HEADER, &index.header());
    }
    let request = new_request(
        WORK_URL,
        http::Method::Post,
        Some(&headers),
        Some(&body),
        None,
    )
    .map_err(|e| unreachable_queue("request", e))?;
    let response = stub
        .fetch_with_request(request)
        .await
        .map_err(|e| unreachable_queue("call", e))?;
    let text = text_of(response)
        .await
        .map_err(|e| unreachable_queue("answer", e))?;
    let answer: Answer<T> = serde_json::from_str(&text)
        .map_err(|_| AppError::Internal("a queue's answer does not decode"))?;
    answer.into_result(ctx.trace).map(Some)
}
