//! Cloudflare Access for the admin routes, when configured (`ACCESS_TEAM_DOMAIN`, `ACCESS_AUD`):
//! the token `crate::access` read is checked here with the runtime's WebCrypto
//! (`crypto.subtle.importKey("jwk", …)` and `verify("RSASSA-PKCS1-v1_5", …)`, SHA-256: RS256),
//! against the team's published keys, fetched from `{ACCESS_CERTS_BASE or the team
//! domain}/cdn-cgi/access/certs` and kept in the isolate for an hour (a token naming a key not
//! in the cache fetches them again, at most once a minute: Access rotates its key every six
//! weeks and publishes the next before using it).

use std::cell::RefCell;

use js_sys::{Array, Function, Reflect, Uint8Array, JSON};
use wasm_bindgen::{JsCast, JsValue};

use crate::access::{self, AccessApp, Jwk, Refused, Token};
use crate::error::{AppError, Result};
use crate::http::{HttpRequest, Method, Transport};
use crate::stripe::fetch::FETCH;

use super::Ctx;

/// How long fetched keys are used before they are fetched again.
const KEYS_TTL_SECONDS: i64 = 3600;
/// A token naming an unknown key fetches the keys again at most this often.
const REFETCH_SECONDS: i64 = 60;
/// A certs document is a few KB.
const MAX_CERTS_BYTES: usize = 64 * 1024;
const FETCH_TIMEOUT_MS: u64 = 5_000;

/// The team's keys as WebCrypto imported them.
struct Keys {
    url: String,
    fetched_at: i64,
    keys: Vec<(String, JsValue)>,
}

thread_local! {
    static KEYS: RefCell<Option<Keys>> = const { RefCell::new(None) };
}

fn js_failed(_: JsValue) -> AppError {
    AppError::Internal("WebCrypto refused an Access key or signature")
}

/// `crypto.subtle`.
fn subtle() -> Result<JsValue> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).map_err(js_failed)?;
    Reflect::get(&crypto, &"subtle".into()).map_err(js_failed)
}

/// Calls `crypto.subtle.{method}(...args)` and awaits its promise.
async fn call_subtle(method: &str, args: &Array) -> Result<JsValue> {
    let subtle = subtle()?;
    let function: Function = Reflect::get(&subtle, &method.into())
        .map_err(js_failed)?
        .dyn_into()
        .map_err(|_| AppError::Internal("crypto.subtle lacks a method"))?;
    let promise: js_sys::Promise = function
        .apply(&subtle, args)
        .map_err(js_failed)?
        .dyn_into()
        .map_err(|_| AppError::Internal("crypto.subtle answered no promise"))?;
    js_sys::futures::JsFuture::from(promise)
        .await
        .map_err(js_failed)
}

