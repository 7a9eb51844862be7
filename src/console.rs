//! The admin console's pure half (`/admin`, adapters in `routes::console`): the signed session
//! cookie, the CSRF token bound to it, and the console's HTML. No clock, no store: the adapter
//! passes `now` and the random bits, and the data each page shows.
//!
//! A session is `{expires}.{nonce}.{mac}`, the MAC an HMAC-SHA256 under a key derived from
//! `ADMIN_TOKEN`: a new token ends every session, and nothing is stored server-side.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::SecretString;
use crate::error::AppError;
use crate::event::EventRecord;
use crate::event_log::Counts;
use crate::form;
use crate::notify::Notification;
use crate::pages::{document, escape_html};

type HmacSha256 = Hmac<Sha256>;

/// The session cookie's name.
pub const COOKIE: &str = "admin_session";
/// How long a sign-in lasts.
pub const SESSION_SECONDS: i64 = 8 * 3600;
/// The form field every state-changing console POST carries.
pub const CSRF_FIELD: &str = "csrf";

/// What a session cookie says once its MAC and expiry are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub expires: i64,
    nonce: String,
}

/// The key sessions and CSRF tokens are signed with, derived from the admin token.
pub struct SessionKey([u8; 32]);

impl SessionKey {
    pub fn derive(token: &SecretString) -> Self {
        let mut mac = keyed(token.expose().as_bytes());
        mac.update(b"admin console session v1");
        Self(mac.finalize().into_bytes().into())
    }

    /// Behind Cloudflare Access the console keeps no session of its own: the request's valid
    /// Access token is the session, and its CSRF tokens are keyed by that token, which a
    /// cross-site page cannot read (Access keeps it in an HttpOnly cookie). No secret needed.
    pub fn from_access(assertion: &str) -> (Self, Session) {
        let mut mac = keyed(assertion.as_bytes());
        mac.update(b"admin console access v1");
        let session = Session {
            expires: i64::MAX,
            nonce: String::new(),
        };
        (Self(mac.finalize().into_bytes().into()), session)
    }

    fn mac(&self, what: &str) -> HmacSha256 {
        let mut mac = keyed(&self.0);
        mac.update(what.as_bytes());
        mac
    }

    /// A new session from `now` for [`SESSION_SECONDS`]: the cookie's value and the session.
    pub fn issue(&self, now: i64, random: [u8; 16]) -> (String, Session) {
        let session = Session {
            expires: now + SESSION_SECONDS,
            nonce: hex::encode(random),
        };
        let signed = format!("s.{}.{}", session.expires, session.nonce);
        let tag = hex::encode(self.mac(&signed).finalize().into_bytes());
        (
            format!("{}.{}.{tag}", session.expires, session.nonce),
            session,
        )
    }

