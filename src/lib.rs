//! Stripe webhooks verified at the edge: a Cloudflare Worker in Rust.
//!
//! A tour in layer order. A module imports only from its own layer or a lower one, checked
//! by `tests/core/layers.rs`:
//! 1. Leaves, pure (no store, network or clock): [`signature`] (`Stripe-Signature`
//!    verification), [`event`] (the envelope, [`event::EventKind`] declaring every handled
//!    type once, [`event::Outcome`], [`event::EventRecord`]), [`objects`] (what we read of
//!    Stripe's objects), [`config`], [`auth`], [`identity`] (a session step and a user step),
//!    [`billing`] (`billing::setup` and `billing::charge`, the decisions of each flow),
//!    [`notify`] (the outbox record), [`pages`] (all HTML), [`console`] (the admin console's
//!    session cookie, CSRF token and pages), [`dry`] (a replay preview's log), [`router`] (the route table with
//!    methods, admin flag and log words), [`error`] (the one app error and its one table of
//!    status, code and retryability), [`http`] (the HTTP port's vocabulary), and [`stripe`]'s
//!    `request`, `calls`, `error` and `retry`; [`entity`] (which entity's queue a piece of
//!    work runs in), [`serial`] (that queue's first-come, first-served lock) and
//!    [`provenance`] (the per-deployment marker on every object this deployment creates).
//! 2. Ports: [`store`] (key-value, the key schema, an in-memory store; KV in `store::kv`),
//!    `stripe::client` (a request through the transport, with retries), Workers fetch in
//!    `stripe::fetch`, and the one fake transport in `testing`; `store::entity`, an entity
//!    queue's store (its own table first, written through to KV; SQLite in `store::sql`).
//! 3. [`services`]: what handlers use (the store, Stripe with a per-delivery budget,
//!    notification sending, a trace for the log line).
//! 4. Handlers, one flow each: [`handlers`] (`dispatch`, one `match` over `EventKind`;
//!    `setup`, `charges`, `identity`), [`webhook`] (one delivery end to end), [`admin`] (the
//!    page behind `GET /events`), [`queue`] (the work an entity's queue runs).
//! 5. `routes` (wasm32 only): thin adapters from `worker` requests to the handlers, over a
//!    per-request `Ctx` that reads the config and the KV binding once; `routes::entity`, the
//!    `EntityQueue` Durable Object that runs each user's and customer's work one at a time.
//! 6. Glue: the fetch handler below routes once, authorizes once, matches once, logs one line.
//!
//! Adding an event type: a line in `event_kinds!`, its arm in `handlers::dispatch`, its
//! fixture. Adding a route: a line in `route_table!` and its adapter's arm below.
//!
//! Nothing but `routes`, `store::kv`, `store::sql`, `stripe::fetch` and the glue touches `worker`, so the
//! core is tested natively with `cargo test`.

