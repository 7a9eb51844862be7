//! Identity events and session creation: load the session and user records, let the pure
//! state machine in `crate::identity` decide, store the result, notify the user.

use crate::error::AppError;
use crate::event::{Event, EventError, EventKind, Outcome};
use crate::http::Transport;
use crate::identity::{
    self, CreateError, Incoming, InvalidField, SessionEvent, SessionRecord, UserNotice, UserRecord,
};
use crate::notify::{Notification, Recipient};
use crate::objects::VerificationSession;
use crate::provenance;
use crate::services::Services;
use crate::store::{keys, Store};
use crate::stripe::{calls, is_stripe_id, IdempotencyKey};

use super::{Handled, Step, StepError};

/// An Identity event: the session's record and its user's, moved forward by
/// `identity::apply`, with a notification when the user should hear of it.
pub async fn handle<S: Store, T: Transport>(
    event: &Event,
    kind: EventKind,
    services: &Services<'_, S, T>,
) -> Result<Handled, StepError> {
    // `dispatch` sends only Identity kinds here.
    let Some(kind) = SessionEvent::from_kind(kind) else {
        return Ok(Outcome::Ignored.into());
    };
    let session: VerificationSession = event.object().step("decode_session")?;
    if !is_stripe_id(&session.id) {
        return Err(EventError::NotAnEvent(
            "data.object.id is not a Stripe id".into(),
        ))
        .step("decode_session");
    }
    let store = services.store;
    let session_key = keys::identity_session(&session.id);
    let stored_session = session_key
        .load_tolerant(store)
        .await
        .step("load_session")?;
    if !identity::is_ours(
        &session,
        stored_session.as_ref(),
        &services.config.deployment_id,
    ) {
        services.trace.note(format!(
            "verification session {} was not created by this deployment; ignored",
            session.id
        ));
        return Ok(Handled::ignored(provenance::NOT_MADE_HERE));
    }
    if identity::owner_changed(&session, stored_session.as_ref()) {
        services.trace.note(format!(
            "verification session {} names another user than the one recorded; ignored",
            session.id
        ));
        return Ok(Handled::ignored(identity::OWNER_CHANGED));
    }
    let user_id = identity::user_of(&session, stored_session.as_ref());
    let stored_user = match &user_id {
        Some(user_id) => keys::identity_user(user_id)
            .load_tolerant(store)
            .await
            .step("load_user")?,
        None => None,
    };
    let max_attempts = services.config.identity_max_attempts;
    let transition = identity::apply(
        stored_session.as_ref(),
        stored_user.as_ref(),
        Incoming {
            event_id: &event.id,
            event_created: event.created,
            kind,
            session: &session,
        },
        max_attempts,
    );
    if user_id.is_none() {
        services.trace.note(format!(
            "verification session {} has no metadata.user_id; recorded under the session only",
            session.id
        ));
    }
    let Some(session_record) = transition.session else {
        services.trace.note(format!(
            "event {} is older than what is stored for {}; no change",
            event.id, session.id
        ));
        return Ok(Outcome::Handled.into());
    };
    store_transition(
        services,
        &event.id,
        transition.notice,
        transition.user,
        session_record,
    )
    .await?;
    Ok(Outcome::Handled.into())
}

/// The notification first: its outbox record makes it once, and a redelivery after a failure
/// of a later write computes the same notice again (nothing it depends on was stored yet).
/// Then the user, then the session: a redelivery after a failure between those two finds the
/// session not yet updated and applies the event again.
async fn store_transition<S: Store, T: Transport>(
    services: &Services<'_, S, T>,
    event_id: &str,
    notice: Option<UserNotice>,
    user: Option<UserRecord>,
    session_record: SessionRecord,
) -> Result<(), StepError> {
    if let Some(notice) = notice {
        services
            .notify(notification(event_id, notice))
            .await
            .step("notify")?;
    }
    if let Some(user) = &user {
        keys::identity_user(&user.user_id)
            .save(services.store, user, None)
            .await
            .step("save_user")?;
    }
    keys::identity_session(&session_record.id)
        .save(services.store, &session_record, None)
        .await
        .step("save_session")
}

