//! The route table: method and path to a `Route`. Pure, so 404/405 behave the same everywhere.

use crate::error::AppError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the "Save a card" page.
    Home,
    /// `POST /create-checkout-session`: a setup-mode Checkout Session, then 303 to it.
    CreateCheckoutSession,
    Health,
    Webhook,
    /// `GET /events/{id}` (admin).
    Event(String),
}

pub fn route(method: &str, path: &str) -> Result<Route, AppError> {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let (route, allow) = match segments.as_slice() {
        [""] => (Route::Home, "GET, HEAD"),
        ["create-checkout-session"] => (Route::CreateCheckoutSession, "POST"),
        ["health"] => (Route::Health, "GET, HEAD"),
        ["webhook"] => (Route::Webhook, "POST"),
        ["events", id] if !id.is_empty() => (Route::Event((*id).to_owned()), "GET, HEAD"),
        _ => return Err(AppError::NotFound),
    };
    let allowed = match route {
        Route::Webhook | Route::CreateCheckoutSession => method == "POST",
        _ => method == "GET" || method == "HEAD",
    };
    if allowed {
        Ok(route)
    } else {
        Err(AppError::MethodNotAllowed { allow })
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
    serde_urlencoded::from_bytes(body).map_err(|_| AppError::BadForm)
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
        assert_eq!(route("GET", "/health").unwrap(), Route::Health);
        assert_eq!(route("GET", "/").unwrap(), Route::Home);
        assert_eq!(
            route("POST", "/create-checkout-session").unwrap(),
            Route::CreateCheckoutSession
        );
        assert_eq!(route("POST", "/webhook").unwrap(), Route::Webhook);
        assert_eq!(
            route("GET", "/events/evt_1").unwrap(),
            Route::Event("evt_1".into())
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
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "//",
            "/webhook/",
            "/events",
            "/events/",
            "/events/a/b",
            "/nope",
        ] {
            assert!(
                matches!(route("GET", path), Err(AppError::NotFound)),
                "{path}"
            );
        }
    }
}
