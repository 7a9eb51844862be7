//! Every HTML page of the service, with its escaping and headers: the "Save a card" form,
//! the success page, and its failure pages (one table). Pure; the routes send what it gives.

use crate::billing::BillingError;
use crate::error::AppError;
use crate::stripe::StripeError;

/// The headers every page carries besides its content type. Not cached (a page about a
/// session or a card); nothing but inline styles and this site's favicon loads; forms post
/// only here and to Checkout (Chrome applies `form-action` to the 303 that follows a post
/// too); never framed (no clickjacking); no type sniffing; no Referer (a success URL carries
/// its session id). `checkout_origin` is Stripe Checkout's (or the local stand-in's).
pub fn page_headers(checkout_origin: &str) -> [(&'static str, String); 4] {
    [
        ("cache-control", "no-store".to_owned()),
        (
            "content-security-policy",
            format!(
                "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self' {checkout_origin}; frame-ancestors 'none'; base-uri 'none'"
            ),
        ),
        ("x-content-type-options", "nosniff".to_owned()),
        ("referrer-policy", "no-referrer".to_owned()),
    ]
}

/// `GET /favicon.ico`: a card, 16×16 (a PNG in an ICO, 117 bytes). Every page names it, so a
/// browser finds it under the pages' CSP (`img-src 'self'`) rather than logging a 404.
pub const FAVICON: &[u8] = include_bytes!("favicon.ico");
pub const FAVICON_TYPE: &str = "image/x-icon";

/// The style of every page: one narrow column that fits a phone (the viewport tag), and long
/// words (a session id is 66 characters) wrapped rather than widening the page.
const BODY_STYLE: &str = "font-family:system-ui,sans-serif;max-width:32em;margin:2em auto;padding:0 1em;line-height:1.4;overflow-wrap:anywhere";

/// A whole page: `title` is text (escaped here), `body` is HTML.
pub fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n<link rel=\"icon\" href=\"/favicon.ico\">\n<title>{title}</title>\n<body style=\"{BODY_STYLE}\">\n<h1>{title}</h1>\n{body}</body></html>\n",
        title = escape_html(title),
    )
}

/// The "Save a card" page at `GET /`.
pub fn home() -> String {
    document(
        "Save a card for later",
        r#"<p>You will be sent to Stripe Checkout to enter a card. Nothing is charged now.</p>
<form method="post" action="/create-checkout-session">
<input type="hidden" name="currency" value="">
<p><button type="submit">Save a card</button></p>
</form>
"#,
    )
}

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

/// A link on a page: where to, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub href: String,
    pub text: &'static str,
}

impl Link {
    fn home() -> Self {
        Self {
            href: "/".to_owned(),
            text: "Home",
        }
    }
}

/// A small page; `title` and `paragraphs` are text, escaped here, followed by `links`.
pub fn page_with_links(title: &str, paragraphs: &[String], links: &[Link]) -> String {
    let mut body: String = paragraphs
        .iter()
        .map(|p| format!("<p>{}</p>\n", escape_html(p)))
        .collect();
    for link in links {
        body.push_str(&format!(
            "<p><a href=\"{}\">{}</a></p>\n",
            escape_html(&link.href),
            escape_html(link.text)
        ));
    }
    document(title, &body)
}

/// A small page with a link back to the home page.
pub fn page(title: &str, paragraphs: &[String]) -> String {
    page_with_links(title, paragraphs, &[Link::home()])
}

/// Digits after the decimal point in Stripe's amounts of `currency` (its minor unit), per
/// Stripe's list of currencies (docs.stripe.com/currencies): none for the zero-decimal ones,
/// three for the three-decimal ones, two for every other. ISK, HUF and TWD are sent with two
/// decimals too (Stripe's "special cases": 500 is 5 ISK), so they are not in the zero list.
pub fn currency_exponent(currency: &str) -> u32 {
    const ZERO_DECIMAL: &[&str] = &[
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
        "xaf", "xof", "xpf",
    ];
    const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];
    let code = currency.to_ascii_lowercase();
    if ZERO_DECIMAL.contains(&code.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&code.as_str()) {
        3
    } else {
        2
    }
}

/// An amount in the currency's smallest unit, as a person reads it: in the major unit, with
/// its decimals and thousands grouped, then the code (`2500`, `eur` → `25.00 EUR`; `1000`,
/// `jpy` → `1,000 JPY`; `1500`, `kwd` → `1.500 KWD`).
pub fn format_amount(amount: i64, currency: &str) -> String {
    let exponent = currency_exponent(currency);
    let unit = 10u64.pow(exponent);
    let magnitude = amount.unsigned_abs();
    let digits = (magnitude / unit).to_string();
    let mut major = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            major.push(',');
        }
        major.push(digit);
    }
    let sign = if amount < 0 { "-" } else { "" };
    let code = currency.to_ascii_uppercase();
    if exponent == 0 {
        format!("{sign}{major} {code}")
    } else {
        let minor = magnitude % unit;
        let width = exponent as usize;
        format!("{sign}{major}.{minor:0width$} {code}")
    }
}