    /// The session a cookie value names, if its MAC holds (compared in constant time) and it
    /// has not expired at `now`.
    pub fn open(&self, value: &str, now: i64) -> Option<Session> {
        let mut parts = value.split('.');
        let (expires, nonce, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || nonce.len() != 32 {
            return None;
        }
        let tag = hex::decode(tag).ok()?;
        self.mac(&format!("s.{expires}.{nonce}"))
            .verify_slice(&tag)
            .ok()?;
        let expires: i64 = expires.parse().ok()?;
        (now < expires).then(|| Session {
            expires,
            nonce: nonce.to_owned(),
        })
    }

    /// The CSRF token of a session: its forms carry it, and a POST must bring it back.
    pub fn csrf(&self, session: &Session) -> String {
        hex::encode(
            self.mac(&format!("c.{}", session.nonce))
                .finalize()
                .into_bytes(),
        )
    }

    /// A POST's token against the session's, in constant time; a mismatch is refused as a
    /// form from elsewhere (403).
    pub fn check_csrf(&self, session: &Session, given: Option<&str>) -> Result<(), AppError> {
        let expected = self.csrf(session);
        let given = given.unwrap_or("");
        if given.len() == expected.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
        {
            Ok(())
        } else {
            Err(AppError::CrossSiteForm)
        }
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// The `Set-Cookie` of a session (`Some(value)`) or of its end (`None`). `Secure` is left
/// off only for a local development server (`LOCAL_DEV=true`) reached over loopback HTTP.
pub fn set_cookie(value: Option<&str>, local_http: bool) -> String {
    let (value, age) = match value {
        Some(value) => (value, SESSION_SECONDS),
        None => ("", 0),
    };
    let secure = if local_http { "" } else { "; Secure" };
    format!("{COOKIE}={value}; Path=/admin; Max-Age={age}; HttpOnly; SameSite=Strict{secure}")
}

/// A GET form's query without its empty fields (a filter left blank is no filter), re-encoded.
pub fn non_empty_query(query: Option<&str>) -> Result<String, AppError> {
    let mut pairs = form::pairs(query.unwrap_or("").as_bytes());
    pairs.retain(|(_, v)| !v.is_empty());
    Ok(form::encode(&pairs))
}

/// The value of `name` in a query string (the first one).
pub fn query_value(query: &str, name: &str) -> Option<String> {
    form::pairs(query.as_bytes())
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// What replaying an event would do, found by running the handlers with nothing carried out
/// (`handlers::dry_run`): Stripe reads are made, writes are listed instead of sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preview {
    pub event_id: String,
    pub event_type: String,
    /// Recorded handled or ignored: a replay changes nothing.
    pub unchanged: bool,
    /// Stripe reads made for the preview (`GET /v1/…`).
    pub reads: Vec<String>,
    /// The calls a replay would send, in order (Stripe writes, notification deliveries).
    pub sends: Vec<String>,
    /// The stored records a replay would write or delete (keys).
    pub writes: Vec<String>,
    /// How the handler ends: handled, ignored (with why), or where the preview stops.
    pub ends: String,
}

// ---- HTML ----

/// A page of the console: its nav, a sign-out form carrying the CSRF token, then `body`.
pub fn layout(title: &str, csrf: &str, body: &str) -> String {
    let nav = format!(
        "<nav><a href=\"/admin\">Overview</a> · <a href=\"/admin/events\">Events</a> · <a href=\"/admin/notifications\">Notifications</a> · <a href=\"/admin/charges\">Charges</a> · <a href=\"/admin/users\">Users</a>{}</nav>\n",
        post_form("/admin/sign-out", csrf, "Sign out", "")
    );
    document(title, &format!("{nav}{body}"))
}

/// A one-button POST form with the CSRF token and `hidden` fields (HTML).
fn post_form(action: &str, csrf: &str, button: &str, hidden: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"{CSRF_FIELD}\" value=\"{csrf}\">{hidden}<button>{button}</button></form>\n",
        escape_html(action)
    )
}

/// The sign-in page, with `message` (text) when a try failed.
pub fn sign_in(message: Option<&str>) -> String {
    let message = message.map_or(String::new(), |m| {
        format!(
            "<p role=\"alert\"><strong>{}</strong></p>\n",
            escape_html(m)
        )
    });
    document(
        "Admin console",
        &format!("{message}<form method=\"post\" action=\"/admin/sign-in\"><p><label>Admin token<br><input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label></p><p><button>Sign in</button></p></form>\n"),
    )
}

/// An HTML link to `href` (escaped) with `text`.
fn link(href: &str, text: &str) -> String {
    format!(
        "<a href=\"{}\">{}</a>",
        escape_html(href),
        escape_html(text)
    )
}

/// `at` as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn utc(at: i64) -> String {
    let (days, secs) = (at.div_euclid(86_400), at.rem_euclid(86_400));
    let (year, month, day) = crate::event::thin::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Any stored record as nested lists: every field, escaped. One renderer for events,
/// charges, users and notifications, so no page copies a record's shape.
pub fn value_html(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let rows: String = map
                .iter()
                .map(|(k, v)| format!("<dt>{}</dt><dd>{}</dd>", escape_html(k), value_html(v)))
                .collect();
            format!("<dl>{rows}</dl>")
        }
        Value::Array(items) if items.is_empty() => "none".to_owned(),
        Value::Array(items) => {
            let rows: String = items
                .iter()
                .map(|v| format!("<li>{}</li>", value_html(v)))
                .collect();
            format!("<ol>{rows}</ol>")
        }
        Value::String(text) => escape_html(text),
        other => escape_html(&crate::router::json_string(other)),
    }
}

