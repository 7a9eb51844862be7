//! Hostile input, generated: more than 100,000 headers and bodies thrown at the signature
//! parser, the verifier and the whole delivery path, checking that nothing panics, no forgery
//! is accepted, every refusal is a 4xx, and a refused delivery stores nothing.
//!
//! Case counts are fixed here (not left to PROPTEST_CASES) so that the test command always runs
//! the full budget: 40k + 25k + 20k + 10k + 15k = 110,000 generated cases.

use pollster::block_on;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::json;
use stripe_edge_webhooks::config::Config;
use stripe_edge_webhooks::error::AppError;
use stripe_edge_webhooks::event::Outcome;
use stripe_edge_webhooks::services::{Services, Trace};
use stripe_edge_webhooks::signature::{
    sign, verify, SignatureError, SignatureHeader, WebhookSecret, WebhookSecrets,
};
use stripe_edge_webhooks::store::MemoryStore;
use stripe_edge_webhooks::testing::FakeTransport;
use stripe_edge_webhooks::webhook::{receive, Delivery, MAX_BODY_BYTES};

const NOW: i64 = 1_790_000_000;
const SECRET: &str = "whsec_hostile_input_tests";
const OTHER_SECRET: &str = "whsec_rolled_secret";

fn secrets() -> WebhookSecrets {
    WebhookSecrets::from_comma_separated(&format!("{SECRET},{OTHER_SECRET}")).unwrap()
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

/// Header-ish strings: fragments Stripe headers are made of, glued with random text.
fn header_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("t=".to_owned()),
        Just("v1=".to_owned()),
        Just("v0=".to_owned()),
        Just(",".to_owned()),
        Just("=".to_owned()),
        Just(" ".to_owned()),
        (0i64..=4_000_000_000).prop_map(|n| n.to_string()),
        "[0-9a-f]{64}",
        "[0-9a-fA-F]{0,70}",
        ".{0,12}",
        "\\PC{0,8}",
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

#[test]
fn any_header_with_any_body_never_panics_and_never_verifies() {
    let secrets = secrets();
    runner(40_000)
        .run(
            &(
                header_strategy(),
                proptest::collection::vec(any::<u8>(), 0..256),
            ),
            |(header, body)| {
                let _ = SignatureHeader::parse(&header);
                let result = verify(&body, Some(&header), &secrets, 300, NOW);
                prop_assert!(result.is_err(), "accepted {header:?}");
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn well_formed_headers_with_guessed_signatures_are_forgeries() {
    let secrets = secrets();
    let strategy = (
        NOW - 300..=NOW + 300,
        proptest::collection::vec("[0-9a-f]{64}", 1..6),
        proptest::collection::vec(any::<u8>(), 0..512),
    );
    runner(25_000)
        .run(&strategy, |(t, guesses, body)| {
            let header = std::iter::once(format!("t={t}"))
                .chain(guesses.iter().map(|g| format!("v1={g}")))
                .collect::<Vec<_>>()
                .join(",");
            prop_assert_eq!(
                verify(&body, Some(&header), &secrets, 300, NOW),
                Err(SignatureError::NoMatchingSignature)
            );
            Ok(())
        })
        .unwrap();
}

#[derive(Debug, Clone)]
enum Tamper {
    Flip { at: usize, bit: u8 },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
    Truncate { at: usize },
    Append(Vec<u8>),
}

fn tamper_strategy() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Tamper::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Tamper::Insert { at, byte }),
        any::<usize>().prop_map(|at| Tamper::Remove { at }),
        any::<usize>().prop_map(|at| Tamper::Truncate { at }),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(Tamper::Append),
    ]
}

fn apply(body: &[u8], tamper: &Tamper) -> Vec<u8> {
    let mut out = body.to_vec();
    let n = out.len().max(1);
    match tamper {
        Tamper::Flip { at, bit } if !out.is_empty() => out[at % n] ^= 1 << bit,
        Tamper::Flip { .. } => out.push(1),
        Tamper::Insert { at, byte } => out.insert(at % (out.len() + 1), *byte),
        Tamper::Remove { at } if !out.is_empty() => {
            out.remove(at % n);
        }
        Tamper::Remove { .. } => out.push(0),
        Tamper::Truncate { at } if !out.is_empty() => out.truncate(at % n),
        Tamper::Truncate { .. } => out.push(b' '),
        Tamper::Append(extra) => out.extend_from_slice(extra),
    }
    out
}

#[test]
fn a_signed_body_changed_in_any_way_is_refused() {
    let secrets = secrets();
    let key = WebhookSecret::new(SECRET).unwrap();
    runner(20_000)
        .run(
            &(
                proptest::collection::vec(any::<u8>(), 0..512),
                tamper_strategy(),
            ),
            |(body, tamper)| {
                let header = sign(&body, &key, NOW);
                prop_assert!(verify(&body, Some(&header), &secrets, 300, NOW).is_ok());
                let changed = apply(&body, &tamper);
                prop_assume!(changed != body);
                prop_assert_eq!(
                    verify(&changed, Some(&header), &secrets, 300, NOW),
                    Err(SignatureError::NoMatchingSignature)
                );
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn a_good_v1_is_found_among_junk_elements_and_wrong_signatures() {
    let secrets = secrets();
    let junk = prop_oneof![
        "[0-9a-f]{64}".prop_map(|s| format!("v1={s}")),
        "[0-9a-f]{64}".prop_map(|s| format!("v0={s}")),
        // Unknown keys (never a bare `t`: a second timestamp is refused on purpose).
        "[a-su-z][a-z]{0,5}=[a-z0-9]{0,10}",
        Just("v1=not-hex".to_owned()),
        Just(" ".to_owned()),
    ];
    let strategy = (
        proptest::collection::vec(junk.clone(), 0..5),
        proptest::collection::vec(junk, 0..5),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..256),
    );
    runner(10_000)
        .run(&strategy, |(before, after, rolled, body)| {
            let key = WebhookSecret::new(if rolled { OTHER_SECRET } else { SECRET }).unwrap();
            let signed = sign(&body, &key, NOW);
            let v1 = signed.split(',').nth(1).unwrap().to_owned();
            let header = before
                .iter()
                .chain(std::iter::once(&format!("t={NOW}")))
                .chain(before.iter().take(1))
                .chain(std::iter::once(&v1))
                .chain(after.iter())
                .cloned()
                .collect::<Vec<_>>()
                .join(",");
            let verified = verify(&body, Some(&header), &secrets, 300, NOW);
            prop_assert!(verified.is_ok(), "{header}: {verified:?}");
            prop_assert_eq!(verified.unwrap().secret_index, usize::from(rolled));
            Ok(())
        })
        .unwrap();
}

/// Bodies that are signed correctly but are not what Stripe sends.
fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    let event = |object: serde_json::Value, kind: &str| {
        json!({"id": "evt_hostile", "object": "event", "type": kind, "created": NOW,
               "livemode": false, "data": {"object": object}})
        .to_string()
        .into_bytes()
    };
    let handled = prop_oneof![
        Just("identity.verification_session.verified"),
        Just("identity.verification_session.requires_input"),
        Just("identity.verification_session.redacted"),
    ];
    prop_oneof![
        // Raw bytes, often not UTF-8.
        proptest::collection::vec(any::<u8>(), 0..300),
        // A real event cut anywhere.
        any::<usize>().prop_map(move |at| {
            let full = event(json!({"id": "vs_1", "status": "verified"}), "identity.verification_session.verified");
            full[..at % full.len()].to_vec()
        }),
        // Valid JSON that is not an event.
        prop_oneof![Just(json!([])), Just(json!(null)), Just(json!({"id": "evt_1"})), Just(json!("evt")), Just(json!({"data": {}}))]
            .prop_map(|v| v.to_string().into_bytes()),
        // Handled types whose object has an unexpected shape.
        (handled, prop_oneof![
            Just(json!({})),
            Just(json!({"id": 7})),
            Just(json!({"id": "vs_1", "status": ["x"]})),
            Just(json!({"id": "vs_1", "status": "verified", "metadata": "user"})),
            Just(json!({"id": "vs_1", "status": "verified", "created": "yesterday"})),
            Just(json!({"id": "../../etc", "status": "verified"})),
        ])
            .prop_map(move |(kind, object)| event(object, kind)),
        // Deep nesting, inside and outside the object.
        (1usize..4000).prop_map(|depth| {
            let mut s = "[".repeat(depth);
            s.push_str(&"]".repeat(depth));
            s.into_bytes()
        }),
        (1usize..4000).prop_map(move |depth| {
            let inner = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            format!(r#"{{"id":"evt_deep","object":"event","type":"identity.verification_session.verified","created":{NOW},"livemode":false,"data":{{"object":{{"id":"vs_1","status":"verified","metadata":{inner}}}}}}}"#).into_bytes()
        }),
    ]
}

#[test]
fn signed_hostile_bodies_are_refused_with_a_4xx_and_nothing_is_stored() {
    let secrets = secrets();
    let key = WebhookSecret::new(SECRET).unwrap();
    let config = Config::from_lookup(|name| {
        (name == "STRIPE_SECRET_KEY").then(|| "sk_test_hostile".to_owned())
    })
    .unwrap();
    let transport = FakeTransport::unreachable();
    runner(15_000)
        .run(&hostile_body(), |body| {
            let store = MemoryStore::new();
            let trace = Trace::new();
            let services = Services::new(&store, &transport, &config, NOW, &trace).for_webhook();
            let header = sign(&body, &key, NOW);
            let result = block_on(receive(
                &services,
                &secrets,
                300,
                Delivery {
                    body: &body,
                    signature_header: Some(&header),
                    now: NOW,
                },
            ));
            match result {
                // Only a verified event of a type we do not handle may pass (recorded as
                // ignored); a handled type with a bad object must never be handled or recorded.
                Ok(receipt) => {
                    prop_assert_eq!(receipt.outcome, Outcome::Ignored, "{:?}", receipt);
                    prop_assert!(!store.is_empty());
                }
                Err(error) => {
                    let status = AppError::from(error).status();
                    prop_assert!((400..500).contains(&status), "status {status}");
                    prop_assert!(store.is_empty());
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_body_over_the_cap_is_refused_before_verification() {
    let store = MemoryStore::new();
    let config = Config::from_lookup(|name| {
        (name == "STRIPE_SECRET_KEY").then(|| "sk_test_hostile".to_owned())
    })
    .unwrap();
    let transport = FakeTransport::unreachable();
    let trace = Trace::new();
    let services = Services::new(&store, &transport, &config, NOW, &trace);
    let body = vec![b'{'; MAX_BODY_BYTES + 1];
    let header = sign(&body, &WebhookSecret::new(SECRET).unwrap(), NOW);
    let error = block_on(receive(
        &services,
        &secrets(),
        300,
        Delivery {
            body: &body,
            signature_header: Some(&header),
            now: NOW,
        },
    ))
    .unwrap_err();
    assert_eq!(AppError::from(error).status(), 413);
    assert!(store.is_empty());
}
