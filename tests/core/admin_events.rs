//! `GET /events`: the store's `list` and the page of event records, against `MemoryStore`.

use pollster::block_on;
use stripe_edge_webhooks::admin::{list_events, EventsQuery};
use stripe_edge_webhooks::event::{EventRecord, Outcome, EVENT_RECORD_VERSION};
use stripe_edge_webhooks::store::{keys, ListPage, MemoryStore, Store, StoreError};

fn record(id: &str, recorded_at: i64) -> EventRecord {
    EventRecord {
        version: EVENT_RECORD_VERSION,
        id: id.to_owned(),
        event_type: "payment_intent.succeeded".into(),
        created: recorded_at - 1,
        livemode: false,
        outcome: Outcome::Ignored,
        failed_step: None,
        error: None,
        stripe_error: None,
        retryable: None,
        reason: None,
        recorded_at,
    }
}

fn store_with(records: &[(&str, i64)]) -> MemoryStore {
    let store = MemoryStore::new();
    block_on(async {
        for (id, at) in records {
            keys::event(id)
                .save(&store, &record(id, *at), Some(60))
                .await
                .unwrap();
        }
        // Other prefixes around `event:` in key order must not leak into the list.
        store.put("checkout:cs_1", "{}", None).await.unwrap();
        store.put("eventx:evt_no", "{}", None).await.unwrap();
        store.put("evenT:evt_no", "{}", None).await.unwrap();
        store.put("notification:n_1", "{}", None).await.unwrap();
    });
    store
}

fn ids(events: &[EventRecord]) -> Vec<&str> {
    events.iter().map(|r| r.id.as_str()).collect()
}

#[test]
fn list_pages_through_one_prefix_in_key_order() {
    let store = store_with(&[("evt_c", 3), ("evt_a", 1), ("evt_b", 2)]);
    let first = block_on(store.list("event:", 2, None)).unwrap();
    assert_eq!(first.keys, vec!["event:evt_a", "event:evt_b"]);
    let cursor = first.cursor.expect("a second page");
    let second = block_on(store.list("event:", 2, Some(&cursor))).unwrap();
    assert_eq!(
        second,
        ListPage {
            keys: vec!["event:evt_c".into()],
            cursor: None
        }
    );
    // A page that ends exactly at the last key has no cursor either.
    let exact = block_on(store.list("event:", 3, None)).unwrap();
    assert_eq!(exact.keys.len(), 3);
    assert_eq!(exact.cursor, None);
    assert_eq!(
        block_on(store.list("nothing:", 5, None)).unwrap(),
        ListPage::default()
    );
}

#[test]
fn a_page_of_events_is_newest_first_and_the_cursor_reaches_every_event() {
    // Key order (a, b, c, d, e) differs from the order they were recorded in.
    let store = store_with(&[
        ("evt_a", 30),
        ("evt_b", 50),
        ("evt_c", 10),
        ("evt_d", 40),
        ("evt_e", 20),
    ]);
    let query = EventsQuery {
        limit: 3,
        cursor: None,
    };
    let first = block_on(list_events(&store, &query)).unwrap();
    assert_eq!(ids(&first.events), ["evt_b", "evt_a", "evt_c"]);
    let next = EventsQuery {
        limit: 3,
        cursor: first.cursor.clone(),
    };
    let second = block_on(list_events(&store, &next)).unwrap();
    assert_eq!(ids(&second.events), ["evt_d", "evt_e"]);
    assert_eq!(second.cursor, None);

    let all = block_on(list_events(&store, &EventsQuery::default())).unwrap();
    assert_eq!(
        ids(&all.events),
        ["evt_b", "evt_d", "evt_a", "evt_e", "evt_c"]
    );
    assert_eq!(all.events[0], record("evt_b", 50));
    assert_eq!(all.cursor, None);
}

#[test]
fn the_page_serialises_as_events_and_cursor() {
    let store = store_with(&[("evt_a", 1)]);
    let page = block_on(list_events(
        &store,
        &EventsQuery {
            limit: 1,
            cursor: None,
        },
    ))
    .unwrap();
    let body: serde_json::Value = serde_json::to_value(&page).unwrap();
    assert_eq!(body["events"][0]["id"], "evt_a");
    assert_eq!(body["events"][0]["outcome"], "ignored");
    assert!(body["cursor"].is_null());
}

#[test]
fn an_empty_store_gives_an_empty_page_and_a_failing_store_an_error() {
    let store = MemoryStore::new();
    let page = block_on(list_events(&store, &EventsQuery::default())).unwrap();
    assert!(page.events.is_empty());
    assert_eq!(page.cursor, None);
    store.set_failing(true);
    assert!(matches!(
        block_on(list_events(&store, &EventsQuery::default())),
        Err(StoreError::Unavailable(_))
    ));
}

#[test]
fn a_record_that_does_not_decode_fails_the_page_like_the_single_read() {
    let store = store_with(&[("evt_a", 1)]);
    block_on(store.put("event:evt_b", "not json", None)).unwrap();
    assert!(matches!(
        block_on(list_events(&store, &EventsQuery::default())),
        Err(StoreError::Corrupt { .. })
    ));
}