/// The failed outcome as an operator reads it.
fn outcome_text(record: &EventRecord) -> &'static str {
    match record.outcome.as_str() {
        "failed" if record.failed_for_good() => "failed for good",
        "failed" => "failed (Stripe retries)",
        other => other,
    }
}

/// One event in a list: time, type, outcome and its link.
fn event_item(record: &EventRecord) -> String {
    format!(
        "<li>{} · {} · <strong>{}</strong><br>{}</li>",
        utc(record.recorded_at),
        escape_html(&record.event_type),
        outcome_text(record),
        link(&format!("/admin/events/{}", record.id), &record.id)
    )
}

/// The filters of the event log, as a GET form holding `query`'s values.
fn event_filters(query: &str) -> String {
    let value = |name: &str| escape_html(&query_value(query, name).unwrap_or_default());
    let chosen = query_value(query, "outcome").unwrap_or_default();
    let options: String = ["", "handled", "ignored", "failed", "failed_for_good"]
        .iter()
        .map(|o| {
            let selected = if *o == chosen { " selected" } else { "" };
            format!(
                "<option value=\"{o}\"{selected}>{}</option>",
                if o.is_empty() { "any" } else { o }
            )
        })
        .collect();
    let field = |name: &str, label: &str, kind: &str| {
        format!(
            "<label>{label}<br><input name=\"{name}\" type=\"{kind}\" value=\"{}\"></label><br>",
            value(name)
        )
    };
    format!(
        "<form method=\"get\" action=\"/admin/events\"><label>Outcome<br><select name=\"outcome\">{options}</select></label><br>{}{}{}{}{}<button>Filter</button></form>\n",
        field("type", "Type", "text"),
        field("customer", "Customer (cus_…)", "text"),
        field("user", "User id", "text"),
        field("since", "Since (Unix seconds)", "number"),
        field("until", "Until (Unix seconds)", "number"),
    )
}

/// The event log: filters, a page of events, and the next page's link.
pub fn events(
    csrf: &str,
    query: &str,
    message: Option<&str>,
    records: &[EventRecord],
    cursor: Option<&str>,
) -> String {
    let items: String = records.iter().map(event_item).collect();
    let list = if let Some(message) = message {
        format!(
            "<p role=\"alert\"><strong>{}</strong></p>\n",
            escape_html(message)
        )
    } else if items.is_empty() {
        "<p>No event matches.</p>\n".to_owned()
    } else {
        format!("<ul>{items}</ul>\n")
    };
    let next = next_link("/admin/events", query, cursor);
    layout(
        "Events",
        csrf,
        &format!("{}{list}{next}", event_filters(query)),
    )
}

/// One event: its record (type, steps, Stripe's error, outcome, reason) and, unless it is
/// done, the way to its replay's preview.
pub fn event(csrf: &str, record: &EventRecord, value: &Value) -> String {
    let replay = if record.outcome.is_final() {
        String::new()
    } else {
        format!(
            "<p>{}</p>\n",
            link(
                &format!("/admin/events/{}/replay", record.id),
                "Preview a replay"
            )
        )
    };
    let body = format!(
        "<p><strong>{}</strong> · {}</p>\n{replay}{}",
        escape_html(&record.event_type),
        outcome_text(record),
        value_html(value)
    );
    layout("Event", csrf, &body)
}

fn list_or_none(title: &str, items: &[String]) -> String {
    let rows: String = items
        .iter()
        .map(|i| format!("<li>{}</li>", escape_html(i)))
        .collect();
    let rows = if rows.is_empty() {
        "<li>none</li>".to_owned()
    } else {
        rows
    };
    format!("<h2>{title}</h2><ul>{rows}</ul>\n")
}

