//! Event catch-up from Stripe's Events API: the cursor, what one run may spend, what to do
//! with each listed event, and when a run is due. Pure; the run itself (the store, Stripe, and
//! processing each event as a delivery is) is [`run`].
//!
//! Stripe retries a delivery for up to three days in live mode (three times over a few hours in
//! a sandbox, test mode) and may disable an endpoint that keeps failing; an outage beyond that,
//! a disabled endpoint or a wrong signing secret loses the events of the gap. Stripe keeps
//! events for 30 days (`GET /v1/events`), so a scheduled run lists the handled types since a
//! stored cursor and processes every event not recorded with a final outcome, through the same
//! path as a delivery (same dedupe, same idempotency keys). Nothing here depends on Stripe's
//! retry window: the cursor holds at an event not handled for as long as Stripe lists it.
//!
//! The cursor is a time, `since`: every event of a handled type created before it has been
//! passed (handled, ignored, or failed for good, which only a replay works again). A scan
//! covers `[since, until]`, `until` fixed when the scan starts (`now - settle`, so an event
//! Stripe is still delivering, or not yet listing, is left to the next scan). Stripe lists
//! newest first; a scan pages with `starting_after` and may span runs (the last event
//! considered is stored). When it reaches the end, `since` moves to `until`, or, when an
//! event failed in a way a retry can get past, to that event's `created`: the cursor never
//! passes an event that was not handled. `until` itself is read again by the next scan:
//! Stripe's `created` is in whole seconds, and an event created later in that second (with
//! `CATCHUP_SETTLE_SECONDS=0`, after the list call) would otherwise never be listed; the
//! events listed twice are already recorded and cost one KV read each. Order does not matter for the result: state
//! transitions are keyed by each event's `created` and converge whatever the order.

use serde::Serialize;

use crate::event::EventRecord;
use crate::stripe::calls::{self, ListEvents};
use crate::stripe::StripeRequest;

pub mod run;
pub mod thin;

pub const STATE_VERSION: u32 = 1;

/// Without a stored cursor, a first run looks back this far: Stripe's live-mode retry window
/// (a sandbox's is a few hours, well inside it), so what it finds is what Stripe would still be
/// redelivering anyway.
pub const INITIAL_LOOKBACK_SECONDS: i64 = 3 * 24 * 60 * 60;

/// What one run may spend. The Free plan allows 50 subrequests per invocation (every
/// `fetch`: Stripe calls and notifications) and 10 ms of CPU. A run makes at most `pages` list
/// calls (2 attempts each, the webhook retry policy) and processes at most `processed`
/// events, each at most 3 Stripe calls of 2 attempts plus one notification (a card saved
/// without a customer: retrieve, create the customer, attach): 2 × 2 + 5 × 7 = 39 < 50.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// List calls per run.
    pub pages: u32,
    /// Events per page (`limit`, 1 to 100).
    pub limit: u32,
    /// Events handed to processing per run (the ones already recorded cost one KV read).
    pub processed: u32,
}

impl Bounds {
    pub const FREE_PLAN: Bounds = Bounds {
        pages: 2,
        limit: 25,
        processed: 5,
    };

    /// The subrequests a run can make at most: 2 attempts per list call, and per processed
    /// event 3 Stripe calls of 2 attempts and one notification.
    pub const fn max_subrequests(&self) -> u32 {
        self.pages * 2 + self.processed * 7
    }
}

/// Most failed-for-good and retry-later ids a report keeps (the counts are exact).
pub const REPORT_IDS: usize = 20;

/// The value under `catchup:state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatchupState {
    pub version: u32,
    /// Unix seconds: every listed event created before this has been passed.
    pub since: i64,
    /// The scan in progress, when one spans runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<Scan>,
    /// The last run that listed something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunReport>,
}
crate::json::decode_map!(CatchupState {
    version: "version" required,
    since: "since" required,
    scan: "scan" default,
    last_run: "last_run" default,
});

