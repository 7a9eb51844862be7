//! Catch-up for a thin event destination, from `GET /v2/core/events`. Pure; the run is
//! `catchup::run::run_thin`.
//!
//! Its own cursor rules, not the v1 ones: API v2 pages by an opaque `next_page_url` (there is
//! no `starting_after`), and times are RFC 3339 strings. A scan covers `[since, until]` (whole
//! seconds, `until = now - settle`), and stores the next page's URL when it spans runs. When it
//! ends, `since` moves to `until` (that second is read again next time: an event may be created
//! later in it), or only to the oldest event left unhandled. The same bounds as the v1 catch-up,
//! within the Free plan's 50 subrequests, and it runs the minute after the v1 catch-up, so the
//! two never share one invocation's subrequests.
//!
//! The v1 catch-up already finds what a thin destination missed (`GET /v1/events` lists the
//! snapshot event of every change, and a thin event is recorded under its twin's id); this one
//! lists the thin events themselves, for an account whose changes are only followed through
//! thin events (`CATCHUP_THIN_EVENTS=true`).

use serde::Serialize;
use serde_json::value::RawValue;

use super::{is_due, RunReport, INITIAL_LOOKBACK_SECONDS};
use crate::event::thin::format_rfc3339;
use crate::stripe::calls;
use crate::stripe::{StripeError, StripeRequest};

pub const THIN_STATE_VERSION: u32 = 1;

/// What one thin run may spend: `pages` list calls (2 attempts each) and `processed` events,
/// each one related-object read and at most 3 more Stripe calls (2 attempts each) and one
/// notification: 2 × 2 + 4 × (4 × 2 + 1) = 40 < 50.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinBounds {
    pub pages: u32,
    pub limit: u32,
    pub processed: u32,
}

impl ThinBounds {
    pub const FREE_PLAN: ThinBounds = ThinBounds {
        pages: 2,
        limit: 25,
        processed: 4,
    };

    pub const fn max_subrequests(&self) -> u32 {
        self.pages * 2 + self.processed * 9
    }
}

/// A page of `GET /v2/core/events`: `data` (each entry raw until read as a thin event) and
/// `next_page_url` (`null` on the last page).
#[derive(Debug)]
pub struct ThinEventPage {
    pub data: Vec<Box<RawValue>>,
    pub next_page_url: Option<String>,
}
crate::json::decode_map!(ThinEventPage {
    data: "data" required,
    next_page_url: "next_page_url" default,
});

/// The value under `catchup:thin_state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThinCatchupState {
    pub version: u32,
    /// Unix seconds: every listed thin event created before this has been passed.
    pub since: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ThinScan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunReport>,
}
crate::json::decode_map!(ThinCatchupState {
    version: "version" required,
    since: "since" required,
    scan: "scan" default,
    last_run: "last_run" default,
});

/// One walk over `[since, until]`, page by page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThinScan {
    pub until: i64,
    /// The page to ask next (`None`: the first). Only a `/v2/core/events?…` path is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_url: Option<String>,
    /// Pages of this scan already worked through (the next run starts at `next_page_url`).
    #[serde(default)]
    pub pages_done: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_unhandled: Option<i64>,
}
crate::json::decode_map!(ThinScan {
    until: "until" required,
    next_page_url: "next_page_url" default,
    pages_done: "pages_done" default,
    oldest_unhandled: "oldest_unhandled" default,
});

impl ThinCatchupState {
    pub fn initial(now: i64) -> Self {
        Self {
            version: THIN_STATE_VERSION,
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
            self.scan = Some(ThinScan {
                until,
                next_page_url: None,
                pages_done: 0,
                oldest_unhandled: None,
            });
        }
        true
    }

    /// The next page of the scan in progress: its first page from the filters, a later one
    /// from the stored `next_page_url`.
    pub fn page_request(&self, bounds: &ThinBounds, types: &[String]) -> Option<StripeRequest> {
        let scan = self.scan.as_ref()?;
        match &scan.next_page_url {
            Some(url) => calls::next_thin_events_page(url),
            None => Some(calls::list_thin_events(
                types,
                &format_rfc3339(self.since),
                &format_rfc3339(scan.until),
                bounds.limit,
            )),
        }
    }

    /// A page was worked through: the next one is `next_page_url`; `Ok(true)` when there is
    /// none. One that is not a path this service sends its key to is an error and changes
    /// nothing: ending the scan there would move the cursor past the pages not read.
    pub fn page_done(&mut self, next_page_url: Option<String>) -> Result<bool, StripeError> {
        if let Some(url) = &next_page_url {
            if calls::next_thin_events_page(url).is_none() {
                return Err(StripeError::Malformed {
                    status: 200,
                    reason:
                        "next_page_url is not a /v2/core/events path; the scan stays where it is"
                            .into(),
                });
            }
        }
        let Some(scan) = self.scan.as_mut() else {
            return Ok(true);
        };
        scan.pages_done += 1;
        scan.next_page_url = next_page_url;
        Ok(scan.next_page_url.is_none())
    }

