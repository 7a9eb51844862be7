//! Typed configuration, read once from the Worker's vars and secrets through a lookup function,
//! so that it is built and tested natively without `worker`.
//!
//! Invalid values fail the whole config with an error naming the setting (never its value).
//! Secrets are optional here and demanded by the routes that need them, so that `/health` and
//! the routes that do not need a secret keep working while one is missing.

use crate::ceiling::Ceiling;
use crate::signature::{WebhookSecrets, DEFAULT_TOLERANCE_SECONDS};

pub const STRIPE_API_BASE: &str = "STRIPE_API_BASE";
pub const STRIPE_API_VERSION: &str = "STRIPE_API_VERSION";
pub const WEBHOOK_TOLERANCE_SECONDS: &str = "WEBHOOK_TOLERANCE_SECONDS";
pub const APP_BASE_URL: &str = "APP_BASE_URL";
pub const DEFAULT_CURRENCY: &str = "DEFAULT_CURRENCY";
pub const IDENTITY_MAX_ATTEMPTS: &str = "IDENTITY_MAX_ATTEMPTS";
pub const NOTIFY_URL: &str = "NOTIFY_URL";
/// Where operational alerts (`ops.*`) go, signed like the app's notifications.
pub const OPS_NOTIFY_URL: &str = "OPS_NOTIFY_URL";
pub const STRIPE_SECRET_KEY: &str = "STRIPE_SECRET_KEY";
pub const STRIPE_WEBHOOK_SECRET: &str = "STRIPE_WEBHOOK_SECRET";
pub const ADMIN_TOKEN: &str = "ADMIN_TOKEN";
pub const NOTIFY_SIGNING_SECRET: &str = "NOTIFY_SIGNING_SECRET";
pub const PUBLIC_SETUP: &str = "PUBLIC_SETUP";
pub const CATCHUP_EVERY_MINUTES: &str = "CATCHUP_EVERY_MINUTES";
pub const CATCHUP_SETTLE_SECONDS: &str = "CATCHUP_SETTLE_SECONDS";
pub const CATCHUP_THIN_EVENTS: &str = "CATCHUP_THIN_EVENTS";
pub const DEPLOYMENT_ID: &str = "DEPLOYMENT_ID";
pub const PUBLIC_SETUP_PER_DAY: &str = "PUBLIC_SETUP_PER_DAY";
pub const PUBLIC_SETUP_PER_MINUTE: &str = "PUBLIC_SETUP_PER_MINUTE";
pub const EPHEMERAL_GRACE_SECONDS: &str = "EPHEMERAL_GRACE_SECONDS";
/// The `ops.endpoint_silent` alert: no delivery for this long while catch-up finds events.
pub const ENDPOINT_SILENT_AFTER_MINUTES: &str = "ENDPOINT_SILENT_AFTER_MINUTES";
/// Cloudflare Access in front of the admin routes: the team domain
/// (`<team>.cloudflareaccess.com`) and the application's AUD tag, both or neither.
pub const ACCESS_TEAM_DOMAIN: &str = "ACCESS_TEAM_DOMAIN";
pub const ACCESS_AUD: &str = "ACCESS_AUD";
/// Where the team's keys are fetched (`{base}/cdn-cgi/access/certs`) instead of the team
/// domain: a loopback key server in tests.
pub const ACCESS_CERTS_BASE: &str = "ACCESS_CERTS_BASE";
/// `true` only for a local development server (`scripts/dev.sh` sets it): what it relaxes is
/// decided by this setting, never by anything a request says (its `Host`, its URL).
pub const LOCAL_DEV: &str = "LOCAL_DEV";
/// `true` logs one `[meter]` line per KV operation and Durable Object request (no keys, only
/// their prefixes), which `bench/costs.mjs` and the cost tests count. Only with `LOCAL_DEV`.
pub const COST_METER: &str = "COST_METER";

