//! The outbox past the first attempt: scheduled retries with backoff until delivered or
//! dead, the bound of one run, stale index entries, and the admin list and resend.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use pollster::block_on;
use stripe_edge_webhooks::error::{AppError, Record};
use stripe_edge_webhooks::http::SendFailure;
use stripe_edge_webhooks::notify::{
    Notification, Recipient, State, RETRY_WINDOW_SECONDS, SWEEP_SECONDS,
};
use stripe_edge_webhooks::outbox::{
    list_notifications, resend, retry_due, NotificationsQuery, RetryReport, RETRY_SUBREQUEST_BUDGET,
};
use stripe_edge_webhooks::services::{send_notification, NotifyTarget};
use stripe_edge_webhooks::signature::WebhookSecrets;
use stripe_edge_webhooks::store::{
    keys, ListPage, MemoryStore, Store, StoreError, FINISHED_TTL_SECONDS,
};
use stripe_edge_webhooks::testing::FakeTransport;

const T0: i64 = 1_795_000_000;
const URL: &str = "https://sink.test/notify";
const OPS_URL: &str = "https://ops.test/alerts";

/// How the fake sink answers: a status, or `0` for a refused connection.
struct Sink {
    answer: Rc<Cell<u16>>,
    transport: FakeTransport,
}

impl Sink {
    fn new(status: u16) -> Self {
        let answer = Rc::new(Cell::new(status));
        let now = Rc::clone(&answer);
        let transport = FakeTransport::new(move |_| match now.get() {
            0 => Err(SendFailure::Network("connection refused".into())),
            status => Ok(FakeTransport::json(status, "{}")),
        });
        Self { answer, transport }
    }

    /// Ids of the requests the sink answered with 2xx, in order.
    fn delivered(&self, log: &RefCell<Vec<(String, u16)>>) -> Vec<String> {
        log.borrow()
            .iter()
            .filter(|(_, status)| (200..300).contains(status))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

fn target(signed_at: i64) -> Option<NotifyTarget<'static>> {
    Some(NotifyTarget {
        url: Some(URL),
        ops_url: None,
        signing: WebhookSecrets::from_comma_separated("nsec_test"),
        signed_at,
    })
}

/// [`target`] with `OPS_NOTIFY_URL` set too: the operator's alerts are sent.
fn ops_target(signed_at: i64) -> Option<NotifyTarget<'static>> {
    target(signed_at).map(|t| NotifyTarget {
        ops_url: Some(OPS_URL),
        ..t
    })
}

fn notification(n: usize) -> Notification {
    Notification::new(
        &format!("evt_{n}"),
        "identity.verified",
        Recipient::User(format!("u_{n}")),
        serde_json::Map::new(),
    )
}

/// What the webhook does: record and attempt once, inline. `log` collects (id, answer).
fn notify(
    store: &impl Store,
    sink: &Sink,
    log: &RefCell<Vec<(String, u16)>>,
    n: usize,
    now: i64,
) -> Notification {
    let record = block_on(send_notification(
        store,
        &sink.transport,
        target(now),
        notification(n),
        now,
    ))
    .unwrap();
    log.borrow_mut()
        .push((record.id.clone(), sink.answer.get()));
    record
}

/// One scheduled run at `now`; every request it sent is logged with the sink's answer.
fn run(
    store: &impl Store,
    sink: &Sink,
    log: &RefCell<Vec<(String, u16)>>,
    now: i64,
) -> RetryReport {
    let before = sink.transport.sent().len();
    let report = retry_run(store, sink, false, now);
    for request in &sink.transport.sent()[before..] {
        let id = request.header("idempotency-key").unwrap().to_owned();
        log.borrow_mut().push((id, sink.answer.get()));
    }
    report
}

fn record(store: &MemoryStore, n: usize) -> Notification {
    block_on(keys::notification(&format!("evt_{n}.identity.verified")).load(store))
        .unwrap()
        .unwrap()
}

/// One scheduled retry run at `now` with the whole retry budget; `ops`: with
/// `OPS_NOTIFY_URL` ([`ops_target`]).
fn retry_run(store: &impl Store, sink: &Sink, ops: bool, now: i64) -> RetryReport {
    let target = if ops { ops_target(now) } else { target(now) };
    block_on(retry_due(
        store,
        &sink.transport,
        target,
        now,
        RETRY_SUBREQUEST_BUDGET,
    ))
    .unwrap()
}

