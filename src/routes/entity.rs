//! Each entity's queue: a SQLite-backed Durable Object (`EntityQueue`, one per entity by
//! `idFromName`, binding `ENTITIES`) that runs the work of one user or customer one piece at a
//! time ([`crate::queue`]), over the entity's own table and KV ([`EntityStore`]). And the
//! worker's side of it: [`run`] sends a piece of work there and reads the answer back.
//!
//! Nothing outside this worker reaches a Durable Object: it has no route of its own, only the
//! binding, and the worker sends it only work it built itself (an event after its signature
//! held, a request after validation).

use serde::de::DeserializeOwned;
use worker::{
    durable_object, Date, DurableObject, Env, Method, Request, RequestInit, Response, State,
};

use crate::config::ConfigError;
use crate::entity::Entity;
use crate::error::{AppError, Result};
use crate::queue::{self, Answer, Work};
use crate::serial::FifoLock;
use crate::services::{Services, Trace};
use crate::store::entity::EntityStore;
use crate::store::sql::SqlTable;
use crate::store::StoreError;
use crate::stripe::fetch::FetchTransport;

use super::{shared_config, state, Ctx};

/// The Durable Object namespace binding in wrangler.toml.
pub const ENTITIES_BINDING: &str = "ENTITIES";

/// The one request a queue answers. The host is never resolved: a stub's fetch goes to the
/// Durable Object whatever the URL says.
const WORK_URL: &str = "https://entity-queue.invalid/work";

#[durable_object(fetch)]
pub struct EntityQueue {
    state: State,
    env: Env,
    /// One piece of work at a time, in arrival order: a Durable Object starts its next
    /// request at every await of a KV call or a fetch.
    turns: FifoLock,
}

impl DurableObject for EntityQueue {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            turns: FifoLock::new(),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        if req.method() != Method::Post || req.path() != "/work" {
            return Response::error("not found", 404);
        }
        let trace = Trace::new();
        // Text, then `from_str`: the one decoder instantiation the worker already has.
        let text = req.text().await.unwrap_or_default();
        let body = match serde_json::from_str::<Work>(&text) {
            Ok(work) => {
                let _turn = self.turns.lock().await;
                self.run(work, &trace).await
            }
            Err(_) => queue::refused(
                AppError::Internal("a queue got work it cannot read"),
                &trace,
            ),
        };
        Response::ok(body)
    }
}

impl EntityQueue {
    async fn run(&self, work: Work, trace: &Trace) -> String {
        let now = (Date::now().as_millis() / 1000) as i64;
        let prepared = (|| {
            let config = shared_config(&self.env)?;
            let kv = state(&self.env, config.cost_meter)?;
            let table = SqlTable::open(self.state.storage().sql())?;
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
        let services = Services::new(&store, &FetchTransport, &config, now, trace);
        let services = if work.is_event() {
            services.for_webhook()
        } else {
            services
        };
        queue::run(work, &services).await
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
    run_in(ctx, work.entity(), work).await
}

/// [`run`] in the queue of `entity` (an event's, chosen with its recorded owner).
pub async fn run_in<T: DeserializeOwned>(
    ctx: &Ctx<'_>,
    entity: Option<Entity>,
    work: &Work,
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
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let request =
        Request::new_with_init(WORK_URL, &init).map_err(|e| unreachable_queue("request", e))?;
    let mut response = stub
        .fetch_with_request(request)
        .await
        .map_err(|e| unreachable_queue("call", e))?;
    let text = response
        .text()
        .await
        .map_err(|e| unreachable_queue("answer", e))?;
    let answer: Answer<T> = serde_json::from_str(&text)
        .map_err(|_| AppError::Internal("a queue's answer does not decode"))?;
    answer.into_result(ctx.trace).map(Some)
}