fn notification(source: &str, notice: UserNotice) -> Notification {
    let kind = format!("identity.{}", notice.status);
    // Every field but `user_id` (the recipient), copied rather than removed: `remove` is the
    // only B-tree removal in the crate and would link its rebalancing (~4.7 KB of wasm).
    let mut payload = serde_json::Map::new();
    if let Ok(serde_json::Value::Object(map)) = crate::json::to_value(&notice) {
        for (key, value) in map {
            if key != "user_id" {
                payload.insert(key, value);
            }
        }
    }
    Notification::new(source, &kind, Recipient::User(notice.user_id), payload)
}

/// `POST /identity/verification-sessions`, as sent: every field stays raw until
/// [`CreateSession::parse`], so a missing or mistyped field is answered with that field's
/// own code (`invalid_user_id`, …) rather than a generic JSON error.
#[derive(Debug, Default)]
pub struct CreateSessionInput {
    pub user_id: Option<serde_json::Value>,
    pub kind: Option<serde_json::Value>,
    pub return_url: Option<serde_json::Value>,
    /// Names this creation: the same key returns the same session (Stripe keeps keys 24 h).
    pub idempotency_key: Option<serde_json::Value>,
    /// `true`: a new session even when the latest one could be re-opened.
    pub new_session: Option<serde_json::Value>,
}
crate::json::decode_map!(CreateSessionInput deny_unknown_fields {
    user_id: "user_id" default,
    kind: "type" default,
    return_url: "return_url" default,
    idempotency_key: "idempotency_key" default,
    new_session: "new_session" default,
});

/// A creation request whose fields are strings; [`CreateSession::validate`] checks their values.
/// It crosses into the user's queue (`queue::Work`) as JSON.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreateSession {
    pub user_id: String,
    pub kind: String,
    pub return_url: Option<String>,
    pub idempotency_key: Option<String>,
    pub new_session: bool,
}
crate::json::decode_map!(CreateSession {
    user_id: "user_id" required,
    kind: "kind" required,
    return_url: "return_url" default,
    idempotency_key: "idempotency_key" default,
    new_session: "new_session" default,
});

/// What the creation route answers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Created {
    pub id: String,
    pub url: Option<String>,
    pub client_secret: Option<String>,
    pub status: String,
    pub user_id: String,
    pub attempts: u32,
    pub remaining_attempts: u32,
    /// The user's latest session, re-opened for another submission (no new session made).
    pub reopened: bool,
}
crate::json::decode_map!(Created {
    id: "id" required,
    url: "url" default,
    client_secret: "client_secret" default,
    status: "status" required,
    user_id: "user_id" required,
    attempts: "attempts" required,
    remaining_attempts: "remaining_attempts" required,
    reopened: "reopened" required,
});

impl CreateSession {
    /// The fields as strings (`type` defaults to `document`); a missing `user_id` or a field
    /// that is not a string is refused with that field's code.
    pub fn parse(input: CreateSessionInput) -> Result<Self, CreateError> {
        let text = |value: Option<serde_json::Value>, field: InvalidField| {
            crate::router::json_text(value).map_err(|()| CreateError::Invalid(field))
        };
        Ok(Self {
            user_id: text(input.user_id, InvalidField::UserId)?
                .ok_or(CreateError::Invalid(InvalidField::UserId))?,
            kind: text(input.kind, InvalidField::Type)?.unwrap_or_else(|| "document".into()),
            return_url: text(input.return_url, InvalidField::ReturnUrl)?,
            idempotency_key: text(input.idempotency_key, InvalidField::IdempotencyKey)?,
            new_session: match input.new_session {
                None | Some(serde_json::Value::Null) => false,
                Some(serde_json::Value::Bool(new)) => new,
                Some(_) => return Err(CreateError::Invalid(InvalidField::NewSession)),
            },
        })
    }

