//! The global ceiling's counter (`crate::ceiling`): one SQLite-backed Durable Object for the
//! whole deployment (`SetupCeiling`, binding `CEILING`, `idFromName("public-setup")`), so every
//! Cloudflare location counts against the same tally, strongly consistent, and KV is never
//! written for it. Its one row is replaced on each take; nothing else is stored.

use worker::{
    durable_object, Date, DurableObject, Env, Method, Request, RequestInit, Response, State,
};

use crate::ceiling::{Tally, Verdict};
use crate::config::ConfigError;
use crate::error::{AppError, Result};

use super::{shared_config, Ctx};

/// The Durable Object namespace binding in wrangler.toml.
pub const CEILING_BINDING: &str = "CEILING";
/// The one counter's name.
const COUNTER: &str = "public-setup";
/// Never resolved: a stub's fetch goes to the Durable Object whatever the URL says.
const TAKE_URL: &str = "https://setup-ceiling.invalid/take";
const TALLY_KEY: &str = "tally";

#[durable_object(fetch)]
pub struct SetupCeiling {
    state: State,
    env: Env,
}

impl DurableObject for SetupCeiling {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    /// `POST /take`: one session taken from the ceiling, or the seconds until there is room.
    /// A Durable Object runs one event at a time between awaits of anything but its own
    /// storage, so the read and the write below are one step for every caller.
    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        if req.method() != Method::Post || req.path() != "/take" {
            return Response::error("not found", 404);
        }
        let ceiling = match shared_config(&self.env) {
            Ok(config) => config.setup_ceiling,
            Err(_) => return Response::error("configuration", 500),
        };
        let now = (Date::now().as_millis() / 1000) as i64;
        let storage = self.state.storage();
        let stored: Option<String> = storage.get(TALLY_KEY).await?;
        let tally = stored
            .and_then(|text| serde_json::from_str::<Tally>(&text).ok())
            .unwrap_or_default();
        let (tally, verdict) = tally.take(now, ceiling);
        if verdict == Verdict::Allowed {
            let text = serde_json::to_string(&tally).unwrap_or_default();
            storage.put(TALLY_KEY, text).await?;
        }
        Response::ok(serde_json::to_string(&verdict).unwrap_or_default())
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
    let mut init = RequestInit::new();
    init.with_method(Method::Post);
    let request = Request::new_with_init(TAKE_URL, &init).map_err(unreachable)?;
    let mut response = stub
        .fetch_with_request(request)
        .await
        .map_err(unreachable)?;
    let text = response.text().await.map_err(unreachable)?;
    match serde_json::from_str::<Verdict>(&text) {
        Ok(Verdict::Allowed) => Ok(()),
        Ok(Verdict::Full { retry_after }) => Err(AppError::SetupCeilingFull { retry_after }),
        Err(_) => Err(AppError::Internal(
            "the setup ceiling's counter answered what does not decode",
        )),
    }
}
