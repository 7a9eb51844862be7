//! The route table: method and path to a `Route`. Pure, so 404/405 behave the same everywhere.

use crate::error::AppError;
use crate::stripe::is_prefixed_id;

const GET: &str = "GET, HEAD";
const POST: &str = "POST";
/// The `Allow` of a path two rows share (`/charges`: its list and its create), or of a row
/// taking both (the console's sign-in form and replay).
const GET_POST: &str = "GET, HEAD, POST";

/// Declares [`Route`] and its table from one list: each route's path (`{id}` is one
/// non-empty segment), the methods it allows, whether it needs the admin token, and whether
/// it is a browser's (`Page`) or a program's (`Json`). Its literal path segments are the words
/// `path_for_log` keeps. Adding a route: a line here and its adapter's arm in `lib.rs` (the
/// compiler asks for it).
macro_rules! route_table {
    ($($(#[$doc:meta])* $variant:ident => $path:literal, $allow:ident, $admin:literal, $answers:ident;)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Route {
            $($(#[$doc])* $variant,)+
        }

        /// Every route with its path, methods and admin flag, in matching order.
        pub const ROUTES: &[RouteSpec] = &[$(RouteSpec {
            route: Route::$variant,
            path: $path,
            allow: $allow,
            admin: $admin,
            answers: Answers::$answers,
        },)+];
    };
}

/// One row of [`ROUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub route: Route,
    pub path: &'static str,
    /// The `Allow` header of a 405.
    pub allow: &'static str,
    pub admin: bool,
    pub answers: Answers,
}

/// Who a route answers, and so what its refusals and failures look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answers {
    /// A person in a browser: every answer, an error too, is an HTML page (`pages`).
    Page,
    /// A program (Stripe, the app): errors are `{"error":{"code","message"}}`.
    Json,
}

route_table! {
    /// `GET /`: the "Save a card" page.
    Home => "/", GET, false, Page;
    /// `POST /create-checkout-session`: a customerless setup-mode Checkout Session, then 303
    /// to it (same-origin form posts only, rate-limited, off with `PUBLIC_SETUP=false`).
    CreateCheckoutSession => "/create-checkout-session", POST, false, Page;
    /// `POST /setup-sessions`: a setup session the app binds to one of its customers.
    SetupSessions => "/setup-sessions", POST, true, Json;
    Health => "/health", GET, false, Json;
    Webhook => "/webhook", POST, false, Json;
    /// `GET /events?limit=&cursor=`: a page of recorded events.
    Events => "/events", GET, true, Json;
    /// `GET /events/{id}`.
    Event => "/events/{id}", GET, true, Json;
    /// `POST /events/{id}/replay`: fetch the event from Stripe and process it again.
    ReplayEvent => "/events/{id}/replay", POST, true, Json;
    /// `GET /catch-up`: the event catch-up's cursor and last run.
    CatchUp => "/catch-up", GET, true, Json;
    CreateVerificationSession => "/identity/verification-sessions", POST, true, Json;
    /// `GET /identity/users?status=&since=&until=&limit=&cursor=`: a page of the users' index.
    IdentityUsers => "/identity/users", GET, true, Json;
    IdentityUser => "/identity/users/{id}", GET, true, Json;
    /// `GET /success?session_id=`: the page Checkout returns to.
    Success => "/success", GET, false, Page;
    /// `GET /charges?status=&recovery=&customer=&since=&until=&limit=&cursor=`: a page of the
    /// charges' index.
    Charges => "/charges", GET, true, Json;
    /// `POST /charges`: an off-session charge.
    CreateCharge => "/charges", POST, true, Json;
    Customer => "/customers/{id}", GET, true, Json;
    Charge => "/charges/{id}", GET, true, Json;
    /// `GET /notifications?state=&kind=&user=&customer=&since=&until=&limit=&cursor=`: a page
    /// of the notifications' index.
    Notifications => "/notifications", GET, true, Json;
    /// `GET /notifications/{id}`: one outbox record with its attempts.
    Notification => "/notifications/{id}", GET, true, Json;
    /// `POST /notifications/{id}/resend`: one attempt now (a dead one is revived).
    ResendNotification => "/notifications/{id}/resend", POST, true, Json;
    /// The admin console (`routes::console`): a session cookie from its sign-in form, not
    /// the bearer token; every POST same-origin with the session's CSRF token.
    ConsoleHome => "/admin", GET, false, Page;
    /// `GET`: the form; `POST`: the token in, a session cookie out.
    ConsoleSignIn => "/admin/sign-in", GET_POST, false, Page;
    ConsoleSignOut => "/admin/sign-out", POST, false, Page;
    /// The event log with `GET /events`' filters.
    ConsoleEvents => "/admin/events", GET, false, Page;
    ConsoleEvent => "/admin/events/{id}", GET, false, Page;
    /// `GET`: the replay's dry run; `POST`: the replay.
    ConsoleReplay => "/admin/events/{id}/replay", GET_POST, false, Page;
    ConsoleNotifications => "/admin/notifications", GET, false, Page;
    /// One notification with its attempts (an ops alert's `console_path`).
    ConsoleNotification => "/admin/notifications/{id}", GET, false, Page;
    ConsoleResend => "/admin/notifications/{id}/resend", POST, false, Page;
    /// `?id=`: one record, as `GET /charges/{id}`, `/customers/{id}`, `/identity/users/{id}`.
    ConsoleCharges => "/admin/charges", GET, false, Page;
    ConsoleCustomers => "/admin/customers", GET, false, Page;
    ConsoleUsers => "/admin/users", GET, false, Page;
    /// `GET /favicon.ico`: the icon every page names.
    Favicon => "/favicon.ico", GET, false, Page;
}

impl Route {
    /// Its row: the table is declared in variant order, so the discriminant is the index.
    pub fn spec(self) -> &'static RouteSpec {
        &ROUTES[self as usize]
    }

    /// Behind `Authorization: Bearer ADMIN_TOKEN`.
    pub fn needs_admin(self) -> bool {
        self.spec().admin
    }
}

