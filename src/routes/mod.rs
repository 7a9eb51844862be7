//! HTTP adapters: each turns a request into a call of the pure core and its result into a
//! response. Only built for wasm32.

pub mod admin;
pub mod billing;
pub mod checkout;
pub mod health;
pub mod identity;
pub mod webhook;

use futures_util::StreamExt;
use worker::{Env, Headers, Request, Response};

use crate::config::Config;
use crate::error::{AppError, Result};
use crate::store::kv::KvState;
use crate::store::StoreError;

/// The KV namespace binding in wrangler.toml.
pub const STATE_BINDING: &str = "STATE";

/// Reads every setting straight from the `Env` object. Secrets are strings there; a var written
/// unquoted in wrangler.toml (`WEBHOOK_TOLERANCE_SECONDS = 300`) arrives as a JSON value and is
/// read as its JSON text, so it is validated like the string instead of silently ignored.
pub fn load_config(env: &Env) -> Result<Config> {
    let lookup = |name: &str| {
        let value = js_sys::Reflect::get(env, &name.into()).ok()?;
        if value.is_undefined() || value.is_null() {
            return None;
        }
        value.as_string().or_else(|| {
            js_sys::JSON::stringify(&value)
                .ok()
                .and_then(|text| text.as_string())
        })
    };
    Ok(Config::from_lookup(lookup)?)
}

pub fn state(env: &Env) -> Result<KvState> {
    env.kv(STATE_BINDING).map(KvState).map_err(|e| {
        AppError::Store(StoreError::Unavailable(format!(
            "binding {STATE_BINDING}: {e}"
        )))
    })
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

pub fn error_response(error: &AppError) -> worker::Result<Response> {
    let response = json(error.status(), error.body())?;
    if let AppError::MethodNotAllowed { allow } = error {
        response.headers().set("allow", allow)?;
    }
    if let AppError::Unauthorized = error {
        response.headers().set("www-authenticate", "Bearer")?;
    }
    Ok(response)
}

/// An `application/json` body of at most `MAX_JSON_BYTES`, decoded as `T`.
pub async fn read_json<T: serde::de::DeserializeOwned>(req: &mut Request) -> Result<T> {
    let content_type = req.headers().get("content-type").ok().flatten();
    let body = read_capped(req, crate::router::MAX_JSON_BYTES, || {
        AppError::BadJson("the body could not be read".into())
    })
    .await?;
    crate::router::json_body(content_type.as_deref(), &body)
}

/// A stored record as a 200 JSON response, or 404.
pub fn record_response<T: serde::Serialize>(record: Option<T>) -> Result<worker::Result<Response>> {
    let record = record.ok_or(AppError::NotFound)?;
    let body = serde_json::to_string(&record)
        .map_err(|_| AppError::Internal("a stored record does not serialise"))?;
    Ok(json(200, body))
}

/// Reads the body as it streams in and stops at `cap` (413), so a body sent without (or with
/// a false) Content-Length is refused before it is all in memory. `unreadable` is the error
/// for a body the runtime cannot deliver.
pub async fn read_capped(
    req: &mut Request,
    cap: usize,
    unreadable: impl Fn() -> AppError,
) -> Result<Vec<u8>> {
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let mut stream = req.stream().map_err(|_| unreadable())?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable())?;
        if body.len() + chunk.len() > cap {
            return Err(AppError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