/// When the first pending notification is due (`last`: the last one).
fn next_due(store: &MemoryStore, last: bool) -> Option<i64> {
    let due = pending(store).into_iter().filter_map(|r| r.next_attempt_at);
    if last {
        due.max()
    } else {
        due.min()
    }
}

fn pending(store: &MemoryStore) -> Vec<Notification> {
    list(store, "state=pending")
}

fn list(store: &MemoryStore, query: &str) -> Vec<Notification> {
    let query = NotificationsQuery::parse(Some(&format!("{query}&limit=100"))).unwrap();
    block_on(list_notifications(store, &query))
        .unwrap()
        .notifications
}

#[test]
fn a_sink_down_for_a_while_gets_every_notification_exactly_once_after_the_backoff() {
    let store = MemoryStore::new();
    let sink = Sink::new(503);
    let log = RefCell::new(Vec::new());
    // Six users are verified while the sink is down: three 503s, then refused connections.
    for n in 0..6 {
        if n == 3 {
            sink.answer.set(0);
        }
        let record = notify(&store, &sink, &log, n, T0 + n as i64);
        assert_eq!(record.next_attempt_at, Some(T0 + n as i64 + 60));
        // Pending: kept until it finishes, and so is its due-index entry.
        assert_eq!(store.ttl(&format!("notification:{}", record.id)), None);
    }
    assert_eq!(record(&store, 0).attempts[0].status, Some(503));
    assert_eq!(
        record(&store, 5).attempts[0].error.as_deref(),
        Some("network")
    );
    let due: Vec<i64> = pending(&store)
        .iter()
        .map(|r| r.next_attempt_at.unwrap())
        .collect();
    assert_eq!(due, (0..6).map(|n| T0 + 60 + n).collect::<Vec<_>>());

    // Before the first wait is over, a run sends nothing.
    assert_eq!(run(&store, &sink, &log, T0 + 59).due, 0);
    assert_eq!(log.borrow().len(), 6);

    // Still down one minute later: at most four per run, the rest in the next run.
    let first = run(&store, &sink, &log, T0 + 70);
    assert_eq!((first.due, first.rescheduled, first.more), (4, 4, true));
    let second = run(&store, &sink, &log, T0 + 70);
    assert_eq!((second.due, second.rescheduled, second.more), (2, 2, false));
    assert!(pending(&store)
        .iter()
        .all(|r| r.next_attempt_at == Some(T0 + 70 + 300)));

    // The sink recovers; nothing arrives before the next due time, then each arrives once.
    sink.answer.set(200);
    assert_eq!(run(&store, &sink, &log, T0 + 369).due, 0);
    assert!(sink.delivered(&log).is_empty());
    let mut now = T0 + 370;
    for _ in 0..3 {
        run(&store, &sink, &log, now);
        now += 60;
    }
    let mut delivered = sink.delivered(&log);
    delivered.sort();
    let expected: Vec<String> = (0..6)
        .map(|n| format!("evt_{n}.identity.verified"))
        .collect();
    assert_eq!(delivered, expected, "every one, exactly once");
    assert!(pending(&store).is_empty());
    for n in 0..6 {
        let r = record(&store, n);
        assert_eq!((r.state, r.attempts.len()), (State::Delivered, 3));
        assert!(r.delivered_at.unwrap() >= T0 + 370);
        // Retention: a delivered notification is kept 90 days, not for ever.
        let key = format!("notification:{}", r.id);
        assert_eq!(store.ttl(&key), Some(FINISHED_TTL_SECONDS), "{key}");
    }
    // Later runs and a redelivered event send nothing more.
    for later in [T0 + 3_600, T0 + 5 * 86_400] {
        let report = run(&store, &sink, &log, later);
        assert_eq!((report.due, report.stale), (0, 0));
    }
    notify(&store, &sink, &log, 0, T0 + 4_000);
    assert_eq!(sink.transport.sent().len(), 6 + 6 + 6);
}

