//! What several test modules build the same way: a config from a few settings, the JSON of
//! a Stripe event, and the path of a request sent to the fake transport.

use serde_json::{json, Value};
use stripe_edge_webhooks::config::Config;
use stripe_edge_webhooks::http::HttpRequest;

/// A config with only these settings (the rest at their defaults).
pub fn config_with(settings: &[(&str, &str)]) -> Config {
    Config::from_lookup(|name| {
        settings
            .iter()
            .find(|(setting, _)| *setting == name)
            .map(|(_, value)| (*value).to_owned())
    })
    .expect("the test settings are valid")
}

/// A Stripe event of type `kind` carrying `object`, as Stripe sends it.
pub fn event_json(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "created": created, "livemode": false,
           "api_version": "2026-10-28.endive", "data": {"object": object}})
}

/// The path (and query) of a request, without scheme and host.
pub fn path(request: &HttpRequest) -> &str {
    let rest = request.url.split("://").nth(1).unwrap_or("");
    rest.find('/').map_or("", |i| &rest[i..])
}
