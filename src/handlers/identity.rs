//! Identity events: the verification status per user, through the pure state machine in
//! `crate::identity`.

use crate::event::Event;
use crate::services::Services;
use crate::store::Store;
use crate::stripe::Transport;
use crate::webhook::Outcome;

use super::StepError;

pub const CREATED: &str = "identity.verification_session.created";
pub const PROCESSING: &str = "identity.verification_session.processing";
pub const VERIFIED: &str = "identity.verification_session.verified";
pub const REQUIRES_INPUT: &str = "identity.verification_session.requires_input";
pub const CANCELED: &str = "identity.verification_session.canceled";
pub const REDACTED: &str = "identity.verification_session.redacted";

pub const EVENT_TYPES: &[&str] = &[
    CREATED,
    PROCESSING,
    VERIFIED,
    REQUIRES_INPUT,
    CANCELED,
    REDACTED,
];

pub async fn handle<S: Store, T: Transport>(
    _event: &Event,
    _services: &Services<'_, S, T>,
) -> Result<Outcome, StepError> {
    Ok(Outcome::Ignored)
}