/// A matched route and its `{id}` segment (empty for a route without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub route: Route,
    pub id: String,
}

/// The segments of `path` if they fit `pattern`, with the `{id}` one.
fn fit(pattern: &str, segments: &[&str]) -> Option<String> {
    let parts: Vec<&str> = pattern[1..].split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut id = String::new();
    for (part, segment) in parts.iter().zip(segments) {
        if *part == "{id}" && !segment.is_empty() {
            id = (*segment).to_owned();
        } else if part != segment {
            return None;
        }
    }
    Some(id)
}

/// The row whose path fits `path` (whatever the method), with its `{id}` segment.
fn find(path: &str) -> Option<(&'static RouteSpec, String)> {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    ROUTES
        .iter()
        .find_map(|spec| fit(spec.path, &segments).map(|id| (spec, id)))
}

/// The route of a method and path. A path may have one row per method (`GET /charges` lists,
/// `POST /charges` creates): the row that allows the method answers; with none, the 405 lists
/// every method the path's rows allow.
pub fn route(method: &str, path: &str) -> Result<Routed, AppError> {
    let (first, id) = find(path).ok_or(AppError::NotFound)?;
    let mut allow = first.allow;
    for spec in ROUTES.iter().filter(|spec| spec.path == first.path) {
        if spec.allow.split(", ").any(|allowed| allowed == method) {
            return Ok(Routed {
                route: spec.route,
                id,
            });
        }
        if spec.allow != allow {
            allow = GET_POST;
        }
    }
    Err(AppError::MethodNotAllowed { allow })
}

/// Who a path's route answers (whatever the method: a browser that opens
/// `/create-checkout-session` gets a 405 page); `None` for a path no route has.
pub fn answers_for(path: &str) -> Option<Answers> {
    find(path).map(|(spec, _)| spec.answers)
}

/// Whether a refused or failed request is answered with an HTML page rather than JSON: on a
/// page route always, on a path no route has when the client asks for HTML (a browser's
/// address bar sends `Accept: text/html,…`; `accept` is read only then).
pub fn answers_page(path: &str, accept: impl FnOnce() -> Option<String>) -> bool {
    match answers_for(path) {
        Some(answers) => answers == Answers::Page,
        None => accept().is_some_and(|accept| accepts_html(&accept)),
    }
}

