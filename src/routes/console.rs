//! The admin console at `/admin`: server-rendered pages (`crate::console`) over the same
//! reads and actions as the JSON admin routes. A session cookie instead of the bearer token;
//! every POST same-origin and carrying the session's CSRF token. Behind Cloudflare Access a
//! valid Access token is the session. With neither Access nor `ADMIN_TOKEN` the console does
//! not exist (404), as the admin routes.

use worker::{Method, Request, Response};

use crate::access::ASSERTION_HEADER;
use crate::auth::Access;
use crate::console::{self, Overview, Session, SessionKey, COOKIE, CSRF_FIELD};
use crate::error::{AppError, Record, Result};
use crate::handlers::dry_run;
use crate::notify::State;
use crate::outbox::{self, NotificationsQuery};
use crate::router::{form_field, form_fields, origin_of, Route, MAX_FORM_BYTES};
use crate::store::keys;

use crate::dry::DryLog;
use crate::services::Services;
use crate::stripe::fetch::FetchTransport;

use super::{html, random_bits, read_capped, AppStore, Ctx};

/// A signed-in request: its session's CSRF token (for the page's forms) and, for a POST, the
/// form's fields (the token already checked).
struct Signed {
    csrf: String,
    fields: Vec<(String, String)>,
}

/// Every console route: the session first ([`signed_in`]: GET without one to sign-in, POST
/// without one 401), then the CSRF token of a POST, then the page.
pub async fn serve(
    mut req: Request,
    ctx: &Ctx<'_>,
    route: Route,
    id: &str,
) -> Result<worker::Result<Response>> {
    let post = req.method() == Method::Post;
    if post {
        same_origin(&req, ctx)?;
    }
    let (key, session, behind_access) = match signed_in(&mut req, ctx, route, post).await? {
        Ok(signed_in) => signed_in,
        Err(answer) => return Ok(answer),
    };
    let mut signed = Signed {
        csrf: key.csrf(&session),
        fields: Vec::new(),
    };
    if post {
        signed.fields = read_form(&mut req).await?;
        key.check_csrf(&session, form_field(&signed.fields, CSRF_FIELD))?;
    }
    // The raw URL's query, as `GET /events` reads it: `Request::url` parses with the `url`
    // crate, whose IDNA tables cost ~100 KiB of gzipped wasm.
    let url = req.inner().url();
    let query = url
        .split_once('?')
        .map(|(_, rest)| rest.split('#').next().unwrap_or("").to_owned());
    let page = |body: String| Ok(html(ctx, 200, &body));
    match (route, post) {
        // Access keeps its own session: signing out is Cloudflare's logout page.
        (Route::ConsoleSignOut, _) if behind_access => {
            Ok(see_other("/cdn-cgi/access/logout", None))
        }
        // Cleared with the flags it was set with, so it replaces that cookie.
        (Route::ConsoleSignOut, _) => Ok(see_other(
            "/admin/sign-in",
            Some(&console::set_cookie(None, local_http(&req, ctx))),
        )),
        (Route::ConsoleHome, _) => page(console::overview(&signed.csrf, &overview(ctx).await?)),
        (Route::ConsoleEvents, _) => events(ctx, &signed, query.as_deref()).await,
        (Route::ConsoleEvent, _) => {
            if !crate::event::is_event_id(id) {
                return Err(AppError::NoRecord(Record::Event));
            }
            let record = keys::event(id)
                .load(ctx.store()?)
                .await?
                .ok_or(AppError::NoRecord(Record::Event))?;
            page(console::event(&signed.csrf, &record, &to_value(&record)?))
        }
        (Route::ConsoleReplay, false) => {
            page(console::preview(&signed.csrf, &preview(ctx, id).await?))
        }
        (Route::ConsoleReplay, true) => {
            let answer = super::catchup::replayed(ctx, id).await?;
            let back = format!("/admin/events/{id}");
            page(console::done(
                &signed.csrf,
                "Replayed",
                &to_value(&answer)?,
                &back,
            ))
        }
        (Route::ConsoleNotifications, _) => notifications(ctx, &signed, query.as_deref()).await,
        (Route::ConsoleNotification, _) => {
            let record = outbox::load(ctx.store()?, id).await?;
            page(console::notification(&signed.csrf, id, &to_value(&record)?))
        }
        (Route::ConsoleResend, _) => resend(ctx, &signed, id).await,
        (Route::ConsoleCharges | Route::ConsoleCustomers | Route::ConsoleUsers, _) => {
            lookup(ctx, &signed, route, query.as_deref()).await
        }
        _ => Err(AppError::NotFound),
    }
}

