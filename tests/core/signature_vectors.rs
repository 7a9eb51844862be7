//! The signature verifier against cases signed by the official Stripe SDK
//! (tests/fixtures/signature_vectors.json, made by tools/gen-signature-vectors.mjs).
//!
//! Each case carries the SDK's own verdict. This verifier must give the expected result,
//! agree with the SDK wherever no deliberate deviation is declared, and really differ from
//! it where one is (so the declarations cannot go stale).

use serde::Deserialize;
use stripe_edge_webhooks::signature::{sign, verify, WebhookSecret, WebhookSecrets};

#[derive(Deserialize)]
struct Fixture {
    stripe_sdk: String,
    now: i64,
    tolerance: u64,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    payload: Option<String>,
    payload_fill: Option<Fill>,
    header: String,
    secrets: Vec<String>,
    expected: String,
    sdk_accepts: bool,
    deviation: Option<String>,
    #[serde(default)]
    sdk_plain_header: bool,
}

#[derive(Deserialize)]
struct Fill {
    char: String,
    len: usize,
}

impl Case {
    fn body(&self) -> Vec<u8> {
        match (&self.payload, &self.payload_fill) {
            (Some(payload), None) => payload.as_bytes().to_vec(),
            (None, Some(fill)) => fill.char.repeat(fill.len).into_bytes(),
            _ => panic!(
                "case {:?} needs exactly one of payload and payload_fill",
                self.name
            ),
        }
    }

    fn secrets(&self) -> WebhookSecrets {
        WebhookSecrets::from_comma_separated(&self.secrets.join(",")).expect("fixture secrets")
    }
}

fn fixture() -> Fixture {
    let text = include_str!("../fixtures/signature_vectors.json");
    serde_json::from_str(text).expect("the fixture parses")
}

fn valid_event(fixture: &Fixture) -> &Case {
    fixture
        .cases
        .iter()
        .find(|c| c.name == "valid event")
        .expect("the fixture has a valid event")
}

fn outcome(case: &Case, now: i64, tolerance: u64) -> String {
    match verify(
        &case.body(),
        Some(&case.header),
        &case.secrets(),
        tolerance,
        now,
    ) {
        Ok(_) => "ok".to_owned(),
        Err(error) => error.code().to_owned(),
    }
}

#[test]
fn the_fixture_comes_from_the_pinned_sdk_and_covers_the_rules() {
    let fixture = fixture();
    let package: serde_json::Value =
        serde_json::from_str(include_str!("../../package.json")).expect("package.json parses");
    assert_eq!(
        package["devDependencies"]["stripe"],
        fixture.stripe_sdk.as_str()
    );
    assert!(
        fixture.cases.len() >= 30,
        "only {} cases",
        fixture.cases.len()
    );
    for code in [
        "ok",
        "signature_mismatch",
        "signature_timestamp_outside_tolerance",
        "signature_timestamp_missing",
        "signature_v1_missing",
        "signature_header_malformed",
        "signature_header_missing",
    ] {
        assert!(
            fixture.cases.iter().any(|c| c.expected == code),
            "no case expects {code}"
        );
    }
}

#[test]
fn every_sdk_vector_gives_the_expected_result() {
    let fixture = fixture();
    let failures: Vec<String> = fixture
        .cases
        .iter()
        .filter_map(|case| {
            let got = outcome(case, fixture.now, fixture.tolerance);
            (got != case.expected)
                .then(|| format!("{}: expected {}, got {got}", case.name, case.expected))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_verdict_matches_the_sdk_except_where_a_deviation_is_declared() {
    let fixture = fixture();
    for case in &fixture.cases {
        let accepts = outcome(case, fixture.now, fixture.tolerance) == "ok";
        match &case.deviation {
            None => assert_eq!(
                accepts, case.sdk_accepts,
                "{}: disagrees with the SDK",
                case.name
            ),
            Some(why) => assert_ne!(
                accepts, case.sdk_accepts,
                "{}: declared deviation ({why}) does not occur",
                case.name
            ),
        }
    }
}

#[test]
fn headers_built_here_are_identical_to_the_sdks() {
    let fixture = fixture();
    let plain: Vec<&Case> = fixture
        .cases
        .iter()
        .filter(|c| c.sdk_plain_header)
        .collect();
    assert!(plain.len() >= 4);
    for case in plain {
        let timestamp: i64 = case.header[2..case.header.find(',').unwrap()]
            .parse()
            .unwrap();
        let secret = WebhookSecret::new(&case.secrets[0]).unwrap();
        assert_eq!(
            sign(&case.body(), &secret, timestamp),
            case.header,
            "{}",
            case.name
        );
    }
}

#[test]
fn a_valid_vector_fails_once_the_clock_moves_past_the_tolerance() {
    let fixture = fixture();
    let case = valid_event(&fixture);
    assert_eq!(
        outcome(
            case,
            fixture.now + fixture.tolerance as i64,
            fixture.tolerance
        ),
        "ok"
    );
    assert_eq!(
        outcome(
            case,
            fixture.now + fixture.tolerance as i64 + 1,
            fixture.tolerance
        ),
        "signature_timestamp_outside_tolerance"
    );
}

#[test]
fn every_single_byte_change_of_a_valid_vector_is_caught() {
    let fixture = fixture();
    let case = valid_event(&fixture);
    let body = case.body();
    let secrets = case.secrets();
    for i in 0..body.len() {
        let mut tampered = body.clone();
        tampered[i] ^= 0x01;
        assert!(
            verify(
                &tampered,
                Some(&case.header),
                &secrets,
                fixture.tolerance,
                fixture.now
            )
            .is_err(),
            "flipping byte {i} went unnoticed"
        );
    }
}