/// Whether an `Accept` header lists `text/html` (with any parameters, not refused by `q=0`).
pub fn accepts_html(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let refused = parts.any(|p| p.strip_prefix("q=").is_some_and(weight_is_zero));
        media.eq_ignore_ascii_case("text/html") && !refused
    })
}

/// Whether a media range's weight (`q=`) refuses it: a decimal number at most 0, as
/// `q.parse::<f32>()` and `<= 0.0` decided it, without linking the float parser (5 KB of
/// wasm for this one check). Exponent and infinity forms, which RFC 9110's `qvalue` does not
/// have, do not refuse.
fn weight_is_zero(q: &str) -> bool {
    let (negative, digits) = match q.as_bytes().first() {
        Some(b'-') => (true, &q[1..]),
        Some(b'+') => (false, &q[1..]),
        _ => (false, q),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let decimal = !(whole.is_empty() && fraction.is_empty())
        && whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit());
    decimal && (negative || whole.bytes().chain(fraction.bytes()).all(|b| b == b'0'))
}

/// A literal segment of some route's path.
fn is_route_word(segment: &str) -> bool {
    !segment.is_empty()
        && ROUTES
            .iter()
            .any(|spec| spec.path.split('/').any(|part| part == segment))
}

/// Whether a form POST comes from this service's own page: a browser says where a request
/// comes from (`Sec-Fetch-Site`, else `Origin`), and a cross-site form (another site's page
/// posting to ours, CSRF) is refused. A request with neither header is no browser's form
/// post (a browser always sends `Origin` with a POST) and is let through.
pub fn is_same_origin_post(
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    own_origins: &[&str],
) -> bool {
    match (sec_fetch_site.map(str::trim), origin.map(str::trim)) {
        // `none`: typed or bookmarked by the user, which a form post is not.
        (Some(site), _) if !site.eq_ignore_ascii_case("same-origin") => false,
        // Chrome sends `Origin: null` for a form posted from a page with
        // `Referrer-Policy: no-referrer` (all of ours); its `Sec-Fetch-Site` still says where
        // the post came from, and no page can set that header.
        (Some(_), Some("null")) => true,
        (_, Some(origin)) => own_origins
            .iter()
            .filter(|own| !own.is_empty())
            .any(|own| origin.eq_ignore_ascii_case(own.trim_end_matches('/'))),
        (Some(_), None) => true,
        (None, None) => true,
    }
}

/// What a rate limit counts a client as: its IPv4 address, or its IPv6 /48. One subscriber
/// often holds a whole /48 (65,536 /64s: counted by /64, it could take a fresh bucket for
/// every request); a /48 is the usual site assignment.
pub fn rate_limit_client(address: &str) -> String {
    match address.trim().parse::<std::net::IpAddr>() {
        // An IPv4 client written as IPv6 (`::ffff:a.b.c.d`) is that IPv4 address: as a /48
        // every such client would share one bucket.
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        },
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => "unknown".to_owned(),
    }
}

/// `scheme://host[:port]` of an absolute URL, by hand: the `url` crate's IDNA tables would
/// add ~190 KB of wasm for this one use.
pub fn origin_of(url: &str) -> Option<&str> {
    let after_scheme = url.find("://")? + 3;
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    (end > after_scheme).then(|| &url[..end])
}

/// The path as it goes into the request's log line: the route's own words and Stripe ids
/// (`evt_…`, `cus_…`, `pi_…`) are kept; an application user id (it may be an email) and any
/// other segment become `*`, so a log line never carries personal data from a URL. The query
/// is not part of `path` and is never logged.
pub fn path_for_log(path: &str) -> String {
    const STRIPE_ID_PREFIXES: &[&str] = &[
        "evt_", "cus_", "pi_", "vs_", "cs_", "seti_", "pm_", "ch_", "we_",
    ];
    const MAX_SEGMENTS: usize = 6;
    let is_stripe_id = |segment: &str| {
        segment.len() <= 128
            && STRIPE_ID_PREFIXES
                .iter()
                .any(|prefix| is_prefixed_id(segment, prefix))
    };
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let mut logged = String::new();
    for (i, segment) in segments.iter().take(MAX_SEGMENTS).enumerate() {
        logged.push('/');
        let after_users = i > 0 && segments[i - 1] == "users";
        if is_route_word(segment) || (!after_users && is_stripe_id(segment)) {
            logged.push_str(segment);
        } else if !segment.is_empty() {
            logged.push('*');
        }
    }
    if segments.len() > MAX_SEGMENTS {
        logged.push_str("/…");
    }
    logged
}

