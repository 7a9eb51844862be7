//! Event catch-up's run and replay over `MemoryStore` and a scripted port: Stripe's Events API
//! as the stand-in answers it (newest first, `created[gte|lte]`, `starting_after`, `limit`),
//! and processing that records an outcome as `webhook::process` does (a final record makes a
//! second processing a duplicate). What is checked: the cursor, the bounds, the decisions.

use std::cell::RefCell;
use std::collections::HashMap;

use pollster::block_on;
use serde_json::value::RawValue;
use stripe_edge_webhooks::catchup::run::{replay, run, run_thin, EventPage, Port};
use stripe_edge_webhooks::catchup::thin::{ThinBounds, ThinCatchupState, ThinEventPage};
use stripe_edge_webhooks::catchup::{Bounds, CatchupState, INITIAL_LOOKBACK_SECONDS};
use stripe_edge_webhooks::error::{AppError, Record};
use stripe_edge_webhooks::event::thin::{format_rfc3339, parse_rfc3339, ThinEvent};
use stripe_edge_webhooks::event::{Event, EventRecord, Outcome, EVENT_RECORD_VERSION};
use stripe_edge_webhooks::services::{Services, Trace};
use stripe_edge_webhooks::store::{keys, MemoryStore, Store};
use stripe_edge_webhooks::stripe::StripeRequest;
use stripe_edge_webhooks::testing::FakeTransport;
use stripe_edge_webhooks::webhook::{process, Receipt};

use crate::helpers::{config_with, event_json};

const NOW: i64 = 1_800_000_000;
const SETTLE: i64 = 300;

/// What processing an event does this time.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Script {
    Handle,
    /// A failure a retry can get past (a 5xx of Stripe): an error, recorded retryable.
    RetryLater,
    /// Stripe refused the request (a 4xx): answered Ok(failed), recorded failed for good.
    FailForGood,
    /// `webhook::process` itself, for a worker whose secret key is a live one (the listed
    /// events are test-mode ones), its error relayed as the entity's queue relays it.
    ProcessWithLiveKey,
}

struct Fake<'s> {
    store: &'s MemoryStore,
    /// (id, created), in creation order; listed newest first.
    events: Vec<(String, i64)>,
    script: RefCell<HashMap<String, Script>>,
    processed: RefCell<Vec<String>>,
    lists: RefCell<Vec<String>>,
    retrieves: RefCell<u32>,
    list_fails: RefCell<bool>,
}

impl<'s> Fake<'s> {
    fn new(store: &'s MemoryStore, events: &[(&str, i64)]) -> Self {
        Self {
            store,
            events: events.iter().map(|(i, c)| ((*i).to_owned(), *c)).collect(),
            script: RefCell::default(),
            processed: RefCell::default(),
            lists: RefCell::default(),
            retrieves: RefCell::default(),
            list_fails: RefCell::default(),
        }
    }

    fn script(&self, id: &str, what: Script) {
        self.script.borrow_mut().insert(id.to_owned(), what);
    }

    fn raw(id: &str, created: i64) -> String {
        // `evt_exp…`: an abandoned public setup session expiring, which leaves nothing.
        if id.starts_with("evt_exp") {
            return event_json(
                id,
                "checkout.session.expired",
                created,
                serde_json::json!({"id": "cs_abandoned", "object": "checkout.session",
                                   "mode": "setup", "status": "expired", "metadata": {}}),
            )
            .to_string();
        }
        event_json(
            id,
            "identity.verification_session.verified",
            created,
            serde_json::json!({"id": "vs_1", "object": "identity.verification_session"}),
        )
        .to_string()
    }

    fn thin(id: &str, created: i64) -> String {
        serde_json::json!({
            "id": id, "object": "v2.core.event", "type": "v1.identity.verification_session.verified",
            "created": format_rfc3339(created), "livemode": false,
            "related_object": {"id": "vs_1", "type": "identity.verification_session",
                               "url": "/v1/identity/verification_sessions/vs_1"}
        })
        .to_string()
    }

    fn times_processed(&self, id: &str) -> usize {
        self.processed.borrow().iter().filter(|p| *p == id).count()
    }
}

