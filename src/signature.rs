//! `Stripe-Signature` parsing and verification. Pure: no clock, no I/O, no `worker`.
//!
//! Stripe signs `"{t}.{raw body}"` with HMAC-SHA256, keyed with the whole `whsec_…` string,
//! and sends `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`. Several `v1` appear while an
//! endpoint secret is being rolled, so every `v1` is kept and tried against every configured
//! secret. The caller passes `now`: `std::time` panics on wasm32-unknown-unknown.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Name of the header Stripe puts the signature in.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";
/// Stripe's own SDKs default to five minutes.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;
/// The only scheme Stripe signs live events with; `v0` is for test-mode legacy and is ignored.
const SIGNED_SCHEME: &str = "v1";
/// Real headers are ~150 bytes (one `t`, one or two `v1`, maybe a `v0`); anything far larger
/// is not from Stripe and is refused before any parsing work.
pub const MAX_HEADER_BYTES: usize = 4096;

type HmacSha256 = Hmac<Sha256>;

/// Which check failed. The messages never include a secret or a computed signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    MissingHeader,
    #[error("the Stripe-Signature header is malformed: {0}")]
    MalformedHeader(&'static str),
    #[error("the Stripe-Signature header has no timestamp (t=)")]
    MissingTimestamp,
    #[error("the Stripe-Signature header has no v1 signature")]
    MissingSignature,
    #[error("the signature timestamp is outside the tolerance")]
    TimestampOutsideTolerance,
    #[error("no v1 signature matches the payload for any configured secret")]
    NoMatchingSignature,
}

impl SignatureError {
    /// Stable machine-readable code for JSON error bodies and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader => "signature_header_missing",
            Self::MalformedHeader(_) => "signature_header_malformed",
            Self::MissingTimestamp => "signature_timestamp_missing",
            Self::MissingSignature => "signature_v1_missing",
            Self::TimestampOutsideTolerance => "signature_timestamp_outside_tolerance",
            Self::NoMatchingSignature => "signature_mismatch",
        }
    }
}

/// One endpoint signing secret. `Debug` is redacted so it can never reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// `None` for a blank value: an empty HMAC key would accept forgeries made with it.
    pub fn new(value: &str) -> Option<Self> {
        let value = value.trim();
        (!value.is_empty()).then(|| Self(value.to_owned()))
    }

    fn key(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// The non-empty set of secrets an endpoint accepts: more than one while rolling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSecrets(Vec<WebhookSecret>);

impl WebhookSecrets {
    /// Parses `STRIPE_WEBHOOK_SECRET`: comma-separated, blanks skipped; `None` when none is left.
    pub fn from_comma_separated(value: &str) -> Option<Self> {
        let secrets: Vec<_> = value.split(',').filter_map(WebhookSecret::new).collect();
        (!secrets.is_empty()).then_some(Self(secrets))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The parsed header, borrowing the `v1` values from it.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureHeader<'a> {
    pub timestamp: i64,
    pub signatures: Vec<&'a str>,
}

impl<'a> SignatureHeader<'a> {
    /// Comma-separated `key=value` pairs, spaces around either tolerated, empty items skipped,
    /// `v0` and unknown keys ignored. A second `t` is refused: which one was signed is ambiguous.
    pub fn parse(header: &'a str) -> Result<Self, SignatureError> {
        if header.len() > MAX_HEADER_BYTES {
            return Err(SignatureError::MalformedHeader("header too long"));
        }
        if header.trim().is_empty() {
            return Err(SignatureError::MissingHeader);
        }
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for item in header
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let (key, value) = item
                .split_once('=')
                .ok_or(SignatureError::MalformedHeader("an element has no '='"))?;
            match key.trim() {
                "t" => {
                    if timestamp.is_some() {
                        return Err(SignatureError::MalformedHeader("more than one timestamp"));
                    }
                    timestamp = Some(parse_timestamp(value.trim())?);
                }
                SIGNED_SCHEME => signatures.push(value.trim()),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
        if signatures.is_empty() {
            return Err(SignatureError::MissingSignature);
        }
        Ok(Self {
            timestamp,
            signatures,
        })
    }
}

/// Digits only: `parseInt`-style leniency ("12abc" → 12) would let a mangled header through.
fn parse_timestamp(value: &str) -> Result<i64, SignatureError> {
    if value.is_empty() || value.len() > 18 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::MalformedHeader(
            "timestamp is not a number of seconds",
        ));
    }
    value
        .parse()
        .map_err(|_| SignatureError::MalformedHeader("timestamp is not a number of seconds"))
}

/// What a successful verification proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The signed `t`.
    pub timestamp: i64,
    /// Position of the secret that matched in the configured list (useful while rolling).
    pub secret_index: usize,
}