/// One walk over `[since, until]`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scan {
    pub until: i64,
    /// The last event considered: the next page starts after it (`None`: from the newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_after: Option<String>,
    /// The oldest `created` of an event of this scan left unhandled (it failed in a way a retry
    /// can get past): where `since` stops when the scan ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_unhandled: Option<i64>,
}
crate::json::decode_map!(Scan {
    until: "until" required,
    starting_after: "starting_after" default,
    oldest_unhandled: "oldest_unhandled" default,
});

/// What one run did, shown by `GET /catch-up` and logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// The run's time (the scheduled event's).
    pub at: i64,
    pub pages: u32,
    /// Events listed and considered.
    pub listed: u32,
    /// Already recorded handled or ignored: nothing to do.
    pub already_done: u32,
    /// Events that leave nothing (an expired setup session, `billing::leaves_nothing`): never
    /// recorded, so listed again by each scan, and passed without taking a slot.
    #[serde(default)]
    pub inert: u32,
    /// Handed to processing, as a delivery would be.
    pub processed: u32,
    /// Of those, recorded handled or ignored now.
    pub handled: u32,
    /// Processing failed in a way a retry can get past; the cursor stays before them.
    pub retry_later: Vec<String>,
    /// Recorded failed for good (now or before): skipped; `POST /events/{id}/replay` once the
    /// cause is fixed.
    pub failed_for_good: Vec<String>,
    pub failed_for_good_count: u32,
    /// Listed events that are not events this service can read (passed, as a delivery of
    /// them would be refused).
    pub malformed: u32,
    /// Events refused as their delivery would be, other than malformed ones (e.g.
    /// `livemode_mismatch`): passed, nothing stored.
    #[serde(default)]
    pub refused: u32,
    /// Why the run stopped: `caught_up` (the scan reached its end), `page_budget` or
    /// `event_budget` (the next run resumes where this one stopped), or `not_due_yet` (the
    /// window is empty).
    pub stopped: String,
    /// The cursor after the run.
    pub since: i64,
}
crate::json::decode_map!(RunReport {
    at: "at" required,
    pages: "pages" required,
    listed: "listed" required,
    already_done: "already_done" required,
    inert: "inert" default,
    processed: "processed" required,
    handled: "handled" required,
    retry_later: "retry_later" required,
    failed_for_good: "failed_for_good" required,
    failed_for_good_count: "failed_for_good_count" required,
    malformed: "malformed" required,
    refused: "refused" default,
    stopped: "stopped" required,
    since: "since" required,
});

impl RunReport {
    pub fn new(at: i64) -> Self {
        Self {
            at,
            ..Self::default()
        }
    }

    /// A listed event its processing refused (400): malformed, or of another mode.
    pub fn note_refused(&mut self, code: &str) {
        if code == "event_malformed" {
            self.malformed += 1;
        } else {
            self.refused += 1;
        }
    }

    pub fn note_failed_for_good(&mut self, id: &str) {
        self.failed_for_good_count += 1;
        if self.failed_for_good.len() < REPORT_IDS {
            self.failed_for_good.push(id.to_owned());
        }
    }

    pub fn note_retry_later(&mut self, id: &str) {
        if self.retry_later.len() < REPORT_IDS {
            self.retry_later.push(id.to_owned());
        }
    }
}

impl CatchupState {
    /// The state before any run: nothing passed within the initial lookback.
    pub fn initial(now: i64) -> Self {
        Self {
            version: STATE_VERSION,
            since: now - INITIAL_LOOKBACK_SECONDS,
            scan: None,
            last_run: None,
        }
    }

    /// Continues the scan in progress or starts one over `[since, now - settle]`; `false`
    /// when that window is empty.
    pub fn begin(&mut self, now: i64, settle_seconds: i64) -> bool {
        if self.scan.is_none() {
            let until = now - settle_seconds;
            if until < self.since {
                return false;
            }
            self.scan = Some(Scan {
                until,
                starting_after: None,
                oldest_unhandled: None,
            });
        }
        true
    }

    /// The next page of the scan in progress.
    pub fn page_request(&self, bounds: &Bounds, types: &[&str]) -> Option<StripeRequest> {
        let scan = self.scan.as_ref()?;
        Some(calls::list_events(&ListEvents {
            types,
            created_gte: self.since,
            created_lte: scan.until,
            starting_after: scan.starting_after.as_deref(),
            limit: bounds.limit,
        }))
    }