fn query(request: &StripeRequest) -> HashMap<String, String> {
    request
        .form
        .encode()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

impl Port for Fake<'_> {
    async fn list_events(&self, request: &StripeRequest) -> Result<EventPage, AppError> {
        self.lists.borrow_mut().push(request.form.encode());
        if *self.list_fails.borrow() {
            return Err(AppError::Internal("the list call failed"));
        }
        let q = query(request);
        let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
        let (gte, lte) = (num("created[gte]").unwrap(), num("created[lte]").unwrap());
        let limit = num("limit").unwrap() as usize;
        let mut listed: Vec<&(String, i64)> = self
            .events
            .iter()
            .rev()
            .filter(|(_, c)| *c >= gte && *c <= lte)
            .collect();
        if let Some(after) = q.get("starting_after") {
            let at = listed.iter().position(|(id, _)| id == after).unwrap();
            listed = listed.split_off(at + 1);
        }
        let has_more = listed.len() > limit;
        let data: Vec<String> = listed
            .iter()
            .take(limit)
            .map(|(id, c)| Self::raw(id, *c))
            .collect();
        let page = format!(
            r#"{{"object":"list","data":[{}],"has_more":{has_more}}}"#,
            data.join(",")
        );
        Ok(serde_json::from_str(&page).unwrap())
    }

    async fn retrieve_event(&self, request: &StripeRequest) -> Result<Box<RawValue>, AppError> {
        *self.retrieves.borrow_mut() += 1;
        let id = request.path.trim_start_matches("/v1/events/");
        let (id, created) = self.events.iter().find(|(i, _)| i == id).unwrap();
        Ok(RawValue::from_string(Self::raw(id, *created)).unwrap())
    }

    /// Thin events are the same (id, created) list, as `v1.identity.verification_session.verified`,
    /// newest first, `limit` a page, `next_page_url` carrying the offset.
    async fn list_thin_events(&self, request: &StripeRequest) -> Result<ThinEventPage, AppError> {
        self.lists
            .borrow_mut()
            .push(format!("{}?{}", request.path, request.form.encode()));
        if *self.list_fails.borrow() {
            return Err(AppError::Internal("the list call failed"));
        }
        let (filters, offset) = match request.path.split_once("?page=") {
            Some((_, page)) => {
                let (query, offset) = page.split_once('_').unwrap();
                (
                    String::from_utf8(hex::decode(query).unwrap()).unwrap(),
                    offset.parse::<usize>().unwrap(),
                )
            }
            None => (request.form.encode(), 0),
        };
        let q: HashMap<String, String> = filters
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.replace("%3A", ":")))
            .collect();
        let time = |k: &str| parse_rfc3339(q.get(k).unwrap()).unwrap();
        let (gte, lte) = (time("created[gte]"), time("created[lte]"));
        let limit: usize = q.get("limit").unwrap().parse().unwrap();
        let listed: Vec<&(String, i64)> = self
            .events
            .iter()
            .rev()
            .filter(|(_, c)| *c >= gte && *c <= lte)
            .collect();
        let data: Vec<String> = listed
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(id, c)| Self::thin(id, *c))
            .collect();
        let next = (listed.len() > offset + limit).then(|| {
            // An opaque token, as Stripe's: the filters, hex-encoded, and the offset.
            format!(
                "/v2/core/events?page={}_{}",
                hex::encode(&filters),
                offset + limit
            )
        });
        let page = serde_json::json!({"data": data.iter().map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap()).collect::<Vec<_>>(), "next_page_url": next});
        Ok(serde_json::from_value(page).unwrap())
    }

    /// A thin event processed as the snapshot one it stands for (its own id, no twin here).
    async fn process_thin(&self, thin: ThinEvent) -> Result<Receipt, AppError> {
        let raw = Self::raw(&thin.id, thin.created_seconds().unwrap());
        let receipt = self
            .process_event(Event::parse(raw.as_bytes()).unwrap())
            .await?;
        Ok(Receipt {
            event_type: thin.event_type,
            ..receipt
        })
    }

    async fn process_event(&self, event: Event) -> Result<Receipt, AppError> {
        let key = keys::event(&event.id);
        let receipt = |outcome, duplicate| Receipt {
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            outcome,
            duplicate,
            record: None,
        };
        if let Some(done) = key
            .load(self.store)
            .await
            .unwrap()
            .filter(|r| r.outcome.is_final())
        {
            return Ok(receipt(done.outcome, true));
        }
        self.processed.borrow_mut().push(event.id.clone());
        let what = self
            .script
            .borrow()
            .get(&event.id)
            .copied()
            .unwrap_or(Script::Handle);
        if what == Script::ProcessWithLiveKey {
            let config = config_with(&[("STRIPE_SECRET_KEY", "sk_live_catchup")]);
            let (transport, trace) = (FakeTransport::unreachable(), Trace::new());
            let services = Services::new(self.store, &transport, &config, NOW, &trace);
            return process(&services, event, NOW)
                .await
                .map_err(|e| AppError::Relayed(Box::new(AppError::from(e).relay())));
        }
        let (outcome, retryable) = match what {
            Script::ProcessWithLiveKey => unreachable!("processed above"),
            Script::Handle => (Outcome::Handled, None),
            Script::RetryLater => (Outcome::Failed, Some(true)),
            Script::FailForGood => (Outcome::Failed, Some(false)),
        };
        let record = EventRecord {
            version: EVENT_RECORD_VERSION,
            id: event.id.clone(),
            event_type: event.event_type.clone(),
            created: event.created,
            livemode: false,
            outcome,
            failed_step: None,
            error: None,
            stripe_error: None,
            retryable,
            reason: None,
            snapshot_event: None,
            recorded_at: NOW,
        };
        key.save(self.store, &record, None).await.unwrap();
        match what {
            Script::RetryLater => Err(AppError::Internal("Stripe is unavailable")),
            _ => Ok(receipt(outcome, false)),
        }
    }
}

