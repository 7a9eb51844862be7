//! Typed configuration, read once from the Worker's vars and secrets through a lookup function,
//! so that it is built and tested natively without `worker`.
//!
//! Invalid values fail the whole config with an error naming the setting (never its value).
//! Secrets are optional here and demanded by the routes that need them, so that `/health` and
//! the routes that do not need a secret keep working while one is missing.

use crate::signature::{WebhookSecrets, DEFAULT_TOLERANCE_SECONDS};

pub const STRIPE_API_BASE: &str = "STRIPE_API_BASE";
pub const STRIPE_API_VERSION: &str = "STRIPE_API_VERSION";
pub const WEBHOOK_TOLERANCE_SECONDS: &str = "WEBHOOK_TOLERANCE_SECONDS";
pub const APP_BASE_URL: &str = "APP_BASE_URL";
pub const DEFAULT_CURRENCY: &str = "DEFAULT_CURRENCY";
pub const IDENTITY_MAX_ATTEMPTS: &str = "IDENTITY_MAX_ATTEMPTS";
pub const NOTIFY_URL: &str = "NOTIFY_URL";
pub const STRIPE_SECRET_KEY: &str = "STRIPE_SECRET_KEY";
pub const STRIPE_WEBHOOK_SECRET: &str = "STRIPE_WEBHOOK_SECRET";
pub const ADMIN_TOKEN: &str = "ADMIN_TOKEN";

pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";
/// The version the pinned official SDK (`stripe` in package.json) speaks; events and API
/// responses are shaped by it, so it is pinned rather than left to the account default.
pub const DEFAULT_STRIPE_API_VERSION: &str = "2026-10-28.endive";
pub const DEFAULT_CURRENCY_CODE: &str = "usd";
pub const DEFAULT_IDENTITY_MAX_ATTEMPTS: u32 = 3;
/// Stripe retries for three days; a tolerance beyond a day only widens the replay window.
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
    stripe_secret_key: Option<SecretString>,
    webhook_secrets: Option<WebhookSecrets>,
    admin_token: Option<SecretString>,
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
        let stripe_api_version = match get(STRIPE_API_VERSION) {
            Some(version) => parse_api_version(STRIPE_API_VERSION, &version)?,
            None => DEFAULT_STRIPE_API_VERSION.to_owned(),
        };
        Ok(Self {
            stripe_api_base,
            stripe_api_version,
            webhook_tolerance_seconds,
            app_base_url,
            default_currency,
            identity_max_attempts,
            notify_url,
            stripe_secret_key: get(STRIPE_SECRET_KEY).map(SecretString),
            webhook_secrets,
            admin_token: get(ADMIN_TOKEN).map(SecretString),
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

    /// `None` means the admin routes are switched off.
    pub fn admin_token(&self) -> Option<&SecretString> {
        self.admin_token.as_ref()
    }
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
    fn defaults_apply_when_nothing_is_set() {
        let c = config(&[]).unwrap();
        assert_eq!(c.stripe_api_base, DEFAULT_STRIPE_API_BASE);
        assert_eq!(c.stripe_api_version, DEFAULT_STRIPE_API_VERSION);
        assert_eq!(c.webhook_tolerance_seconds, 300);
        assert_eq!(c.default_currency, "usd");
        assert_eq!(c.identity_max_attempts, 3);
        assert_eq!(
            (c.app_base_url.as_deref(), c.notify_url.as_deref()),
            (None, None)
        );
        assert_eq!(c.admin_token(), None);
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
        ])
        .unwrap();
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
    fn debug_output_redacts_every_secret() {
        let c = config(&[
            (STRIPE_SECRET_KEY, "sk_test_supersecret"),
            (STRIPE_WEBHOOK_SECRET, "whsec_supersecret"),
            (ADMIN_TOKEN, "admin_supersecret"),
        ])
        .unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("supersecret"), "{printed}");
    }
}