/// The dry run of a replay, and the form that replays for real.
pub fn preview(csrf: &str, preview: &Preview) -> String {
    let id = &preview.event_id;
    let head = format!(
        "<p>{} · {}</p>\n<p><strong>{}</strong></p>\n",
        link(&format!("/admin/events/{id}"), id),
        escape_html(&preview.event_type),
        escape_html(&preview.ends)
    );
    let confirm = if preview.unchanged {
        String::new()
    } else {
        post_form(
            &format!("/admin/events/{id}/replay"),
            csrf,
            "Replay for real",
            "",
        )
    };
    let body = format!(
        "{head}{}{}{}{confirm}",
        list_or_none("Would send", &preview.sends),
        list_or_none("Would write", &preview.writes),
        list_or_none("Read from Stripe for this preview", &preview.reads),
    );
    layout("Replay preview", csrf, &body)
}

/// What a replay or a resend did: its answer, and where to go next.
pub fn done(csrf: &str, title: &str, answer: &Value, back: &str) -> String {
    let body = format!("{}<p>{}</p>\n", value_html(answer), link(back, "Back"));
    layout(title, csrf, &body)
}

/// A page of the notifications' index (`GET /notifications`), each with its resend button.
pub fn notifications(csrf: &str, query: &str, list: &[Value], cursor: Option<&str>) -> String {
    let tabs = format!(
        "<p>{} · {} · {}</p>\n",
        link("/admin/notifications?state=pending", "Pending"),
        link("/admin/notifications?state=dead", "Dead"),
        link("/admin/notifications?state=delivered", "Delivered")
    );
    let items: String = list
        .iter()
        .map(|n| {
            let id = n["id"].as_str().unwrap_or("");
            let attempts = n["attempts"].as_array().map_or(0, Vec::len);
            let created = utc(n["created_at"].as_i64().unwrap_or(0));
            format!(
                "<li>{} · {created} · {attempts} attempts<br>{}{}</li>",
                summary(n, &["kind", "state"]),
                link(&format!("/admin/notifications/{id}"), id),
                post_form(
                    &format!("/admin/notifications/{id}/resend"),
                    csrf,
                    "Resend",
                    ""
                )
            )
        })
        .collect();
    let list = if items.is_empty() {
        "<p>None.</p>\n".to_owned()
    } else {
        format!("<ul>{items}</ul>\n")
    };
    let filters = filter_form(
        "/admin/notifications",
        &["state", "kind", "user", "customer"],
        query,
    );
    let next = next_link("/admin/notifications", query, cursor);
    layout(
        "Notifications",
        csrf,
        &format!("{tabs}{filters}{list}{next}"),
    )
}

/// One notification: its record with every attempt, and its resend button.
pub fn notification(csrf: &str, id: &str, record: &Value) -> String {
    let resend = post_form(
        &format!("/admin/notifications/{id}/resend"),
        csrf,
        "Resend",
        "",
    );
    layout(
        "Notification",
        csrf,
        &format!("{resend}{}", value_html(record)),
    )
}

/// A record looked up by id (a charge, an Identity user, a customer): the form, and the
/// record when one was asked for (`None`: not found).
pub fn lookup(
    csrf: &str,
    title: &str,
    action: &str,
    label: &str,
    asked: Option<(&str, Option<&Value>)>,
) -> String {
    let id = asked.map_or("", |(id, _)| id);
    let form = format!(
        "<form method=\"get\" action=\"{action}\"><label>{label}<br><input name=\"id\" value=\"{}\" required></label> <button>Show</button></form>\n",
        escape_html(id)
    );
    let found = match asked {
        Some((_, Some(record))) => value_html(record),
        Some((_, None)) => "<p>Nothing is recorded under this id.</p>\n".to_owned(),
        None => String::new(),
    };
    layout(title, csrf, &format!("{form}{found}"))
}

/// One record of an index page, as the console lists it: the fields named.
fn summary(record: &Value, fields: &[&str]) -> String {
    // A loop, not `collect` then `join`: no iterator adapters compiled for one line.
    let mut summary = String::new();
    let mut first = true;
    for field in fields {
        let text = match &record[*field] {
            Value::Null => continue,
            Value::String(text) => escape_html(text),
            other => escape_html(&crate::router::json_string(other)),
        };
        if !first {
            summary.push_str(" · ");
        }
        first = false;
        summary.push_str(&text);
    }
    summary
}