fn events(n: usize, from: i64) -> Vec<(String, i64)> {
    (0..n)
        .map(|i| (format!("evt_{i:03}"), from + i as i64))
        .collect()
}

fn refs(events: &[(String, i64)]) -> Vec<(&str, i64)> {
    events.iter().map(|(i, c)| (i.as_str(), *c)).collect()
}

fn state(store: &MemoryStore) -> Option<CatchupState> {
    block_on(keys::catchup_state().load(store)).unwrap()
}

fn handled(store: &MemoryStore, id: &str) {
    let record = EventRecord {
        version: EVENT_RECORD_VERSION,
        id: id.into(),
        event_type: "identity.verification_session.verified".into(),
        created: NOW,
        livemode: false,
        outcome: Outcome::Handled,
        failed_step: None,
        error: None,
        stripe_error: None,
        retryable: None,
        reason: None,
        snapshot_event: None,
        recorded_at: NOW,
    };
    block_on(keys::event(id).save(store, &record, None)).unwrap();
}

#[test]
fn a_run_processes_what_is_not_recorded_and_moves_the_cursor_past_the_window() {
    let store = MemoryStore::new();
    let all = events(4, NOW - 1000);
    let fake = Fake::new(&store, &refs(&all));
    handled(&store, "evt_001");
    let report = block_on(run(&store, &fake, NOW, SETTLE, Bounds::FREE_PLAN)).unwrap();
    assert_eq!(
        (
            report.listed,
            report.already_done,
            report.processed,
            report.handled
        ),
        (4, 1, 3, 3)
    );
    assert_eq!(report.stopped, "caught_up");
    assert_eq!(
        fake.times_processed("evt_001"),
        0,
        "a handled event is not processed"
    );
    let saved = state(&store).unwrap();
    assert_eq!(saved.since, NOW - SETTLE);
    assert!(saved.scan.is_none());
    assert_eq!(saved.last_run.unwrap().handled, 3);
    // The first list looked back Stripe's retry window, up to `now - settle`.
    assert!(fake.lists.borrow()[0].contains(&format!(
        "created[gte]={}&created[lte]={}",
        NOW - INITIAL_LOOKBACK_SECONDS,
        NOW - SETTLE
    )));
}

#[test]
fn an_event_younger_than_the_settle_time_is_left_to_the_next_run() {
    let store = MemoryStore::new();
    let fake = Fake::new(&store, &[("evt_young", NOW - 10)]);
    block_on(run(&store, &fake, NOW, SETTLE, Bounds::FREE_PLAN)).unwrap();
    assert_eq!(fake.times_processed("evt_young"), 0);
    block_on(run(&store, &fake, NOW + SETTLE, SETTLE, Bounds::FREE_PLAN)).unwrap();
    assert_eq!(fake.times_processed("evt_young"), 1);
}

