//! Cloudflare Access in front of the admin routes: the application token Access adds to every
//! request it let through (`Cf-Access-Jwt-Assertion`, a JWT signed RS256 with the team's key),
//! read and its claims checked. Pure: the RS256 signature itself is checked by the runtime's
//! WebCrypto (`routes::access`) against the team's published keys, so the bundle carries no
//! RSA code.
//!
//! Cloudflare's "Validate JWTs" and "Application token" pages: the header names `alg` RS256
//! and the key's `kid`; the payload has `aud` (the application's AUD tags, an array), `iss`
//! (`https://<team>.cloudflareaccess.com`), `exp`, `iat`, `nbf`, and `email` or a service
//! token's `common_name`; the keys are at `https://<team>.cloudflareaccess.com/cdn-cgi/access/certs`
//! (`{"keys":[JWK, …]}`: the current key and the previous one, for 7 days after a rotation).

/// The request header Access sets on every request it let through.
pub const ASSERTION_HEADER: &str = "cf-access-jwt-assertion";
/// The path of the team's keys under its team domain.
pub const CERTS_PATH: &str = "/cdn-cgi/access/certs";
/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECONDS: i64 = 60;
/// A token longer than this is no Access token (they are about 1 KB).
const MAX_TOKEN_LEN: usize = 8192;

/// Why a token is refused. Logged as the reason, never shown to the client beyond "unauthorized".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not three base64url parts of JSON.
    Malformed,
    /// Not RS256, or no `kid`.
    Algorithm,
    /// `aud` does not name this application.
    Audience,
    /// `iss` is not the team's.
    Issuer,
    Expired,
    NotYetValid,
    /// No key of the team has this `kid`.
    UnknownKey,
    /// The signature does not verify.
    Signature,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed token",
            Self::Algorithm => "not an RS256 token with a key id",
            Self::Audience => "audience is not this application",
            Self::Issuer => "issuer is not the team",
            Self::Expired => "expired",
            Self::NotYetValid => "not yet valid",
            Self::UnknownKey => "signed by a key the team does not publish",
            Self::Signature => "signature does not verify",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    alg: String,
    kid: Option<String>,
}
crate::json::decode_map!(Header {
    alg: "alg" required,
    kid: "kid" default,
});

/// The claims checked here; the rest of the payload is not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// An array of AUD tags (a single string is read too, as RFC 7519 allows).
    aud: serde_json::Value,
    iss: String,
    exp: i64,
    nbf: Option<i64>,
    /// Who signed in (an identity login), or a service token's name.
    pub email: Option<String>,
    pub common_name: Option<String>,
}
crate::json::decode_map!(Claims {
    aud: "aud" required,
    iss: "iss" required,
    exp: "exp" required,
    nbf: "nbf" default,
    email: "email" default,
    common_name: "common_name" default,
});

/// A token read: its key id, its claims, the signed bytes and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kid: String,
    pub claims: Claims,
    /// `base64url(header).base64url(payload)`, what RS256 signs.
    pub signed: String,
    pub signature: Vec<u8>,
}

/// What this deployment's Access application is: the team's issuer, the AUD tag, and where the
/// keys are (the team domain itself in production; a loopback key server in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessApp {
    pub team_domain: String,
    pub aud: String,
    pub certs_base: Option<String>,
}

impl AccessApp {
    /// `https://<team domain>`: what Access writes in `iss`.
    pub fn issuer(&self) -> String {
        format!("https://{}", self.team_domain)
    }

    /// Where the team's keys are: `{base}/cdn-cgi/access/certs`.
    pub fn certs_url(&self) -> String {
        let base = self.certs_base.clone().unwrap_or_else(|| self.issuer());
        format!("{}{CERTS_PATH}", base.trim_end_matches('/'))
    }

    /// The token's claims hold for this application at `now`.
    pub fn check(&self, claims: &Claims, now: i64) -> Result<(), Refused> {
        let names_us = match &claims.aud {
            serde_json::Value::String(aud) => *aud == self.aud,
            serde_json::Value::Array(auds) => auds.iter().any(|aud| *aud == *self.aud),
            _ => false,
        };
        if !names_us {
            return Err(Refused::Audience);
        }
        if claims.iss.trim_end_matches('/') != self.issuer() {
            return Err(Refused::Issuer);
        }
        if now >= claims.exp + LEEWAY_SECONDS {
            return Err(Refused::Expired);
        }
        if claims.nbf.is_some_and(|nbf| now + LEEWAY_SECONDS < nbf) {
            return Err(Refused::NotYetValid);
        }
        Ok(())
    }
}