/// A GET form with a text field per filter of an index, holding `query`'s values.
fn filter_form(action: &str, params: &[&str], query: &str) -> String {
    let fields: String = params
        .iter()
        .chain(&["since", "until"])
        .map(|name| {
            let value = escape_html(&query_value(query, name).unwrap_or_default());
            format!("<label>{name}<br><input name=\"{name}\" value=\"{value}\"></label><br>")
        })
        .collect();
    format!("<form method=\"get\" action=\"{action}\">{fields}<button>Filter</button></form>\n")
}

/// What an index page lists and where each record leads.
pub struct IndexPage<'a> {
    pub title: &'a str,
    /// The page's own path (the filter form's, the lookup's and the next page's).
    pub action: &'a str,
    /// The index's filter parameters (`since` and `until` are added).
    pub params: &'a [&'a str],
    /// The fields each record shows.
    pub fields: &'a [&'a str],
    /// The field that is the record's id (its link is `action?id=`).
    pub id_field: &'a str,
}

/// A page of an index (`GET /charges`, `GET /identity/users`), newest first, with its
/// filters, the lookup by id, and the next page's link.
pub fn index(
    csrf: &str,
    page: &IndexPage<'_>,
    query: &str,
    records: &[Value],
    cursor: Option<&str>,
) -> String {
    let items: String = records
        .iter()
        .map(|r| {
            let id = r[page.id_field].as_str().unwrap_or("");
            let href = format!("{}?{}", page.action, form::encode(&[("id", id)]));
            format!(
                "<li>{}<br>{}</li>",
                summary(r, page.fields),
                link(&href, id)
            )
        })
        .collect();
    let list = if items.is_empty() {
        "<p>None matches.</p>\n".to_owned()
    } else {
        format!("<ul>{items}</ul>\n")
    };
    let lookup = format!(
        "<form method=\"get\" action=\"{}\"><label>Id<br><input name=\"id\" required></label> <button>Show</button></form>\n",
        page.action
    );
    let filters = filter_form(page.action, page.params, query);
    let next = next_link(page.action, query, cursor);
    layout(page.title, csrf, &format!("{lookup}{filters}{list}{next}"))
}

/// The link to the page after this one (`query` with the new cursor), if there is one.
fn next_link(action: &str, query: &str, cursor: Option<&str>) -> String {
    cursor.map_or(String::new(), |cursor| {
        let mut pairs = form::pairs(query.as_bytes());
        pairs.retain(|(k, _)| k != "cursor");
        pairs.push(("cursor".into(), cursor.into()));
        let next = form::encode(&pairs);
        format!(
            "<p>{}</p>\n",
            link(&format!("{action}?{next}"), "Next page")
        )
    })
}

/// What the overview shows.
#[derive(Debug, Default)]
pub struct Overview {
    pub now: i64,
    /// Deliveries of the last 24 hours by outcome (the event index).
    pub counts: Counts,
    /// The first page of pending notifications (earliest due first) and of dead ones.
    pub pending: Vec<Notification>,
    pub dead: Vec<Notification>,
    /// More than the page holds.
    pub more_pending: bool,
    pub more_dead: bool,
    /// `GET /catch-up`'s state, when catch-up has run.
    pub catchup: Option<Value>,
    /// Catch-up's cursor (`since`): how far behind now it is.
    pub catchup_since: Option<i64>,
}