/// Verifies `body` (the raw bytes as received) against the header.
///
/// The timestamp is checked first, in both directions, because it is cheap and stops replays
/// before any HMAC work. Then every secret's MAC is compared in constant time with every `v1`.
pub fn verify(
    body: &[u8],
    header: Option<&str>,
    secrets: &WebhookSecrets,
    tolerance_seconds: u64,
    now: i64,
) -> Result<Verified, SignatureError> {
    let header = SignatureHeader::parse(header.ok_or(SignatureError::MissingHeader)?)?;
    if now.abs_diff(header.timestamp) > tolerance_seconds {
        return Err(SignatureError::TimestampOutsideTolerance);
    }
    let candidates: Vec<[u8; 32]> = header
        .signatures
        .iter()
        .filter_map(|s| decode_v1(s))
        .collect();
    let timestamp = header.timestamp.to_string();
    for (secret_index, secret) in secrets.0.iter().enumerate() {
        let expected = mac(secret, &timestamp, body);
        let mut matched = subtle::Choice::from(0u8);
        for candidate in &candidates {
            matched |= expected.ct_eq(candidate);
        }
        if bool::from(matched) {
            return Ok(Verified {
                timestamp: header.timestamp,
                secret_index,
            });
        }
    }
    Err(SignatureError::NoMatchingSignature)
}

/// A `v1` that is not 64 hex digits can never match; it is skipped rather than refused so
/// that one garbled value does not hide a good one beside it.
fn decode_v1(value: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(value, &mut out).ok()?;
    Some(out)
}

/// HMAC-SHA256 over `"{t}.{body}"`, fed in pieces so the body is never copied.
fn mac(secret: &WebhookSecret, timestamp: &str, body: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.key()).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Builds a header the way Stripe does. For tests and local tools (the trigger command);
/// the official SDK's `generateTestHeaderString` is the reference it is checked against.
pub fn sign(body: &[u8], secret: &WebhookSecret, timestamp: i64) -> String {
    let signature = hex::encode(mac(secret, &timestamp.to_string(), body));
    format!("t={timestamp},{SIGNED_SCHEME}={signature}")
}