    /// This event is dealt with for this scan (passed, or noted as left unhandled): the
    /// next page starts after it.
    pub fn considered(&mut self, id: &str) {
        if let Some(scan) = self.scan.as_mut() {
            scan.starting_after = Some(id.to_owned());
        }
    }

    /// Processing this event failed in a way a retry can get past: the cursor will stop at it.
    pub fn left_unhandled(&mut self, created: i64) {
        if let Some(scan) = self.scan.as_mut() {
            scan.oldest_unhandled = Some(scan.oldest_unhandled.map_or(created, |c| c.min(created)));
        }
    }

    /// The scan reached the oldest event of its window: the cursor moves to the scan's last
    /// second (read again next time: more events may be created in it), and no further than
    /// the oldest event left unhandled.
    pub fn end_scan(&mut self) {
        if let Some(scan) = self.scan.take() {
            let next = scan.oldest_unhandled.unwrap_or(scan.until);
            self.since = self.since.max(next);
        }
    }
}

/// What catch-up does with a listed event, from its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Recorded handled or ignored: nothing to do.
    Done,
    /// Recorded failed for good: a replay's job, not every run's.
    FailedForGood,
    /// Not recorded, or failed in a way a retry can get past: processed as a delivery is.
    Process,
}

pub fn decide(record: Option<&EventRecord>) -> Decision {
    match record {
        Some(r) if r.outcome.is_final() => Decision::Done,
        Some(r) if r.failed_for_good() => Decision::FailedForGood,
        _ => Decision::Process,
    }
}

/// Whether the run of the scheduled event at `now` (unix seconds; the cron fires every
/// minute) includes catch-up: every `every_minutes` minutes (0: never).
pub fn is_due(now: i64, every_minutes: u32) -> bool {
    every_minutes > 0 && (now.div_euclid(60)).rem_euclid(i64::from(every_minutes)) == 0
}

