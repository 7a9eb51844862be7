//! The admin check: a valid Cloudflare Access token (when Access is configured, checked by
//! `routes::access`), or the bearer token. Pure.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::SecretString;
use crate::error::AppError;

/// What Cloudflare Access says of a request (`routes::access::verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `ACCESS_TEAM_DOMAIN` and `ACCESS_AUD` are not set.
    NotConfigured,
    /// Configured, and the request carries no `Cf-Access-Jwt-Assertion`.
    Absent,
    /// A token that does not hold (its reason is in the log line).
    Refused,
    /// A token signed by the team's key, for this application, in its lifetime.
    Valid,
}

/// The one admin check, for every admin route and the console: a valid Access token is an
/// admin; otherwise the bearer token decides ([`authorize_admin`]). With Access configured
/// and no `ADMIN_TOKEN`, the admin routes exist and answer 401 without a valid token.
pub fn authorize(
    access: Access,
    configured: Option<&SecretString>,
    authorization: Option<&str>,
) -> Result<(), AppError> {
    match (access, configured) {
        (Access::Valid, _) => Ok(()),
        (Access::Absent | Access::Refused, None) => Err(AppError::Unauthorized),
        _ => authorize_admin(configured, authorization),
    }
}

/// Admin routes are off (404, as if absent) without a configured token; otherwise the
/// `Authorization: Bearer` value must match. Both sides are hashed first so the comparison
/// takes the same time whatever the length or content of the guess.
pub fn authorize_admin(
    configured: Option<&SecretString>,
    authorization: Option<&str>,
) -> Result<(), AppError> {
    let configured = configured.ok_or(AppError::NotFound)?;
    // The scheme is case-insensitive (RFC 9110, 11.1): `bearer x` is `Bearer x`.
    let presented = authorization
        .map(str::trim)
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or(AppError::Unauthorized)?;
    if token_matches(configured, presented) {
        Ok(())
    } else {
        Err(AppError::Unauthorized)
    }
}

/// Whether `presented` is the configured token, in constant time (both sides hashed first,
/// so neither length nor content shows in the time taken): the bearer check and the
/// console's sign-in form.
pub fn token_matches(configured: &SecretString, presented: &str) -> bool {
    let expected = Sha256::digest(configured.expose().as_bytes());
    let given = Sha256::digest(presented.as_bytes());
    bool::from(expected.ct_eq(&given))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ADMIN_TOKEN};

    fn token(value: &str) -> Config {
        Config::from_lookup(|name| (name == ADMIN_TOKEN).then(|| value.to_owned())).unwrap()
    }

    #[test]
    fn the_right_bearer_token_is_accepted() {
        let config = token("s3cret-token");
        assert!(authorize_admin(config.admin_token(), Some("Bearer s3cret-token")).is_ok());
    }

    #[test]
    fn the_scheme_is_matched_whatever_its_case() {
        let config = token("s3cret-token");
        for header in [
            "bearer s3cret-token",
            "BEARER s3cret-token",
            "Bearer  s3cret-token ",
        ] {
            assert!(
                authorize_admin(config.admin_token(), Some(header)).is_ok(),
                "{header}"
            );
        }
    }

    #[test]
    fn missing_wrong_or_malformed_tokens_are_refused() {
        let config = token("s3cret-token");
        for header in [
            None,
            Some(""),
            Some("s3cret-token"),
            Some("Basic s3cret-token"),
            Some("Bearer s3cret"),
            Some("Bearer s3cret-token2"),
            Some("Bearer "),
            Some("Bearers3cret-token"),
            Some("Token s3cret-token"),
        ] {
            assert!(
                matches!(
                    authorize_admin(config.admin_token(), header),
                    Err(AppError::Unauthorized)
                ),
                "{header:?}"
            );
        }
    }

    #[test]
    fn a_valid_access_token_is_an_admin_and_the_bearer_token_still_works() {
        let config = token("s3cret-token");
        let admin = config.admin_token();
        assert!(authorize(Access::Valid, admin, None).is_ok());
        assert!(authorize(Access::Valid, None, None).is_ok());
        for access in [Access::Absent, Access::Refused, Access::NotConfigured] {
            assert!(authorize(access, admin, Some("Bearer s3cret-token")).is_ok());
            assert!(matches!(
                authorize(access, admin, Some("Bearer nope")),
                Err(AppError::Unauthorized)
            ));
        }
        // Access alone: the routes exist, and a request without a valid token is refused.
        for access in [Access::Absent, Access::Refused] {
            assert!(matches!(
                authorize(access, None, Some("Bearer anything")),
                Err(AppError::Unauthorized)
            ));
        }
        assert!(matches!(
            authorize(Access::NotConfigured, None, None),
            Err(AppError::NotFound)
        ));
    }

    #[test]
    fn without_a_configured_token_the_admin_routes_do_not_exist() {
        let config = token("");
        assert!(matches!(
            authorize_admin(config.admin_token(), Some("Bearer ")),
            Err(AppError::NotFound)
        ));
        assert!(matches!(
            authorize_admin(config.admin_token(), Some("Bearer anything")),
            Err(AppError::NotFound)
        ));
    }
}