/// Reads a token: three base64url parts, an RS256 header with a `kid`, a payload with the
/// claims. Nothing here says it is genuine: the signature is checked by WebCrypto.
pub fn parse(token: &str) -> Result<Token, Refused> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_LEN {
        return Err(Refused::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused::Malformed);
    };
    // Text, read with `from_str` as every JSON is: a `from_slice` reader would be a second copy
    // of serde_json's parser in the wasm. JSON that is not UTF-8 is malformed (`from_slice` let
    // it pass in a string it skipped; Access's tokens are UTF-8, as JSON must be).
    let decode_json = |part: &str| {
        base64url(part)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(Refused::Malformed)
    };
    let header: Header =
        serde_json::from_str(&decode_json(header)?).map_err(|_| Refused::Malformed)?;
    let claims: Claims =
        serde_json::from_str(&decode_json(payload)?).map_err(|_| Refused::Malformed)?;
    let signature = base64url(signature).ok_or(Refused::Malformed)?;
    let kid = match (header.alg.as_str(), header.kid) {
        ("RS256", Some(kid)) if !kid.is_empty() => kid,
        _ => return Err(Refused::Algorithm),
    };
    let signed_len = token.len() - signature_len(token);
    Ok(Token {
        kid,
        claims,
        signed: token[..signed_len].to_owned(),
        signature,
    })
}

/// The length of `.signature` at the end of a three-part token.
fn signature_len(token: &str) -> usize {
    token.rfind('.').map_or(0, |dot| token.len() - dot)
}

/// Unpadded base64url (RFC 4648 §5), as JWTs use; `None` for anything else.
pub fn base64url(text: &str) -> Option<Vec<u8>> {
    let value = |b: u8| -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut bits = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            bits |= value(*b)? << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// One key of the team's `{"keys":[…]}`: an RSA public key as a JWK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: String,
    pub n: String,
    pub e: String,
}

/// The RSA keys of a certs document (other entries, and keys whose parts are not base64url,
/// are skipped); `None` when it is not one.
pub fn parse_keys(body: &str) -> Option<Vec<Jwk>> {
    let jwks: serde_json::Value = serde_json::from_str(body).ok()?;
    let text = |key: &serde_json::Value, name: &str| key.get(name)?.as_str().map(str::to_owned);
    let keys = jwks.get("keys")?.as_array()?;
    let jwk = |key: &serde_json::Value| {
        Some(Jwk {
            kid: text(key, "kid")?,
            n: text(key, "n").filter(|n| base64url(n).is_some())?,
            e: text(key, "e").filter(|e| base64url(e).is_some())?,
        })
    };
    let mut rsa = Vec::new();
    for key in keys {
        if key.get("kty").and_then(|k| k.as_str()) == Some("RSA") {
            rsa.extend(jwk(key));
        }
    }
    Some(rsa)
}