/// An amount as Stripe gives it: in the currency's smallest unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub amount: i64,
    pub currency: String,
}

impl Money {
    /// Both of Stripe's fields (`amount_total` and `currency`), when both are there.
    pub fn from_parts(amount: Option<i64>, currency: Option<&str>) -> Option<Self> {
        match (amount, currency) {
            (Some(amount), Some(currency)) if !currency.is_empty() => Some(Self {
                amount,
                currency: currency.to_owned(),
            }),
            _ => None,
        }
    }

    pub fn display(&self) -> String {
        format_amount(self.amount, &self.currency)
    }
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
        /// The session's `amount_total` in its `currency`, when Stripe gave both.
        amount: Option<Money>,
    },
    /// Completed with a delayed payment method: paid once the money arrives.
    PaymentProcessing {
        session: String,
        amount: Option<Money>,
    },
    /// Not complete: still open at Checkout (its `url`, to go back and finish), or expired
    /// (no `url`: nothing more can be done with it).
    NotFinished { checkout_url: Option<String> },
}

impl SuccessView {
    /// 200, but the session-not-complete error's own status (409, from the one table in
    /// `error.rs`) for a session that is not finished.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFinished { .. } => AppError::from(BillingError::SessionNotComplete).status(),
            _ => 200,
        }
    }

    pub fn render(&self) -> String {
        let paid = |amount: &Option<Money>, done: &str| match amount {
            Some(money) => format!("Thank you: your payment of {} {done}.", money.display()),
            None => format!("Thank you: your payment {done}."),
        };
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
            Self::PaymentReceived { session, amount } => page(
                "Payment received",
                &[
                    paid(amount, "went through"),
                    format!("Reference: {session}"),
                ],
            ),
            Self::PaymentProcessing { session, amount } => page(
                "Payment processing",
                &[
                    paid(amount, "is being processed"),
                    "It can take a few days to arrive; you will hear from us when it has.".to_owned(),
                    format!("Reference: {session}"),
                ],
            ),
            Self::NotFinished {
                checkout_url: Some(url),
            } => page_with_links(
                "Not finished yet",
                &["This Checkout Session is not complete. Go back to Checkout to finish it.".to_owned()],
                &[
                    Link {
                        href: url.clone(),
                        text: "Back to Checkout",
                    },
                    Link::home(),
                ],
            ),
            Self::NotFinished { checkout_url: None } => page(
                "Session expired",
                &["This Checkout Session has expired and can no longer be completed. Start again, or ask for a new payment link.".to_owned()],
            ),
        }
    }
}

/// A Checkout URL fit for a link on a page: http(s) only, so Stripe's answer can never make
/// it a `javascript:` link.
pub fn checkout_link(url: Option<&str>) -> Option<String> {
    url.filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(str::to_owned)
}

/// A page shown for a failure of `GET /success`.
struct ErrorPage {
    /// `None`: the error's own status (from the one table in `error.rs`).
    status: Option<u16>,
    title: &'static str,
    text: &'static str,
}

/// A session this service did not make, or that Stripe does not know: said to the customer,
/// who knows a link, not Stripe's objects.
const UNKNOWN_SESSION: &str =
    "We do not know this payment link. Check that it was copied whole, or start again from the home page.";

