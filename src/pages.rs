//! Every HTML page of the service, with its escaping and headers: the "Save a card" form,
//! the success page, and its failure pages (one table). Pure; the routes send what it gives.

use crate::billing::BillingError;
use crate::error::AppError;
use crate::stripe::StripeError;

/// The headers every page carries besides its content type. Not cached (a page about a
/// session or a card); nothing but inline styles loads; forms post only here and to Checkout
/// (Chrome applies `form-action` to the 303 that follows a post too); never framed (no
/// clickjacking); no type sniffing; no Referer (a success URL carries its session id).
/// `checkout_origin` is Stripe Checkout's (or the local stand-in's).
pub fn page_headers(checkout_origin: &str) -> [(&'static str, String); 4] {
    [
        ("cache-control", "no-store".to_owned()),
        (
            "content-security-policy",
            format!(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {checkout_origin}; frame-ancestors 'none'; base-uri 'none'"
            ),
        ),
        ("x-content-type-options", "nosniff".to_owned()),
        ("referrer-policy", "no-referrer".to_owned()),
    ]
}

/// The "Save a card" page at `GET /`.
pub const HOME: &str = r#"<!doctype html>
<html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Save a card</title>
<body style="font-family:system-ui,sans-serif;max-width:32em;margin:3em auto;padding:0 1em">
<h1>Save a card for later</h1>
<p>You will be sent to Stripe Checkout to enter a card. Nothing is charged now.</p>
<form method="post" action="/create-checkout-session">
<input type="hidden" name="currency" value="">
<p><button type="submit">Save a card</button></p>
</form>
</body></html>
"#;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A small page; `title` and `paragraphs` are text, escaped here.
pub fn page(title: &str, paragraphs: &[String]) -> String {
    let body: String = paragraphs
        .iter()
        .map(|p| format!("<p>{}</p>\n", escape_html(p)))
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n<title>{title}</title>\n<body style=\"font-family:system-ui,sans-serif;max-width:32em;margin:3em auto;padding:0 1em\">\n<h1>{title}</h1>\n{body}<p><a href=\"/\">Back</a></p>\n</body></html>\n",
        title = escape_html(title),
    )
}

/// What the success page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuccessView {
    CardSaved {
        /// For the caller; never shown: anyone holding the `cs_` link sees the page.
        customer: String,
        brand: Option<String>,
        last4: Option<String>,
    },
    PaymentReceived {
        session: String,
    },
    /// Completed with a delayed payment method: paid once the money arrives.
    PaymentProcessing {
        session: String,
    },
}

impl SuccessView {
    pub fn render(&self) -> String {
        match self {
            Self::CardSaved { brand, last4, .. } => {
                let card = match (brand, last4) {
                    (Some(brand), Some(last4)) => format!("Your {brand} card ending in {last4}"),
                    (None, Some(last4)) => format!("Your card ending in {last4}"),
                    _ => "Your card".to_owned(),
                };
                page(
                    "Card saved",
                    &[format!(
                        "{card} is saved for later payments. Nothing was charged."
                    )],
                )
            }
            Self::PaymentReceived { session } => page(
                "Payment received",
                &[
                    "Thank you: your payment went through.".to_owned(),
                    format!("Reference: {session}"),
                ],
            ),
            Self::PaymentProcessing { session } => page(
                "Payment processing",
                &[
                    "Thank you: your payment is being processed. It can take a few days to arrive; you will hear from us when it has.".to_owned(),
                    format!("Reference: {session}"),
                ],
            ),
        }
    }
}

/// A page shown for a failure of `GET /success`.
struct ErrorPage {
    /// `None`: the error's own status (from the one table in `error.rs`).
    status: Option<u16>,
    title: &'static str,
    text: &'static str,
}

const fn error_page(status: Option<u16>, title: &'static str, text: &'static str) -> ErrorPage {
    ErrorPage {
        status,
        title,
        text,
    }
}

/// The one table of failure pages, first match wins. A browser's link to a session that is
/// not there (here or at Stripe) is a 404 page, although the JSON routes answer a Stripe 404
/// with 400; a caller's error other than those is a 400 page, a fault of ours its own 5xx.
fn success_error(error: &AppError) -> ErrorPage {
    match error {
        AppError::Billing(BillingError::InvalidSessionId) => error_page(
            None,
            "Invalid link",
            "This link does not name a Checkout Session.",
        ),
        AppError::Billing(BillingError::SessionNotComplete) => error_page(
            None,
            "Not finished yet",
            "This Checkout Session is not complete. Go back to Checkout to finish it.",
        ),
        AppError::Billing(BillingError::SetupNotSucceeded) => error_page(
            None,
            "Card not saved",
            "Your card could not be saved. Go back to Checkout and try again, or use another card.",
        ),
        AppError::TooManyRequests => error_page(
            None,
            "Too many requests",
            "Please wait a minute, then reload this page.",
        ),
        AppError::NotFound => error_page(None, "Unknown session", "No such Checkout Session here."),
        AppError::Stripe(StripeError::Api(api)) if api.status == 404 => error_page(
            Some(404),
            "Unknown session",
            "Stripe knows no such Checkout Session.",
        ),
        other if other.status() == 503 => error_page(
            None,
            "Please try again",
            "We could not reach our payment provider. Reload this page in a moment.",
        ),
        other if other.status() < 500 => error_page(
            Some(400),
            "Could not complete",
            "This Checkout Session could not be completed.",
        ),
        _ => error_page(
            None,
            "Something went wrong",
            "The card could not be recorded because of an error on our side.",
        ),
    }
}

/// The status and page for a failed success page.
pub fn success_error_page(error: &AppError) -> (u16, String) {
    let page = success_error(error);
    let status = page.status.unwrap_or_else(|| error.status());
    (status, self::page(page.title, &[page.text.to_owned()]))
}

/// The page for a failure of the anonymous "Save a card" form. It never quotes Stripe (whose
/// message may say whether a customer exists, or quote what was sent), and a refusal of
/// Stripe's is this service's failure to open Checkout (502), not the visitor's.
pub fn setup_error_page(error: &AppError) -> (u16, String) {
    let (status, title, text) = match error {
        AppError::CrossSiteForm => (
            403,
            "Not allowed",
            "This form can only be sent from this site's own page.",
        ),
        AppError::TooManyRequests => (
            429,
            "Too many requests",
            "Please wait a minute and try again.",
        ),
        AppError::NotFound => (404, "Not here", "There is no such page here."),
        AppError::Stripe(_) if error.status() < 500 => (
            502,
            "Could not open Checkout",
            "We could not open the payment page. Please try again later.",
        ),
        other if other.status() < 500 => (
            other.status(),
            "Invalid request",
            "This form cannot be sent that way. Go back and try again.",
        ),
        other if other.status() == 503 => (
            503,
            "Please try again",
            "We could not reach our payment provider. Try again in a moment.",
        ),
        other => (
            other.status(),
            "Something went wrong",
            "We could not open the payment page because of an error on our side.",
        ),
    };
    (status, page(title, &[text.to_owned()]))
}