impl Jwk {
    /// The JWK WebCrypto's `importKey("jwk", …)` takes for RS256 verification (`n` and `e`
    /// are base64url, so they need no escaping).
    pub fn import_json(&self) -> String {
        format!(
            r#"{{"kty":"RSA","n":"{}","e":"{}","alg":"RS256","ext":true}}"#,
            self.n, self.e
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let mut bits = 0u32;
            for (i, b) in chunk.iter().enumerate() {
                bits |= (*b as u32) << (16 - 8 * i);
            }
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((bits >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    fn token(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.{}",
            b64(header.as_bytes()),
            b64(payload.as_bytes()),
            b64(b"sig")
        )
    }

    fn app() -> AccessApp {
        AccessApp {
            team_domain: "team.cloudflareaccess.com".into(),
            aud: "aud123".into(),
            certs_base: None,
        }
    }

    const HEADER: &str = r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#;
    const PAYLOAD: &str = r#"{"aud":["aud123"],"email":"ops@example.com","exp":2000,"iat":1000,
        "nbf":1000,"iss":"https://team.cloudflareaccess.com","type":"app","sub":"x"}"#;

    #[test]
    fn base64url_round_trips_every_length() {
        for len in 0..40u8 {
            let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base64url(&b64(&bytes)).unwrap(), bytes, "{len}");
        }
        for bad in ["a", "ab+c", "ab/c", "ab=c", "abcde"] {
            assert_eq!(base64url(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_token_is_read_with_its_key_id_signed_part_and_claims() {
        let text = token(HEADER, PAYLOAD);
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed.kid, "k1");
        assert_eq!(parsed.signature, b"sig");
        assert_eq!(format!("{}.{}", parsed.signed, b64(b"sig")), text);
        assert_eq!(parsed.claims.email.as_deref(), Some("ops@example.com"));
        assert_eq!(app().check(&parsed.claims, 1500), Ok(()));
    }

    #[test]
    fn other_algorithms_and_shapes_are_refused() {
        for header in [
            r#"{"alg":"none","kid":"k1"}"#,
            r#"{"alg":"HS256","kid":"k1"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"RS256","kid":""}"#,
        ] {
            assert_eq!(
                parse(&token(header, PAYLOAD)),
                Err(Refused::Algorithm),
                "{header}"
            );
        }
        let good = token(HEADER, PAYLOAD);
        for bad in [
            "".to_owned(),
            "a.b".to_owned(),
            format!("{good}.x"),
            token(HEADER, "{}"),
            token("not json", PAYLOAD),
            good.replace('.', ".!"),
            "x".repeat(MAX_TOKEN_LEN + 1),
            // A header that is not UTF-8 (a Latin-1 "é" inside the kid).
            format!(
                "{}.{}.{}",
                b64(b"{\"alg\":\"RS256\",\"kid\":\"k\xe9\"}"),
                b64(PAYLOAD.as_bytes()),
                b64(b"sig")
            ),
            // A payload (an ignored claim: `from_slice` let it pass) that is not UTF-8 (a string with a lone 0xff byte in it).
            format!(
                "{}.{}.{}",
                b64(HEADER.as_bytes()),
                b64(b"{\"a\":\"\xff\"}"),
                b64(b"s")
            ),
        ] {
            assert_eq!(parse(&bad), Err(Refused::Malformed), "{bad}");
        }
    }

    #[test]
    fn the_claims_must_name_this_application_team_and_time() {
        let claims = |payload: &str| parse(&token(HEADER, payload)).unwrap().claims;
        let app = app();
        let at = |now| app.check(&claims(PAYLOAD), now);
        assert_eq!(at(1000 - LEEWAY_SECONDS), Ok(()));
        assert_eq!(at(1000 - LEEWAY_SECONDS - 1), Err(Refused::NotYetValid));
        assert_eq!(at(2000 + LEEWAY_SECONDS - 1), Ok(()));
        assert_eq!(at(2000 + LEEWAY_SECONDS), Err(Refused::Expired));
        let other_aud = PAYLOAD.replace(r#"["aud123"]"#, r#"["other","aud1234"]"#);
        assert_eq!(app.check(&claims(&other_aud), 1500), Err(Refused::Audience));
        let many = PAYLOAD.replace(r#"["aud123"]"#, r#"["other","aud123"]"#);
        assert_eq!(app.check(&claims(&many), 1500), Ok(()));
        let single = PAYLOAD.replace(r#"["aud123"]"#, r#""aud123""#);
        assert_eq!(app.check(&claims(&single), 1500), Ok(()));
        let other_team = PAYLOAD.replace("https://team.", "https://evil.");
        assert_eq!(app.check(&claims(&other_team), 1500), Err(Refused::Issuer));
        let plain = PAYLOAD.replace("https://team.", "http://team.");
        assert_eq!(app.check(&claims(&plain), 1500), Err(Refused::Issuer));
        let no_exp = PAYLOAD.replace(r#""exp":2000,"#, "");
        assert_eq!(parse(&token(HEADER, &no_exp)), Err(Refused::Malformed));
    }

    #[test]
    fn the_keys_are_at_the_team_domain_unless_a_base_is_given() {
        let mut app = app();
        assert_eq!(app.issuer(), "https://team.cloudflareaccess.com");
        assert_eq!(
            app.certs_url(),
            "https://team.cloudflareaccess.com/cdn-cgi/access/certs"
        );
        app.certs_base = Some("http://127.0.0.1:9999/".into());
        assert_eq!(
            app.certs_url(),
            "http://127.0.0.1:9999/cdn-cgi/access/certs"
        );
        let body = r#"{"keys":[{"kid":"k1","kty":"RSA","alg":"RS256","use":"sig","e":"AQAB","n":"abcd"},
            {"kid":"k3","kty":"RSA","e":"AQAB","n":"a+b\"x"},
            {"kid":"k2","kty":"EC","crv":"P-256","x":"a","y":"b"}],"public_cert":{"kid":"k1","cert":"-"}}"#;
        let keys = parse_keys(body).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid, "k1");
        let jwk: serde_json::Value = serde_json::from_str(&keys[0].import_json()).unwrap();
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["n"], "abcd");
        assert_eq!(parse_keys("[]"), None);
    }
}
