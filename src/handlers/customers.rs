//! The customer's record, written by both flows that give a customer a default payment
//! method: a saved card (`setup`) and a paid recovery session (`charges`).

use crate::billing::CustomerRecord;
use crate::http::Transport;
use crate::services::Services;
use crate::store::{keys, Store};

use super::{Step, StepError};

/// Writes `customer:{id}` unless the stored record holds the card of a newer session (or
/// already this one: a repeat writes nothing). Serves a saved card and a paid recovery's.
pub async fn save_customer<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    record: &CustomerRecord,
    session_id: &str,
) -> Result<(), StepError> {
    let key = keys::customer(&record.id);
    let stored = key
        .load_tolerant(services.store)
        .await
        .step("load_customer")?;
    let unchanged = stored.as_ref().is_some_and(|s| {
        s.default_payment_method == record.default_payment_method
            && s.checkout_session == record.checkout_session
    });
    if unchanged {
        return Ok(());
    }
    if record.replaces(stored.as_ref()) {
        key.save(services.store, record, None)
            .await
            .step("save_customer")?;
    } else {
        services.trace.note(format!(
            "customer {} keeps the card of a newer session than {session_id}",
            record.id
        ));
    }
    Ok(())
}
