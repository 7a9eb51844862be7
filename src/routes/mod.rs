//! HTTP adapters: each turns a request into a call of the pure core and its result into a
//! response. Only built for wasm32.

pub mod access;
pub mod admin;
pub mod billing;
pub mod catchup;
pub mod ceiling;
pub mod checkout;
pub mod console;
pub mod entity;
pub mod event_log;
pub mod health;
pub mod identity;
pub mod notifications;
pub mod scheduled;
pub mod webhook;

use std::cell::{OnceCell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use futures_util::StreamExt;
use wasm_bindgen::JsValue;
use worker::worker_sys::web_sys::ReadableStream;
use worker::worker_sys::web_sys::Request as ReadableRequest;
use worker::{ByteStream, Env, Headers, Request, Response};

use crate::config::Config;
use crate::error::{AppError, Result};
use crate::services::{Services, Trace};
use crate::store::entity::EntityStore;
use crate::store::kv::KvState;
use crate::store::sql::SqlTable;

/// The one store type of the worker and of every entity's queue: an entity's table first
/// (none outside a queue), then KV. One type, so the handlers are compiled once.
pub type AppStore<'a> = EntityStore<'a, SqlTable, KvState>;
use crate::store::StoreError;
use crate::stripe::fetch::{FetchTransport, FETCH};

/// An exported method's work, as the runtime awaits it.
pub type Work = Pin<Box<dyn Future<Output = std::result::Result<JsValue, JsValue>>>>;

/// The runtime's promise for an export's work: the worker's fetch and scheduled handlers and
/// the Durable Objects' `fetch` and `alarm`, written out by hand instead of by `#[event]` and
/// `#[durable_object]`, which compiled a `future_to_promise`, a panic wrapper and error
/// handling for each export (bench/RESULTS.md, notes). One boxed future type, one copy.
pub fn promise(work: Work) -> js_sys::Promise {
    worker::wasm_bindgen_futures::future_to_promise(work)
}

/// A Durable Object's answer as `#[durable_object]` settled it: the response, or the error
/// as the rejection.
pub fn settle(answer: worker::Result<Response>) -> std::result::Result<JsValue, JsValue> {
    answer
        .map(|response| JsValue::from(worker::worker_sys::web_sys::Response::from(response)))
        .map_err(JsValue::from)
}

/// The KV namespace binding in wrangler.toml.
pub const STATE_BINDING: &str = "STATE";

/// A config built in this isolate, with every setting it read and the value it got.
struct CachedConfig {
    read: Vec<Setting>,
    config: Rc<Config>,
}

/// One setting a cached config was built from: its name as a JS string (made once, not on
/// every request), the JS value the `Env` object gave, and that value as read.
struct Setting {
    name: JsValue,
    raw: JsValue,
    value: Option<String>,
}

impl Setting {
    /// Whether `env` still gives this value. The same JS value (`===`: a string or number is
    /// compared by value) needs no copy into wasm memory; any other is read as text and
    /// compared, as it was the first time.
    fn unchanged(&self, env: &Env) -> bool {
        let now = js_sys::Reflect::get(env, &self.name).unwrap_or(JsValue::UNDEFINED);
        now == self.raw || setting_value(&now) == self.value
    }
}

thread_local! {
    static CONFIG: RefCell<Option<CachedConfig>> = const { RefCell::new(None) };
}

/// One setting's value as the `Env` object gives it. Secrets are strings there; a var written
/// unquoted in wrangler.toml (`WEBHOOK_TOLERANCE_SECONDS = 300`) arrives as a JSON value and is
/// read as its JSON text, so it is validated like the string instead of silently ignored.
fn setting_value(value: &JsValue) -> Option<String> {
    if value.is_undefined() || value.is_null() {
        return None;
    }
    value.as_string().or_else(|| {
        js_sys::JSON::stringify(value)
            .ok()
            .and_then(|text| text.as_string())
    })
}

/// The config, parsed and validated once per isolate. The settings it was built from are
/// still read on every request and compared with the values it was built from, so a changed
/// secret or var (`wrangler secret put`) takes effect on the next request, even in the same
/// isolate. The key is whatever `Config::from_lookup` read, so a new setting needs no change
/// here. An invalid config is not cached: its error is built again, naming the setting.
pub fn shared_config(env: &Env) -> Result<Rc<Config>> {
    let cached = CONFIG.with_borrow(|cache| {
        cache
            .as_ref()
            .filter(|c| c.read.iter().all(|setting| setting.unchanged(env)))
            .map(|c| Rc::clone(&c.config))
    });
    if let Some(config) = cached {
        return Ok(config);
    }
    let read = RefCell::new(Vec::new());
    let config = Rc::new(Config::from_lookup(|name| {
        let name = JsValue::from_str(name);
        let raw = js_sys::Reflect::get(env, &name).unwrap_or(JsValue::UNDEFINED);
        let value = setting_value(&raw);
        read.borrow_mut().push(Setting {
            name,
            raw,
            value: value.clone(),
        });
        value
    })?);
    CONFIG.set(Some(CachedConfig {
        read: read.into_inner(),
        config: Rc::clone(&config),
    }));
    Ok(config)
}

/// What a route needs besides its request, built once per request by the glue in place of
/// a config/store/services preamble in each route. The config and the KV binding are read on
/// first use, so `/health` and `/` touch neither, and each route keeps the order in which it
/// reads them (a route that refuses a request early does so before any setting is read).
pub struct Ctx<'a> {
    pub env: &'a Env,
    /// Unix seconds, from the runtime's clock.
    pub now: i64,
    pub trace: &'a Trace,
    config: OnceCell<Rc<Config>>,
    store: OnceCell<AppStore<'static>>,
}