pub mod access;
pub mod admin;
pub mod auth;
pub mod billing;
pub mod catchup;
pub mod ceiling;
pub mod config;
pub mod console;
pub mod dry;
pub mod entity;
pub mod error;
pub mod event;
pub mod event_log;
pub mod form;
pub mod handlers;
pub mod http;
pub mod identity;
pub mod json;
pub mod notify;
pub mod objects;
pub mod outbox;
pub mod pages;
pub mod provenance;
pub mod queue;
pub mod record_index;
pub mod router;
pub mod serial;
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
    use wasm_bindgen::prelude::wasm_bindgen;
    use wasm_bindgen::JsValue;
    use worker::worker_sys::web_sys::Request as RawRequest;
    use worker::worker_sys::{self, web_sys};
    use worker::{console_error, console_log, Date, Env, Request, Response, ScheduledEvent};

    use crate::access;
    use crate::error::AppError;
    use crate::router::{route, Route, Routed};
    use crate::routes::{self, promise, Ctx};
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
        error: Option<String>,
        duration_ms: f64,
        #[serde(flatten)]
        trace: crate::services::TraceData,
    }

    /// The fetch handler's export, over `routes::promise` (not `#[event(fetch)]`, which
    /// compiled a `future_to_promise` and its error handling for each entry point; the exports
    /// keep the names and arguments it gave them). An error the handler returns is logged and answered 500
    /// `INTERNAL SERVER ERROR`, as `#[event(fetch)]` did.
    #[wasm_bindgen]
    pub fn fetch(req: RawRequest, env: Env, _ctx: worker_sys::Context) -> js_sys::Promise {
        promise(Box::pin(async move {
            let response = match handle_fetch(req, env).await {
                Ok(response) => response,
                Err(error) => {
                    console_error!("{error}");
                    Response::error("INTERNAL SERVER ERROR", 500)?
                }
            };
            Ok(web_sys::Response::from(response).into())
        }))
    }

    /// The Cron Trigger's export: the steps of `routes::scheduled::run`, at the event's
    /// scheduled time.
    #[wasm_bindgen]
    pub fn scheduled(
        event: worker_sys::ScheduledEvent,
        env: Env,
        _ctx: worker_sys::ScheduleContext,
    ) -> js_sys::Promise {
        promise(Box::pin(async move {
            let event = ScheduledEvent::from(event);
            routes::scheduled::run(&env, &event.cron(), event.schedule()).await;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// Takes the request as the runtime hands it over: converting it to a `worker::Request`
    /// reads `request.cf`, an object the runtime builds anew on every read, which the hot
    /// routes (health checks, Stripe's deliveries) never need. Only the other routes convert it.
    async fn handle_fetch(req: RawRequest, env: Env) -> worker::Result<Response> {
        let started = Date::now().as_millis();
        let method = req.method();
        let path = crate::path_of(&req.url());
        let mut log = RequestLog {
            method: &method,
            path: &path,
            ..Default::default()
        };

        // Read only for a path no route has (see `router::answers_page`): never on the hot paths.
        let headers = crate::router::answers_for(&path)
            .is_none()
            .then(|| req.headers());
        let trace = Trace::new();
        let result = handle(req, &env, &mut log, &trace).await;
        let response = match result {
            Ok(response) => response?,
            Err(error) => {
                if error.status() >= 500 {
                    // More than the public message, less than Stripe's (see `log_text`).
                    console_error!("{{\"error\":{:?}}}", error.log_text());
                }
                log.error = Some(error.code().to_owned());
                let page = crate::router::answers_page(&path, || {
                    headers.and_then(|h| h.get("accept").ok().flatten())
                });
                routes::error_response(&env, &error, page)?
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

    /// Routes once, authorizes once (from the route's row in `router::ROUTES`), and matches
    /// once. The raw request becomes a `worker::Request` only in the arms that read it so.
    async fn handle(
        raw: RawRequest,
        env: &Env,
        log: &mut RequestLog<'_>,
        trace: &Trace,
    ) -> Result<worker::Result<Response>, AppError> {
        let now = (Date::now().as_millis() / 1000) as i64;
        let Routed { route, id } = route(log.method, log.path)?;
        let ctx = Ctx::new(env, now, trace);
        if route.needs_admin() {
            let headers = raw.headers();
            let authorization = headers.get("authorization").ok().flatten();
            let assertion = headers.get(access::ASSERTION_HEADER).ok().flatten();
            let unsafe_method = !matches!(log.method, "GET" | "HEAD");
            let cross_site = unsafe_method && routes::from_other_site(&raw, &ctx)?;
            routes::access::authorize_admin(
                &ctx,
                assertion.as_deref(),
                authorization.as_deref(),
                cross_site,
            )
            .await?;
        }
        match route {
            Route::Health => Ok(routes::health::get()),
            Route::Webhook => webhook(&raw, &ctx, log).await,
            Route::Home => routes::checkout::home(&ctx),
            Route::SetupSessions => routes::checkout::bind(&mut Request::from(raw), &ctx).await,
            Route::CreateCheckoutSession => {
                routes::checkout::create(&mut Request::from(raw), &ctx).await
            }
            Route::Events => routes::admin::list_events(&Request::from(raw), &ctx).await,
            Route::Event => routes::admin::get_event(&ctx, &id).await,
            Route::ReplayEvent => routes::catchup::replay(&ctx, &id).await,
            Route::CatchUp => routes::catchup::get(&ctx).await,
            Route::CreateVerificationSession => {
                routes::identity::create_session(&mut Request::from(raw), &ctx).await
            }
            Route::IdentityUsers => routes::identity::list_users(&raw.url(), &ctx).await,
            Route::IdentityUser => routes::identity::get_user(&ctx, &id).await,
            Route::Success => routes::billing::success(&mut Request::from(raw), &ctx).await,
            Route::Charges => routes::billing::list_charges(&raw.url(), &ctx).await,
            Route::CreateCharge => {
                routes::billing::create_charge(&mut Request::from(raw), &ctx).await
            }
            Route::Customer => routes::billing::get_customer(&ctx, &id).await,
            Route::Charge => routes::billing::get_charge(&ctx, &id).await,
            Route::Notifications => routes::notifications::list(&raw.url(), &ctx).await,
            Route::Notification => routes::notifications::get(&ctx, &id).await,
            Route::ResendNotification => routes::notifications::resend(&ctx, &id).await,
            Route::ConsoleHome
            | Route::ConsoleSignIn
            | Route::ConsoleSignOut
            | Route::ConsoleEvents
            | Route::ConsoleEvent
            | Route::ConsoleReplay
            | Route::ConsoleNotifications
            | Route::ConsoleNotification
            | Route::ConsoleResend
            | Route::ConsoleCharges
            | Route::ConsoleCustomers
            | Route::ConsoleUsers => {
                routes::console::serve(Request::from(raw), &ctx, route, &id).await
            }
            Route::Favicon => Ok(routes::favicon()),
        }
    }

    /// `POST /webhook`, with what its log line says of the event.
    async fn webhook(
        raw: &RawRequest,
        ctx: &Ctx<'_>,
        log: &mut RequestLog<'_>,
    ) -> Result<worker::Result<Response>, AppError> {
        let receipt = routes::webhook::post(raw, ctx).await?;
        log.event_id = Some(receipt.event_id);
        log.event_type = Some(receipt.event_type);
        log.outcome = Some(if receipt.duplicate {
            "duplicate"
        } else {
            receipt.outcome.as_str()
        });
        Ok(routes::json(
            200,
            routes::webhook::received(receipt.duplicate),
        ))
    }
}
