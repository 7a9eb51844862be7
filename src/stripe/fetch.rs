//! The Workers fetch API behind the `Transport` port. Only built for wasm32.

use std::time::Duration;

use futures_util::StreamExt;
use worker::web_sys::{self, RequestRedirect};
use worker::{AbortSignal, Date, Delay, Fetch, Headers, Request, Response};

use crate::dry::DryLog;
use crate::http::{HttpRequest, HttpResponse, Method, SendFailure, Transport};

/// Workers fetch; with a [`DryLog`] (a replay's preview) only reads are sent.
pub struct FetchTransport<'a>(pub Option<&'a DryLog>);

/// The transport of everything but a preview.
pub const FETCH: FetchTransport<'static> = FetchTransport(None);

/// A request on the runtime's own `RequestInit`. The `worker` crate's `RequestInit` also
/// carries `cf` options through `serde_wasm_bindgen`: 12 KB of wasm for options never set.
/// `Manual` redirects for Stripe, the default (follow) for Durable Object calls.
pub fn new_request(
    url: &str,
    method: Method,
    headers: Option<&Headers>,
    body: Option<&str>,
    redirect: Option<RequestRedirect>,
) -> worker::Result<Request> {
    let init = web_sys::RequestInit::new();
    init.set_method(method.as_str());
    if let Some(headers) = headers {
        init.set_headers(&headers.0);
    }
    if let Some(body) = body {
        init.set_body(&body.into());
    }
    if let Some(redirect) = redirect {
        init.set_redirect(redirect);
    }
    web_sys::Request::new_with_str_and_init(url, &init)
        .map(Request::from)
        .map_err(|e| {
            worker::Error::JsError(
                e.as_string()
                    .unwrap_or_else(|| "invalid URL or options for Request".to_string()),
            )
        })
}

/// A Durable Object's answer as text, read by the runtime's own `Response.text()`:
/// `worker::Response::text` collected its stream chunk by chunk, a future of its own (about
/// 2 KB of wasm) for three callers. The objects answer JSON or plain text they wrote (JS
/// `text()` would turn bytes that are not UTF-8 into U+FFFD, not refuse them).
pub async fn text_of(response: Response) -> worker::Result<String> {
    let raw = web_sys::Response::from(response);
    let text = worker::wasm_bindgen_futures::JsFuture::from(raw.text()?).await?;
    Ok(text.as_string().unwrap_or_default())
}

/// The body, read chunk by chunk up to `cap` bytes; past it the stream is dropped unread
/// (the runtime cancels it), so a peer that streams without end costs `cap` and a chunk.
async fn read_capped(response: &mut Response, cap: usize) -> Result<(String, bool), SendFailure> {
    let network = |e: worker::Error| SendFailure::Network(e.to_string());
    let mut stream = response.stream().map_err(network)?;
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(network)?;
        if body.len() + chunk.len() > cap {
            body.extend_from_slice(&chunk[..cap - body.len()]);
            return Ok((String::from_utf8_lossy(&body).into_owned(), true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((String::from_utf8_lossy(&body).into_owned(), false))
}

impl Transport for FetchTransport<'_> {
    async fn send(
        &self,
        request: &HttpRequest,
        timeout_ms: u64,
    ) -> Result<HttpResponse, SendFailure> {
        if let Some(log) = self.0 {
            log.request(request)?;
        }
        // A header or URL the runtime rejects is a configuration fault: no attempt would pass.
        // Its message names the header, never the value.
        let unsendable = |e: worker::Error| SendFailure::Unsendable(e.to_string());
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers
                .set(name, value)
                .map_err(|_| SendFailure::Unsendable(format!("invalid value for header {name}")))?;
        }
        // Stripe does not redirect API calls; following one would turn a POST into a GET.
        let outgoing = new_request(
            &request.url,
            request.method,
            Some(&headers),
            request.body.as_deref(),
            Some(RequestRedirect::Manual),
        )
        .map_err(unsendable)?;
        let timeout = u32::try_from(timeout_ms).unwrap_or(u32::MAX);
        let signal = AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(timeout));
        // Errors here are the runtime's (connection refused, aborted): they name no credential.
        let mut response = Fetch::Request(outgoing)
            .send_with_signal(&signal)
            .await
            .map_err(|e| SendFailure::Network(e.to_string()))?;
        let headers = response
            .headers()
            .entries()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let (body, truncated) = read_capped(&mut response, request.max_response_bytes).await?;
        Ok(HttpResponse {
            status: response.status_code(),
            headers,
            body,
            truncated,
        })
    }

    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await;
    }

    fn now_ms(&self) -> f64 {
        Date::now().as_millis() as f64
    }

    fn random(&self) -> f64 {
        js_sys::Math::random()
    }
}