impl<'a> Ctx<'a> {
    pub fn new(env: &'a Env, now: i64, trace: &'a Trace) -> Self {
        Self {
            env,
            now,
            trace,
            config: OnceCell::new(),
            store: OnceCell::new(),
        }
    }

    /// The settings, from the per-isolate cache (see [`shared_config`]).
    pub fn config(&self) -> Result<&Config> {
        if let Some(config) = self.config.get() {
            return Ok(config);
        }
        let config = shared_config(self.env)?;
        Ok(self.config.get_or_init(|| config))
    }

    /// KV (an [`AppStore`] without a table: outside any entity's queue).
    pub fn store(&self) -> Result<&AppStore<'static>> {
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        let meter = self.config().is_ok_and(|c| c.cost_meter);
        let store = AppStore::replica_only(state(self.env, meter)?, self.now);
        Ok(self.store.get_or_init(|| store))
    }

    /// The handlers' services over KV and Workers fetch.
    pub fn services(&self) -> Result<Services<'_, AppStore<'static>, FetchTransport<'static>>> {
        let config = self.config()?;
        let store = self.store()?;
        Ok(Services::new(store, &FETCH, config, self.now, self.trace))
    }
}

/// The query string of a request's URL (without `?` and any fragment), as the list routes
/// read it.
pub fn query_of(url: &str) -> Option<&str> {
    url.split_once('?')
        .map(|(_, rest)| rest.split('#').next().unwrap_or(""))
}

/// Whether a request comes from another site's page: its `Sec-Fetch-Site`, else its `Origin`,
/// against this service's origins (the request's own and `APP_BASE_URL`'s), the public form's
/// rule (`router::is_same_origin_post`). A request with neither header is no browser's.
pub fn from_other_site(raw: &ReadableRequest, ctx: &Ctx<'_>) -> Result<bool> {
    let own = raw.url();
    let app = ctx.config()?.app_base_url.clone().unwrap_or_default();
    let own_origins = [
        crate::router::origin_of(&own).unwrap_or(""),
        crate::router::origin_of(&app).unwrap_or(""),
    ];
    let header = |name: &str| raw.headers().get(name).ok().flatten();
    Ok(!crate::router::is_same_origin_post(
        header("sec-fetch-site").as_deref(),
        header("origin").as_deref(),
        &own_origins,
    ))
}