/// A console request's session, its key, and whether Cloudflare Access vouched for it: with
/// Access configured a valid Access token is the session (a refused one is 401); otherwise,
/// as for the JSON admin routes, the admin token's signed cookie (sign-in answered here). The
/// `Err` is the answer for a request without a session.
async fn signed_in(
    req: &mut Request,
    ctx: &Ctx<'_>,
    route: Route,
    post: bool,
) -> Result<std::result::Result<(SessionKey, Session, bool), worker::Result<Response>>> {
    let assertion = req.headers().get(ASSERTION_HEADER).ok().flatten();
    let token = ctx.config()?.admin_token_checked()?;
    match super::access::verdict(ctx, assertion.as_deref()).await? {
        Access::Valid => {
            let (key, session) = SessionKey::from_access(assertion.as_deref().unwrap_or(""));
            return Ok(match route {
                Route::ConsoleSignIn => Err(see_other("/admin", None)),
                _ => Ok((key, session, true)),
            });
        }
        Access::Refused => return Err(AppError::Unauthorized),
        // Access alone guards this deployment: no token to sign in with.
        Access::Absent if token.is_none() => return Err(AppError::Unauthorized),
        Access::Absent | Access::NotConfigured => {}
    }
    let key = SessionKey::derive(token.ok_or(AppError::NotFound)?);
    if route == Route::ConsoleSignIn {
        return sign_in(req, ctx, &key, post).await.map(Err);
    }
    let header = req.headers().get("cookie").ok().flatten();
    match console::cookie(header.as_deref(), COOKIE).and_then(|v| key.open(v, ctx.now)) {
        Some(session) => Ok(Ok((key, session, false))),
        None if post => Err(AppError::Unauthorized),
        None => Ok(Err(see_other("/admin/sign-in", None))),
    }
}

/// The replay's dry run over the worker's own store (KV) and transport in their dry mode: the
/// same types as every handler's, so nothing is compiled twice.
async fn preview(ctx: &Ctx<'_>, id: &str) -> Result<console::Preview> {
    let config = ctx.config()?;
    let log = DryLog::default();
    let store =
        AppStore::replica_only(super::state(ctx.env, config.cost_meter)?, ctx.now).dry(&log);
    let transport = FetchTransport(Some(&log));
    let services = Services::new(&store, &transport, config, ctx.now, ctx.trace).for_webhook();
    dry_run::preview(&services, &log, id).await
}

/// A console POST must come from the console's own page (the router's check, as for the
/// public form): this request's origin, or `APP_BASE_URL`'s.
fn same_origin(req: &Request, ctx: &Ctx<'_>) -> Result<()> {
    match super::from_other_site(req.inner(), ctx)? {
        true => Err(AppError::CrossSiteForm),
        false => Ok(()),
    }
}

async fn read_form(req: &mut Request) -> Result<Vec<(String, String)>> {
    let content_type = req.headers().get("content-type").ok().flatten();
    let body = read_capped(req, MAX_FORM_BYTES, || AppError::BadForm).await?;
    form_fields(content_type.as_deref(), &body)
}

/// `GET /admin/sign-in`: the form (behind Access, `signed_in` sends it to the overview);
/// `POST`: the token checked in constant time, then a session cookie; a wrong one is the form
/// again, 401.
async fn sign_in(
    req: &mut Request,
    ctx: &Ctx<'_>,
    key: &SessionKey,
    post: bool,
) -> Result<worker::Result<Response>> {
    if !post {
        return Ok(html(ctx, 200, &console::sign_in(None)));
    }
    let fields = read_form(req).await?;
    let token = ctx
        .config()?
        .admin_token_checked()?
        .ok_or(AppError::NotFound)?;
    let given = form_field(&fields, "token").unwrap_or("");
    if !crate::auth::token_matches(token, given) {
        let page = console::sign_in(Some("That is not the admin token. Check it and try again."));
        return Ok(html(ctx, 401, &page));
    }
    let (value, _) = key.issue(ctx.now, random_bits()?);
    let cookie = console::set_cookie(Some(&value), local_http(req, ctx));
    Ok(see_other("/admin", Some(&cookie)))
}

