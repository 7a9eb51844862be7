//! The HTTP port: one request and its answer, what can go wrong before an answer, and the
//! [`Transport`] trait through which the network, the clock, sleeping and randomness reach
//! the core. Shared by the Stripe client and notification delivery; Workers fetch implements
//! it in `stripe::fetch`, `testing::FakeTransport` natively (with a virtual clock).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
    /// The most of the answer's body that is read: a peer that streams more is cut off
    /// there ([`HttpResponse::truncated`]), so no answer can exhaust the isolate's memory.
    pub max_response_bytes: usize,
}

/// Leaves out the `Authorization` value (the secret key) and the body (it may hold PII).
impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                if name.eq_ignore_ascii_case("authorization") {
                    (*name, "[redacted]")
                } else {
                    (*name, value.as_str())
                }
            })
            .collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body_bytes", &self.body.as_ref().map(String::len))
            .finish()
    }
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Header names are case-insensitive.
fn find_header<'a, K: AsRef<str>>(headers: &'a [(K, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The peer sent more than the request's `max_response_bytes`: `body` holds what was
    /// read before the rest was left unread.
    pub truncated: bool,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// `Stripe-Should-Retry`, when Stripe sent it.
    pub fn should_retry(&self) -> Option<bool> {
        self.header("stripe-should-retry")
            .map(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// Why the transport has no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// Connection refused or reset, timeout, abort: worth another attempt.
    Network(String),
    /// The request was never sent because the runtime rejected it: another attempt fails
    /// the same way.
    Unsendable(String),
}

/// What the client needs from the runtime. Futures are not `Send` on Workers.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// One HTTP exchange, abandoned after `timeout_ms`.
    async fn send(
        &self,
        request: &HttpRequest,
        timeout_ms: u64,
    ) -> Result<HttpResponse, SendFailure>;
    async fn sleep(&self, ms: u64);
    fn now_ms(&self) -> f64;
    /// Uniform in `[0, 1)`, for jitter.
    fn random(&self) -> f64;
}