/// The token `.dev.vars.example` ships: fine on a laptop, never on a deployed worker.
pub const EXAMPLE_ADMIN_TOKEN: &str = "local-admin-token";
/// Outside loopback an admin token must be at least this long: 32 characters of a random
/// token are far beyond guessing through the network.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";
/// The version the pinned official SDK (`stripe` in package.json) speaks; events and API
/// responses are shaped by it, so it is pinned rather than left to the account default.
pub const DEFAULT_STRIPE_API_VERSION: &str = "2026-10-28.endive";
pub const DEFAULT_CURRENCY_CODE: &str = "usd";
pub const DEFAULT_IDENTITY_MAX_ATTEMPTS: u32 = 3;
/// Event catch-up runs every 10 minutes by default: at most 144 runs (and KV writes of its
/// cursor) a day, against the Free plan's 1,000 KV writes.
pub const DEFAULT_CATCHUP_EVERY_MINUTES: u32 = 10;
/// The global ceiling on anonymous setup sessions (docs/OPERATIONS.md, What a day costs): 100
/// a UTC day, so that even if every one completed (3 KV writes each, counted by
/// `bench/costs.mjs`: the event, the checkout and customer records) the public spends at most
/// 300 of the Free plan's 1,000 KV writes a day, leaving the rest to the app's own work.
pub const DEFAULT_PUBLIC_SETUP_PER_DAY: u32 = 100;
/// And 10 a minute: a burst cannot take the day's sessions in a moment.
pub const DEFAULT_PUBLIC_SETUP_PER_MINUTE: u32 = 10;
/// How long a queue that keeps nothing (a public setup session's) keeps its rows after its
/// work before its storage is deleted: twice the 60 s a KV read may be served from a cache
/// that does not see a write yet, so a redelivery meanwhile finds them in the queue.
pub const DEFAULT_EPHEMERAL_GRACE_SECONDS: u32 = 120;
/// Catch-up leaves events younger than this to their delivery (and to Stripe's list).
pub const DEFAULT_CATCHUP_SETTLE_SECONDS: u64 = 300;
/// Six hours without a delivery while catch-up finds events Stripe did not deliver: past
/// Stripe's first retries (minutes to an hour apart), well before its three days run out.
pub const DEFAULT_ENDPOINT_SILENT_AFTER_MINUTES: u32 = 360;
/// Stripe retries for up to three days (live mode; a few hours in a sandbox); a tolerance beyond
/// a day only widens the replay window.
const MAX_TOLERANCE_SECONDS: u64 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the setting {0} is required but not set")]
    Missing(&'static str),
    #[error("the setting {name} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        reason: &'static str,
    },
}

/// A secret value with a redacted `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub stripe_api_base: String,
    pub stripe_api_version: String,
    pub webhook_tolerance_seconds: u64,
    pub app_base_url: Option<String>,
    pub default_currency: String,
    pub identity_max_attempts: u32,
    pub notify_url: Option<String>,
    /// `OPS_NOTIFY_URL`: the operator's alerts; without it none are raised (the failures
    /// stay on their own records: `GET /events/{id}`, `GET /notifications?state=dead`).
    pub ops_notify_url: Option<String>,
    /// The anonymous "Save a card" form (`GET /`, `POST /create-checkout-session`); `false`
    /// for an app that only binds sessions through `POST /setup-sessions`.
    pub public_setup: bool,
    /// Event catch-up runs on the scheduled events of every `n`th minute (0: never).
    pub catchup_every_minutes: u32,
    /// Catch-up considers events created at least this long ago.
    pub catchup_settle_seconds: u64,
    /// Also catch up from `GET /v2/core/events` (a thin destination's events), the minute after
    /// the v1 catch-up (`catchup::thin`).
    pub catchup_thin_events: bool,
    /// This deployment's marker on every Stripe object it creates (`crate::provenance`):
    /// unique among the deployments sharing a Stripe account.
    pub deployment_id: String,
    /// A local development server (`LOCAL_DEV=true`, set by `scripts/dev.sh`): a weak admin
    /// token is accepted, and without `APP_BASE_URL` Checkout returns to the loopback origin
    /// the request came to. Never set for a deployed worker.
    pub local_dev: bool,
    /// `COST_METER=true` on a local server: every KV operation and Durable Object request is
    /// logged as a `[meter]` line to be counted.
    pub cost_meter: bool,
    /// The global ceiling on anonymous setup sessions (`PUBLIC_SETUP_PER_DAY`,
    /// `PUBLIC_SETUP_PER_MINUTE`).
    pub setup_ceiling: Ceiling,
    /// `EPHEMERAL_GRACE_SECONDS`: see [`DEFAULT_EPHEMERAL_GRACE_SECONDS`].
    pub ephemeral_grace_seconds: u32,
    /// `ENDPOINT_SILENT_AFTER_MINUTES`: see [`DEFAULT_ENDPOINT_SILENT_AFTER_MINUTES`].
    pub endpoint_silent_after_minutes: u32,
    /// Cloudflare Access for the admin routes (`ACCESS_TEAM_DOMAIN`, `ACCESS_AUD`).
    pub access: Option<crate::access::AccessApp>,
    stripe_secret_key: Option<SecretString>,
    webhook_secrets: Option<WebhookSecrets>,
    admin_token: Option<SecretString>,
    notify_signing_secrets: Option<WebhookSecrets>,
}

/// Cloudflare Access: a team domain (a host name, as Access shows it, with or without
/// `https://`) and an AUD tag, both or neither; the keys' base URL only with them.
fn parse_access(
    team: Option<String>,
    aud: Option<String>,
    certs_base: Option<String>,
) -> Result<Option<crate::access::AccessApp>, ConfigError> {
    let invalid = |name, reason| ConfigError::Invalid { name, reason };
    let (team, aud) = match (team, aud) {
        (None, None) if certs_base.is_none() => return Ok(None),
        (Some(team), Some(aud)) => (team, aud),
        (None, _) => {
            return Err(invalid(
                ACCESS_TEAM_DOMAIN,
                "is required with ACCESS_AUD or ACCESS_CERTS_BASE",
            ))
        }
        (_, None) => return Err(invalid(ACCESS_AUD, "is required with ACCESS_TEAM_DOMAIN")),
    };
    let team = team
        .strip_prefix("https://")
        .unwrap_or(&team)
        .trim_end_matches('/')
        .to_owned();
    let host_ok = !team.is_empty()
        && team.len() <= 253
        && team
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
    if !host_ok {
        return Err(invalid(
            ACCESS_TEAM_DOMAIN,
            "must be the team's host name, e.g. myteam.cloudflareaccess.com",
        ));
    }
    if aud.len() > 256 || !aud.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(
            ACCESS_AUD,
            "must be the application's Audience (AUD) tag: letters and digits",
        ));
    }
    let certs_base = certs_base
        .map(|url| parse_url(ACCESS_CERTS_BASE, &url, UrlShape::Origin))
        .transpose()?;
    Ok(Some(crate::access::AccessApp {
        team_domain: team,
        aud,
        certs_base,
    }))
}

