//! The Workers fetch API behind the `Transport` port. Only built for wasm32.

use std::time::Duration;

use worker::{AbortSignal, Date, Delay, Fetch, Headers, Request, RequestInit, RequestRedirect};

use crate::http::{HttpRequest, HttpResponse, Method, SendFailure, Transport};

pub struct FetchTransport;

impl Transport for FetchTransport {
    async fn send(
        &self,
        request: &HttpRequest,
        timeout_ms: u64,
    ) -> Result<HttpResponse, SendFailure> {
        // A header or URL the runtime rejects is a configuration fault: no attempt would pass.
        // Its message names the header, never the value.
        let unsendable = |e: worker::Error| SendFailure::Unsendable(e.to_string());
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers
                .set(name, value)
                .map_err(|_| SendFailure::Unsendable(format!("invalid value for header {name}")))?;
        }
        let mut init = RequestInit::new();
        init.with_method(match request.method {
            Method::Get => worker::Method::Get,
            Method::Post => worker::Method::Post,
        })
        .with_headers(headers)
        // Stripe does not redirect API calls; following one would turn a POST into a GET.
        .with_redirect(RequestRedirect::Manual);
        if let Some(body) = &request.body {
            init.with_body(Some(body.as_str().into()));
        }
        let outgoing = Request::new_with_init(&request.url, &init).map_err(unsendable)?;
        let timeout = u32::try_from(timeout_ms).unwrap_or(u32::MAX);
        let signal = AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(timeout));
        // Errors here are the runtime's (connection refused, aborted): they name no credential.
        let mut response = Fetch::Request(outgoing)
            .send_with_signal(&signal)
            .await
            .map_err(|e| SendFailure::Network(e.to_string()))?;
        let body = response
            .text()
            .await
            .map_err(|e| SendFailure::Network(e.to_string()))?;
        let headers = response
            .headers()
            .entries()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        Ok(HttpResponse {
            status: response.status_code(),
            headers,
            body,
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
