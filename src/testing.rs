//! Test doubles for the ports, shared by unit tests and `tests/`. Not used by the worker
//! (the linker drops it from the wasm).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use crate::http::{HttpRequest, HttpResponse, SendFailure, Transport};

type Responder = Box<dyn Fn(&HttpRequest) -> Result<HttpResponse, SendFailure>>;

/// One scripted answer of [`FakeTransport::scripted`].
pub enum Scripted {
    Respond(HttpResponse),
    /// A network failure after this many virtual milliseconds.
    Fail(u64),
    /// Never answers: the attempt times out.
    Hang,
    /// The runtime refuses to build the request.
    Unsendable,
}

enum Answers {
    /// A function of the request.
    Function(Responder),
    /// A script, one answer per request in order.
    Script(RefCell<VecDeque<Scripted>>),
}

/// The one fake of the HTTP port: answers each request with a function of it or from a
/// script, records what was sent (with its timeout) and every sleep, and keeps a virtual clock
/// so retries and deadlines cost no real time.
pub struct FakeTransport {
    answers: Answers,
    sent: RefCell<Vec<(HttpRequest, u64)>>,
    sleeps: RefCell<Vec<u64>>,
    clock_ms: Cell<f64>,
}

impl FakeTransport {
    pub fn new(
        respond: impl Fn(&HttpRequest) -> Result<HttpResponse, SendFailure> + 'static,
    ) -> Self {
        Self::with(Answers::Function(Box::new(respond)))
    }

    /// Answers from `script`, in order; a request past its end fails the test.
    pub fn scripted(script: Vec<Scripted>) -> Self {
        Self::with(Answers::Script(RefCell::new(script.into())))
    }

    fn with(answers: Answers) -> Self {
        Self {
            answers,
            sent: RefCell::new(Vec::new()),
            sleeps: RefCell::new(Vec::new()),
            clock_ms: Cell::new(0.0),
        }
    }

    /// The timeout each request was sent with, in order.
    pub fn timeouts(&self) -> Vec<u64> {
        self.sent.borrow().iter().map(|(_, t)| *t).collect()
    }

    /// Every sleep, in milliseconds, in order.
    pub fn sleeps(&self) -> Vec<u64> {
        self.sleeps.borrow().clone()
    }

    /// A transport for code that must not make any request.
    pub fn unreachable() -> Self {
        Self::new(|request| {
            panic!(
                "unexpected request {} {}",
                request.method.as_str(),
                request.url
            )
        })
    }

    pub fn json(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("request-id".into(), format!("req_fake_{status}")),
            ],
            body: body.to_owned(),
            truncated: false,
        }
    }

    pub fn sent(&self) -> Vec<HttpRequest> {
        self.sent.borrow().iter().map(|(r, _)| r.clone()).collect()
    }

    /// `METHOD path` of every request, in order.
    pub fn calls(&self) -> Vec<String> {
        self.sent
            .borrow()
            .iter()
            .map(|(r, _)| {
                let path = r
                    .url
                    .split("://")
                    .nth(1)
                    .and_then(|rest| rest.find('/').map(|i| &rest[i..]));
                let path = path.unwrap_or(&r.url);
                format!(
                    "{} {}",
                    r.method.as_str(),
                    path.split('?').next().unwrap_or(path)
                )
            })
            .collect()
    }
}

/// What a transport reads of `response`: at most the request's `max_response_bytes`, as
/// Workers fetch does (`stripe::fetch`).
fn cap(mut response: HttpResponse, request: &HttpRequest) -> HttpResponse {
    if response.body.len() > request.max_response_bytes {
        let mut end = request.max_response_bytes;
        while !response.body.is_char_boundary(end) {
            end -= 1;
        }
        response.body.truncate(end);
        response.truncated = true;
    }
    response
}

impl Transport for FakeTransport {
    async fn send(
        &self,
        request: &HttpRequest,
        timeout_ms: u64,
    ) -> Result<HttpResponse, SendFailure> {
        self.sent.borrow_mut().push((request.clone(), timeout_ms));
        self.clock_ms.set(self.clock_ms.get() + 5.0);
        let next = match &self.answers {
            Answers::Function(respond) => return respond(request).map(|r| cap(r, request)),
            Answers::Script(script) => script.borrow_mut().pop_front(),
        };
        match next {
            Some(Scripted::Respond(response)) => Ok(cap(response, request)),
            Some(Scripted::Fail(after)) => {
                self.clock_ms.set(self.clock_ms.get() + after as f64);
                Err(SendFailure::Network("connection reset".into()))
            }
            Some(Scripted::Hang) => {
                self.clock_ms.set(self.clock_ms.get() + timeout_ms as f64);
                Err(SendFailure::Network(
                    "the operation was aborted due to timeout".into(),
                ))
            }
            Some(Scripted::Unsendable) => Err(SendFailure::Unsendable(
                "invalid value for header stripe-version".into(),
            )),
            None => panic!("the client sent more requests than scripted"),
        }
    }

    async fn sleep(&self, ms: u64) {
        self.sleeps.borrow_mut().push(ms);
        self.clock_ms.set(self.clock_ms.get() + ms as f64);
    }

    fn now_ms(&self) -> f64 {
        self.clock_ms.get()
    }

    fn random(&self) -> f64 {
        0.5
    }
}