/// A local development server over plain HTTP on loopback: the one case without `Secure`.
fn local_http(req: &Request, ctx: &Ctx<'_>) -> bool {
    let url = req.inner().url();
    ctx.config().is_ok_and(|c| c.local_dev)
        && url.starts_with("http://")
        && origin_of(&url).is_some_and(crate::config::is_loopback_origin)
}

/// A 303 to `location`, setting `cookie` (a whole `Set-Cookie` value) when given.
fn see_other(location: &str, cookie: Option<&str>) -> worker::Result<Response> {
    let response = Response::empty()?.with_status(303);
    response.headers().set("location", location)?;
    response.headers().set("cache-control", "no-store")?;
    if let Some(cookie) = cookie {
        response.headers().set("set-cookie", cookie)?;
    }
    Ok(response)
}

/// A record as the JSON routes answer it, as a value for `console::value_html`.
fn to_value(value: &impl serde::Serialize) -> Result<serde_json::Value> {
    crate::json::to_value(value).map_err(|_| AppError::Internal("a record does not serialise"))
}

/// The first page of a notification index, and whether there is more.
async fn notification_page(
    ctx: &Ctx<'_>,
    state: State,
    cursor: Option<String>,
) -> Result<outbox::NotificationsPage> {
    let query = NotificationsQuery {
        state,
        limit: crate::admin::DEFAULT_EVENTS_LIMIT,
        cursor,
    };
    Ok(outbox::list_notifications(ctx.store()?, &query).await?)
}

async fn overview(ctx: &Ctx<'_>) -> Result<Overview> {
    let counts = super::event_log::count(ctx, ctx.now - 86_400).await?;
    let pending = notification_page(ctx, State::Pending, None).await?;
    let dead = notification_page(ctx, State::Dead, None).await?;
    let catchup = keys::catchup_state().load(ctx.store()?).await?;
    Ok(Overview {
        now: ctx.now,
        counts,
        more_pending: pending.cursor.is_some(),
        more_dead: dead.cursor.is_some(),
        pending: pending.notifications,
        dead: dead.notifications,
        catchup_since: catchup.as_ref().map(|c| c.since),
        catchup: catchup.as_ref().map(to_value).transpose()?,
    })
}

/// A page of `GET /events` as the console reads it: from an object only (`decode_map!`).
struct EventsPage {
    events: Vec<crate::event::EventRecord>,
    cursor: Option<String>,
}
crate::json::decode_map!(EventsPage {
    events: "events" required,
    cursor: "cursor" default,
});

/// The event log: the same index and filters as `GET /events`; blank fields are no filter.
async fn events(
    ctx: &Ctx<'_>,
    signed: &Signed,
    query: Option<&str>,
) -> Result<worker::Result<Response>> {
    let query = console::non_empty_query(query)?;
    if let Err(error) = crate::event_log::EventsQuery::parse(Some(&query)) {
        let text = error.public_message();
        let body = console::events(&signed.csrf, &query, Some(&text), &[], None);
        return Ok(html(ctx, error.status(), &body));
    }
    let body = super::event_log::query(ctx, Some(&query)).await?;
    let page: EventsPage = serde_json::from_str(&body)
        .map_err(|_| AppError::Internal("a page of events does not decode"))?;
    let body = console::events(
        &signed.csrf,
        &query,
        None,
        &page.events,
        page.cursor.as_deref(),
    );
    Ok(html(ctx, 200, &body))
}

async fn notifications(
    ctx: &Ctx<'_>,
    signed: &Signed,
    query: Option<&str>,
) -> Result<worker::Result<Response>> {
    let query = console::non_empty_query(query)?;
    let (records, cursor) = index_page(
        super::notifications::query(ctx, Some(&query)).await?,
        "notifications",
    )?;
    let body = console::notifications(&signed.csrf, &query, &records, cursor.as_deref());
    Ok(html(ctx, 200, &body))
}

