//! HTTP adapters: each turns a request into a call of the pure core and its result into a
//! response. Only built for wasm32.

pub mod admin;
pub mod checkout;
pub mod health;
pub mod webhook;

use worker::{Env, Headers, Response};

use crate::config::Config;
use crate::error::{AppError, Result};
use crate::store::kv::KvState;
use crate::store::StoreError;

/// The KV namespace binding in wrangler.toml.
pub const STATE_BINDING: &str = "STATE";

/// Reads every setting straight from the `Env` object: vars and secrets are both strings there.
pub fn load_config(env: &Env) -> Result<Config> {
    let lookup = |name: &str| {
        js_sys::Reflect::get(env, &name.into())
            .ok()
            .and_then(|v| v.as_string())
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