/// The KV namespace; `meter`: log each operation (`Config::cost_meter`).
pub fn state(env: &Env, meter: bool) -> Result<KvState> {
    let index = env
        .durable_object(crate::store::index::EVENT_LOG_BINDING)
        .ok()
        .map(|namespace| crate::store::index::IndexClient::new(namespace, meter));
    KvState::new(env, STATE_BINDING, meter, index).map_err(|e| {
        AppError::Store(StoreError::Unavailable(format!(
            "binding {STATE_BINDING}: {e}"
        )))
    })
}

/// Where Checkout returns to: `APP_BASE_URL`, or on a dev server (`LOCAL_DEV=true`) the
/// loopback origin this request came to; otherwise never the request's own `Host`.
pub fn app_origin(config: &Config, req: &Request) -> Result<String> {
    let url = req.inner().url();
    Ok(config.return_origin(crate::router::origin_of(&url))?)
}

/// The Workers Rate Limiting bindings (`[[ratelimits]]` in wrangler.toml): the anonymous
/// form's POST and the success page, each counted per client address.
pub const SETUP_RATE_LIMITER: &str = "SETUP_RATE_LIMITER";
pub const SUCCESS_RATE_LIMITER: &str = "SUCCESS_RATE_LIMITER";

/// Refuses the request (429) once its client passed the binding's limit. The client is
/// `CF-Connecting-IP`, which Cloudflare sets (and `wrangler dev` too, to the local address).
pub async fn within_rate_limit(ctx: &Ctx<'_>, binding: &'static str, req: &Request) -> Result<()> {
    let limiter = ctx
        .env
        .rate_limiter(binding)
        .map_err(|_| AppError::Config(crate::config::ConfigError::Missing(binding)))?;
    let address = req.headers().get("cf-connecting-ip").ok().flatten();
    let client = crate::router::rate_limit_client(address.as_deref().unwrap_or(""));
    let success = limit(limiter.into(), &client)
        .await
        .ok_or(AppError::Internal(
            "the rate limiting binding did not answer",
        ))?;
    if success {
        Ok(())
    } else {
        Err(AppError::TooManyRequests)
    }
}

/// `limiter.limit({key})`'s `success`, or `None` when the binding did not answer so. Called
/// directly rather than through `RateLimiter::limit`, whose options and outcome go through
/// `serde_wasm_bindgen` (its serialiser, deserialiser and string cache: ~6 KB of wasm for
/// one object of one field each way; bench/RESULTS.md, notes).
async fn limit(limiter: JsValue, key: &str) -> Option<bool> {
    use wasm_bindgen::JsCast;
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"key".into(), &key.into()).ok()?;
    let method: js_sys::Function = js_sys::Reflect::get(&limiter, &"limit".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let promise: js_sys::Promise = method.call1(&limiter, &options).ok()?.dyn_into().ok()?;
    let outcome = worker::wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .ok()?;
    js_sys::Reflect::get(&outcome, &"success".into())
        .ok()?
        .as_bool()
}

/// 128 random bits, for an Idempotency-Key when the write has no natural one.
pub fn random_bits() -> Result<[u8; 16]> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random)
        .map_err(|_| AppError::Internal("no randomness for an idempotency key"))?;
    Ok(random)
}

/// A JSON response with the headers every answer of this service carries.
pub fn json(status: u16, body: String) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::ok(body)?
        .with_status(status)
        .with_headers(headers))
}

/// An HTML page from `pages`, with the headers every page carries (its CSP names the
/// Checkout origin forms may lead to).
pub fn html(ctx: &Ctx<'_>, status: u16, body: &str) -> worker::Result<Response> {
    let checkout_origin = ctx
        .config()
        .map_or(crate::config::STRIPE_CHECKOUT_ORIGIN, |c| {
            c.checkout_origin()
        });
    page_response(checkout_origin, status, body)
}

fn page_response(checkout_origin: &str, status: u16, body: &str) -> worker::Result<Response> {
    let response = Response::from_html(body)?.with_status(status);
    for (name, value) in crate::pages::page_headers(checkout_origin) {
        response.headers().set(name, &value)?;
    }
    Ok(response)
}