/// `COST_METER`: a local server's switch; a deployed worker refuses it rather than log every
/// KV call.
fn parse_cost_meter(value: Option<&str>, local_dev: bool) -> Result<bool, ConfigError> {
    let on = parse_bool(COST_METER, value, false)?;
    if on && !local_dev {
        return Err(ConfigError::Invalid {
            name: COST_METER,
            reason: "is allowed only with LOCAL_DEV=true (a local server counting its costs)",
        });
    }
    Ok(on)
}

impl Config {
    /// Builds the config from `lookup(name)`; blank values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let stripe_api_base = match get(STRIPE_API_BASE) {
            Some(url) => parse_url(STRIPE_API_BASE, &url, UrlShape::Origin)?,
            None => DEFAULT_STRIPE_API_BASE.to_owned(),
        };
        let app_base_url = get(APP_BASE_URL)
            .map(|url| parse_url(APP_BASE_URL, &url, UrlShape::Base))
            .transpose()?;
        let notify_url = get(NOTIFY_URL)
            .map(|url| parse_url(NOTIFY_URL, &url, UrlShape::Endpoint))
            .transpose()?;
        let ops_notify_url = get(OPS_NOTIFY_URL)
            .map(|url| parse_url(OPS_NOTIFY_URL, &url, UrlShape::Endpoint))
            .transpose()?;
        let webhook_tolerance_seconds = match get(WEBHOOK_TOLERANCE_SECONDS) {
            Some(value) => {
                parse_number(WEBHOOK_TOLERANCE_SECONDS, &value, 1, MAX_TOLERANCE_SECONDS)?
            }
            None => DEFAULT_TOLERANCE_SECONDS,
        };
        let identity_max_attempts = match get(IDENTITY_MAX_ATTEMPTS) {
            Some(value) => parse_number(IDENTITY_MAX_ATTEMPTS, &value, 1, 100)? as u32,
            None => DEFAULT_IDENTITY_MAX_ATTEMPTS,
        };
        let catchup_every_minutes = match get(CATCHUP_EVERY_MINUTES) {
            Some(value) => parse_number(CATCHUP_EVERY_MINUTES, &value, 0, 1440)? as u32,
            None => DEFAULT_CATCHUP_EVERY_MINUTES,
        };
        let catchup_settle_seconds = match get(CATCHUP_SETTLE_SECONDS) {
            Some(value) => parse_number(CATCHUP_SETTLE_SECONDS, &value, 0, 86_400)?,
            None => DEFAULT_CATCHUP_SETTLE_SECONDS,
        };
        let default_currency = match get(DEFAULT_CURRENCY) {
            Some(code) => parse_currency(DEFAULT_CURRENCY, &code)?,
            None => DEFAULT_CURRENCY_CODE.to_owned(),
        };
        let webhook_secrets = match get(STRIPE_WEBHOOK_SECRET) {
            Some(value) => Some(WebhookSecrets::from_comma_separated(&value).ok_or(
                ConfigError::Invalid {
                    name: STRIPE_WEBHOOK_SECRET,
                    reason: "no secret in the list",
                },
            )?),
            None => None,
        };
        let notify_signing_secrets = match get(NOTIFY_SIGNING_SECRET) {
            Some(value) => Some(WebhookSecrets::from_comma_separated(&value).ok_or(
                ConfigError::Invalid {
                    name: NOTIFY_SIGNING_SECRET,
                    reason: "no secret in the list",
                },
            )?),
            None => None,
        };
        let public_setup = parse_bool(PUBLIC_SETUP, get(PUBLIC_SETUP).as_deref(), true)?;
        let catchup_thin_events = parse_bool(
            CATCHUP_THIN_EVENTS,
            get(CATCHUP_THIN_EVENTS).as_deref(),
            false,
        )?;
        let local_dev = parse_bool(LOCAL_DEV, get(LOCAL_DEV).as_deref(), false)?;
        let cost_meter = parse_cost_meter(get(COST_METER).as_deref(), local_dev)?;
        let setup_ceiling = Ceiling {
            per_day: number_or(PUBLIC_SETUP_PER_DAY, get(PUBLIC_SETUP_PER_DAY), 1_000_000)?
                .unwrap_or(DEFAULT_PUBLIC_SETUP_PER_DAY),
            per_minute: number_or(
                PUBLIC_SETUP_PER_MINUTE,
                get(PUBLIC_SETUP_PER_MINUTE),
                10_000,
            )?
            .unwrap_or(DEFAULT_PUBLIC_SETUP_PER_MINUTE),
        };
        let ephemeral_grace_seconds = number_or(
            EPHEMERAL_GRACE_SECONDS,
            get(EPHEMERAL_GRACE_SECONDS),
            86_400,
        )?
        .unwrap_or(DEFAULT_EPHEMERAL_GRACE_SECONDS);
        let endpoint_silent_after_minutes = match get(ENDPOINT_SILENT_AFTER_MINUTES) {
            Some(value) => parse_number(ENDPOINT_SILENT_AFTER_MINUTES, &value, 1, 43_200)? as u32,
            None => DEFAULT_ENDPOINT_SILENT_AFTER_MINUTES,
        };
        let access = parse_access(
            get(ACCESS_TEAM_DOMAIN),
            get(ACCESS_AUD),
            get(ACCESS_CERTS_BASE),
        )?;
        let stripe_api_version = match get(STRIPE_API_VERSION) {
            Some(version) => parse_api_version(STRIPE_API_VERSION, &version)?,
            None => DEFAULT_STRIPE_API_VERSION.to_owned(),
        };
        let deployment_id = match get(DEPLOYMENT_ID) {
            Some(id) if crate::provenance::is_deployment_id(&id) => id,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: DEPLOYMENT_ID,
                    reason: "must be 1-64 characters from A-Z a-z 0-9 _ . -",
                })
            }
            None => crate::provenance::DEFAULT_DEPLOYMENT_ID.to_owned(),
        };
        Ok(Self {
            deployment_id,
            local_dev,
            cost_meter,
            setup_ceiling,
            ephemeral_grace_seconds,
            endpoint_silent_after_minutes,
            access,
            stripe_api_base,
            stripe_api_version,
            webhook_tolerance_seconds,
            app_base_url,
            default_currency,
            identity_max_attempts,
            notify_url,
            ops_notify_url,
            public_setup,
            catchup_every_minutes,
            catchup_settle_seconds,
            catchup_thin_events,
            stripe_secret_key: get(STRIPE_SECRET_KEY).map(SecretString),
            webhook_secrets,
            admin_token: get(ADMIN_TOKEN).map(SecretString),
            notify_signing_secrets,
        })
    }

    pub fn webhook_secrets(&self) -> Result<&WebhookSecrets, ConfigError> {
        self.webhook_secrets
            .as_ref()
            .ok_or(ConfigError::Missing(STRIPE_WEBHOOK_SECRET))
    }

    pub fn stripe_secret_key(&self) -> Result<&SecretString, ConfigError> {
        self.stripe_secret_key
            .as_ref()
            .ok_or(ConfigError::Missing(STRIPE_SECRET_KEY))
    }

    /// The mode of the secret key, and so of every object and event this deployment may act
    /// on: `true` for a live key (`sk_live_`, `rk_live_`), `false` for a test key (`sk_test_`,
    /// `rk_test_`), as Stripe's API keys are prefixed. Another prefix names the setting.
    pub fn livemode(&self) -> Result<bool, ConfigError> {
        let key = self.stripe_secret_key()?.expose();
        match key.get(..8) {
            Some("sk_live_" | "rk_live_") => Ok(true),
            Some("sk_test_" | "rk_test_") => Ok(false),
            _ => Err(ConfigError::Invalid {
                name: STRIPE_SECRET_KEY,
                reason: "must start with sk_live_, sk_test_, rk_live_ or rk_test_",
            }),
        }
    }

    /// `None` means the admin routes are switched off.
    pub fn admin_token(&self) -> Option<&SecretString> {
        self.admin_token.as_ref()
    }

    /// The admin token, when it may be used: a strong one (at least [`MIN_ADMIN_TOKEN_CHARS`]
    /// characters, not the example) always, a weak one only on a local development server
    /// (`LOCAL_DEV=true`). Nothing in the request is consulted: a `Host: localhost` reaching a
    /// deployed worker through a tunnel or a published container port grants nothing. A worker
    /// with a weak token refuses every admin request with a configuration error naming the
    /// setting.
    pub fn admin_token_checked(&self) -> Result<Option<&SecretString>, ConfigError> {
        let Some(token) = self.admin_token.as_ref() else {
            return Ok(None);
        };
        let strong = token.expose().chars().count() >= MIN_ADMIN_TOKEN_CHARS
            && token.expose() != EXAMPLE_ADMIN_TOKEN;
        if strong || self.local_dev {
            Ok(Some(token))
        } else {
            Err(ConfigError::Invalid {
                name: ADMIN_TOKEN,
                reason: "must be at least 32 characters and not the example value (a short token is allowed only with LOCAL_DEV=true, which scripts/dev.sh sets)",
            })
        }
    }

    /// The secrets notifications are signed with (`Notify-Signature`). Without them nothing is
    /// POSTed to `NOTIFY_URL`: a notification is never sent unsigned, it stays in the outbox.
    pub fn notify_signing_secrets(&self) -> Option<&WebhookSecrets> {
        self.notify_signing_secrets.as_ref()
    }

    /// Where Checkout returns the browser to: `APP_BASE_URL`, else, on a local development
    /// server only (`LOCAL_DEV=true`), the loopback origin the request came to. A worker
    /// without it never builds a return URL from a request's own `Host`.
    pub fn return_origin(&self, request_origin: Option<&str>) -> Result<String, ConfigError> {
        match (&self.app_base_url, request_origin) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(origin)) if self.local_dev && is_loopback_origin(origin) => {
                Ok(origin.to_owned())
            }
            (None, _) => Err(ConfigError::Missing(APP_BASE_URL)),
        }
    }
}