#[test]
fn a_run_stops_at_its_event_budget_and_the_next_resumes_where_it_stopped() {
    let store = MemoryStore::new();
    let all = events(12, NOW - 1000);
    let fake = Fake::new(&store, &refs(&all));
    let bounds = Bounds::FREE_PLAN;
    let first = block_on(run(&store, &fake, NOW, SETTLE, bounds)).unwrap();
    assert_eq!(
        (first.processed, first.stopped.as_str()),
        (bounds.processed, "event_budget")
    );
    let mid = state(&store).unwrap();
    assert_eq!(
        mid.since,
        NOW - INITIAL_LOOKBACK_SECONDS,
        "no cursor move mid-scan"
    );
    assert_eq!(
        mid.scan.as_ref().unwrap().starting_after.as_deref(),
        Some("evt_007")
    );
    let mut runs = 1;
    while state(&store).unwrap().scan.is_some() {
        block_on(run(&store, &fake, NOW + 60 * runs, SETTLE, bounds)).unwrap();
        runs += 1;
        assert!(runs < 10);
    }
    assert_eq!(runs, 3);
    for (id, _) in &all {
        assert_eq!(fake.times_processed(id), 1, "{id} once");
    }
    // The scan kept the window it started with.
    assert!(fake
        .lists
        .borrow()
        .iter()
        .all(|l| l.contains(&format!("created[lte]={}&", NOW - SETTLE))));
    assert_eq!(state(&store).unwrap().since, NOW - SETTLE);
}

#[test]
fn a_run_makes_at_most_its_page_budget_of_list_calls() {
    let store = MemoryStore::new();
    let all = events(60, NOW - 1000);
    let fake = Fake::new(&store, &refs(&all));
    for (id, _) in &all {
        handled(&store, id);
    }
    let bounds = Bounds::FREE_PLAN;
    let report = block_on(run(&store, &fake, NOW, SETTLE, bounds)).unwrap();
    assert_eq!(fake.lists.borrow().len(), bounds.pages as usize);
    assert_eq!(
        (report.stopped.as_str(), report.listed),
        ("page_budget", 2 * bounds.limit)
    );
    assert!(state(&store).unwrap().scan.is_some());
    let report = block_on(run(&store, &fake, NOW + 60, SETTLE, bounds)).unwrap();
    assert_eq!((report.stopped.as_str(), report.listed), ("caught_up", 10));
    assert_eq!(fake.processed.borrow().len(), 0);
}

#[test]
fn the_cursor_stays_at_an_event_a_retry_can_get_past_and_passes_one_failed_for_good() {
    let store = MemoryStore::new();
    let all = events(4, NOW - 1000);
    let fake = Fake::new(&store, &refs(&all));
    fake.script("evt_001", Script::RetryLater);
    fake.script("evt_002", Script::FailForGood);
    let report = block_on(run(&store, &fake, NOW, SETTLE, Bounds::FREE_PLAN)).unwrap();
    assert_eq!(report.retry_later, vec!["evt_001".to_owned()]);
    assert_eq!(report.failed_for_good, vec!["evt_002".to_owned()]);
    assert_eq!(
        state(&store).unwrap().since,
        NOW - 1000 + 1,
        "evt_001's created"
    );

    // The cause is fixed: the next scan works evt_001 again, and leaves evt_002 to a replay.
    fake.script("evt_001", Script::Handle);
    let report = block_on(run(&store, &fake, NOW + 60, SETTLE, Bounds::FREE_PLAN)).unwrap();
    assert_eq!((report.handled, report.failed_for_good_count), (1, 1));
    assert_eq!(fake.times_processed("evt_001"), 2);
    assert_eq!(
        fake.times_processed("evt_002"),
        1,
        "failed for good: not worked again"
    );
    assert_eq!(fake.times_processed("evt_003"), 1);
    assert_eq!(state(&store).unwrap().since, NOW + 60 - SETTLE);
}