/// The records and cursor of a list index's page (`{"<table>":[…],"cursor":…}`).
fn index_page(body: String, table: &str) -> Result<(Vec<serde_json::Value>, Option<String>)> {
    let mut page: serde_json::Value = serde_json::from_str(&body)
        .map_err(|_| AppError::Internal("a page of an index does not decode"))?;
    let cursor = page["cursor"].as_str().map(str::to_owned);
    let records = match page[table].take() {
        serde_json::Value::Array(records) => records,
        _ => Vec::new(),
    };
    Ok((records, cursor))
}

/// `POST /admin/notifications/{id}/resend`: `POST /notifications/{id}/resend`'s resend.
async fn resend(ctx: &Ctx<'_>, signed: &Signed, id: &str) -> Result<worker::Result<Response>> {
    let services = ctx.services()?;
    let target = services.notify_target(ctx.now);
    let answer = outbox::resend(services.store, services.transport, target, id, ctx.now).await?;
    let back = "/admin/notifications?state=dead";
    let body = console::done(&signed.csrf, "Resent", &to_value(&answer)?, back);
    Ok(html(ctx, 200, &body))
}

/// `/admin/charges` and `/admin/users` without `?id=`: a page of `GET /charges` or
/// `GET /identity/users` (their indexes), with their filters.
async fn list(
    ctx: &Ctx<'_>,
    signed: &Signed,
    route: Route,
    query: Option<&str>,
) -> Result<worker::Result<Response>> {
    let query = console::non_empty_query(query)?;
    let (page, table, body) = match route {
        Route::ConsoleCharges => (
            CHARGES,
            "charges",
            super::billing::query_charges(ctx, Some(&query)).await?,
        ),
        _ => (
            USERS,
            "users",
            super::identity::query_users(ctx, Some(&query)).await?,
        ),
    };
    let (records, cursor) = index_page(body, table)?;
    let body = console::index(&signed.csrf, &page, &query, &records, cursor.as_deref());
    Ok(html(ctx, 200, &body))
}

const CHARGES: console::IndexPage<'static> = console::IndexPage {
    title: "Charges",
    action: "/admin/charges",
    params: &["status", "recovery", "customer"],
    fields: &["status", "amount", "currency", "customer"],
    id_field: "id",
};

const USERS: console::IndexPage<'static> = console::IndexPage {
    title: "Identity users",
    action: "/admin/users",
    params: &["status"],
    fields: &["status", "latest_session"],
    id_field: "user_id",
};

/// A charge, customer or Identity user by id (`?id=`), as the JSON routes read them.
async fn lookup(
    ctx: &Ctx<'_>,
    signed: &Signed,
    route: Route,
    query: Option<&str>,
) -> Result<worker::Result<Response>> {
    let id = query
        .and_then(|q| console::query_value(q, "id"))
        .filter(|id| !id.is_empty());
    if id.is_none() && route != Route::ConsoleCustomers {
        return list(ctx, signed, route, query).await;
    }
    let (title, action, label) = match route {
        Route::ConsoleCharges => ("Charges", "/admin/charges", "PaymentIntent id (pi_…)"),
        Route::ConsoleCustomers => ("Customers", "/admin/customers", "Customer id (cus_…)"),
        _ => ("Identity users", "/admin/users", "User id"),
    };
    let record = match (&id, route) {
        (None, _) => Ok(None),
        (Some(id), Route::ConsoleCharges) => super::billing::charge_record(ctx, id)
            .await
            .and_then(|r| r.as_ref().map(to_value).transpose()),
        (Some(id), Route::ConsoleCustomers) => super::billing::customer_record(ctx, id)
            .await
            .and_then(|r| r.as_ref().map(to_value).transpose()),
        (Some(id), _) => super::identity::user(ctx, id).await,
    };
    // An id of the wrong shape is not found, as any other.
    let record = match record {
        Err(AppError::NoRecord(_)) => None,
        other => other?,
    };
    let asked = id.as_deref().map(|id| (id, record.as_ref()));
    let body = console::lookup(&signed.csrf, title, action, label, asked);
    Ok(html(ctx, 200, &body))
}
