//! The one native integration test binary (as zero-to-production's `tests/api/main.rs`):
//! scenario tests of the core through its public API, one module per area, sharing
//! `helpers`. Unit tests stay beside the pure code in `src/`.

mod helpers;

mod billing_flow;
mod catchup;
mod deploy_config;
mod hostile_input;
mod identity_flow;
mod layers;
mod outbox;
mod signature_vectors;
mod stripe_client;
mod thin_events;
mod trigger_fixtures;