/// The overview: deliveries of the last day, notifications, catch-up, and ops alerts not yet
/// delivered or dead.
pub fn overview(csrf: &str, o: &Overview) -> String {
    let c = &o.counts;
    let count = |n: usize, more: bool| format!("{n}{}", if more { "+" } else { "" });
    let oldest = o
        .pending
        .iter()
        .map(|n| n.created_at)
        .min()
        .map_or(String::new(), |at| {
            format!(" (oldest {} old)", age(o.now - at))
        });
    let catchup = match (o.catchup_since, &o.catchup) {
        (Some(since), Some(state)) => format!(
            "<p>Events listed up to {} ({} behind).</p>{}",
            utc(since),
            age(o.now - since),
            value_html(state)
        ),
        _ => "<p>Catch-up has not run yet.</p>".to_owned(),
    };
    let alerts: Vec<String> = o
        .pending
        .iter()
        .chain(&o.dead)
        .filter(|n| n.kind.starts_with("ops."))
        .map(|n| format!("{} {} ({})", utc(n.created_at), n.kind, n.state.as_str()))
        .collect();
    let body = format!(
        "<h2>Last 24 hours</h2><ul><li>handled: {}</li><li>ignored: {}</li><li>failed, Stripe retries: {}</li><li>{}: {}</li></ul>\n<h2>Notifications</h2><ul><li>{}: {}{oldest}</li><li>{}: {}</li></ul>\n<h2>Catch-up</h2>{catchup}\n{}",
        c.handled,
        c.ignored,
        c.failed_retrying,
        link("/admin/events?outcome=failed_for_good", "failed for good"),
        c.failed_for_good,
        link("/admin/notifications?state=pending", "pending"),
        count(o.pending.len(), o.more_pending),
        link("/admin/notifications?state=dead", "dead"),
        count(o.dead.len(), o.more_dead),
        list_or_none("Ops alerts not delivered", &alerts),
    );
    layout("Overview", csrf, &body)
}