    /// A JSON body decoded and parsed as the route does.
    pub fn from_json(body: serde_json::Value) -> Result<Self, AppError> {
        let input: CreateSessionInput = serde_json::from_value(body)
            .map_err(|e| AppError::BadJson(crate::router::describe_json_error(&e)))?;
        Ok(Self::parse(input)?)
    }

    pub fn validate(&self) -> Result<(), CreateError> {
        if !identity::is_user_id(&self.user_id) {
            return Err(InvalidField::UserId.into());
        }
        if !matches!(self.kind.as_str(), "document" | "id_number") {
            return Err(InvalidField::Type.into());
        }
        if let Some(key) = &self.idempotency_key {
            // With its `identity.{user_id}:key:` prefix it stays within Stripe's 255.
            if !IdempotencyKey::is_valid_caller_key(key, 100) {
                return Err(InvalidField::IdempotencyKey.into());
            }
        }
        if let Some(url) = &self.return_url {
            if !crate::config::is_allowed_url(url) {
                return Err(InvalidField::ReturnUrl.into());
            }
        }
        Ok(())
    }
}

impl CreateSession {
    /// One key per user and creation (`identity.{user}:{n}`), or the caller's own name for it
    /// (`identity.{user}:key:{k}`). A user id has no `:`, and `n` is digits, so the two
    /// families never meet (the caller's key once followed `.key:`, which a user id ending in
    /// `.key` could forge).
    fn key(&self, creation: u32) -> IdempotencyKey {
        match &self.idempotency_key {
            Some(key) => IdempotencyKey::scoped(&format!("identity.{}:key", self.user_id), key),
            None => {
                IdempotencyKey::scoped(&format!("identity.{}", self.user_id), &creation.to_string())
            }
        }
    }
}

/// Re-opens the user's latest session when its check failed with a code another attempt may
/// change (`UserRecord::reopenable`): retrieved from Stripe for a fresh `url` and
/// `client_secret` (Stripe: "When the session status is requires_input, you can use this
/// method to retrieve a valid client_secret or url to allow re-submission"). Nothing is
/// counted or stored now: the submission counts when the user makes it (`processing`).
/// `None` when there is none to re-open, or Stripe says it was canceled meanwhile.
async fn reopen<S: Store, T: Transport>(
    user: &UserRecord,
    services: &Services<'_, S, T>,
) -> Result<Option<Created>, AppError> {
    let Some(id) = user.reopenable() else {
        return Ok(None);
    };
    let session: VerificationSession = services
        .stripe(&calls::retrieve_verification_session(id))
        .await?;
    if session.status == "canceled" {
        return Ok(None);
    }
    let max_attempts = services.config.identity_max_attempts;
    Ok(Some(Created {
        id: session.id,
        url: session.url,
        client_secret: session.client_secret,
        status: session.status,
        user_id: user.user_id.clone(),
        attempts: user.attempts(),
        remaining_attempts: user.remaining_attempts(max_attempts),
        reopened: true,
    }))
}

