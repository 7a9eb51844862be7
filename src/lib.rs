//! Stripe webhooks verified at the edge: a Cloudflare Worker in Rust.
//!
//! A tour in layer order. A module imports only from its own layer or a lower one, checked
//! by `tests/core/layers.rs`:
//! 1. Leaves, pure (no store, network or clock): [`signature`] (`Stripe-Signature`
//!    verification), [`event`] (the envelope, [`event::Outcome`], [`event::EventRecord`]),
//!    [`objects`] (what we read of Stripe's objects), [`config`], [`auth`], [`identity`] and
//!    [`billing`] (the decisions of each flow), [`notify`] (the outbox record), [`router`]
//!    (the route table), [`error`] (the one app error and its HTTP status), [`stripe`]
//!    (requests, calls, errors, the retry policy), and [`http`], the HTTP port's vocabulary.
//! 2. Ports: [`store`] (key-value, the key schema, an in-memory store; KV in `store::kv`),
//!    Workers fetch in `stripe::fetch`, and the fakes in `testing`.
//! 3. [`services`]: what handlers use (the store, Stripe with a per-delivery budget,
//!    notification sending, a trace for the log line).
//! 4. Handlers, one flow each: [`handlers`] (event dispatch and the app's calls),
//!    [`webhook`] (one delivery end to end), [`admin`] (the page behind `GET /events`).
//! 5. `routes` (wasm32 only): thin adapters from `worker` requests to the handlers.
//! 6. Glue: the fetch handler below routes once, authorizes once, logs one line.
//!
//! Nothing but `routes`, `store::kv`, `stripe::fetch` and the glue touches `worker`, so the
//! core is tested natively with `cargo test`.

pub mod admin;
pub mod auth;
pub mod billing;
pub mod config;
pub mod error;
pub mod event;
pub mod handlers;
pub mod http;
pub mod identity;
pub mod notify;
pub mod objects;
pub mod router;
pub mod services;
pub mod signature;
pub mod store;
pub mod stripe;
#[doc(hidden)]
pub mod testing;
pub mod webhook;

#[cfg(target_arch = "wasm32")]
mod routes;

/// The path of a URL as the runtime serialises it (`Request.url`), without the query or
/// fragment and without re-parsing: what `worker::Request::path` gives, for a raw request.
pub fn path_of(url: &str) -> String {
    let Some(host_start) = url.find("://").map(|i| i + 3) else {
        return if url.starts_with('/') {
            url.to_owned()
        } else {
            format!("/{url}")
        };
    };
    match url[host_start..].find('/') {
        Some(i) => {
            let path = &url[host_start + i..];
            path[..path.find(['?', '#']).unwrap_or(path.len())].to_owned()
        }
        None => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_path_is_read_from_the_serialised_url() {
        for (url, path) in [
            ("https://example.com/", "/"),
            ("http://127.0.0.1:8787/webhook", "/webhook"),
            ("https://example.com/foo/bar", "/foo/bar"),
            ("https://example.com/foo?a=1&b=/x", "/foo"),
            ("https://example.com/foo#/frag?x", "/foo"),
            ("https://example.com/a%3F%23%2Fb?c", "/a%3F%23%2Fb"),
            ("https://example.com?query", "/"),
            ("/already/a/path", "/already/a/path"),
            ("no-scheme", "/no-scheme"),
        ] {
            assert_eq!(super::path_of(url), path, "{url}");
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod glue {
    use worker::worker_sys::web_sys::Request as RawRequest;
    use worker::{console_error, console_log, event, Context, Date, Env, Request, Response};

    use crate::error::AppError;
    use crate::router::{route, Route};
    use crate::routes;
    use crate::services::Trace;

    /// What one request leaves in the log: one JSON line, no secrets, no payloads.
    #[derive(serde::Serialize, Default)]
    struct RequestLog<'a> {
        method: &'a str,
        /// For routing; the log shows `logged_path` (no user ids, see `router::path_for_log`).
        #[serde(skip)]
        path: &'a str,
        #[serde(rename = "path")]
        logged_path: String,
        status: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        event_type: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        outcome: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'static str>,
        duration_ms: f64,
        #[serde(flatten)]
        trace: crate::services::TraceData,
    }

    /// Takes the request as the runtime hands it over: converting it to a `worker::Request`
    /// reads `request.cf`, an object the runtime builds anew on every read, which the hot
    /// routes (health checks, Stripe's deliveries) never need. Only the other routes convert it.
    #[event(fetch)]
    async fn fetch(req: RawRequest, env: Env, _ctx: Context) -> worker::Result<Response> {
        let started = Date::now().as_millis();
        let method = req.method();
        let path = crate::path_of(&req.url());
        let mut log = RequestLog {
            method: &method,
            path: &path,
            ..Default::default()
        };

        let trace = Trace::new();
        let result = handle(req, &env, &mut log, &trace).await;
        let response = match result {
            Ok(response) => response?,
            Err(error) => {
                if error.status() >= 500 {
                    // More than the public message, less than Stripe's (see `log_text`).
                    console_error!("{{\"error\":{:?}}}", error.log_text());
                }
                log.error = Some(error.code());
                routes::error_response(&error)?
            }
        };
        log.status = response.status_code();
        log.duration_ms = (Date::now().as_millis() - started) as f64;
        log.trace = trace.snapshot();
        log.logged_path = crate::router::path_for_log(log.path);
        if let Ok(line) = serde_json::to_string(&log) {
            console_log!("{line}");
        }
        Ok(response)
    }

    async fn handle(
        raw: RawRequest,
        env: &Env,
        log: &mut RequestLog<'_>,
        trace: &Trace,
    ) -> Result<worker::Result<Response>, AppError> {
        let now = (Date::now().as_millis() / 1000) as i64;
        let route = route(log.method, log.path)?;
        let mut req = match route {
            Route::Health => return Ok(routes::health::get()),
            Route::Webhook => {
                let receipt = routes::webhook::post(&raw, env, now, trace).await?;
                log.event_id = Some(receipt.event_id);
                log.event_type = Some(receipt.event_type);
                log.outcome = Some(if receipt.duplicate {
                    "duplicate"
                } else {
                    receipt.outcome.as_str()
                });
                return Ok(routes::json(
                    200,
                    routes::webhook::received(receipt.duplicate),
                ));
            }
            _ => Request::from(raw),
        };
        let req = &mut req;
        match route {
            Route::Home => Ok(routes::checkout::home()),
            Route::CreateCheckoutSession => routes::checkout::create(req, env, now, trace).await,
            // Answered above, from the raw request.
            Route::Health | Route::Webhook => Err(AppError::Internal("route answered above")),
            Route::Events => {
                routes::admin::authorize(req, env)?;
                routes::admin::list_events(req, env).await
            }
            Route::Event(id) => {
                routes::admin::authorize(req, env)?;
                routes::admin::get_event(env, &id).await
            }
            Route::CreateVerificationSession => {
                routes::admin::authorize(req, env)?;
                routes::identity::create_session(req, env, now, trace).await
            }
            Route::IdentityUser(id) => {
                routes::admin::authorize(req, env)?;
                routes::identity::get_user(env, &id).await
            }
            Route::Success => routes::billing::success(req, env, now, trace).await,
            Route::CreateCharge => {
                routes::admin::authorize(req, env)?;
                routes::billing::create_charge(req, env, now, trace).await
            }
            Route::Customer(id) => {
                routes::admin::authorize(req, env)?;
                routes::billing::get_customer(env, &id).await
            }
            Route::Charge(id) => {
                routes::admin::authorize(req, env)?;
                routes::billing::get_charge(env, &id).await
            }
        }
    }
}