/// A duration in the largest whole unit: "45 s", "12 min", "3 h", "2 d".
pub fn age(seconds: i64) -> String {
    match seconds.max(0) {
        s @ 0..=119 => format!("{s} s"),
        s @ 120..=7199 => format!("{} min", s / 60),
        s @ 7200..=172_799 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ADMIN_TOKEN};

    fn key(token: &str) -> SessionKey {
        let config =
            Config::from_lookup(|name| (name == ADMIN_TOKEN).then(|| token.to_owned())).unwrap();
        SessionKey::derive(config.admin_token().unwrap())
    }

    #[test]
    fn a_session_opens_until_it_expires() {
        let key = key("a-token-of-thirty-two-characters!");
        let (value, session) = key.issue(1_000, [7; 16]);
        assert_eq!(key.open(&value, 1_000), Some(session.clone()));
        assert_eq!(key.open(&value, 1_000 + SESSION_SECONDS - 1), Some(session));
        assert_eq!(key.open(&value, 1_000 + SESSION_SECONDS), None);
    }

    #[test]
    fn a_tampered_cookie_or_another_token_opens_nothing() {
        let key_a = key("a-token-of-thirty-two-characters!");
        let (value, _) = key_a.issue(1_000, [7; 16]);
        // A later expiry with the old MAC.
        let (_, rest) = value.split_once('.').unwrap();
        assert_eq!(key_a.open(&format!("99999999999.{rest}"), 1_000), None);
        let mut flipped = value.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            key_a.open(std::str::from_utf8(&flipped).unwrap(), 1_000),
            None
        );
        for junk in ["", "1.2", "a.b.c", &format!("{value}.x")] {
            assert_eq!(key_a.open(junk, 1_000), None, "{junk}");
        }
        // The token rotated: the old session is over.
        let key_b = key("another-token-of-thirty-two-chars");
        assert_eq!(key_b.open(&value, 1_000), None);
    }

    #[test]
    fn the_csrf_token_is_bound_to_its_session() {
        let key = key("a-token-of-thirty-two-characters!");
        let (_, one) = key.issue(1_000, [1; 16]);
        let (_, two) = key.issue(1_000, [2; 16]);
        let token = key.csrf(&one);
        assert!(key.check_csrf(&one, Some(&token)).is_ok());
        for given in [None, Some(""), Some("x"), Some(key.csrf(&two).as_str())] {
            assert!(
                matches!(key.check_csrf(&one, given), Err(AppError::CrossSiteForm)),
                "{given:?}"
            );
        }
    }

    #[test]
    fn behind_access_the_csrf_token_is_bound_to_the_access_token() {
        let (access, session) = SessionKey::from_access("header.claims.signature-one");
        let token = access.csrf(&session);
        assert!(access.check_csrf(&session, Some(&token)).is_ok());
        // Another person's (or a re-issued) Access token makes other CSRF tokens.
        let (other, other_session) = SessionKey::from_access("header.claims.signature-two");
        let foreign = other.csrf(&other_session);
        assert_ne!(token, foreign);
        for given in [None, Some(""), Some(foreign.as_str())] {
            assert!(
                matches!(
                    access.check_csrf(&session, given),
                    Err(AppError::CrossSiteForm)
                ),
                "{given:?}"
            );
        }
        // Not the token-derived key's either.
        let by_token = key("a-token-of-thirty-two-characters!");
        assert_ne!(by_token.csrf(&session), token);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_unless_local() {
        let set = set_cookie(Some("v"), false);
        assert_eq!(
            set,
            "admin_session=v; Path=/admin; Max-Age=28800; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(!set_cookie(Some("v"), true).contains("Secure"));
        assert!(set_cookie(None, false).contains("admin_session=; Path=/admin; Max-Age=0;"));
        assert_eq!(
            cookie(Some("a=1; admin_session=x.y.z; b=2"), COOKIE),
            Some("x.y.z")
        );
        assert_eq!(cookie(Some("xadmin_session=1"), COOKIE), None);
        assert_eq!(cookie(None, COOKIE), None);
    }

    #[test]
    fn blank_filters_are_no_filters() {
        assert_eq!(
            non_empty_query(Some("outcome=failed&type=&customer=&since=5")).unwrap(),
            "outcome=failed&since=5"
        );
        assert_eq!(non_empty_query(None).unwrap(), "");
        assert_eq!(query_value("a=1&b=x+y", "b").as_deref(), Some("x y"));
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_796_342_399), "2026-12-03 23:59:59");
        assert_eq!(age(90), "90 s");
        assert_eq!(age(600), "10 min");
        assert_eq!(age(3 * 86_400), "3 d");
    }

    #[test]
    fn records_render_escaped_and_forms_carry_the_csrf_token() {
        let value = serde_json::json!({"message": "<b>x</b>", "steps": [1, "a"], "none": []});
        let html = value_html(&value);
        assert!(
            html.contains("&lt;b&gt;x&lt;/b&gt;") && !html.contains("<b>"),
            "{html}"
        );
        assert!(html.contains("<ol><li>1</li><li>a</li></ol>"), "{html}");
        let page = preview(
            "tok",
            &Preview {
                event_id: "evt_1".into(),
                event_type: "checkout.session.completed".into(),
                sends: vec!["POST /v1/customers".into()],
                ends: "would stop".into(),
                ..Preview::default()
            },
        );
        assert!(
            page.contains("action=\"/admin/events/evt_1/replay\""),
            "{page}"
        );
        assert!(page.contains("name=\"csrf\" value=\"tok\""), "{page}");
        assert!(page.contains("<li>POST /v1/customers</li>"), "{page}");
        let unchanged = preview(
            "tok",
            &Preview {
                unchanged: true,
                ..Preview::default()
            },
        );
        assert!(!unchanged.contains("Replay for real"));
        assert!(sign_in(Some("Wrong <token>")).contains("Wrong &lt;token&gt;"));
        let users = IndexPage {
            title: "Users",
            action: "/admin/users",
            params: &["status"],
            fields: &["status"],
            id_field: "user_id",
        };
        let records = [serde_json::json!({"user_id": "a&b <c>", "status": "verified"})];
        let page = index("tok", &users, "status=verified", &records, Some("c1"));
        assert!(
            page.contains("<a href=\"/admin/users?id=a%26b+%3Cc%3E\">a&amp;b &lt;c&gt;</a>"),
            "{page}"
        );
        assert!(
            page.contains("name=\"status\" value=\"verified\""),
            "{page}"
        );
        assert!(
            page.contains("/admin/users?status=verified&amp;cursor=c1"),
            "{page}"
        );
    }

    /// A record's summary: the named fields present, escaped, joined as `join` did.
    #[test]
    fn a_summary_joins_the_fields_present() {
        let record = serde_json::json!({"a": "", "b": "x<y", "c": 3, "d": null});
        assert_eq!(
            summary(&record, &["a", "b", "c", "d", "e"]),
            " · x&lt;y · 3"
        );
        assert_eq!(summary(&record, &["d"]), "");
    }
}