/// Whether the endpoint looks disabled (`ops.endpoint_silent`): this run found `found` events
/// Stripe did not deliver, and no delivery arrived since `silent_since` for `after_seconds`
/// or more (`None`: the event index has no row yet, so nothing to tell silence from).
pub fn looks_silent(found: u32, silent_since: Option<i64>, now: i64, after_seconds: i64) -> bool {
    found > 0 && silent_since.is_some_and(|since| now - since >= after_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Outcome, EVENT_RECORD_VERSION};

    #[test]
    fn the_endpoint_looks_silent_only_when_catch_up_finds_events_after_a_long_quiet() {
        let hour = 3600;
        assert!(looks_silent(1, Some(0), 6 * hour, 6 * hour));
        assert!(
            !looks_silent(1, Some(0), 6 * hour - 1, 6 * hour),
            "not long enough"
        );
        assert!(
            !looks_silent(0, Some(0), 60 * hour, 6 * hour),
            "nothing found"
        );
        assert!(!looks_silent(3, None, 60 * hour, 6 * hour), "no index yet");
    }

    const NOW: i64 = 1_800_000_000;

    fn record(outcome: Outcome, retryable: Option<bool>) -> EventRecord {
        EventRecord {
            version: EVENT_RECORD_VERSION,
            id: "evt_1".into(),
            event_type: "checkout.session.completed".into(),
            created: NOW,
            livemode: false,
            outcome,
            failed_step: None,
            error: None,
            stripe_error: None,
            retryable,
            reason: None,
            snapshot_event: None,
            recorded_at: NOW,
        }
    }

    #[test]
    fn only_events_without_a_final_outcome_are_processed_and_failed_for_good_is_left_to_replay() {
        assert_eq!(decide(None), Decision::Process);
        assert_eq!(
            decide(Some(&record(Outcome::Handled, None))),
            Decision::Done
        );
        assert_eq!(
            decide(Some(&record(Outcome::Ignored, None))),
            Decision::Done
        );
        assert_eq!(
            decide(Some(&record(Outcome::Failed, Some(true)))),
            Decision::Process
        );
        assert_eq!(
            decide(Some(&record(Outcome::Failed, Some(false)))),
            Decision::FailedForGood
        );
        // Written before retryability was recorded: worked again, as a redelivery would.
        assert_eq!(
            decide(Some(&record(Outcome::Failed, None))),
            Decision::Process
        );
    }

    #[test]
    fn a_scan_covers_since_to_now_minus_settle_and_pages_after_the_last_event_considered() {
        let mut state = CatchupState::initial(NOW);
        assert_eq!(state.since, NOW - INITIAL_LOOKBACK_SECONDS);
        assert!(state.begin(NOW, 300));
        let types = ["a.b", "c.d"];
        let first = state.page_request(&Bounds::FREE_PLAN, &types).unwrap();
        assert_eq!(first.path, "/v1/events");
        assert_eq!(
            first.form.encode(),
            format!(
                "types[]=a.b&types[]=c.d&created[gte]={}&created[lte]={}&limit=25",
                NOW - INITIAL_LOOKBACK_SECONDS,
                NOW - 300
            )
        );
        state.considered("evt_9");
        // A scan in progress keeps its window, whenever the next run comes.
        assert!(state.begin(NOW + 600, 300));
        let next = state.page_request(&Bounds::FREE_PLAN, &types).unwrap();
        let encoded = next.form.encode();
        assert!(
            encoded.ends_with(&format!(
                "created[lte]={}&limit=25&starting_after=evt_9",
                NOW - 300
            )),
            "{encoded}"
        );
    }

    #[test]
    fn the_cursor_moves_past_the_scan_only_when_every_event_was_handled() {
        let mut state = CatchupState::initial(NOW);
        state.begin(NOW, 0);
        state.considered("evt_3");
        state.end_scan();
        assert_eq!((state.since, state.scan.clone()), (NOW, None));

        let mut state = CatchupState::initial(NOW);
        let since = state.since;
        state.begin(NOW, 0);
        state.left_unhandled(NOW - 50);
        state.left_unhandled(NOW - 70);
        state.left_unhandled(NOW - 60);
        state.end_scan();
        assert_eq!(state.since, NOW - 70, "stops at the oldest unhandled");
        assert!(state.since >= since);
    }

    #[test]
    fn an_empty_window_starts_no_scan() {
        let mut state = CatchupState::initial(NOW);
        state.since = NOW - 100;
        assert!(!state.begin(NOW, 300));
        assert!(state.scan.is_none());
        assert!(state.page_request(&Bounds::FREE_PLAN, &["a"]).is_none());
        assert!(state.begin(NOW, 100));
    }

    #[test]
    fn a_run_stays_within_the_free_plan_s_subrequests_and_stripe_s_list_limits() {
        let bounds = Bounds::FREE_PLAN;
        assert!(
            bounds.max_subrequests() <= 50,
            "{}",
            bounds.max_subrequests()
        );
        assert!((1..=100).contains(&bounds.limit));
        assert!(
            crate::event::EventKind::TYPES.len() <= 20,
            "types[] takes 20"
        );
    }

    #[test]
    fn catch_up_is_due_every_n_minutes_of_the_clock() {
        let on_the_hour = 1_800_000_000 / 3600 * 3600;
        assert!(is_due(on_the_hour, 10));
        assert!(is_due(on_the_hour + 59, 10));
        assert!(!is_due(on_the_hour + 60, 10));
        assert!(is_due(on_the_hour + 600, 10));
        assert!((0..60).all(|m| is_due(on_the_hour + m * 60, 1)));
        assert!(!is_due(on_the_hour, 0), "0 switches it off");
        let due = (0..1440)
            .filter(|m| is_due(on_the_hour + m * 60, 10))
            .count();
        assert_eq!(due, 144);
    }

    #[test]
    fn the_state_round_trips_and_an_old_record_without_a_scan_reads() {
        let mut state = CatchupState::initial(NOW);
        state.begin(NOW, 0);
        state.considered("evt_1");
        state.left_unhandled(NOW - 5);
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<CatchupState>(&text).unwrap(), state);
        let bare: CatchupState = serde_json::from_str(r#"{"version":1,"since":5}"#).unwrap();
        assert_eq!((bare.since, bare.scan, bare.last_run), (5, None, None));
    }
}
