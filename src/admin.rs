//! Admin list parameters shared by the list routes: a page's `limit` (from `crate::event_log`)
//! and a KV `cursor` (`GET /notifications` pages KV's keys). `GET /events` answers from its
//! index (`crate::event_log`), with a cursor of its own.

use crate::error::AppError;
pub use crate::event_log::{parse_limit, DEFAULT_EVENTS_LIMIT, MAX_EVENTS_LIMIT};

/// KV cursors are a few hundred characters at most; anything longer is not one of ours.
const MAX_CURSOR_LEN: usize = 1024;

/// A page's `cursor` as KV handed it out (empty: none), or a 400 that does not quote it.
pub fn parse_cursor(value: String) -> Result<Option<String>, AppError> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > MAX_CURSOR_LEN
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=_-.".contains(&b))
    {
        return Err(AppError::BadQuery(
            "`cursor` is not a cursor returned by this route".into(),
        ));
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(result: Result<impl std::fmt::Debug, AppError>) -> String {
        match result {
            Err(AppError::BadQuery(message)) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_limit_is_1_to_100() {
        assert_eq!(parse_limit("1").unwrap(), 1);
        assert_eq!(parse_limit("100").unwrap(), 100);
        for value in [
            "0",
            "101",
            "-1",
            "",
            "abc",
            "1.5",
            "+5",
            "0010",
            "99999999999999999999",
        ] {
            assert!(bad(parse_limit(value)).contains("`limit`"), "{value}");
        }
    }

    #[test]
    fn kv_cursors_pass_through_and_odd_input_is_refused_without_quoting_it() {
        assert_eq!(
            parse_cursor("AAAbbb+x/=".into()).unwrap().as_deref(),
            Some("AAAbbb+x/=")
        );
        assert_eq!(parse_cursor(String::new()).unwrap(), None);
        assert!(!bad(parse_cursor("<script>".into())).contains("script"));
        assert!(bad(parse_cursor("a".repeat(MAX_CURSOR_LEN + 1))).contains("`cursor`"));
    }
}