const fn row(status: Option<u16>, title: &'static str, text: &'static str) -> ErrorPage {
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
        AppError::Billing(BillingError::InvalidSessionId) => row(
            None,
            "Invalid link",
            "This link does not name a Checkout Session.",
        ),
        AppError::Billing(BillingError::SessionNotComplete) => row(
            None,
            "Not finished yet",
            "This Checkout Session is not complete. Go back to Checkout to finish it.",
        ),
        AppError::Billing(BillingError::SetupNotSucceeded) => row(
            None,
            "Card not saved",
            "Your card could not be saved. Go back to Checkout and try again, or use another card.",
        ),
        AppError::TooManyRequests => row(
            None,
            "Too many requests",
            "Please wait a minute, then reload this page.",
        ),
        AppError::NotFound => row(None, "Unknown session", UNKNOWN_SESSION),
        AppError::Stripe(StripeError::Api(api)) if api.status == 404 => {
            row(Some(404), "Unknown session", UNKNOWN_SESSION)
        }
        other if other.status() == 503 => row(
            None,
            "Please try again",
            "We could not reach our payment provider. Reload this page in a moment.",
        ),
        other if other.status() < 500 => row(
            Some(400),
            "Could not complete",
            "This Checkout Session could not be completed.",
        ),
        _ => row(
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
    if let AppError::SetupCeilingFull { retry_after } = error {
        let text = format!(
            "This form has opened as many payment pages as it may for now. Please try again in {}.",
            wait_text(*retry_after)
        );
        return (error.status(), page("Please come back later", &[text]));
    }
    let (status, title, text) = match error {
        AppError::CrossSiteForm => (
            403,
            "Not allowed",
            "This form can only be sent from this site's own page.",
        ),
        AppError::Stripe(_) if error.status() < 500 => (
            502,
            "Could not open Checkout",
            "We could not open the payment page. Please try again later.",
        ),
        AppError::TooManyRequests | AppError::NotFound | AppError::MethodNotAllowed { .. } => {
            return error_page(error)
        }
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

/// `Retry-After` in words, rounded up: "a minute", "12 minutes", "5 hours".
fn wait_text(seconds: u64) -> String {
    match seconds {
        0..=60 => "a minute".to_owned(),
        61..=3600 => format!("{} minutes", seconds.div_ceil(60)),
        _ => match seconds.div_ceil(3600) {
            1 => "an hour".to_owned(),
            hours => format!("{hours} hours"),
        },
    }
}

/// The page for any other refused or failed request a browser makes (an unknown path, a
/// page route opened with the wrong method, a setting missing): the error's own status, and
/// text that never quotes the error (a configuration error names a setting).
pub fn error_page(error: &AppError) -> (u16, String) {
    let status = error.status();
    let (title, text) = match error {
        AppError::NotFound => ("Not here", "There is no such page here."),
        AppError::MethodNotAllowed { .. } => (
            "Method not allowed",
            "This page cannot be opened that way. Start again from the home page.",
        ),
        AppError::TooManyRequests => ("Too many requests", "Please wait a minute and try again."),
        _ if status == 503 => (
            "Please try again",
            "The service is briefly unavailable. Try again in a moment.",
        ),
        _ if status < 500 => (
            "Invalid request",
            "This page cannot be opened that way. Start again from the home page.",
        ),
        _ => (
            "Something went wrong",
            "This page is unavailable because of an error on our side.",
        ),
    };
    (status, page(title, &[text.to_owned()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_ceiling_the_form_says_when_to_come_back() {
        let (status, body) = setup_error_page(&AppError::SetupCeilingFull { retry_after: 45 });
        assert_eq!(status, 503);
        assert!(body.contains("Please come back later") && body.contains("in a minute."));
        let late = setup_error_page(&AppError::SetupCeilingFull {
            retry_after: 5 * 3600 - 10,
        })
        .1;
        assert!(late.contains("in 5 hours."), "{late}");
        assert_eq!(wait_text(61), "2 minutes");
        assert_eq!(wait_text(3601), "2 hours");
        assert_eq!(wait_text(3600), "60 minutes");
    }

    #[test]
    fn amounts_show_in_the_currencys_major_unit() {
        assert_eq!(format_amount(2500, "eur"), "25.00 EUR");
        assert_eq!(format_amount(1099, "usd"), "10.99 USD");
        assert_eq!(format_amount(5, "usd"), "0.05 USD");
        assert_eq!(format_amount(0, "gbp"), "0.00 GBP");
        assert_eq!(format_amount(99_999_999, "usd"), "999,999.99 USD");
        // Zero-decimal: the amount is the number of yen.
        assert_eq!(format_amount(1000, "jpy"), "1,000 JPY");
        assert_eq!(format_amount(500, "KRW"), "500 KRW");
        assert_eq!(format_amount(1_234_567, "vnd"), "1,234,567 VND");
        // Three-decimal.
        assert_eq!(format_amount(1500, "kwd"), "1.500 KWD");
        assert_eq!(format_amount(5120, "bhd"), "5.120 BHD");
        assert_eq!(format_amount(10, "tnd"), "0.010 TND");
        // Stripe's special cases keep two decimals in the API: 500 is 5 ISK.
        assert_eq!(format_amount(500, "isk"), "5.00 ISK");
        assert_eq!(format_amount(-250, "usd"), "-2.50 USD");
        for zero in [
            "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
            "vuv", "xaf", "xof", "xpf",
        ] {
            assert_eq!(currency_exponent(zero), 0, "{zero}");
        }
        for three in ["bhd", "jod", "kwd", "omr", "tnd"] {
            assert_eq!(currency_exponent(three), 3, "{three}");
        }
        for two in ["usd", "eur", "huf", "twd", "isk", "chf"] {
            assert_eq!(currency_exponent(two), 2, "{two}");
        }
    }

    #[test]
    fn a_payment_page_shows_its_amount_and_wraps_its_reference() {
        let session = format!("cs_test_a1{}", "Z".repeat(56));
        let html = SuccessView::PaymentReceived {
            session: session.clone(),
            amount: Money::from_parts(Some(2500), Some("eur")),
        }
        .render();
        assert!(
            html.contains("your payment of 25.00 EUR went through"),
            "{html}"
        );
        assert!(html.contains(&session));
        assert!(html.contains("overflow-wrap:anywhere"), "{html}");
        assert!(html.contains("name=\"viewport\""));
        let processing = SuccessView::PaymentProcessing {
            session: "cs_1".into(),
            amount: Money::from_parts(Some(1000), Some("jpy")),
        }
        .render();
        assert!(
            processing.contains("your payment of 1,000 JPY is being processed"),
            "{processing}"
        );
        // Without an amount from Stripe, no made-up one.
        let unknown = SuccessView::PaymentReceived {
            session: "cs_1".into(),
            amount: Money::from_parts(None, Some("eur")),
        }
        .render();
        assert!(
            unknown.contains("Thank you: your payment went through."),
            "{unknown}"
        );
    }

    #[test]
    fn a_session_not_finished_links_back_to_its_checkout_page() {
        let open = SuccessView::NotFinished {
            checkout_url: checkout_link(Some("https://checkout.stripe.com/c/pay/cs_1?a=1&b=\"2\"")),
        };
        assert_eq!(open.status(), 409);
        let html = open.render();
        assert!(
            html.contains("<a href=\"https://checkout.stripe.com/c/pay/cs_1?a=1&amp;b=&quot;2&quot;\">Back to Checkout</a>"),
            "{html}"
        );
        assert_eq!(checkout_link(Some("javascript:alert(1)")), None);
        assert_eq!(checkout_link(None), None);
        let expired = SuccessView::NotFinished { checkout_url: None };
        assert_eq!(expired.status(), 409);
        assert!(expired.render().contains("Session expired"));
        assert!(!expired.render().contains("Back to Checkout"));
        let saved = SuccessView::CardSaved {
            customer: "cus_1".into(),
            brand: None,
            last4: None,
        };
        assert_eq!(saved.status(), 200);
    }

    #[test]
    fn a_success_page_for_a_session_stripe_does_not_know_speaks_to_the_customer() {
        let mut api: crate::stripe::ApiError = serde_json::from_str(
            r#"{"type":"invalid_request_error","message":"No such checkout.session: cs_test_x"}"#,
        )
        .unwrap();
        api.status = 404;
        let (status, html) = success_error_page(&AppError::Stripe(StripeError::Api(Box::new(api))));
        assert_eq!(status, 404);
        assert!(html.contains("Unknown session"), "{html}");
        // The customer is not told about Stripe's inner workings, nor Stripe's words.
        assert!(!html.contains("Stripe knows"), "{html}");
        assert!(!html.contains("No such"), "{html}");
    }

    #[test]
    fn browser_error_pages_have_the_errors_status_and_never_quote_it() {
        let (status, html) = error_page(&AppError::NotFound);
        assert_eq!(status, 404);
        assert!(html.contains("Not here") && html.starts_with("<!doctype html>"));
        let (status, html) = error_page(&AppError::MethodNotAllowed { allow: "POST" });
        assert_eq!(status, 405);
        assert!(html.contains("<a href=\"/\">Home</a>"), "{html}");
        // A 405 is not a missing page: its title says what happened.
        assert!(html.contains("<title>Method not allowed"), "{html}");
        assert!(!html.contains("Not here"), "{html}");
        let missing = AppError::Config(crate::config::ConfigError::Missing("STRIPE_SECRET_KEY"));
        let (status, html) = error_page(&missing);
        assert_eq!(status, 500);
        assert!(!html.contains("STRIPE_SECRET_KEY"), "{html}");
        assert_eq!(error_page(&AppError::TooManyRequests).0, 429);
        assert_eq!(setup_error_page(&AppError::NotFound).0, 404);
        assert_eq!(
            setup_error_page(&AppError::MethodNotAllowed { allow: "POST" }).0,
            405
        );
    }

    #[test]
    fn every_page_names_the_favicon_its_csp_lets_load() {
        for html in [home(), page("t", &[]), error_page(&AppError::NotFound).1] {
            assert!(
                html.contains("<link rel=\"icon\" href=\"/favicon.ico\">"),
                "{html}"
            );
            assert!(html.contains("width=device-width"));
        }
        let [_, (_, csp), ..] = page_headers("https://checkout.stripe.com");
        assert!(csp.contains("img-src 'self';"), "{csp}");
        // An ICO (reserved 0, type 1, one image) holding a PNG.
        assert_eq!(&FAVICON[..6], &[0, 0, 1, 0, 1, 0]);
        assert_eq!(&FAVICON[22..26], b"\x89PNG");
        assert!(FAVICON.len() < 512);
    }
}
