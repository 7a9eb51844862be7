//! The global ceiling's counter (`crate::ceiling`): one SQLite-backed Durable Object for the
//! whole deployment (`SetupCeiling`, binding `CEILING`, `idFromName("public-setup")`), so every
//! Cloudflare location counts against the same tally, strongly consistent, and KV is never
//! written for it. Its one row is replaced on each take; nothing else is stored.

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::worker_sys::web_sys;
use worker::{Date, Env, Method, Request, Response, SqlStorage, SqlStorageValue, State};

use crate::ceiling::{Tally, Verdict};
use crate::config::ConfigError;
use crate::error::{AppError, Result};
use crate::http;
use crate::store::sql::all_rows;
use crate::stripe::fetch::{new_request, text_of};

use super::{shared_config, Ctx};

/// The Durable Object namespace binding in wrangler.toml.
pub const CEILING_BINDING: &str = "CEILING";
/// The one counter's name.
const COUNTER: &str = "public-setup";
/// Never resolved: a stub's fetch goes to the Durable Object whatever the URL says.
const TAKE_URL: &str = "https://setup-ceiling.invalid/take";
/// One row, replaced on each take, a column per count. SQL, as the entity queues use, so no
/// other storage API's glue is linked in.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS tally (id INTEGER PRIMARY KEY, \
     day INTEGER NOT NULL, day_count INTEGER NOT NULL, \
     minute INTEGER NOT NULL, minute_count INTEGER NOT NULL)";
const READ: &str = "SELECT day, day_count, minute, minute_count FROM tally WHERE id = 1";
const WRITE: &str = "INSERT OR REPLACE INTO tally (id, day, day_count, minute, minute_count) \
     VALUES (1, ?, ?, ?, ?)";

/// The stored tally (none yet: a fresh one).
fn load(sql: &SqlStorage) -> worker::Result<Tally> {
    sql.exec(SCHEMA, None)?;
    let rows = all_rows(&sql.exec(READ, None)?)?;
    let number = |value: Option<&SqlStorageValue>| match value {
        Some(SqlStorageValue::Integer(n)) => *n,
        Some(SqlStorageValue::Float(n)) => *n as i64,
        _ => 0,
    };
    Ok(rows.first().map_or_else(Tally::default, |row| Tally {
        day: number(row.first()),
        day_count: number(row.get(1)).max(0) as u32,
        minute: number(row.get(2)),
        minute_count: number(row.get(3)).max(0) as u32,
    }))
}

fn save(sql: &SqlStorage, tally: &Tally) -> worker::Result<()> {
    let values = vec![
        tally.day.into(),
        i64::from(tally.day_count).into(),
        tally.minute.into(),
        i64::from(tally.minute_count).into(),
    ];
    sql.exec(WRITE, values)?;
    Ok(())
}

/// The Durable Object, exported by hand rather than by `#[durable_object]`: its `fetch`
/// awaits nothing, so it answers with a settled promise and compiles no future, no
/// `future_to_promise` and no panic wrapper (bench/RESULTS.md, notes). The class, its
/// constructor and `fetch` are what the macro exported.
#[wasm_bindgen]
pub struct SetupCeiling {
    state: State,
    env: Env,
}

#[wasm_bindgen]
impl SetupCeiling {
    #[wasm_bindgen(constructor)]
    pub fn new(state: worker::worker_sys::DurableObjectState, env: Env) -> Self {
        Self {
            state: State::from(state),
            env,
        }
    }

    /// The answer to [`Self::answer`], or its error as the rejection, as the macro gave them.
    pub fn fetch(&self, req: web_sys::Request) -> js_sys::Promise {
        match self.answer(Request::from(req)) {
            Ok(response) => {
                let response = JsValue::from(web_sys::Response::from(response));
                js_sys::Promise::resolve(&response)
            }
            Err(error) => js_sys::Promise::reject(&JsValue::from(error)),
        }
    }
}

impl SetupCeiling {
    /// `POST /take`: one session taken from the ceiling, or the seconds until there is room.
    /// `sql.exec` is synchronous and nothing is awaited between the read and the write, so
    /// they are one step for every caller.
    fn answer(&self, req: Request) -> worker::Result<Response> {
        if req.method() != Method::Post || req.path() != "/take" {
            return Response::error("not found", 404);
        }
        let ceiling = match shared_config(&self.env) {
            Ok(config) => config.setup_ceiling,
            Err(_) => return Response::error("configuration", 500),
        };
        let now = (Date::now().as_millis() / 1000) as i64;
        let sql = self.state.storage().sql();
        let (tally, verdict) = load(&sql)?.take(now, ceiling);
        if verdict == Verdict::Allowed {
            save(&sql, &tally)?;
        }
        Response::ok(verdict.to_wire())
    }
}

/// The counter could not be asked: a 500, never an open form without its ceiling.
fn unreachable(_: worker::Error) -> AppError {
    AppError::Internal("the setup ceiling's counter did not answer")
}

/// Takes one anonymous setup session from the global ceiling: `Err(SetupCeilingFull)` with
/// the seconds until the next minute or UTC day when it is full.
pub async fn take(ctx: &Ctx<'_>) -> Result<()> {
    let namespace = ctx
        .env
        .durable_object(CEILING_BINDING)
        .map_err(|_| ConfigError::Missing(CEILING_BINDING))?;
    if ctx.config().is_ok_and(|c| c.cost_meter) {
        worker::console_log!("[meter] do.request ceiling");
    }
    let stub = namespace
        .id_from_name(COUNTER)
        .and_then(|id| id.get_stub())
        .map_err(unreachable)?;
    let request =
        new_request(TAKE_URL, http::Method::Post, None, None, None).map_err(unreachable)?;
    let response = stub
        .fetch_with_request(request)
        .await
        .map_err(unreachable)?;
    let text = text_of(response).await.map_err(unreachable)?;
    match Verdict::from_wire(&text) {
        Some(Verdict::Allowed) => Ok(()),
        Some(Verdict::Full { retry_after }) => Err(AppError::SetupCeilingFull { retry_after }),
        None => Err(AppError::Internal(
            "the setup ceiling's counter answered what does not decode",
        )),
    }
}