impl Config {
    /// Where Checkout pages are served, for the pages' `form-action`: Stripe's, or with a
    /// loopback `STRIPE_API_BASE` the local stand-in, which serves its Checkout pages there.
    pub fn checkout_origin(&self) -> &str {
        if is_loopback_origin(&self.stripe_api_base) {
            &self.stripe_api_base
        } else {
            STRIPE_CHECKOUT_ORIGIN
        }
    }
}

/// Stripe Checkout's pages (`https://checkout.stripe.com/c/pay/cs_…`).
pub const STRIPE_CHECKOUT_ORIGIN: &str = "https://checkout.stripe.com";

/// `http(s)://` to a loopback host (`127.0.0.1`, `localhost`, `[::1]`), with any port.
pub fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    !authority.is_empty() && !authority.contains('@') && is_loopback(authority)
}

/// How much of a URL a setting may carry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum UrlShape {
    /// `scheme://host[:port]`: the client appends `/v1/…` itself.
    Origin,
    /// An origin with an optional path prefix; no query or fragment.
    Base,
    /// A whole endpoint, kept exactly.
    Endpoint,
}

/// `https://`, or `http://` to a loopback host only: these URLs receive the Stripe key or
/// customer data, which must never cross a network in the clear.
fn parse_url(name: &'static str, value: &str, shape: UrlShape) -> Result<String, ConfigError> {
    let invalid = |reason| ConfigError::Invalid { name, reason };
    let (rest, secure) = match value.strip_prefix("https://") {
        Some(rest) => (rest, true),
        None => (
            value.strip_prefix("http://").ok_or(invalid(
                "must start with https:// (or http:// for a loopback host)",
            ))?,
            false,
        ),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if authority.is_empty()
        || authority.contains('@')
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid("must be an absolute URL with a host"));
    }
    if !secure && !is_loopback(authority) {
        return Err(invalid("must use https:// unless the host is loopback"));
    }
    match shape {
        UrlShape::Origin if !tail.is_empty() && tail != "/" => {
            Err(invalid("must be scheme://host[:port] with no path"))
        }
        UrlShape::Base if tail.contains(['?', '#']) => {
            Err(invalid("must not have a query or fragment"))
        }
        UrlShape::Origin | UrlShape::Base => Ok(value.trim_end_matches('/').to_owned()),
        UrlShape::Endpoint => Ok(value.to_owned()),
    }
}

