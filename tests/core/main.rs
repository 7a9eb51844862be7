//! The one native integration test binary: scenario tests of the core through its public API,
//! one module per area.

mod billing_flow;
mod layers;
