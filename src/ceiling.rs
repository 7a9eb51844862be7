//! The global ceiling on anonymous setup sessions: at most `per_day` a UTC day and
//! `per_minute` a minute, whoever asks from wherever. The per-address limit (Cloudflare's Rate
//! Limiting binding) is per client and per location; this one is the whole deployment's, so
//! what the public can make the service spend (Stripe writes, and the KV writes of the cards
//! it saves) has a bound however many addresses it uses. Pure: the tally is kept by one
//! Durable Object (`routes::ceiling`), which is strongly consistent, never by KV.

/// The days are UTC days, as KV's daily limits are (they reset at 00:00 UTC).
const DAY_SECONDS: i64 = 86_400;
const MINUTE_SECONDS: i64 = 60;

/// The ceiling's two limits (`PUBLIC_SETUP_PER_DAY`, `PUBLIC_SETUP_PER_MINUTE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ceiling {
    pub per_day: u32,
    pub per_minute: u32,
}

/// What the Durable Object stores (one row, a column each): the current day's and minute's
/// counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub day: i64,
    pub day_count: u32,
    pub minute: i64,
    pub minute_count: u32,
}

/// Whether one more session may be opened now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Full until the next minute or UTC day: seconds until then (`Retry-After`).
    Full {
        retry_after: u64,
    },
}

impl Verdict {
    /// As it crosses the Durable Object binding: `allowed`, or `full {seconds}` (plain text:
    /// no serde code for two words).
    pub fn to_wire(self) -> String {
        match self {
            Self::Allowed => "allowed".to_owned(),
            Self::Full { retry_after } => format!("full {retry_after}"),
        }
    }

    pub fn from_wire(text: &str) -> Option<Self> {
        match text.split_once(' ') {
            None if text == "allowed" => Some(Self::Allowed),
            Some(("full", seconds)) => seconds
                .parse()
                .ok()
                .map(|retry_after| Self::Full { retry_after }),
            _ => None,
        }
    }
}

impl Tally {
    /// Takes one session from the ceiling at `now` (Unix seconds): the tally to store and
    /// the verdict. A refused take counts nothing, so the counts stay at most the limits.
    pub fn take(self, now: i64, ceiling: Ceiling) -> (Self, Verdict) {
        let day = now.div_euclid(DAY_SECONDS);
        let minute = now.div_euclid(MINUTE_SECONDS);
        let day_count = if self.day == day { self.day_count } else { 0 };
        let minute_count = if self.minute == minute {
            self.minute_count
        } else {
            0
        };
        let current = Self {
            day,
            day_count,
            minute,
            minute_count,
        };
        // Full until the window that is full ends: the day's first, as it ends last.
        let full_until = if day_count >= ceiling.per_day {
            Some((day + 1) * DAY_SECONDS)
        } else if minute_count >= ceiling.per_minute {
            Some((minute + 1) * MINUTE_SECONDS)
        } else {
            None
        };
        if let Some(until) = full_until {
            let retry_after = (until - now) as u64;
            return (current, Verdict::Full { retry_after });
        }
        let taken = Self {
            day_count: day_count + 1,
            minute_count: minute_count + 1,
            ..current
        };
        (taken, Verdict::Allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CEILING: Ceiling = Ceiling {
        per_day: 5,
        per_minute: 2,
    };
    /// 2026-12-03 00:00:00 UTC.
    const MIDNIGHT: i64 = 1_796_256_000;

    fn takes(tally: &mut Tally, at: i64, n: usize) -> Vec<Verdict> {
        (0..n)
            .map(|_| {
                let (next, verdict) = tally.take(at, CEILING);
                *tally = next;
                verdict
            })
            .collect()
    }

    #[test]
    fn a_minute_allows_its_limit_then_says_when_the_next_minute_starts() {
        let mut tally = Tally::default();
        let at = MIDNIGHT + 10 * 60 + 15;
        assert_eq!(
            takes(&mut tally, at, 3),
            [
                Verdict::Allowed,
                Verdict::Allowed,
                Verdict::Full { retry_after: 45 }
            ]
        );
        assert_eq!((tally.day_count, tally.minute_count), (2, 2));
        assert_eq!(takes(&mut tally, at + 45, 1), [Verdict::Allowed]);
    }

    #[test]
    fn a_day_allows_its_limit_until_midnight_utc() {
        let mut tally = Tally::default();
        for minute in 0..3 {
            takes(&mut tally, MIDNIGHT + minute * 60, 2);
        }
        assert_eq!(tally.day_count, 5);
        let late = MIDNIGHT + DAY_SECONDS - 100;
        assert_eq!(
            takes(&mut tally, late, 1),
            [Verdict::Full { retry_after: 100 }]
        );
        assert_eq!(tally.day_count, 5, "a refusal counts nothing");
        assert_eq!(
            takes(&mut tally, MIDNIGHT + DAY_SECONDS, 1),
            [Verdict::Allowed]
        );
        assert_eq!(tally.day_count, 1);
    }

    #[test]
    fn a_verdict_crosses_the_binding_as_text() {
        for verdict in [
            Verdict::Allowed,
            Verdict::Full {
                retry_after: 86_400,
            },
        ] {
            assert_eq!(Verdict::from_wire(&verdict.to_wire()), Some(verdict));
        }
        for bad in ["", "full", "full x", "allowed 1", "open"] {
            assert_eq!(Verdict::from_wire(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_zero_ceiling_refuses_everything() {
        let closed = Ceiling {
            per_day: 0,
            per_minute: 10,
        };
        let (tally, verdict) = Tally::default().take(MIDNIGHT, closed);
        assert_eq!(
            verdict,
            Verdict::Full {
                retry_after: 86_400
            }
        );
        assert_eq!(tally.day_count, 0);
    }
}