#[test]
fn a_sink_that_never_recovers_leaves_each_notification_dead_with_its_attempts() {
    let store = MemoryStore::new();
    let sink = Sink::new(500);
    let log = RefCell::new(Vec::new());
    notify(&store, &sink, &log, 1, T0);
    notify(&store, &sink, &log, 2, T0 + 1);
    let mut runs = 0;
    while let Some(due) = next_due(&store, true) {
        run(&store, &sink, &log, due);
        runs += 1;
        assert!(runs < 40, "it ends");
    }
    assert_eq!(runs, 15);
    for (n, first) in [(1, T0), (2, T0 + 1)] {
        let r = record(&store, n);
        assert_eq!(r.state, State::Dead);
        assert_eq!(r.attempts.len(), 16);
        assert!(r.attempts.iter().all(|a| a.status == Some(500)));
        assert!(r.dead_at.unwrap() - first <= RETRY_WINDOW_SECONDS);
        assert_eq!(r.next_attempt_at, None);
    }
    let dead: Vec<String> = list(&store, "state=dead")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(dead, ["evt_1.identity.verified", "evt_2.identity.verified"]);
    assert!(pending(&store).is_empty());
    // Retention: the dead record and its dead-index entry are kept 90 days.
    for id in &dead {
        for key in [format!("notification:{id}"), format!("outbox_dead:{id}")] {
            assert_eq!(store.ttl(&key), Some(FINISHED_TTL_SECONDS), "{key}");
        }
    }
    // Nothing is due any more, however late.
    assert_eq!(
        run(&store, &sink, &log, T0 + 30 * 86_400),
        RetryReport::default()
    );
}

/// The store, counting every operation as the KV adapter makes them: each one a KV call, and
/// a write or delete of a listed record (`notification:`) one more, its index row's Durable
/// Object request.
struct Counting<'a> {
    inner: &'a MemoryStore,
    calls: Cell<usize>,
    lists: Cell<usize>,
}

impl<'a> Counting<'a> {
    fn new(inner: &'a MemoryStore) -> Self {
        Self {
            inner,
            calls: Cell::new(0),
            lists: Cell::new(0),
        }
    }
}

/// The index request a write of `key` costs besides KV's (`store::kv`).
fn indexed(key: &str) -> usize {
    usize::from(stripe_edge_webhooks::record_index::Table::of_key(key).is_some())
}