#[test]
fn a_failed_list_call_stores_nothing_and_an_idle_run_writes_nothing() {
    let store = MemoryStore::new();
    let fake = Fake::new(&store, &refs(&events(3, NOW - 1000)));
    *fake.list_fails.borrow_mut() = true;
    assert!(block_on(run(&store, &fake, NOW, SETTLE, Bounds::FREE_PLAN)).is_err());
    assert!(state(&store).is_none());
    *fake.list_fails.borrow_mut() = false;
    block_on(run(&store, &fake, NOW, SETTLE, Bounds::FREE_PLAN)).unwrap();
    let after = state(&store).unwrap();
    // Nothing new: the run lists an empty window and writes no KV.
    let fresh = Fake::new(&store, &[]);
    block_on(run(&store, &fresh, NOW + 600, SETTLE, Bounds::FREE_PLAN)).unwrap();
    assert_eq!(state(&store).unwrap(), after);
}

#[test]
fn a_replay_works_a_failed_for_good_event_once_and_a_handled_one_changes_nothing() {
    let store = MemoryStore::new();
    let fake = Fake::new(&store, &[("evt_bad", NOW - 100)]);
    fake.script("evt_bad", Script::FailForGood);
    block_on(run(&store, &fake, NOW, 0, Bounds::FREE_PLAN)).unwrap();
    assert!(block_on(keys::event("evt_bad").load(&store))
        .unwrap()
        .unwrap()
        .failed_for_good());

    fake.script("evt_bad", Script::Handle);
    let answer = block_on(replay(&store, &fake, "evt_bad")).unwrap();
    assert!(answer.replayed);
    assert_eq!(answer.outcome, Outcome::Handled);
    let again = block_on(replay(&store, &fake, "evt_bad")).unwrap();
    assert!(!again.replayed);
    assert_eq!(again.record.unwrap().outcome, Outcome::Handled);
    assert_eq!(
        fake.times_processed("evt_bad"),
        2,
        "once failed, once replayed"
    );
    assert_eq!(
        *fake.retrieves.borrow(),
        1,
        "a handled event is not fetched"
    );
    assert!(matches!(
        block_on(replay(&store, &fake, "not an id")),
        Err(AppError::NoRecord(Record::StripeEvent))
    ));
    assert!(block_on(store.get("catchup:state")).unwrap().is_some());
}

#[test]
fn an_event_of_the_other_mode_is_passed_by_catch_up_and_refused_by_replay_unrecorded() {
    let store = MemoryStore::new();
    let all = events(3, NOW - 1000);
    let fake = Fake::new(&store, &refs(&all));
    fake.script("evt_001", Script::ProcessWithLiveKey);
    let report = block_on(run(&store, &fake, NOW, SETTLE, Bounds::FREE_PLAN)).unwrap();
    assert_eq!(
        (report.handled, report.refused, report.malformed),
        (2, 1, 0)
    );
    assert!(report.retry_later.is_empty(), "{report:?}");
    assert_eq!(state(&store).unwrap().since, NOW - SETTLE);
    assert_eq!(block_on(store.get("event:evt_001")).unwrap(), None);

    let error = block_on(replay(&store, &fake, "evt_001")).unwrap_err();
    assert_eq!((error.status(), error.code()), (400, "livemode_mismatch"));
    assert_eq!(block_on(store.get("event:evt_001")).unwrap(), None);
}

#[test]
fn an_event_created_later_in_the_boundary_second_is_listed_by_the_next_scan() {
    // With no settle time a scan ends at `now`; Stripe may create another event in that same
    // second after the list call. The next scan re-reads the boundary second (its events
    // already recorded cost nothing) so that event is not lost.
    let store = MemoryStore::new();
    let first = Fake::new(&store, &[("evt_a", NOW - 5), ("evt_b", NOW)]);
    block_on(run(&store, &first, NOW, 0, Bounds::FREE_PLAN)).unwrap();
    let later = Fake::new(
        &store,
        &[("evt_a", NOW - 5), ("evt_b", NOW), ("evt_c", NOW)],
    );
    let report = block_on(run(&store, &later, NOW + 60, 0, Bounds::FREE_PLAN)).unwrap();
    assert_eq!(later.times_processed("evt_c"), 1, "{report:?}");
    assert_eq!(
        later.times_processed("evt_b"),
        0,
        "recorded: not worked again"
    );
    assert_eq!(report.already_done, 1);
    assert_eq!(
        state(&store).unwrap().since,
        NOW + 60,
        "the boundary second again"
    );
}