/// The largest form body a browser route reads; the "Save a card" form is a few dozen bytes.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// The fields of an `application/x-www-form-urlencoded` body. Anything else (multipart, JSON,
/// no content type) is refused rather than read as an empty form with defaults.
pub fn form_fields(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<(String, String)>, AppError> {
    let media_type = content_type
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(AppError::BadForm);
    }
    Ok(crate::form::pairs(body))
}

/// The largest JSON body an admin route reads.
pub const MAX_JSON_BYTES: usize = 16 * 1024;

/// An `application/json` body, a JSON object, decoded as `T`. The error names what is wrong (not
/// an object, a missing field, a wrong type) without quoting the input.
pub fn json_body<T: serde::de::DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<T, AppError> {
    serde_json::from_str(json_object_text(content_type, body)?)
        .map_err(|e| AppError::BadJson(describe_json_error(&e)))
}

/// The checks of [`json_body`] before decoding: not generic, so one copy, not one per type.
fn json_object_text<'a>(content_type: Option<&str>, body: &'a [u8]) -> Result<&'a str, AppError> {
    let media_type = content_type
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(AppError::BadJson(
            "the content type must be application/json".into(),
        ));
    }
    // Every body these routes read is an object; serde would fill a struct from an array by
    // position, so `[]` would pass as "every field missing".
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AppError::BadJson("the body must be a JSON object".into()));
    }
    // `from_str`, as everywhere: a `from_slice` reader is a second copy of serde_json's parser.
    std::str::from_utf8(body).map_err(|_| AppError::BadJson("the body is not UTF-8".into()))
}

/// A value's JSON text, as `value.to_string()` writes it, through the serialiser
/// `serde_json::to_string` already compiles for `Value`: `Display` compiles another, over a
/// `fmt::Write` adapter (bench/RESULTS.md, notes).
pub fn json_string(value: &serde_json::Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A JSON object of `fields`, as `json!` builds it, without the value serialiser (see
/// [`crate::json::to_value`]). Inserted one by one: `collect` would compile a sort for a bulk build.
pub fn json_object(fields: Vec<(&str, serde_json::Value)>) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (key, value) in fields {
        map.insert(key.to_owned(), value);
    }
    serde_json::Value::Object(map)
}

/// A JSON field that should be a string: absent or `null` is `None`, a string is itself, and
/// anything else is `Err(())`, for the caller to answer with that field's own error.
#[allow(clippy::result_unit_err)]
pub fn json_text(value: Option<serde_json::Value>) -> Result<Option<String>, ()> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(()),
    }
}

/// serde_json's message minus any excerpt of the input ("invalid type: string \"…\"").
pub fn describe_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let text = error.to_string();
    let what = text.split(" at line ").next().unwrap_or("");
    match error.classify() {
        Category::Data
            if what.starts_with("missing field")
                || what.starts_with("unknown field")
                || what.starts_with("duplicate field") =>
        {
            what.split(", expected").next().unwrap_or(what).to_owned()
        }
        Category::Data => format!(
            "a field has the wrong type or value (line {} column {})",
            error.line(),
            error.column()
        ),
        Category::Eof => "the JSON is truncated".into(),
        Category::Syntax | Category::Io => format!(
            "the body is not valid JSON (line {} column {})",
            error.line(),
            error.column()
        ),
    }
}