impl Store for Counting<'_> {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.calls.set(self.calls.get() + 1);
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
        self.calls.set(self.calls.get() + 1 + indexed(key));
        self.inner.put(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.calls.set(self.calls.get() + 1 + indexed(key));
        self.inner.delete(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<ListPage, StoreError> {
        self.calls.set(self.calls.get() + 1);
        self.lists.set(self.lists.get() + 1);
        self.inner.list(prefix, limit, cursor).await
    }
}

#[test]
fn a_run_stays_within_its_budget_and_the_next_run_resumes() {
    let store = MemoryStore::new();
    let sink = Sink::new(503);
    let log = RefCell::new(Vec::new());
    for n in 0..10 {
        notify(&store, &sink, &log, n, T0);
    }
    // A stale entry too (its record gone), which costs a read and a delete.
    block_on(store.put("outbox:0000000001:evt_gone.identity.verified", "null", None)).unwrap();
    sink.answer.set(200);
    let counting = Counting::new(&store);
    let mut reports = Vec::new();
    loop {
        counting.calls.set(0);
        let sent_before = sink.transport.sent().len();
        let report = run(&counting, &sink, &log, T0 + 60);
        let subrequests = counting.calls.get() + sink.transport.sent().len() - sent_before;
        assert!(
            subrequests <= RETRY_SUBREQUEST_BUDGET,
            "{subrequests} subrequests in one run"
        );
        let more = report.more;
        reports.push(report);
        if !more {
            break;
        }
    }
    let delivered: usize = reports.iter().map(|r| r.delivered).sum();
    let stale: usize = reports.iter().map(|r| r.stale).sum();
    assert_eq!((delivered, stale, reports.len()), (10, 1, 3));
    assert_eq!(sink.delivered(&log).len(), 10);
}

#[test]
fn a_stale_entry_is_dropped_and_nothing_is_sent_for_it() {
    let store = MemoryStore::new();
    let sink = Sink::new(503);
    let log = RefCell::new(Vec::new());
    notify(&store, &sink, &log, 1, T0);
    // An entry left by a crash between the index write and the record write: the record is
    // still due at its own time, not at the entry's.
    let stale = "outbox:0000000002:evt_1.identity.verified";
    block_on(store.put(stale, "null", None)).unwrap();
    let report = run(&store, &sink, &log, T0);
    assert_eq!((report.due, report.stale), (1, 1));
    assert_eq!(sink.transport.sent().len(), 1, "only the inline attempt");
    assert_eq!(block_on(store.get(stale)).unwrap(), None);
    assert_eq!(pending(&store).len(), 1, "the real entry stays");
}

#[test]
fn a_resend_sends_now_revives_a_dead_one_and_leaves_a_delivered_one() {
    let store = MemoryStore::new();
    let sink = Sink::new(503);
    let log = RefCell::new(Vec::new());
    notify(&store, &sink, &log, 1, T0);
    let resend_now = |n: usize, now: i64| {
        block_on(resend(
            &store,
            &sink.transport,
            target(now),
            &format!("evt_{n}.identity.verified"),
            now,
        ))
    };
    // Pending: sent now, still failing, due again 5 minutes later.
    let again = resend_now(1, T0 + 10).unwrap();
    assert!(again.resent);
    assert_eq!(again.notification.attempts.len(), 2);
    assert_eq!(again.notification.next_attempt_at, Some(T0 + 310));
    assert_eq!(pending(&store).len(), 1, "one entry, moved");

    // Dead: revived with a new window and sent.
    let mut now = T0 + 310;
    while let Some(due) = record(&store, 1).next_attempt_at {
        now = due;
        run(&store, &sink, &log, now);
    }
    assert_eq!(record(&store, 1).state, State::Dead);
    sink.answer.set(200);
    let revived = resend_now(1, now + 86_400).unwrap();
    assert!(revived.resent);
    assert_eq!(revived.notification.state, State::Delivered);
    assert!(list(&store, "state=dead").is_empty());

    // Delivered: said so, nothing sent.
    let sent = sink.transport.sent().len();
    let done = resend_now(1, now + 86_500).unwrap();
    assert!(!done.resent);
    assert_eq!(done.notification, record(&store, 1));
    assert_eq!(sink.transport.sent().len(), sent);

    // Unknown, malformed, or with nowhere to send.
    assert!(matches!(
        resend_now(9, T0),
        Err(AppError::NoRecord(Record::Notification))
    ));
    let bad = block_on(resend(&store, &sink.transport, target(T0), "a/b", T0));
    assert!(matches!(bad, Err(AppError::NoRecord(Record::Notification))));
    notify(&store, &Sink::new(503), &log, 2, T0);
    let nowhere = block_on(resend(
        &store,
        &sink.transport,
        None,
        "evt_2.identity.verified",
        T0,
    ))
    .unwrap_err();
    assert_eq!(
        (nowhere.status(), nowhere.code()),
        (500, "configuration_error")
    );
}

#[test]
fn without_notify_url_a_run_tries_nothing() {
    let store = MemoryStore::new();
    let sink = Sink::new(503);
    let log = RefCell::new(Vec::new());
    notify(&store, &sink, &log, 1, T0);
    let report = block_on(retry_due(
        &store,
        &sink.transport,
        None,
        T0 + 3_600,
        RETRY_SUBREQUEST_BUDGET,
    ))
    .unwrap();
    assert_eq!(report.skipped, Some("NOTIFY_URL is not set"));
    assert_eq!(pending(&store).len(), 1, "kept for when it is set again");
}

#[test]
fn the_pending_list_is_in_due_order_and_skips_stale_entries() {
    let store = MemoryStore::new();
    let sink = Sink::new(503);
    let log = RefCell::new(Vec::new());
    for (n, at) in [(1, T0 + 50), (2, T0), (3, T0 + 20)] {
        notify(&store, &sink, &log, n, at);
    }
    block_on(store.put("outbox:0000000001:evt_1.identity.verified", "null", None)).unwrap();
    let order: Vec<String> = pending(&store).into_iter().map(|r| r.id).collect();
    assert_eq!(
        order,
        [
            "evt_2.identity.verified",
            "evt_3.identity.verified",
            "evt_1.identity.verified"
        ]
    );
    // Paging by cursor sees the same, a page at a time.
    let mut seen = BTreeMap::new();
    let mut cursor = None;
    loop {
        let query = NotificationsQuery {
            state: State::Pending,
            limit: 1,
            cursor,
        };
        let page = block_on(list_notifications(&store, &query)).unwrap();
        for r in page.notifications {
            seen.insert(r.id, ());
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3);
}

#[test]
fn a_run_lists_the_due_index_only_when_the_hint_says_so_or_on_the_hourly_sweep() {
    let store = MemoryStore::new();
    let sink = Sink::new(503);
    let log = RefCell::new(Vec::new());
    let counting = Counting::new(&store);
    let hint = || block_on(keys::outbox_hint().load(&store)).unwrap();
    assert_ne!(T0 % SWEEP_SECONDS, 0, "T0 is not a sweep minute");
    // Idle: no list at all.
    let report = run(&counting, &sink, &log, T0);
    assert_eq!(report.skipped, Some("nothing is due (no hint)"));
    assert_eq!(counting.lists.get(), 0);
    // A failed first attempt raises the hint; the next runs list and retry.
    notify(&store, &sink, &log, 1, T0);
    assert_eq!(hint(), Some(T0));
    let report = run(&counting, &sink, &log, T0 + 60);
    assert_eq!(
        (report.due, report.rescheduled, counting.lists.get()),
        (1, 1, 1)
    );
    sink.answer.set(200);
    let due = record(&store, 1).next_attempt_at.unwrap();
    assert_eq!(run(&counting, &sink, &log, due).delivered, 1);
    assert_eq!(hint(), Some(T0), "kept while the run still found entries");
    // The index lists empty: the settled hint is cleared, and later runs list nothing.
    let lists = counting.lists.get();
    run(&counting, &sink, &log, due + 60);
    assert_eq!((hint(), counting.lists.get()), (None, lists + 1));
    let report = run(&counting, &sink, &log, due + 120);
    assert_eq!(report.skipped, Some("nothing is due (no hint)"));
    assert_eq!(counting.lists.get(), lists + 1);
    // A hint younger than KV's list lag is kept although the index lists empty.
    block_on(keys::outbox_hint().save(&store, &(due + 200), None)).unwrap();
    run(&counting, &sink, &log, due + 260);
    assert_eq!(hint(), Some(due + 200));
    block_on(store.delete(keys::outbox_hint().as_str())).unwrap();
    // An entry whose hint was lost waits for the hourly sweep, which lists whatever the hint
    // says, delivers it and raises the hint for what remains.
    sink.answer.set(503);
    notify(&store, &sink, &log, 2, T0);
    block_on(store.delete(keys::outbox_hint().as_str())).unwrap();
    let due = record(&store, 2).next_attempt_at.unwrap();
    let sent = sink.transport.sent().len();
    assert!(run(&counting, &sink, &log, due).skipped.is_some());
    assert_eq!(sink.transport.sent().len(), sent, "not listed, not sent");
    let sweep = (due / SWEEP_SECONDS + 1) * SWEEP_SECONDS;
    let report = run(&counting, &sink, &log, sweep);
    assert_eq!((report.due, report.rescheduled), (1, 1));
    assert_eq!(
        hint(),
        Some(sweep),
        "raised again: the entry is still due later"
    );
}

#[test]
fn a_notification_gone_dead_raises_one_signed_alert_to_the_operator_and_a_dead_alert_raises_none() {
    let store = MemoryStore::new();
    let sink = Sink::new(500);
    block_on(send_notification(
        &store,
        &sink.transport,
        ops_target(T0),
        notification(1),
        T0,
    ))
    .unwrap();
    let mut runs = 0;
    while let Some(due) = next_due(&store, true) {
        retry_run(&store, &sink, true, due);
        runs += 1;
        assert!(runs < 80, "it ends");
    }
    let sent = sink.transport.sent();
    let alerts: Vec<_> = sent.iter().filter(|r| r.url == OPS_URL).collect();
    let first = alerts.first().expect("an alert was sent");
    assert!(first
        .header("notify-signature")
        .is_some_and(|s| s.contains("v1=")));
    let body: serde_json::Value = serde_json::from_str(first.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["kind"], "ops.notification_dead");
    assert_eq!(body["recipient"], serde_json::json!({ "type": "operator" }));
    assert_eq!(
        body["payload"]["notification_id"],
        "evt_1.identity.verified"
    );
    assert_eq!(
        body["payload"]["admin_path"],
        "/notifications/evt_1.identity.verified"
    );
    // The alert's own sink is down too: it is retried in its window and dies, raising nothing.
    let ids: std::collections::BTreeSet<_> = alerts
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        ["evt_1.identity.verified.ops.notification_dead"]
    );
    let dead: Vec<String> = list(&store, "state=dead")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        dead,
        [
            "evt_1.identity.verified",
            "evt_1.identity.verified.ops.notification_dead"
        ]
    );
    assert!(sent
        .iter()
        .filter(|r| r.url == URL)
        .all(|r| r.header("idempotency-key") == Some("evt_1.identity.verified")));

    // Without OPS_NOTIFY_URL the alert is not even recorded.
    let quiet = MemoryStore::new();
    block_on(send_notification(
        &quiet,
        &sink.transport,
        target(T0),
        notification(2),
        T0,
    ))
    .unwrap();
    while let Some(due) = next_due(&quiet, true) {
        retry_run(&quiet, &sink, false, due);
    }
    let dead: Vec<String> = list(&quiet, "state=dead")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(dead, ["evt_2.identity.verified"]);
    assert!(
        block_on(quiet.get("notification:evt_2.identity.verified.ops.notification_dead"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_run_whose_last_retry_ends_a_window_still_has_room_for_the_alert() {
    let sink = Sink::new(500);
    // When notification 9's last attempt comes (its window ends with it).
    let scratch = MemoryStore::new();
    block_on(send_notification(
        &scratch,
        &sink.transport,
        target(T0),
        notification(9),
        T0,
    ))
    .unwrap();
    while let Some(due) = next_due(&scratch, false) {
        retry_run(&scratch, &sink, false, due);
    }
    let last = record(&scratch, 9).attempts.last().unwrap().at;

    // The same life, with three younger notifications due at that moment too (their first
    // retry), ahead of it in the due index: three retries, then the one that dies.
    let store = MemoryStore::new();
    block_on(send_notification(
        &store,
        &sink.transport,
        ops_target(T0),
        notification(9),
        T0,
    ))
    .unwrap();
    while let Some(due) = next_due(&store, false).filter(|d| *d < last) {
        retry_run(&store, &sink, true, due);
    }
    for n in 1..=3 {
        block_on(send_notification(
            &store,
            &sink.transport,
            ops_target(last - 60),
            notification(n),
            last - 60,
        ))
        .unwrap();
    }
    let counting = Counting::new(&store);
    let sent_before = sink.transport.sent().len();
    let report = retry_run(&counting, &sink, true, last);
    let subrequests = counting.calls.get() + sink.transport.sent().len() - sent_before;
    assert!(
        subrequests <= RETRY_SUBREQUEST_BUDGET,
        "{subrequests} subrequests: {report:?}"
    );
    assert!(report.more, "what did not fit is left to the next run");
}

#[test]
fn runs_that_end_windows_and_raise_alerts_stay_within_their_budget() {
    let store = MemoryStore::new();
    let sink = Sink::new(500);
    for n in 0..10 {
        block_on(send_notification(
            &store,
            &sink.transport,
            ops_target(T0),
            notification(n),
            T0,
        ))
        .unwrap();
    }
    let counting = Counting::new(&store);
    let (mut runs, mut most) = (0, 0);
    while let Some(due) = next_due(&store, false) {
        counting.calls.set(0);
        let sent_before = sink.transport.sent().len();
        retry_run(&counting, &sink, true, due);
        let subrequests = counting.calls.get() + sink.transport.sent().len() - sent_before;
        assert!(
            subrequests <= RETRY_SUBREQUEST_BUDGET,
            "{subrequests} subrequests in run {runs}"
        );
        most = most.max(subrequests);
        runs += 1;
        assert!(runs < 2000, "it ends");
    }
    let dead = list(&store, "state=dead");
    assert_eq!(
        dead.len(),
        20,
        "10 notifications and their 10 alerts, each dead once"
    );
    assert!(
        most > RETRY_SUBREQUEST_BUDGET / 2,
        "the budget was used ({most})"
    );
}