/// A header like Stripe's when it signs with several secrets (an endpoint secret being
/// rolled): one `t`, then one `v1` per secret, so a receiver holding either secret verifies
/// it. This service signs its own notifications with it (`Notify-Signature`).
pub fn sign_with_all(body: &[u8], secrets: &WebhookSecrets, timestamp: i64) -> String {
    let mut header = format!("t={timestamp}");
    for secret in &secrets.0 {
        let signature = hex::encode(mac(secret, &timestamp.to_string(), body));
        header.push_str(&format!(",{SIGNED_SCHEME}={signature}"));
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn secrets(values: &str) -> WebhookSecrets {
        WebhookSecrets::from_comma_separated(values).expect("test secrets are not blank")
    }

    fn secret(value: &str) -> WebhookSecret {
        WebhookSecret::new(value).expect("test secret is not blank")
    }

    #[test]
    fn a_header_signed_with_the_secret_verifies() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(body, &secret("whsec_a"), NOW);
        let verified = verify(body, Some(&header), &secrets("whsec_a"), 300, NOW).unwrap();
        assert_eq!(
            verified,
            Verified {
                timestamp: NOW,
                secret_index: 0
            }
        );
    }

    #[test]
    fn spaces_around_items_keys_and_values_are_tolerated() {
        let body = b"{}";
        let sig = sign(body, &secret("whsec_a"), NOW);
        let v1 = sig.split_once("v1=").unwrap().1;
        let header = format!(" t = {NOW} ,  v1 = {v1} , v0=abc ,");
        assert!(verify(body, Some(&header), &secrets("whsec_a"), 300, NOW).is_ok());
    }

    #[test]
    fn the_parser_keeps_every_v1_and_ignores_other_schemes() {
        let parsed = SignatureHeader::parse("t=5,v1=aa,v0=bb,v1=cc,x=dd").unwrap();
        assert_eq!(
            parsed,
            SignatureHeader {
                timestamp: 5,
                signatures: vec!["aa", "cc"]
            }
        );
    }

    #[test]
    fn each_malformed_header_names_its_problem() {
        let cases = [
            ("", SignatureError::MissingHeader),
            ("   ", SignatureError::MissingHeader),
            ("v1=aa", SignatureError::MissingTimestamp),
            ("t=5", SignatureError::MissingSignature),
            ("t=5,v0=aa", SignatureError::MissingSignature),
            (
                "t=5,v1",
                SignatureError::MalformedHeader("an element has no '='"),
            ),
            (
                "t=abc,v1=aa",
                SignatureError::MalformedHeader("timestamp is not a number of seconds"),
            ),
            (
                "t=12abc,v1=aa",
                SignatureError::MalformedHeader("timestamp is not a number of seconds"),
            ),
            (
                "t=-5,v1=aa",
                SignatureError::MalformedHeader("timestamp is not a number of seconds"),
            ),
            (
                "t=,v1=aa",
                SignatureError::MalformedHeader("timestamp is not a number of seconds"),
            ),
            (
                "t=99999999999999999999,v1=aa",
                SignatureError::MalformedHeader("timestamp is not a number of seconds"),
            ),
            (
                "t=5,t=6,v1=aa",
                SignatureError::MalformedHeader("more than one timestamp"),
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(
                SignatureHeader::parse(header),
                Err(expected),
                "header {header:?}"
            );
        }
        let long = format!("t=5,v1={}", "a".repeat(MAX_HEADER_BYTES));
        assert_eq!(
            SignatureHeader::parse(&long),
            Err(SignatureError::MalformedHeader("header too long"))
        );
    }

    #[test]
    fn no_header_at_all_is_its_own_error() {
        assert_eq!(
            verify(b"{}", None, &secrets("whsec_a"), 300, NOW),
            Err(SignatureError::MissingHeader)
        );
    }

    #[test]
    fn tolerance_holds_in_both_directions_and_includes_its_bound() {
        let body = b"{}";
        let s = secrets("whsec_a");
        for (signed_at, ok) in [
            (NOW - 300, true),
            (NOW + 300, true),
            (NOW - 301, false),
            (NOW + 301, false),
        ] {
            let header = sign(body, &secret("whsec_a"), signed_at);
            let result = verify(body, Some(&header), &s, 300, NOW);
            if ok {
                assert!(result.is_ok(), "signed at {signed_at}");
            } else {
                assert_eq!(result, Err(SignatureError::TimestampOutsideTolerance));
            }
        }
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let header = format!("t={},v1={}", 999_999_999_999_999_999i64, "0".repeat(64));
        assert_eq!(
            verify(
                b"{}",
                Some(&header),
                &secrets("whsec_a"),
                u64::MAX,
                i64::MIN
            ),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn any_secret_may_match_any_v1() {
        let body = b"{}";
        let old = sign(body, &secret("whsec_old"), NOW);
        let new_v1 = sign(body, &secret("whsec_new"), NOW)
            .split_once("v1=")
            .unwrap()
            .1
            .to_owned();
        let header = format!("{old},v1={new_v1}");
        let verified = verify(
            body,
            Some(&header),
            &secrets("whsec_other, whsec_new"),
            300,
            NOW,
        );
        assert_eq!(
            verified,
            Ok(Verified {
                timestamp: NOW,
                secret_index: 1
            })
        );
    }

    #[test]
    fn a_garbled_v1_does_not_hide_a_good_one() {
        let body = b"{}";
        let good = sign(body, &secret("whsec_a"), NOW);
        let header = format!("t={NOW},v1=zz-not-hex,{}", good.split_once(',').unwrap().1);
        assert!(verify(body, Some(&header), &secrets("whsec_a"), 300, NOW).is_ok());
    }

    #[test]
    fn blank_secrets_are_never_configured() {
        assert_eq!(WebhookSecrets::from_comma_separated(""), None);
        assert_eq!(WebhookSecrets::from_comma_separated(" , ,"), None);
        assert_eq!(
            WebhookSecrets::from_comma_separated("whsec_a, ,whsec_b")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let s = secrets("whsec_topsecret1,whsec_topsecret2");
        let printed = format!("{s:?}");
        assert!(!printed.contains("topsecret"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn error_messages_never_show_a_secret_or_signature() {
        let body = b"{}";
        let header = sign(body, &secret("whsec_topsecret"), NOW);
        let err = verify(body, Some(&header), &secrets("whsec_other"), 300, NOW).unwrap_err();
        let text = format!("{err} {err:?} {}", err.code());
        assert!(
            !text.contains("topsecret") && !text.contains("whsec_other"),
            "{text}"
        );
        assert!(
            !text.contains(header.split_once("v1=").unwrap().1),
            "{text}"
        );
    }

    #[test]
    fn a_header_signed_with_every_secret_verifies_with_each_of_them_alone() {
        let body = br#"{"id":"n_1"}"#;
        let header = sign_with_all(body, &secrets("whsec_old, whsec_new"), NOW);
        assert_eq!(header.matches("v1=").count(), 2);
        for one in ["whsec_old", "whsec_new"] {
            assert!(
                verify(body, Some(&header), &secrets(one), 300, NOW).is_ok(),
                "{one}"
            );
        }
        assert!(verify(body, Some(&header), &secrets("whsec_other"), 300, NOW).is_err());
        assert_eq!(
            sign_with_all(body, &secrets("whsec_old"), NOW),
            sign(body, &secret("whsec_old"), NOW)
        );
    }
}