/// The first value of a field.
pub fn form_field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_read_only_when_url_encoded() {
        let fields = form_fields(
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            b"customer=cus_1&currency=eur&currency=usd&note=a+b%26c",
        )
        .unwrap();
        assert_eq!(form_field(&fields, "customer"), Some("cus_1"));
        assert_eq!(form_field(&fields, "currency"), Some("eur"));
        assert_eq!(form_field(&fields, "note"), Some("a b&c"));
        assert_eq!(form_field(&fields, "missing"), None);
        assert!(form_fields(Some("application/x-www-form-urlencoded"), b"")
            .unwrap()
            .is_empty());
        for content_type in [
            None,
            Some("multipart/form-data; boundary=x"),
            Some("application/json"),
        ] {
            assert!(matches!(
                form_fields(content_type, b"customer=cus_1"),
                Err(AppError::BadForm)
            ));
        }
        // Bytes that are not UTF-8 decode lossily; the field validation then refuses them.
        let lossy =
            form_fields(Some("application/x-www-form-urlencoded"), b"customer=%FF").unwrap();
        assert_eq!(form_field(&lossy, "customer"), Some("\u{fffd}"));
    }

    /// `json::to_value` and `json_object` stand in for `serde_json::to_value` and `json!`: the
    /// same values, so the same JSON text (keys sorted), for what the routes put through them.
    #[test]
    fn to_value_and_json_object_give_what_to_value_and_json_give() {
        #[derive(serde::Serialize)]
        struct Report {
            zeta: u64,
            alpha: Option<String>,
            none: Option<String>,
            ratio: f64,
            whole: f64,
            negative: i64,
            nested: std::collections::BTreeMap<u32, Vec<bool>>,
            text: &'static str,
        }
        let report = Report {
            zeta: u64::MAX,
            alpha: Some("a \"quoted\" \u{e9}".into()),
            none: None,
            ratio: 0.1 + 0.2,
            whole: 3.0,
            negative: i64::MIN,
            nested: [(2, vec![true]), (10, vec![])].into_iter().collect(),
            text: "<b>",
        };
        let value = crate::json::to_value(&report).unwrap();
        assert_eq!(value, serde_json::to_value(&report).unwrap());
        assert_eq!(
            value.to_string(),
            serde_json::to_value(&report).unwrap().to_string()
        );
        assert_eq!(
            crate::json::to_value(&None::<String>).ok(),
            Some(serde_json::Value::Null)
        );

        let object = json_object(vec![
            ("id", "cs_1".into()),
            ("url", Some("https://x".to_owned()).into()),
            ("missing", None::<String>.into()),
            ("count", 7u32.into()),
            ("error", json_object(vec![("code", "x".into())])),
        ]);
        let expected = serde_json::json!({
            "id": "cs_1", "url": "https://x", "missing": null, "count": 7, "error": {"code": "x"},
        });
        assert_eq!(object, expected);
        assert_eq!(object.to_string(), expected.to_string());
        for value in [
            &object,
            &value,
            &serde_json::json!(1.5),
            &serde_json::json!(null),
        ] {
            assert_eq!(json_string(value), value.to_string());
        }
    }

    #[test]
    fn json_bodies_need_the_json_type_and_errors_do_not_quote_input() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            user_id: String,
            amount: i64,
        }
        let ok: Body = json_body(
            Some("application/json; charset=utf-8"),
            br#"{"user_id":"u","amount":1}"#,
        )
        .unwrap();
        assert_eq!(ok.amount, 1);
        let message =
            |content_type: Option<&str>, body: &[u8]| match json_body::<Body>(content_type, body) {
                Err(AppError::BadJson(message)) => message,
                other => panic!("{other:?}"),
            };
        let json = Some("application/json");
        assert_eq!(
            message(json, br#"{"user_id":"u"}"#),
            "missing field `amount`"
        );
        assert_eq!(
            message(json, br#"{"user_id":"u","amount":1,"x":2}"#),
            "unknown field `x`"
        );
        assert!(!message(json, br#"{"user_id":"u","amount":"s3cret"}"#).contains("s3cret"));
        assert!(message(json, br#"{"user_id":"#).contains("truncated"));
        assert_eq!(
            message(json, b"{\"user_id\":\"\xff\",\"amount\":1}"),
            "the body is not UTF-8"
        );
        // serde fills a struct from an array by position: `[]` was every field missing, and so
        // a field's own error (`invalid_customer` for POST /charges), not bad_json.
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Optional {
            #[serde(default)]
            user_id: Option<serde_json::Value>,
        }
        for not_an_object in [&b"[]"[..], b" [\"u\", 1]", b"\"u\"", b"7", b"null", b"true"] {
            match json_body::<Optional>(json, not_an_object) {
                Err(AppError::BadJson(message)) => {
                    assert_eq!(message, "the body must be a JSON object")
                }
                other => panic!("{not_an_object:?}: {other:?}"),
            }
        }
        assert!(json_body::<Optional>(json, b" \n{}").is_ok());
        assert!(message(None, br#"{}"#).contains("application/json"));
        assert!(
            message(Some("application/x-www-form-urlencoded"), b"a=b").contains("application/json")
        );
    }

    #[test]
    fn a_client_is_its_ipv4_address_or_its_ipv6_48() {
        assert_eq!(rate_limit_client("203.0.113.9"), "203.0.113.9");
        assert_eq!(
            rate_limit_client("2001:db8:1:2:aaaa::1"),
            rate_limit_client("2001:db8:1:2:ffff:1:2:3")
        );
        // Every /64 of one /48 is one client.
        assert_eq!(
            rate_limit_client("2001:db8:1:3::1"),
            rate_limit_client("2001:db8:1:ffff::1")
        );
        assert_eq!(rate_limit_client("2001:db8:1:2::9"), "2001:db8:1::/48");
        // An IPv4 client in IPv6 notation is its IPv4 address, not one bucket for all of them.
        assert_eq!(rate_limit_client("::ffff:203.0.113.9"), "203.0.113.9");
        assert_ne!(
            rate_limit_client("::ffff:203.0.113.9"),
            rate_limit_client("::ffff:198.51.100.7")
        );
        assert_ne!(
            rate_limit_client("2001:db8:2::1"),
            rate_limit_client("2001:db8:1::1")
        );
        assert_eq!(rate_limit_client("not an address"), "unknown");
    }

    #[test]
    fn only_a_same_origin_form_post_is_let_through() {
        let own = ["https://shop.test", "http://127.0.0.1:8787"];
        assert!(is_same_origin_post(
            Some("same-origin"),
            Some("https://shop.test"),
            &own
        ));
        assert!(is_same_origin_post(Some("same-origin"), None, &own));
        // Found by the browser test: Chrome's form post from a no-referrer page.
        assert!(is_same_origin_post(Some("same-origin"), Some("null"), &own));
        assert!(is_same_origin_post(
            None,
            Some("http://127.0.0.1:8787"),
            &own
        ));
        assert!(is_same_origin_post(None, None, &own), "not a browser");
        for (site, origin) in [
            (Some("cross-site"), Some("https://evil.test")),
            (Some("same-site"), Some("https://sub.shop.test")),
            (Some("none"), None),
            (None, Some("https://evil.test")),
            (None, Some("null")),
            (Some("cross-site"), None),
            (Some("same-origin"), Some("https://shop.test.evil.test")),
            (None, Some("")),
        ] {
            assert!(
                !is_same_origin_post(site, origin, &own),
                "{site:?} {origin:?}"
            );
        }
    }

    #[test]
    fn the_origin_is_scheme_host_and_port() {
        assert_eq!(
            origin_of("http://127.0.0.1:8787/create-checkout-session"),
            Some("http://127.0.0.1:8787")
        );
        assert_eq!(origin_of("https://shop.test"), Some("https://shop.test"));
        assert_eq!(
            origin_of("https://shop.test?x=1"),
            Some("https://shop.test")
        );
        assert_eq!(origin_of("https:///path"), None);
        assert_eq!(origin_of("not a url"), None);
    }

    #[test]
    fn known_paths_route_with_their_methods() {
        let routed = |method, path| {
            let Routed { route: r, id } = route(method, path).unwrap();
            (r, id)
        };
        let none = String::new;
        assert_eq!(routed("GET", "/health"), (Route::Health, none()));
        assert_eq!(routed("GET", "/"), (Route::Home, none()));
        assert_eq!(
            routed("POST", "/create-checkout-session"),
            (Route::CreateCheckoutSession, none())
        );
        assert_eq!(routed("POST", "/webhook"), (Route::Webhook, none()));
        assert_eq!(routed("GET", "/events"), (Route::Events, none()));
        assert_eq!(
            routed("GET", "/events/evt_1"),
            (Route::Event, "evt_1".into())
        );
        assert_eq!(
            routed("POST", "/events/evt_1/replay"),
            (Route::ReplayEvent, "evt_1".into())
        );
        assert_eq!(routed("GET", "/catch-up"), (Route::CatchUp, none()));
        assert_eq!(
            routed("POST", "/identity/verification-sessions"),
            (Route::CreateVerificationSession, none())
        );
        assert_eq!(
            routed("GET", "/identity/users/u_1"),
            (Route::IdentityUser, "u_1".into())
        );
        assert_eq!(routed("GET", "/success"), (Route::Success, none()));
        assert_eq!(
            routed("POST", "/setup-sessions"),
            (Route::SetupSessions, none())
        );
        assert_eq!(routed("POST", "/charges"), (Route::CreateCharge, none()));
        assert_eq!(routed("GET", "/charges"), (Route::Charges, none()));
        assert_eq!(routed("HEAD", "/charges"), (Route::Charges, none()));
        assert_eq!(
            routed("GET", "/identity/users"),
            (Route::IdentityUsers, none())
        );
        assert_eq!(
            routed("GET", "/charges/pi_1"),
            (Route::Charge, "pi_1".into())
        );
        assert_eq!(
            routed("GET", "/customers/cus_1"),
            (Route::Customer, "cus_1".into())
        );
        assert_eq!(
            routed("GET", "/notifications"),
            (Route::Notifications, none())
        );
        assert_eq!(
            routed("GET", "/notifications/evt_1.identity.verified"),
            (Route::Notification, "evt_1.identity.verified".into())
        );
        assert_eq!(
            routed("POST", "/notifications/evt_1.identity.verified/resend"),
            (Route::ResendNotification, "evt_1.identity.verified".into())
        );
        assert_eq!(routed("GET", "/favicon.ico"), (Route::Favicon, none()));
    }

    #[test]
    fn each_route_finds_its_own_row_and_admin_routes_are_the_app_s() {
        for spec in ROUTES {
            assert_eq!(spec.route.spec(), spec);
        }
        let admin: Vec<Route> = ROUTES.iter().filter(|s| s.admin).map(|s| s.route).collect();
        assert_eq!(
            admin,
            [
                Route::SetupSessions,
                Route::Events,
                Route::Event,
                Route::ReplayEvent,
                Route::CatchUp,
                Route::CreateVerificationSession,
                Route::IdentityUsers,
                Route::IdentityUser,
                Route::Charges,
                Route::CreateCharge,
                Route::Customer,
                Route::Charge,
                Route::Notifications,
                Route::Notification,
                Route::ResendNotification,
            ]
        );
    }

    #[test]
    fn wrong_methods_are_405_with_the_allowed_ones() {
        assert!(matches!(
            route("GET", "/webhook"),
            Err(AppError::MethodNotAllowed { allow: "POST" })
        ));
        assert!(matches!(
            route("POST", "/health"),
            Err(AppError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            route("DELETE", "/charges"),
            Err(AppError::MethodNotAllowed {
                allow: "GET, HEAD, POST"
            })
        ));
    }

    #[test]
    fn logged_paths_keep_route_words_and_stripe_ids_but_no_user_data() {
        assert_eq!(path_for_log("/"), "/");
        assert_eq!(path_for_log("/webhook"), "/webhook");
        assert_eq!(path_for_log("/events/evt_1Abc"), "/events/evt_1Abc");
        assert_eq!(path_for_log("/customers/cus_9"), "/customers/cus_9");
        assert_eq!(path_for_log("/charges/pi_3x"), "/charges/pi_3x");
        assert_eq!(
            path_for_log("/identity/users/jane@example.com"),
            "/identity/users/*"
        );
        // A user id shaped like a Stripe id is still a user id.
        assert_eq!(path_for_log("/identity/users/cus_1"), "/identity/users/*");
        assert_eq!(path_for_log("/events/jane.doe%40example.com"), "/events/*");
        assert_eq!(path_for_log("/Jane%20Doe/x"), "/*/*");
        assert_eq!(path_for_log("/events/"), "/events/");
        assert_eq!(path_for_log(&"/a".repeat(50)), "/*/*/*/*/*/*/…");
        let long = format!("/events/evt_{}", "a".repeat(500));
        assert_eq!(path_for_log(&long), "/events/*");
    }

    #[test]
    fn browser_routes_and_browsers_on_unknown_paths_get_pages() {
        let pages: Vec<Route> = ROUTES
            .iter()
            .filter(|s| s.answers == Answers::Page)
            .map(|s| s.route)
            .collect();
        assert_eq!(
            pages,
            [
                Route::Home,
                Route::CreateCheckoutSession,
                Route::Success,
                Route::ConsoleHome,
                Route::ConsoleSignIn,
                Route::ConsoleSignOut,
                Route::ConsoleEvents,
                Route::ConsoleEvent,
                Route::ConsoleReplay,
                Route::ConsoleNotifications,
                Route::ConsoleNotification,
                Route::ConsoleResend,
                Route::ConsoleCharges,
                Route::ConsoleCustomers,
                Route::ConsoleUsers,
                Route::Favicon
            ]
        );
        // The console's event pages are not the JSON event routes, and a user id after
        // `/admin/users` never reaches the log (it goes in the query, which is never logged).
        assert_eq!(
            route("GET", "/admin/events/evt_1").unwrap().route,
            Route::ConsoleEvent
        );
        assert_eq!(
            route("POST", "/admin/events/evt_1/replay").unwrap().route,
            Route::ConsoleReplay
        );
        assert_eq!(
            route("HEAD", "/admin/sign-in").unwrap().route,
            Route::ConsoleSignIn
        );
        assert!(matches!(
            route("GET", "/admin/sign-out"),
            Err(AppError::MethodNotAllowed { .. })
        ));
        assert_eq!(
            path_for_log("/admin/events/evt_1/replay"),
            "/admin/events/evt_1/replay"
        );
        assert!(ROUTES
            .iter()
            .all(|s| !(s.admin && s.answers == Answers::Page)));
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        let html = || Some(browser.to_owned());
        let no_accept = || -> Option<String> { panic!("Accept is read for unknown paths only") };
        // Page routes, whatever the method or Accept (a GET of the form's target is a 405 page).
        assert!(answers_page("/", no_accept));
        assert!(answers_page("/create-checkout-session", no_accept));
        assert!(answers_page("/success", no_accept));
        assert!(answers_page("/favicon.ico", no_accept));
        // Program routes never, even for a browser.
        assert!(!answers_page("/webhook", no_accept));
        assert!(!answers_page("/events/evt_1", no_accept));
        assert!(!answers_page("/health", no_accept));
        // Unknown paths: by Accept.
        assert!(answers_page("/nope", html));
        assert!(answers_page("/events/a/b", html));
        assert!(!answers_page("/nope", || None));
        assert!(!answers_page("/nope", || Some("application/json".into())));
        assert!(!answers_page("/nope", || Some("*/*".into())));
        assert!(accepts_html("TEXT/HTML; charset=utf-8"));
        // The weight decides as the float parser did, for every decimal form.
        for q in [
            "0", "0.", "0.0", "0.000", ".0", "+0", "-0", "00.00", "1", "1.", "1.000", "0.001",
            ".5", "-1", "-0.5", "+0.5", "0.0001", "", ".", "-", "+", "-.", "a", "0x0", "0.0.0",
            "1 ", " 0", "0a", "nan", "NaN",
        ] {
            let float = q.parse::<f32>().ok().is_some_and(|w| w <= 0.0);
            assert_eq!(weight_is_zero(q), float, "q={q:?}");
        }
        assert!(!accepts_html("text/html;q=0, application/json"));
        assert!(!accepts_html("text/htmlx"));
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in ["//", "/webhook/", "/events/", "/events/a/b", "/nope"] {
            assert!(
                matches!(route("GET", path), Err(AppError::NotFound)),
                "{path}"
            );
        }
    }
}
