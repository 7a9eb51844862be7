//! The Stripe API client: request building, error decoding and the retry policy are pure;
//! the network, the clock, sleeping and randomness come through the small [`Transport`] port
//! (Workers fetch in production, a scripted fake in native tests).
//!
//! Rules, after Stripe's own SDKs: form-encoded bodies with bracketed keys; `Authorization:
//! Bearer`; a pinned `Stripe-Version`; an `Idempotency-Key` on every POST, the same on every
//! retry; retries for network errors, 409, 429, 5xx and `Stripe-Should-Retry: true`, never for
//! `Stripe-Should-Retry: false`; exponential backoff with jitter inside an overall deadline.

//!
//! One file per concern, like async-stripe's client core: [`request`] (form, idempotency keys,
//! the request), [`calls`] (one function per endpoint), [`error`] (Stripe's errors and the
//! decoding of answers), [`retry`] (the policy), [`client`] (running a request through the
//! transport); Workers fetch in `fetch`.

pub mod calls;
pub mod client;
pub mod error;
#[cfg(target_arch = "wasm32")]
pub mod fetch;
pub mod request;
pub mod retry;

pub use client::*;
pub use error::*;
pub use request::*;
pub use retry::*;