/// Whether a URL a request hands us (e.g. a `return_url`) follows the same rules as the URL
/// settings: `https://`, or `http://` to a loopback host, absolute, no credentials, no spaces.
pub fn is_allowed_url(value: &str) -> bool {
    value.len() <= 2048 && parse_url("url", value, UrlShape::Endpoint).is_ok()
}

fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A `Stripe-Version` value (`2026-10-28.endive`): it goes into a header as is.
fn parse_api_version(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
    if value.len() <= 64 && value.bytes().all(allowed) {
        Ok(value.to_owned())
    } else {
        Err(ConfigError::Invalid {
            name,
            reason: "must look like 2026-10-28.endive",
        })
    }
}

/// `true` or `false`; unset is `default`.
fn parse_bool(name: &'static str, value: Option<&str>, default: bool) -> Result<bool, ConfigError> {
    match value {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(ConfigError::Invalid {
            name,
            reason: "must be true or false",
        }),
    }
}

/// A count from 0 to `max` when set.
fn number_or(
    name: &'static str,
    value: Option<String>,
    max: u64,
) -> Result<Option<u32>, ConfigError> {
    value
        .map(|v| parse_number(name, &v, 0, max).map(|n| n as u32))
        .transpose()
}

fn parse_number(name: &'static str, value: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(_) => Err(ConfigError::Invalid {
            name,
            reason: "out of range",
        }),
        Err(_) => Err(ConfigError::Invalid {
            name,
            reason: "not a whole number",
        }),
    }
}

fn parse_currency(name: &'static str, value: &str) -> Result<String, ConfigError> {
    currency_code(value).ok_or(ConfigError::Invalid {
        name,
        reason: "must be a three-letter ISO currency code",
    })
}