fn thin_state(store: &MemoryStore) -> Option<ThinCatchupState> {
    block_on(keys::catchup_thin_state().load(store)).unwrap()
}

#[test]
fn the_thin_catch_up_pages_by_next_page_url_across_runs_and_processes_each_event_once() {
    let store = MemoryStore::new();
    let all = events(60, NOW - 1000);
    let fake = Fake::new(&store, &refs(&all));
    handled(&store, "evt_003");
    let bounds = ThinBounds::FREE_PLAN;
    let first = block_on(run_thin(&store, &fake, NOW, SETTLE, bounds)).unwrap();
    assert_eq!(
        (first.processed, first.stopped.as_str()),
        (4, "event_budget")
    );
    let mut runs = 1;
    while thin_state(&store).unwrap().scan.is_some() {
        block_on(run_thin(&store, &fake, NOW + 60 * runs, SETTLE, bounds)).unwrap();
        runs += 1;
        assert!(runs < 40, "it ends");
    }
    for (id, _) in &all {
        let expected = usize::from(id != "evt_003");
        assert_eq!(fake.times_processed(id), expected, "{id}");
    }
    let lists = fake.lists.borrow();
    assert!(
        lists[0].starts_with("/v2/core/events?types[0]=v1.identity.verification_session.created&")
    );
    assert!(
        lists.iter().any(|l| l.contains("?page=")),
        "later pages follow next_page_url"
    );
    assert!(lists.len() as i64 <= runs * i64::from(bounds.pages));
    assert_eq!(
        thin_state(&store).unwrap().since,
        NOW - SETTLE,
        "the window's end, read again next time"
    );
}

#[test]
fn the_thin_catch_up_rereads_the_boundary_second_and_holds_at_a_retryable_failure() {
    let store = MemoryStore::new();
    let first = Fake::new(&store, &[("evt_a", NOW - 5), ("evt_b", NOW)]);
    block_on(run_thin(&store, &first, NOW, 0, ThinBounds::FREE_PLAN)).unwrap();
    let later = Fake::new(
        &store,
        &[("evt_a", NOW - 5), ("evt_b", NOW), ("evt_c", NOW)],
    );
    later.script("evt_c", Script::RetryLater);
    let report = block_on(run_thin(&store, &later, NOW + 60, 0, ThinBounds::FREE_PLAN)).unwrap();
    assert_eq!(
        (report.already_done, report.retry_later.clone()),
        (1, vec!["evt_c".to_owned()])
    );
    assert_eq!(thin_state(&store).unwrap().since, NOW, "held at evt_c");
    later.script("evt_c", Script::Handle);
    block_on(run_thin(
        &store,
        &later,
        NOW + 120,
        0,
        ThinBounds::FREE_PLAN,
    ))
    .unwrap();
    assert_eq!(later.times_processed("evt_c"), 2);
    assert_eq!(later.times_processed("evt_b"), 0);
    // Nothing new: an idle run writes nothing.
    let saved = thin_state(&store).unwrap();
    let idle = Fake::new(&store, &[]);
    block_on(run_thin(&store, &idle, NOW + 600, 0, ThinBounds::FREE_PLAN)).unwrap();
    assert_eq!(thin_state(&store).unwrap(), saved);
}

#[test]
fn an_expired_setup_session_is_not_processed_nor_counted_as_undelivered() {
    let store = MemoryStore::new();
    let fake = Fake::new(
        &store,
        &[
            ("evt_exp1", NOW - 900),
            ("evt_exp2", NOW - 800),
            ("evt_001", NOW - 700),
        ],
    );
    let report = block_on(run(&store, &fake, NOW, SETTLE, Bounds::FREE_PLAN)).unwrap();
    assert_eq!(
        (report.listed, report.processed, report.inert),
        (3, 1, 2),
        "only evt_001 takes a slot of the run (and raises the operator's alert)"
    );
    assert_eq!(fake.times_processed("evt_exp1"), 0);
}