/// The answer to a refused or failed request: for a browser (`page`, see
/// `router::answers_page`) an HTML page that never quotes the error, else the JSON error.
/// A 405 names the allowed methods, a 401 the scheme.
pub fn error_response(env: &Env, error: &AppError, page: bool) -> worker::Result<Response> {
    let response = if page {
        let config = shared_config(env).ok();
        let checkout_origin = config.as_deref().map_or(
            crate::config::STRIPE_CHECKOUT_ORIGIN,
            Config::checkout_origin,
        );
        let (status, body) = crate::pages::error_page(error);
        page_response(checkout_origin, status, &body)?
    } else {
        json(error.status(), error.body())?
    };
    if let AppError::MethodNotAllowed { allow } = error {
        response.headers().set("allow", allow)?;
    }
    if let AppError::Unauthorized = error {
        response.headers().set("www-authenticate", "Bearer")?;
    }
    Ok(response)
}

/// `GET /favicon.ico`: the pages' icon, cached for a day.
pub fn favicon() -> worker::Result<Response> {
    let response = Response::from_bytes(crate::pages::FAVICON.to_vec())?;
    response
        .headers()
        .set("content-type", crate::pages::FAVICON_TYPE)?;
    response
        .headers()
        .set("cache-control", "public, max-age=86400")?;
    response
        .headers()
        .set("x-content-type-options", "nosniff")?;
    Ok(response)
}

/// An `application/json` body of at most `MAX_JSON_BYTES`, decoded as `T`.
pub async fn read_json<T: serde::de::DeserializeOwned>(req: &mut Request) -> Result<T> {
    let (content_type, body) = read_json_body(req).await?;
    crate::router::json_body(content_type.as_deref(), &body)
}

/// [`read_json`]'s reading, apart from its decoding so it is compiled once, not per `T`:
/// the request's `Content-Type` and its body.
async fn read_json_body(req: &mut Request) -> Result<(Option<String>, Vec<u8>)> {
    let content_type = req.headers().get("content-type").ok().flatten();
    let body = read_capped(req, crate::router::MAX_JSON_BYTES, || {
        AppError::BadJson("the body could not be read".into())
    })
    .await?;
    Ok((content_type, body))
}

/// A stored record as a 200 JSON response, or 404 `not_found` naming the kind of record.
pub fn record_response<T: serde::Serialize>(
    kind: crate::error::Record,
    record: Option<T>,
) -> Result<worker::Result<Response>> {
    record_text(kind, record.map(|record| serde_json::to_string(&record)))
}

/// [`record_response`] after the serialiser, compiled once.
fn record_text(
    kind: crate::error::Record,
    text: Option<serde_json::Result<String>>,
) -> Result<worker::Result<Response>> {
    let text = text.ok_or(AppError::NoRecord(kind))?;
    let body = text.map_err(|_| AppError::Internal("a stored record does not serialise"))?;
    Ok(json(200, body))
}

/// Reads the body as it streams in and stops at `cap` (413), so a body sent without (or with
/// a false) Content-Length is refused before it is all in memory. `unreadable` is the error
/// for a body the runtime cannot deliver (a function, not a closure type: one copy of the
/// reading for every caller).
pub async fn read_capped(
    req: &mut Request,
    cap: usize,
    unreadable: fn() -> AppError,
) -> Result<Vec<u8>> {
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let stream = req.stream().map_err(|_| unreadable())?;
    read_stream_capped(stream, cap, unreadable).await
}

/// [`read_capped`] for a raw request's body (`Request.body`, `None` when there is none).
pub async fn read_body_capped(
    body: Option<ReadableStream>,
    cap: usize,
    unreadable: fn() -> AppError,
) -> Result<Vec<u8>> {
    match body {
        Some(body) => read_stream_capped(ByteStream::from(body), cap, unreadable).await,
        None => Ok(Vec::new()),
    }
}

/// The first chunk (for a Stripe event, usually the only one) becomes the body as it is:
/// copied once, out of the runtime's memory, and never again.
async fn read_stream_capped(
    mut stream: ByteStream,
    cap: usize,
    unreadable: fn() -> AppError,
) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable())?;
        if body.len() + chunk.len() > cap {
            return Err(AppError::PayloadTooLarge);
        }
        if body.is_empty() {
            body = chunk;
        } else {
            body.extend_from_slice(&chunk);
        }
    }
    Ok(body)
}