    pub fn left_unhandled(&mut self, created: i64) {
        if let Some(scan) = self.scan.as_mut() {
            scan.oldest_unhandled = Some(scan.oldest_unhandled.map_or(created, |c| c.min(created)));
        }
    }

    /// The scan reached its end: `since` moves to its last second (read again next time),
    /// and no further than the oldest event left unhandled.
    pub fn end_scan(&mut self) {
        if let Some(scan) = self.scan.take() {
            let next = scan.oldest_unhandled.unwrap_or(scan.until);
            self.since = self.since.max(next);
        }
    }
}

/// The thin catch-up runs the minute after the v1 one (`CATCHUP_EVERY_MINUTES`), so each has
/// an invocation's subrequests to itself.
pub fn is_thin_due(now: i64, every_minutes: u32) -> bool {
    is_due(now - 60, every_minutes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn types() -> Vec<String> {
        vec!["v1.a.b".into(), "v1.c.d".into()]
    }

    #[test]
    fn a_scan_asks_rfc3339_bounds_then_follows_next_page_url() {
        let mut state = ThinCatchupState::initial(NOW);
        assert!(state.begin(NOW, 0));
        let first = state
            .page_request(&ThinBounds::FREE_PLAN, &types())
            .unwrap();
        assert_eq!(first.path, "/v2/core/events");
        assert_eq!(
            first.form.encode(),
            format!(
                "types[0]=v1.a.b&types[1]=v1.c.d&created[gte]={}&created[lte]={}&limit=25",
                crate::event::thin::format_rfc3339(NOW - INITIAL_LOOKBACK_SECONDS)
                    .replace(':', "%3A"),
                crate::event::thin::format_rfc3339(NOW).replace(':', "%3A"),
            )
        );
        assert!(!state
            .page_done(Some("/v2/core/events?page=abc123".into()))
            .unwrap());
        let next = state
            .page_request(&ThinBounds::FREE_PLAN, &types())
            .unwrap();
        assert_eq!(next.path, "/v2/core/events?page=abc123");
        assert!(next.form.is_empty());
        assert!(
            state.page_done(None).unwrap(),
            "the last page ends the scan"
        );
    }

    #[test]
    fn a_next_page_url_off_the_events_path_is_an_error_and_the_scan_stays() {
        for url in [
            "https://evil.example/v2/core/events?page=x",
            "//evil.example/v2/core/events?page=x",
            "/v1/customers?page=x",
            "/v2/core/events?page=x y",
            "/v2/core/events?page=x#frag",
        ] {
            let mut state = ThinCatchupState::initial(NOW);
            state.begin(NOW, 0);
            let before = state.clone();
            assert!(state.page_done(Some(url.into())).is_err(), "{url}");
            assert_eq!(state, before, "{url}: nothing moves");
        }
    }

    #[test]
    fn the_cursor_rereads_the_boundary_second_and_stops_at_an_unhandled_event() {
        let mut state = ThinCatchupState::initial(NOW);
        state.begin(NOW, 0);
        state.end_scan();
        assert_eq!((state.since, state.scan.is_none()), (NOW, true));
        assert!(state.begin(NOW, 0), "the boundary second is read again");
        state.left_unhandled(NOW - 1);
        state.end_scan();
        assert_eq!(state.since, NOW, "never backwards");
        let mut state = ThinCatchupState::initial(NOW);
        state.begin(NOW, 0);
        state.left_unhandled(NOW - 70);
        state.left_unhandled(NOW - 50);
        state.end_scan();
        assert_eq!(state.since, NOW - 70);
    }

    #[test]
    fn it_runs_the_minute_after_the_v1_catch_up_within_the_free_plan() {
        let on_the_hour = 1_800_000_000 / 3600 * 3600;
        assert!(is_due(on_the_hour, 10) && !is_thin_due(on_the_hour, 10));
        assert!(is_thin_due(on_the_hour + 60, 10) && !is_due(on_the_hour + 60, 10));
        assert!(!is_thin_due(on_the_hour + 60, 0));
        assert!(ThinBounds::FREE_PLAN.max_subrequests() <= 50);
        assert!(crate::event::EventKind::TYPES.len() <= 20, "types takes 20");
    }

    #[test]
    fn the_state_round_trips() {
        let mut state = ThinCatchupState::initial(NOW);
        state.begin(NOW, 0);
        state
            .page_done(Some("/v2/core/events?page=p2".into()))
            .unwrap();
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(
            serde_json::from_str::<ThinCatchupState>(&text).unwrap(),
            state
        );
    }
}