fn rs256() -> Result<JsValue> {
    JSON::parse(r#"{"name":"RSASSA-PKCS1-v1_5","hash":"SHA-256"}"#).map_err(js_failed)
}

/// One JWK as a verification key.
async fn import(key: &Jwk) -> Result<JsValue> {
    let jwk = JSON::parse(&key.import_json()).map_err(js_failed)?;
    let usages = Array::of1(&"verify".into());
    let args = Array::of5(&"jwk".into(), &jwk, &rs256()?, &false.into(), &usages);
    call_subtle("importKey", &args).await
}

/// Fetches and imports the team's keys.
async fn fetch_keys(url: &str, now: i64) -> Result<Keys> {
    let request = HttpRequest {
        method: Method::Get,
        url: url.to_owned(),
        headers: vec![("accept", "application/json".to_owned())],
        body: None,
        max_response_bytes: MAX_CERTS_BYTES,
    };
    let unreachable = || AppError::Internal("the Access keys could not be fetched");
    let response = FETCH
        .send(&request, FETCH_TIMEOUT_MS)
        .await
        .map_err(|_| unreachable())?;
    if response.status != 200 || response.truncated {
        return Err(unreachable());
    }
    let jwks = access::parse_keys(&response.body).ok_or_else(unreachable)?;
    let mut keys = Vec::with_capacity(jwks.len());
    for jwk in &jwks {
        keys.push((jwk.kid.clone(), import(jwk).await?));
    }
    Ok(Keys {
        url: url.to_owned(),
        fetched_at: now,
        keys,
    })
}

/// The imported key with this id: from the cache while fresh, else fetched again (an unknown
/// id refetches at most once a minute; a cached key outlives a failed fetch). `None`: the
/// team publishes no such key.
async fn key_for(url: &str, kid: &str, now: i64) -> Result<Option<JsValue>> {
    let cached = KEYS.with_borrow(|keys| {
        keys.as_ref().filter(|k| k.url == url).map(|k| {
            let key = k
                .keys
                .iter()
                .find(|(id, _)| id == kid)
                .map(|(_, key)| key.clone());
            (key, now - k.fetched_at)
        })
    });
    let stale = match cached {
        Some((Some(key), age)) if age < KEYS_TTL_SECONDS => return Ok(Some(key)),
        Some((None, age)) if age < REFETCH_SECONDS => return Ok(None),
        Some((key, _)) => key,
        None => None,
    };
    // A key the team published stays usable while its keys cannot be fetched again (Access
    // keeps a rotated-out key valid for days).
    let keys = match fetch_keys(url, now).await {
        Ok(keys) => keys,
        Err(error) => return stale.map(Some).ok_or(error),
    };
    let found = keys
        .keys
        .iter()
        .find(|(id, _)| id == kid)
        .map(|(_, key)| key.clone());
    KEYS.set(Some(keys));
    Ok(found)
}

/// Whether WebCrypto finds `token`'s signature made by `key`.
async fn signature_holds(key: &JsValue, token: &Token) -> Result<bool> {
    let signature = Uint8Array::from(token.signature.as_slice());
    let data = Uint8Array::from(token.signed.as_bytes());
    let args = Array::of4(&rs256()?, key, &signature, &data);
    Ok(call_subtle("verify", &args).await?.as_bool() == Some(true))
}

/// Checks an Access token for `app` at `now`: `Ok(Err(why))` when it is refused, `Err` when
/// the keys could not be had (a 500: nothing is let through).
pub async fn verify(
    app: &AccessApp,
    assertion: &str,
    now: i64,
) -> Result<std::result::Result<Token, Refused>> {
    let token = match access::parse(assertion) {
        Ok(token) => token,
        Err(why) => return Ok(Err(why)),
    };
    if let Err(why) = app.check(&token.claims, now) {
        return Ok(Err(why));
    }
    let Some(key) = key_for(&app.certs_url(), &token.kid, now).await? else {
        return Ok(Err(Refused::UnknownKey));
    };
    if !signature_holds(&key, &token).await? {
        return Ok(Err(Refused::Signature));
    }
    Ok(Ok(token))
}

/// What the admin check (`auth::authorize`) needs from Access for this request: whether
/// Access is configured and, when the request carries a token, whether it holds. A refusal is
/// a note in the request's log line (the reason, never the token).
pub async fn verdict(ctx: &Ctx<'_>, assertion: Option<&str>) -> Result<crate::auth::Access> {
    let Some(app) = ctx.config()?.access.clone() else {
        return Ok(crate::auth::Access::NotConfigured);
    };
    let Some(assertion) = assertion.filter(|a| !a.trim().is_empty()) else {
        return Ok(crate::auth::Access::Absent);
    };
    Ok(match verify(&app, assertion, ctx.now).await {
        Ok(Ok(_)) => crate::auth::Access::Valid,
        // The team's keys could not be had (and none was kept): no way to tell, so Access
        // lets nobody in, and the bearer token still decides rather than every admin request
        // failing while the keys are out of reach.
        Err(_) => {
            ctx.trace
                .note("Cloudflare Access keys could not be fetched".to_owned());
            crate::auth::Access::Refused
        }
        Ok(Err(why)) => {
            ctx.trace
                .note(format!("Cloudflare Access token refused: {}", why.as_str()));
            crate::auth::Access::Refused
        }
    })
}

/// The admin check of every admin route: a valid Access token, else the bearer token
/// (`auth::authorize`). The headers as the request carries them. `cross_site`: a
/// state-changing request from another site's page, which Access's token alone does not let
/// in: the browser attaches Access's cookie (its SameSite is the team's setting) to another
/// site's form as well, and these routes have no CSRF token. A browser never adds the bearer
/// token by itself, so that still decides.
pub async fn authorize_admin(
    ctx: &Ctx<'_>,
    assertion: Option<&str>,
    authorization: Option<&str>,
    cross_site: bool,
) -> Result<()> {
    let mut access = verdict(ctx, assertion).await?;
    if cross_site && access == crate::auth::Access::Valid {
        ctx.trace
            .note("Cloudflare Access token on another site's request: not enough".to_owned());
        access = crate::auth::Access::Refused;
    }
    // A weak token (short, or the example's) only works with LOCAL_DEV=true.
    let token = ctx.config()?.admin_token_checked()?;
    crate::auth::authorize(access, token, authorization)
}
