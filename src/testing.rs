//! Test doubles for the ports, shared by unit tests and `tests/`. Not used by the worker
//! (the linker drops it from the wasm).

use std::cell::{Cell, RefCell};

use crate::http::{HttpRequest, HttpResponse, SendFailure, Transport};

type Responder = Box<dyn Fn(&HttpRequest) -> Result<HttpResponse, SendFailure>>;

/// A transport that answers each request with a function of it, records what was sent, and
/// keeps a virtual clock so retries and deadlines cost no real time.
pub struct FakeTransport {
    respond: Responder,
    sent: RefCell<Vec<HttpRequest>>,
    clock_ms: Cell<f64>,
}

impl FakeTransport {
    pub fn new(
        respond: impl Fn(&HttpRequest) -> Result<HttpResponse, SendFailure> + 'static,
    ) -> Self {
        Self {
            respond: Box::new(respond),
            sent: RefCell::new(Vec::new()),
            clock_ms: Cell::new(0.0),
        }
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
        }
    }

    pub fn sent(&self) -> Vec<HttpRequest> {
        self.sent.borrow().clone()
    }

    /// `METHOD path` of every request, in order.
    pub fn calls(&self) -> Vec<String> {
        self.sent
            .borrow()
            .iter()
            .map(|r| {
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

impl Transport for FakeTransport {
    async fn send(
        &self,
        request: &HttpRequest,
        _timeout_ms: u64,
    ) -> Result<HttpResponse, SendFailure> {
        self.sent.borrow_mut().push(request.clone());
        self.clock_ms.set(self.clock_ms.get() + 5.0);
        (self.respond)(request)
    }

    async fn sleep(&self, ms: u64) {
        self.clock_ms.set(self.clock_ms.get() + ms as f64);
    }

    fn now_ms(&self) -> f64 {
        self.clock_ms.get()
    }

    fn random(&self) -> f64 {
        0.5
    }
}
