//! A dry run's log: what the handlers read and would have written, for a replay's preview
//! (`handlers::dry_run`). The worker's own store and transport (`store::entity::EntityStore`,
//! `stripe::fetch::FetchTransport`) take one and then carry nothing out, so the preview runs
//! the very handlers a replay runs, compiled once: a second store or transport type would
//! compile every handler a second time (about 110 KiB of gzipped wasm). Pure.

use std::cell::RefCell;

use crate::http::{HttpRequest, Method, SendFailure};

/// Why a write was not sent; the handler's error at that step carries it.
pub const NOT_SENT: &str = "dry run: not sent";

/// Record writes kept here (read back by the same run) and listed; requests listed, only
/// reads let through.
#[derive(Debug, Default)]
pub struct DryLog {
    /// Each key this run wrote and its last value: a preview writes a handful, and a
    /// `BTreeMap` compiled the B-tree's code for this key and value type.
    overlay: RefCell<Vec<(String, Option<String>)>>,
    writes: RefCell<Vec<String>>,
    reads: RefCell<Vec<String>>,
    sends: RefCell<Vec<String>>,
}

impl DryLog {
    /// What this run wrote under `key` (`Some(None)`: deleted), or `None` to read the store.
    pub fn written(&self, key: &str) -> Option<Option<String>> {
        let overlay = self.overlay.borrow();
        overlay
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// A put (`Some`) or delete (`None`) that the store does not carry out.
    pub fn write(&self, key: &str, value: Option<&str>) {
        let verb = if value.is_some() { "put" } else { "delete" };
        self.writes.borrow_mut().push(format!("{verb} {key}"));
        let value = value.map(str::to_owned);
        let mut overlay = self.overlay.borrow_mut();
        match overlay.iter_mut().find(|(k, _)| k == key) {
            Some((_, last)) => *last = value,
            None => overlay.push((key.to_owned(), value)),
        }
    }

    /// Before a request goes out: a GET is listed and may go; anything else is listed and
    /// answered "not sent".
    pub fn request(&self, request: &HttpRequest) -> Result<(), SendFailure> {
        let url = request.url.split('?').next().unwrap_or("");
        let line = format!("{} {url}", request.method.as_str());
        if request.method == Method::Get {
            self.reads.borrow_mut().push(line);
            Ok(())
        } else {
            self.sends.borrow_mut().push(line);
            Err(SendFailure::Unsendable(NOT_SENT.to_owned()))
        }
    }

    /// The store writes, in order.
    pub fn writes(&self) -> Vec<String> {
        self.writes.borrow().clone()
    }

    /// The reads let through, in order.
    pub fn reads(&self) -> Vec<String> {
        self.reads.borrow().clone()
    }

    /// The requests not sent, in order.
    pub fn sends(&self) -> Vec<String> {
        self.sends.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, url: &str) -> HttpRequest {
        HttpRequest {
            method,
            url: url.to_owned(),
            headers: vec![],
            body: Some("secret=1".to_owned()),
            max_response_bytes: 1,
        }
    }

    #[test]
    fn reads_go_writes_are_listed_and_read_back() {
        let log = DryLog::default();
        assert!(log
            .request(&request(
                Method::Get,
                "https://s/v1/events/evt_1?expand[]=x"
            ))
            .is_ok());
        assert_eq!(
            log.request(&request(Method::Post, "https://s/v1/customers")),
            Err(SendFailure::Unsendable(NOT_SENT.to_owned()))
        );
        assert_eq!(log.reads(), ["GET https://s/v1/events/evt_1"]);
        assert_eq!(log.sends(), ["POST https://s/v1/customers"]);
        assert_eq!(log.written("a"), None);
        log.write("a", Some("1"));
        log.write("b", None);
        assert_eq!(log.written("a"), Some(Some("1".to_owned())));
        assert_eq!(log.written("b"), Some(None));
        assert_eq!(log.writes(), ["put a", "delete b"]);
        // The last write of a key is what the run reads back.
        log.write("a", Some("2"));
        assert_eq!(log.written("a"), Some(Some("2".to_owned())));
        log.write("a", None);
        assert_eq!(log.written("a"), Some(None));
        assert_eq!(log.written("b"), Some(None));
    }
}