/// Creates a VerificationSession for a user within the attempt limit and records it, or
/// re-opens the latest one when it can be submitted again (unless `new_session`).
pub async fn create_session<S: Store, T: Transport>(
    request: &CreateSession,
    services: &Services<'_, S, T>,
) -> Result<Created, AppError> {
    request.validate().map_err(AppError::from)?;
    let store = services.store;
    let user_key = keys::identity_user(&request.user_id);
    let user = user_key.load_tolerant(store).await?;
    let max_attempts = services.config.identity_max_attempts;
    identity::may_create(user.as_ref(), max_attempts).map_err(CreateError::from)?;
    if let Some(user) = user.as_ref().filter(|_| !request.new_session) {
        if let Some(reopened) = reopen(user, services).await? {
            return Ok(reopened);
        }
    }
    // One key per user and creation: a double submit, or the app retrying after a failure
    // past the Stripe call (a timeout, a KV write), gets the same session back from Stripe
    // instead of using up an attempt. The caller may name the creation itself instead.
    let creation = user.as_ref().map_or(0, |u| u.created_here) + 1;
    let key = request.key(creation);
    let session: VerificationSession = services
        .stripe(&calls::create_verification_session(
            &request.kind,
            &request.user_id,
            request.return_url.as_deref(),
            key,
        ))
        .await?;
    // Read again: the session's `created` event may have been handled meanwhile.
    let mut user = user_key
        .load_tolerant(store)
        .await?
        .unwrap_or_else(|| UserRecord::new(&request.user_id));
    if request.idempotency_key.is_none() {
        // A replay of creation n leaves the count at n.
        user.created_here = user.created_here.max(creation);
    }
    if user.add_session(&session.id, session.created) {
        user.status = session.status.clone();
        user.next = identity::Next::None;
        user.last_error = None;
        user.updated_at = user.updated_at.max(services.now);
    }
    // The session record first and the user (whose `created_here` numbers the next key)
    // last: a retry after a failure in between reuses this creation's key and session.
    let session_key = keys::identity_session(&session.id);
    if session_key.load_tolerant(store).await?.is_none() {
        let record = SessionRecord::made_here(&session, Some(&request.user_id));
        session_key.save(store, &record, None).await?;
    }
    user_key.save(store, &user, None).await?;
    Ok(Created {
        id: session.id,
        url: session.url,
        client_secret: session.client_secret,
        status: session.status,
        user_id: request.user_id.clone(),
        attempts: user.attempts(),
        remaining_attempts: user.remaining_attempts(max_attempts),
        reopened: false,
    })
}

/// `GET /identity/users/{id}`: the stored record plus what the limit allows now.
pub async fn user_view<S: Store>(
    store: &S,
    user_id: &str,
    max_attempts: u32,
) -> Result<Option<serde_json::Value>, AppError> {
    if !identity::is_user_id(user_id) {
        return Ok(None);
    }
    let Some(user) = keys::identity_user(user_id).load(store).await? else {
        return Ok(None);
    };
    let mut view = crate::json::to_value(&user)
        .map_err(|_| AppError::Internal("a user record does not serialise"))?;
    if let serde_json::Value::Object(map) = &mut view {
        map.insert("attempts".into(), user.attempts().into());
        map.insert("max_attempts".into(), max_attempts.into());
        map.insert(
            "remaining_attempts".into(),
            user.remaining_attempts(max_attempts).into(),
        );
        map.insert("may_retry".into(), user.may_retry(max_attempts).into());
        if let Some(retry) = user.retry_with(max_attempts) {
            let retry = crate::json::to_value(&retry)
                .map_err(|_| AppError::Internal("a retry kind does not serialise"))?;
            map.insert("retry_with".into(), retry);
        }
        map.insert("explanation".into(), user.explanation(max_attempts).into());
    }
    Ok(Some(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(user_id: &str, key: Option<&str>) -> CreateSession {
        CreateSession {
            user_id: user_id.into(),
            kind: "document".into(),
            return_url: None,
            idempotency_key: key.map(str::to_owned),
            new_session: false,
        }
    }

    #[test]
    fn numbered_and_caller_named_keys_never_collide_whatever_the_user_id() {
        // Under the old scheme user "ann.key" at creation 7 and user "ann" naming "7" both
        // gave `identity.ann.key:7`.
        let numbered = request("ann.key", None).key(7);
        let named = request("ann", Some("7")).key(1);
        assert_eq!(numbered.as_str(), "identity.ann.key:7");
        assert_eq!(named.as_str(), "identity.ann:key:7");
        for user in ["ann", "ann.key", "key", "a.b@c-d"] {
            for n in [1, 7, 42] {
                for caller in ["1", "7", "key:7", "x"] {
                    for other in ["ann", "ann.key", "key", "a.b@c-d"] {
                        assert_ne!(
                            request(user, None).key(n).as_str(),
                            request(other, Some(caller)).key(1).as_str()
                        );
                    }
                }
            }
        }
    }
}