/// A three-letter currency code, lower-cased as Stripe wants it: the one check for the
/// `DEFAULT_CURRENCY` setting and the currencies callers send.
pub fn currency_code(value: &str) -> Option<String> {
    (value.len() == 3 && value.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| value.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn cloudflare_access_needs_its_team_and_audience_together() {
        assert_eq!(config(&[]).unwrap().access, None);
        let c = config(&[
            (ACCESS_TEAM_DOMAIN, "https://myteam.cloudflareaccess.com/"),
            (ACCESS_AUD, "abc123"),
        ])
        .unwrap();
        let access = c.access.unwrap();
        assert_eq!(access.issuer(), "https://myteam.cloudflareaccess.com");
        assert_eq!(access.aud, "abc123");
        assert_eq!(
            access.certs_url(),
            "https://myteam.cloudflareaccess.com/cdn-cgi/access/certs"
        );
        let local = config(&[
            (ACCESS_TEAM_DOMAIN, "myteam.cloudflareaccess.com"),
            (ACCESS_AUD, "abc123"),
            (ACCESS_CERTS_BASE, "http://127.0.0.1:9000"),
        ])
        .unwrap();
        assert_eq!(
            local.access.unwrap().certs_url(),
            "http://127.0.0.1:9000/cdn-cgi/access/certs"
        );
        for (pairs, name) in [
            (
                vec![(ACCESS_TEAM_DOMAIN, "t.cloudflareaccess.com")],
                ACCESS_AUD,
            ),
            (vec![(ACCESS_AUD, "abc")], ACCESS_TEAM_DOMAIN),
            (
                vec![(ACCESS_CERTS_BASE, "https://keys.example")],
                ACCESS_TEAM_DOMAIN,
            ),
            (
                vec![(ACCESS_TEAM_DOMAIN, "t/x"), (ACCESS_AUD, "abc")],
                ACCESS_TEAM_DOMAIN,
            ),
            (
                vec![(ACCESS_TEAM_DOMAIN, "t.example"), (ACCESS_AUD, "a-b")],
                ACCESS_AUD,
            ),
            (
                vec![
                    (ACCESS_TEAM_DOMAIN, "t.example"),
                    (ACCESS_AUD, "abc"),
                    (ACCESS_CERTS_BASE, "http://keys.example"),
                ],
                ACCESS_CERTS_BASE,
            ),
        ] {
            match config(&pairs) {
                Err(ConfigError::Invalid { name: got, .. }) => assert_eq!(got, name, "{pairs:?}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = config(&[]).unwrap();
        assert_eq!(c.stripe_api_base, DEFAULT_STRIPE_API_BASE);
        assert_eq!(c.stripe_api_version, DEFAULT_STRIPE_API_VERSION);
        assert_eq!(c.webhook_tolerance_seconds, 300);
        assert_eq!(c.default_currency, "usd");
        assert_eq!(c.identity_max_attempts, 3);
        assert_eq!(
            (c.catchup_every_minutes, c.catchup_settle_seconds),
            (10, 300)
        );
        assert_eq!(
            (c.app_base_url.as_deref(), c.notify_url.as_deref()),
            (None, None)
        );
        assert_eq!(c.admin_token(), None);
    }

    #[test]
    fn the_mode_is_the_secret_keys() {
        for (key, live) in [
            ("sk_live_abc", true),
            ("rk_live_abc", true),
            ("sk_test_abc", false),
            ("rk_test_abc", false),
        ] {
            assert_eq!(
                config(&[(STRIPE_SECRET_KEY, key)]).unwrap().livemode(),
                Ok(live)
            );
        }
        for key in [
            "pk_live_hush",
            "sk_hush",
            "whsec_hush",
            "sk_livehush",
            "sk_live",
        ] {
            let error = config(&[(STRIPE_SECRET_KEY, key)])
                .unwrap()
                .livemode()
                .unwrap_err();
            assert!(matches!(
                error,
                ConfigError::Invalid {
                    name: STRIPE_SECRET_KEY,
                    ..
                }
            ));
            assert!(!error.to_string().contains("hush"), "{error}");
        }
        assert_eq!(
            config(&[]).unwrap().livemode(),
            Err(ConfigError::Missing(STRIPE_SECRET_KEY))
        );
    }

    #[test]
    fn a_missing_secret_is_named_when_demanded() {
        let c = config(&[]).unwrap();
        assert_eq!(
            c.webhook_secrets(),
            Err(ConfigError::Missing("STRIPE_WEBHOOK_SECRET"))
        );
        assert_eq!(
            c.stripe_secret_key().unwrap_err().to_string(),
            "the setting STRIPE_SECRET_KEY is required but not set"
        );
    }

    #[test]
    fn blank_values_count_as_unset() {
        let c = config(&[(ADMIN_TOKEN, "  "), (WEBHOOK_TOLERANCE_SECONDS, "")]).unwrap();
        assert_eq!(c.admin_token(), None);
        assert_eq!(c.webhook_tolerance_seconds, 300);
    }

    #[test]
    fn values_are_parsed_and_normalised() {
        let c = config(&[
            (STRIPE_API_BASE, "http://127.0.0.1:12111/"),
            (WEBHOOK_TOLERANCE_SECONDS, "60"),
            (DEFAULT_CURRENCY, "EUR"),
            (IDENTITY_MAX_ATTEMPTS, "5"),
            (STRIPE_WEBHOOK_SECRET, "whsec_a, whsec_b"),
            (ADMIN_TOKEN, "tok"),
            (CATCHUP_EVERY_MINUTES, "0"),
            (CATCHUP_SETTLE_SECONDS, "30"),
        ])
        .unwrap();
        assert_eq!((c.catchup_every_minutes, c.catchup_settle_seconds), (0, 30));
        assert_eq!(c.stripe_api_base, "http://127.0.0.1:12111");
        assert_eq!(c.webhook_tolerance_seconds, 60);
        assert_eq!(c.default_currency, "eur");
        assert_eq!(c.identity_max_attempts, 5);
        assert_eq!(c.webhook_secrets().unwrap().len(), 2);
        assert_eq!(c.admin_token().unwrap().expose(), "tok");
    }

    #[test]
    fn urls_keep_what_their_setting_needs() {
        let c = config(&[
            (STRIPE_API_BASE, "https://api.stripe.com/"),
            (APP_BASE_URL, "https://shop.example/billing/"),
            (NOTIFY_URL, "http://localhost:9000/notify/"),
        ])
        .unwrap();
        assert_eq!(c.stripe_api_base, "https://api.stripe.com");
        assert_eq!(
            c.app_base_url.as_deref(),
            Some("https://shop.example/billing")
        );
        assert_eq!(
            c.notify_url.as_deref(),
            Some("http://localhost:9000/notify/")
        );
        for loopback in [
            "http://127.0.0.1:12111",
            "http://localhost",
            "http://[::1]:8080",
        ] {
            let c = config(&[(STRIPE_API_BASE, loopback)]).unwrap();
            assert_eq!(c.stripe_api_base, loopback);
        }
        for remote in [
            "http://128.0.0.1",
            "http://localhost.evil.example",
            "http://[::2]",
        ] {
            assert!(config(&[(STRIPE_API_BASE, remote)]).is_err(), "{remote}");
        }
    }

    #[test]
    fn invalid_values_name_the_setting_but_not_the_value() {
        let cases = [
            (CATCHUP_EVERY_MINUTES, "1441"),
            (CATCHUP_SETTLE_SECONDS, "-1"),
            (WEBHOOK_TOLERANCE_SECONDS, "soon"),
            (WEBHOOK_TOLERANCE_SECONDS, "0"),
            (WEBHOOK_TOLERANCE_SECONDS, "999999"),
            (IDENTITY_MAX_ATTEMPTS, "-1"),
            (DEFAULT_CURRENCY, "dollars"),
            (STRIPE_API_BASE, "api.stripe.com"),
            (STRIPE_API_BASE, "http://api.stripe.example"),
            (STRIPE_API_BASE, "https://api.stripe.com/v1"),
            (STRIPE_API_BASE, "https://user:pw@api.stripe.com"),
            (STRIPE_API_VERSION, "2026-10-28\r\nx-evil: 1"),
            (APP_BASE_URL, "https://"),
            (APP_BASE_URL, "https://shop.example/?next=1"),
            (NOTIFY_URL, "ftp://x"),
            (NOTIFY_URL, "http://hooks.example/notify"),
            (STRIPE_WEBHOOK_SECRET, " , "),
        ];
        for (name, value) in cases {
            let err = config(&[(name, value)]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(name), "{text}");
            if value.trim().len() > 1 {
                assert!(!text.contains(value.trim()), "{text} echoes {value}");
            }
        }
    }

    #[test]
    fn wrangler_toml_pins_the_same_stripe_version_and_tolerance() {
        let toml = include_str!("../wrangler.toml");
        assert!(toml.contains(&format!(
            "STRIPE_API_VERSION = \"{DEFAULT_STRIPE_API_VERSION}\""
        )));
        assert!(toml.contains(&format!(
            "WEBHOOK_TOLERANCE_SECONDS = \"{DEFAULT_TOLERANCE_SECONDS}\""
        )));
    }

    #[test]
    fn the_ephemeral_grace_defaults_to_twice_kvs_cache_and_is_bounded() {
        assert_eq!(config(&[]).unwrap().ephemeral_grace_seconds, 120);
        let set = config(&[(EPHEMERAL_GRACE_SECONDS, "2")]).unwrap();
        assert_eq!(set.ephemeral_grace_seconds, 2);
        for bad in ["-1", "86401", "soon"] {
            assert!(config(&[(EPHEMERAL_GRACE_SECONDS, bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_setup_ceiling_has_defaults_and_limits() {
        let ceiling = config(&[]).unwrap().setup_ceiling;
        assert_eq!(
            (ceiling.per_day, ceiling.per_minute),
            (
                DEFAULT_PUBLIC_SETUP_PER_DAY,
                DEFAULT_PUBLIC_SETUP_PER_MINUTE
            )
        );
        let set = config(&[(PUBLIC_SETUP_PER_DAY, "0"), (PUBLIC_SETUP_PER_MINUTE, "3")]).unwrap();
        assert_eq!(
            (set.setup_ceiling.per_day, set.setup_ceiling.per_minute),
            (0, 3)
        );
        for (name, value) in [
            (PUBLIC_SETUP_PER_DAY, "-1"),
            (PUBLIC_SETUP_PER_DAY, "1000001"),
            (PUBLIC_SETUP_PER_MINUTE, "many"),
        ] {
            assert!(
                matches!(config(&[(name, value)]), Err(ConfigError::Invalid { name: n, .. }) if n == name)
            );
        }
    }

    #[test]
    fn the_cost_meter_is_a_local_servers_only() {
        assert!(!config(&[]).unwrap().cost_meter);
        let on = config(&[(COST_METER, "true"), (LOCAL_DEV, "true")]).unwrap();
        assert!(on.cost_meter);
        let refused = config(&[(COST_METER, "true")]).unwrap_err();
        assert!(matches!(
            refused,
            ConfigError::Invalid {
                name: COST_METER,
                ..
            }
        ));
        assert!(config(&[(COST_METER, "yes"), (LOCAL_DEV, "true")]).is_err());
    }

    #[test]
    fn a_weak_admin_token_works_only_with_local_dev_set() {
        let strong_value = "k3Jq9vX2pL7mN4rT8wY1zB6cD0fG5hS2";
        for (token, strong) in [
            (EXAMPLE_ADMIN_TOKEN, false),
            ("s3cret-but-only-20ch", false),
            (strong_value, true),
        ] {
            let deployed = config(&[(ADMIN_TOKEN, token)]).unwrap();
            let dev = config(&[(ADMIN_TOKEN, token), (LOCAL_DEV, "true")]).unwrap();
            let not_dev = config(&[(ADMIN_TOKEN, token), (LOCAL_DEV, "false")]).unwrap();
            assert_eq!(
                dev.admin_token_checked().unwrap().map(SecretString::expose),
                Some(token)
            );
            for worker in [deployed, not_dev] {
                match worker.admin_token_checked() {
                    Ok(accepted) => {
                        assert!(strong, "{token}");
                        assert_eq!(accepted.map(SecretString::expose), Some(token));
                    }
                    Err(error) => {
                        assert!(!strong, "{token}");
                        assert!(error.to_string().contains(ADMIN_TOKEN), "{error}");
                        assert!(!error.to_string().contains(token), "{error}");
                    }
                }
            }
        }
        // No token: the admin routes are off.
        assert_eq!(config(&[]).unwrap().admin_token_checked(), Ok(None));
        assert!(config(&[(LOCAL_DEV, "yes")]).is_err());
    }

    #[test]
    fn return_urls_come_from_app_base_url_or_a_loopback_request_of_a_dev_server_only() {
        let set = config(&[(APP_BASE_URL, "https://shop.example/billing")]).unwrap();
        assert_eq!(
            set.return_origin(Some("https://attacker.example")).unwrap(),
            "https://shop.example/billing"
        );
        let dev = config(&[(LOCAL_DEV, "true")]).unwrap();
        assert_eq!(
            dev.return_origin(Some("http://127.0.0.1:8899")).unwrap(),
            "http://127.0.0.1:8899"
        );
        // Without LOCAL_DEV a loopback Host is request data like any other.
        let deployed = config(&[]).unwrap();
        for origin in [
            Some("http://127.0.0.1:8899"),
            Some("http://localhost"),
            Some("https://worker.example.workers.dev"),
            None,
        ] {
            assert_eq!(
                deployed.return_origin(origin),
                Err(ConfigError::Missing(APP_BASE_URL)),
                "{origin:?}"
            );
        }
        for origin in [Some("https://worker.example.workers.dev"), None] {
            assert_eq!(
                dev.return_origin(origin),
                Err(ConfigError::Missing(APP_BASE_URL))
            );
        }
        assert!(
            config(&[(APP_BASE_URL, "http://shop.example")]).is_err(),
            "https outside loopback"
        );
    }

    #[test]
    fn the_public_form_and_notification_signing_are_configured() {
        let c = config(&[]).unwrap();
        assert!(c.public_setup);
        assert!(c.notify_signing_secrets().is_none());
        let c = config(&[
            (PUBLIC_SETUP, "false"),
            (NOTIFY_SIGNING_SECRET, "nsec_a,nsec_b"),
        ])
        .unwrap();
        assert!(!c.public_setup);
        assert_eq!(c.notify_signing_secrets().unwrap().len(), 2);
        assert!(config(&[(PUBLIC_SETUP, "no")])
            .unwrap_err()
            .to_string()
            .contains(PUBLIC_SETUP));
    }

    #[test]
    fn pages_may_post_to_stripes_checkout_or_the_local_stand_in() {
        assert_eq!(
            config(&[]).unwrap().checkout_origin(),
            STRIPE_CHECKOUT_ORIGIN
        );
        let local = config(&[(STRIPE_API_BASE, "http://127.0.0.1:12111")]).unwrap();
        assert_eq!(local.checkout_origin(), "http://127.0.0.1:12111");
        let [_, (name, csp), ..] = crate::pages::page_headers(local.checkout_origin());
        assert_eq!(name, "content-security-policy");
        assert!(
            csp.contains("form-action 'self' http://127.0.0.1:12111;"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'") && csp.starts_with("default-src 'none'"));
    }

    #[test]
    fn debug_output_redacts_every_secret() {
        let c = config(&[
            (STRIPE_SECRET_KEY, "sk_test_supersecret"),
            (STRIPE_WEBHOOK_SECRET, "whsec_supersecret"),
            (ADMIN_TOKEN, "admin_supersecret"),
            (NOTIFY_SIGNING_SECRET, "nsec_supersecret"),
        ])
        .unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("supersecret"), "{printed}");
    }
}
