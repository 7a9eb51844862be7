//! Stripe Identity: the verification state per user and per session, as a pure state machine.
//!
//! [`apply`] takes what is stored and one `identity.verification_session.*` event and returns
//! the new records plus the notification to send; [`may_create`] decides whether a user may
//! start another session. Nothing here touches the store, Stripe or `worker`.
//!
//! Rules:
//! - A session's record never goes back in time: an event older (by `created`) than the last
//!   one applied to that session changes nothing, and a verified or canceled session only
//!   changes to redacted.
//! - The user record follows the user's newest session (by the session's `created`); events
//!   of an older session only update that session's record, except `verified`, which is kept
//!   whichever session it comes from (a verified person stays verified).
//! - Attempts are submissions: each distinct session known for the user (so the creation
//!   route and the `created` event count a session once whichever is seen first), plus each
//!   further submission of a session (Stripe lets a session in `requires_input` be submitted
//!   again, and bills each verification; see [`SessionRecord::submissions`], the same in any
//!   arrival order). A re-opened session counts again only when the user submits it.

use serde::{Deserialize, Serialize};

use crate::event::EventKind;
use crate::objects::{VerificationLastError, VerificationSession};

pub const USER_RECORD_VERSION: u32 = 1;
pub const SESSION_RECORD_VERSION: u32 = 1;

/// `identity.verification_session.{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEvent {
    Created,
    Processing,
    RequiresInput,
    Verified,
    Canceled,
    Redacted,
}

impl SessionEvent {
    /// The Identity event of a `type` string (see [`Self::from_kind`]).
    pub fn from_type(event_type: &str) -> Option<Self> {
        EventKind::parse(event_type).and_then(Self::from_kind)
    }

    /// The Identity event an [`EventKind`] is, if it is one.
    pub fn from_kind(kind: EventKind) -> Option<Self> {
        Some(match kind {
            EventKind::VerificationSessionCreated => Self::Created,
            EventKind::VerificationSessionProcessing => Self::Processing,
            EventKind::VerificationSessionRequiresInput => Self::RequiresInput,
            EventKind::VerificationSessionVerified => Self::Verified,
            EventKind::VerificationSessionCanceled => Self::Canceled,
            EventKind::VerificationSessionRedacted => Self::Redacted,
            EventKind::CheckoutSessionCompleted
            | EventKind::CheckoutSessionAsyncPaymentSucceeded
            | EventKind::CheckoutSessionAsyncPaymentFailed
            | EventKind::CheckoutSessionExpired
            | EventKind::PaymentIntentSucceeded
            | EventKind::PaymentIntentPaymentFailed => return None,
        })
    }

    /// Within one second, the order in which Stripe emits them: ties are broken by it.
    /// Stripe's lifecycle (docs: "How sessions work") is created (`requires_input`), then
    /// `processing` once the user submits, then `verified`, or back to `requires_input` when a
    /// check fails; so a `requires_input` in the same second as `processing` comes after it.
    fn rank(self) -> u8 {
        match self {
            Self::Created => 0,
            Self::Processing => 1,
            Self::RequiresInput => 2,
            Self::Verified | Self::Canceled => 3,
            Self::Redacted => 4,
        }
    }
}

/// What a user is told, and what the creation route allows next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Next {
    /// Nothing to do: verified, or waiting for Stripe (processing) or for the user.
    None,
    /// Start another session (while attempts remain).
    Retry,
    /// No automatic retry; a person reviews the case (e.g. consent declined).
    ManualReview,
    /// The outcome cannot change with another attempt (e.g. under the supported age).
    Final,
}

/// What the user can do about a failed check, told in the notification (`user_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserAction {
    /// Start again (another session), with what the check asked for.
    TryAgain,
    /// The user left the flow before submitting: finish it.
    FinishVerification,
    /// The device cannot run the flow (no camera, old browser): continue on another device.
    SwitchDevice,
    /// Use a valid, unexpired document of a supported type.
    UseAnotherDocument,
    /// Nothing the user can do; the operator decides (manual review) or the outcome is final.
    ContactSupport,
}

/// Every `last_error.code` Stripe defines for the pinned API version (the SDK's
/// `VerificationSession.LastError.Code`, checked against `tests/fixtures/stripe_objects.json`),
/// each decided on purpose: whether another attempt may help, and what the user is told to do.
pub const LAST_ERROR_CODES: &[(&str, Next, UserAction)] = &[
    ("abandoned", Next::Retry, UserAction::FinishVerification),
    // The user refused the biometric consent: a person decides, not another automatic try.
    (
        "consent_declined",
        Next::ManualReview,
        UserAction::ContactSupport,
    ),
    (
        "country_not_supported",
        Next::Final,
        UserAction::ContactSupport,
    ),
    (
        "device_not_supported",
        Next::Retry,
        UserAction::SwitchDevice,
    ),
    (
        "document_expired",
        Next::Retry,
        UserAction::UseAnotherDocument,
    ),
    (
        "document_type_not_supported",
        Next::Retry,
        UserAction::UseAnotherDocument,
    ),
    (
        "document_unverified_other",
        Next::Retry,
        UserAction::TryAgain,
    ),
    ("email_unverified_other", Next::Retry, UserAction::TryAgain),
    // Declining the email or phone one-time code is not a fraud signal; it may be retried.
    (
        "email_verification_declined",
        Next::Retry,
        UserAction::TryAgain,
    ),
    (
        "id_number_insufficient_document_data",
        Next::Retry,
        UserAction::TryAgain,
    ),
    ("id_number_mismatch", Next::Retry, UserAction::TryAgain),
    (
        "id_number_unverified_other",
        Next::Retry,
        UserAction::TryAgain,
    ),
    ("phone_unverified_other", Next::Retry, UserAction::TryAgain),
    (
        "phone_verification_declined",
        Next::Retry,
        UserAction::TryAgain,
    ),
    (
        "selfie_document_missing_photo",
        Next::Retry,
        UserAction::UseAnotherDocument,
    ),
    ("selfie_face_mismatch", Next::Retry, UserAction::TryAgain),
    // A manipulated selfie is a fraud signal: a person reviews it; no automatic retry.
    (
        "selfie_manipulated",
        Next::ManualReview,
        UserAction::ContactSupport,
    ),
    ("selfie_unverified_other", Next::Retry, UserAction::TryAgain),
    (
        "under_supported_age",
        Next::Final,
        UserAction::ContactSupport,
    ),
];

/// How a `last_error.code` is treated ([`LAST_ERROR_CODES`]). Unknown codes are kept verbatim
/// and retryable: Stripe adds codes, and refusing a user for a code we do not know yet would
/// be wrong.
pub fn guidance(code: Option<&str>) -> (Next, UserAction) {
    code.and_then(|code| LAST_ERROR_CODES.iter().find(|(known, ..)| *known == code))
        .map_or((Next::Retry, UserAction::TryAgain), |&(_, next, action)| {
            (next, action)
        })
}

/// Whether another attempt may help after a failure with `code` (see [`guidance`]).
pub fn classify(code: Option<&str>) -> Next {
    guidance(code).0
}

/// The value under `identity:session:{vs_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    pub version: u32,
    pub id: String,
    /// From `metadata.user_id`; `None` when the session carried none.
    pub user_id: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// The session's own `created` (Unix seconds).
    pub session_created: i64,
    /// `created` of the last event applied, and its kind (the ordering key).
    pub event_created: i64,
    pub last_event: Option<SessionEvent>,
    #[serde(default)]
    pub redacted: bool,
    /// This deployment created the session (`crate::provenance`): recorded at creation, or
    /// from the first event carrying its marker, so that its events are still recognised once
    /// a redaction has erased its metadata. Records written before it existed read `false`.
    #[serde(default)]
    pub made_here: bool,
    /// `created` of each `processing` event (the user submitted), also of one that arrived
    /// after a later event: see [`SessionRecord::submissions`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub submitted_at: Vec<i64>,
    /// `created` of each check's outcome: `verified`, or `requires_input` with a failure code
    /// (not `abandoned`, which Stripe gives a session the user left without submitting).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checked_at: Vec<i64>,
}
crate::json::decode_map!(SessionRecord {
    version: "version" required,
    id: "id" required,
    user_id: "user_id" default,
    status: "status" required,
    last_error: "last_error" default,
    session_created: "session_created" required,
    event_created: "event_created" required,
    last_event: "last_event" default,
    redacted: "redacted" default,
    made_here: "made_here" default,
    submitted_at: "submitted_at" default,
    checked_at: "checked_at" default,
});

impl SessionRecord {
    /// The record of a session made here, before any of its events are applied: at its
    /// creation (with its user), or from its first event.
    pub fn made_here(session: &VerificationSession, user_id: Option<&str>) -> Self {
        Self {
            version: SESSION_RECORD_VERSION,
            id: session.id.clone(),
            user_id: user_id.map(str::to_owned),
            status: session.status.clone(),
            last_error: None,
            session_created: session.created,
            event_created: 0,
            last_event: None,
            redacted: false,
            made_here: true,
            submitted_at: Vec::new(),
            checked_at: Vec::new(),
        }
    }

    /// How many times the user submitted this session: each check's outcome ends one
    /// submission (its `processing` event may be missing or late), and a `processing` after
    /// the last outcome is one being checked. Computed from the two sets, so it is the same
    /// whatever order the events arrived in.
    pub fn submissions(&self) -> u32 {
        let last = self.checked_at.iter().max();
        let open = self
            .submitted_at
            .iter()
            .any(|t| last.is_none_or(|last| t > last));
        u32::try_from(self.checked_at.len())
            .unwrap_or(u32::MAX)
            .saturating_add(u32::from(open))
    }

    /// Attempts beyond the session's first: what it adds to the user's `resubmissions`.
    fn resubmissions(&self) -> u32 {
        self.submissions().saturating_sub(1)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastError {
    pub code: Option<String>,
    pub reason: Option<String>,
}
crate::json::decode_map!(LastError {
    code: "code" default,
    reason: "reason" default,
});

impl From<&VerificationLastError> for LastError {
    fn from(error: &VerificationLastError) -> Self {
        Self {
            code: error.code.clone(),
            reason: error.reason.clone(),
        }
    }
}

/// The value under `identity:user:{user_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    pub version: u32,
    pub user_id: String,
    /// The newest session's status (Stripe's words: requires_input, processing, verified,
    /// canceled), or `verified` once any session verified.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    pub next: Next,
    /// Every session started for this user, oldest first (by `created`, then id): the
    /// attempts. Ordered on insertion, so racing events list them as one-by-one ones do.
    pub sessions: Vec<String>,
    /// `created` of each session in `sessions`, in the same order. In a record written before
    /// it existed, the sessions already listed count as created at 0 (older than any added).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions_created: Vec<i64>,
    pub latest_session: Option<String>,
    /// `created` of the latest session.
    pub latest_session_created: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<i64>,
    /// `created` of the last event applied to this record (or the creation time).
    pub updated_at: i64,
    /// Sessions this service created for the user. It numbers the creation Idempotency-Keys,
    /// and unlike `sessions` it does not move when a session's `created` event arrives before
    /// the creation call's answer, so a retried creation reuses its key.
    #[serde(default)]
    pub created_here: u32,
    /// Submissions of a session after its first (a re-opened session submitted again): each
    /// counts as an attempt.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resubmissions: u32,
}
crate::json::decode_map!(UserRecord {
    version: "version" required,
    user_id: "user_id" required,
    status: "status" required,
    last_error: "last_error" default,
    next: "next" required,
    sessions: "sessions" required,
    sessions_created: "sessions_created" default,
    latest_session: "latest_session" default,
    latest_session_created: "latest_session_created" required,
    verified_at: "verified_at" default,
    updated_at: "updated_at" required,
    created_here: "created_here" default,
    resubmissions: "resubmissions" default,
});

/// How the user's next attempt is made, told in the notification and the user view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryWith {
    /// `POST /identity/verification-sessions` re-opens the latest session (Stripe lets a
    /// session in `requires_input` be submitted again); it counts when the user submits.
    ReopenSession,
    /// A new session (the latest one cannot be submitted again).
    NewSession,
}

impl UserRecord {
    pub fn new(user_id: &str) -> Self {
        Self {
            version: USER_RECORD_VERSION,
            user_id: user_id.to_owned(),
            status: "none".into(),
            last_error: None,
            next: Next::Retry,
            sessions: Vec::new(),
            sessions_created: Vec::new(),
            latest_session: None,
            latest_session_created: 0,
            verified_at: None,
            updated_at: 0,
            created_here: 0,
            resubmissions: 0,
        }
    }

    /// Submissions: the sessions, and each later submission of one of them.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.sessions.len())
            .unwrap_or(u32::MAX)
            .saturating_add(self.resubmissions)
    }

    /// The session `POST /identity/verification-sessions` re-opens instead of creating one:
    /// the latest, when its check failed with a code another attempt may change.
    pub fn reopenable(&self) -> Option<&str> {
        let failed = self.last_error.as_ref().is_some_and(|e| e.code.is_some());
        (self.verified_at.is_none()
            && self.status == "requires_input"
            && self.next == Next::Retry
            && failed)
            .then_some(self.latest_session.as_deref())
            .flatten()
    }

    /// How a retry is made now, when one may be made.
    pub fn retry_with(&self, max_attempts: u32) -> Option<RetryWith> {
        self.may_retry(max_attempts)
            .then(|| match self.reopenable() {
                Some(_) => RetryWith::ReopenSession,
                None => RetryWith::NewSession,
            })
    }

    pub fn remaining_attempts(&self, max_attempts: u32) -> u32 {
        max_attempts.saturating_sub(self.attempts())
    }

    /// Whether the user may start another session now (the notification's `may_retry`).
    pub fn may_retry(&self, max_attempts: u32) -> bool {
        self.verified_at.is_none()
            && matches!(self.next, Next::Retry)
            && self.remaining_attempts(max_attempts) > 0
    }

    /// One sentence for `GET /identity/users/{id}` (`explanation`): why `may_retry` and
    /// `next` are what they are, since `next: none` with `may_retry: false` reads like a
    /// refusal when it only means the latest session is still open or being checked.
    pub fn explanation(&self, max_attempts: u32) -> String {
        let code = || {
            self.last_error
                .as_ref()
                .and_then(|e| e.code.as_deref())
                .unwrap_or("an unknown code")
                .to_owned()
        };
        if self.verified_at.is_some() {
            return "verified: no further session is needed".into();
        }
        match self.next {
            Next::Final => format!(
                "the last session failed with {}, which another attempt cannot change",
                code()
            ),
            Next::ManualReview => format!(
                "the last session failed with {}: a person reviews the case; no new session is allowed",
                code()
            ),
            _ if self.remaining_attempts(max_attempts) == 0 => {
                format!("all {max_attempts} attempts are used; no new session is allowed")
            }
            Next::None if self.status == "processing" => {
                "Stripe is checking what the user submitted: wait for verified or requires_input"
                    .into()
            }
            Next::None => "the latest session is open and waiting for the user to finish it \
                (send them to its url); a new session now would use up another attempt"
                .into(),
            Next::Retry if self.reopenable().is_some() => format!(
                "the last session failed with {}; the user may submit it again: \
                 POST /identity/verification-sessions re-opens it, counted when the user \
                 submits ({} left; \"new_session\":true starts a new session instead)",
                code(),
                self.remaining_attempts(max_attempts)
            ),
            Next::Retry if self.last_error.is_some() => format!(
                "the last session failed with {}; the user may start another ({} left)",
                code(),
                self.remaining_attempts(max_attempts)
            ),
            Next::Retry => format!(
                "the user may start a session ({} left)",
                self.remaining_attempts(max_attempts)
            ),
        }
    }

    /// Counts a session (once) and makes it the latest when it is the newest.
    pub fn add_session(&mut self, session_id: &str, session_created: i64) -> bool {
        if !self.sessions.iter().any(|s| s == session_id) {
            self.sessions_created.resize(self.sessions.len(), 0);
            let place = self
                .sessions
                .iter()
                .zip(&self.sessions_created)
                .take_while(|(id, created)| {
                    (**created, id.as_str()) < (session_created, session_id)
                })
                .count();
            self.sessions.insert(place, session_id.to_owned());
            self.sessions_created.insert(place, session_created);
        }
        let newest = self.latest_session.as_deref() == Some(session_id)
            || session_created >= self.latest_session_created;
        if newest && self.latest_session.as_deref() != Some(session_id) {
            self.latest_session = Some(session_id.to_owned());
            self.latest_session_created = session_created;
            self.last_error = None;
        }
        newest
    }
}

/// Why a new session is refused (409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the user is already verified")]
    AlreadyVerified,
    #[error("the user has used all {max} verification attempts")]
    AttemptsExhausted { max: u32 },
    #[error("the last verification failed with {code}; another attempt cannot change that")]
    NotRetryable { code: String },
    #[error(
        "the last verification failed with {code}; it needs a manual review, not another attempt"
    )]
    ManualReviewRequired { code: String },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyVerified => "already_verified",
            Self::AttemptsExhausted { .. } => "attempts_exhausted",
            Self::NotRetryable { .. } => "not_retryable",
            Self::ManualReviewRequired { .. } => "manual_review_required",
        }
    }
}

/// A field of `POST /identity/verification-sessions` that is missing, of the wrong type or
/// not an allowed value: answered 400 with the field's own code and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidField {
    #[error("user_id must be 1-128 characters from A-Z a-z 0-9 _ . @ -")]
    UserId,
    #[error("type must be document or id_number")]
    Type,
    #[error("return_url must be an https URL (http only for loopback)")]
    ReturnUrl,
    #[error("idempotency_key must be 1-100 printable ASCII characters")]
    IdempotencyKey,
    #[error("new_session must be true or false")]
    NewSession,
}

impl InvalidField {
    /// The request field, as the caller wrote it.
    pub fn field(self) -> &'static str {
        match self {
            Self::UserId => "user_id",
            Self::Type => "type",
            Self::ReturnUrl => "return_url",
            Self::IdempotencyKey => "idempotency_key",
            Self::NewSession => "new_session",
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::UserId => "invalid_user_id",
            Self::Type => "invalid_type",
            Self::ReturnUrl => "invalid_return_url",
            Self::IdempotencyKey => "invalid_idempotency_key",
            Self::NewSession => "invalid_new_session",
        }
    }
}

/// Why the creation route refuses a request.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// Whether `user` may start another verification session.
pub fn may_create(user: Option<&UserRecord>, max_attempts: u32) -> Result<(), Refusal> {
    let Some(user) = user else { return Ok(()) };
    if user.verified_at.is_some() {
        return Err(Refusal::AlreadyVerified);
    }
    let code = || {
        user.last_error
            .as_ref()
            .and_then(|e| e.code.clone())
            .unwrap_or_default()
    };
    match user.next {
        Next::Final => return Err(Refusal::NotRetryable { code: code() }),
        Next::ManualReview => return Err(Refusal::ManualReviewRequired { code: code() }),
        Next::None | Next::Retry => {}
    }
    if user.remaining_attempts(max_attempts) == 0 {
        return Err(Refusal::AttemptsExhausted { max: max_attempts });
    }
    Ok(())
}

/// What [`apply`] was given: the event's `created`, kind, and the session it carries.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub event_id: &'a str,
    pub event_created: i64,
    pub kind: SessionEvent,
    pub session: &'a VerificationSession,
}

/// The notification to send for an event: verified and requires_input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserNotice {
    pub user_id: String,
    pub session_id: String,
    pub status: String,
    pub code: Option<String>,
    pub reason: Option<String>,
    pub may_retry: bool,
    pub next: Next,
    /// For a failed check: what the user can do about it ([`guidance`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_action: Option<UserAction>,
    /// When `may_retry`: whether the retry re-opens this session or starts a new one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_with: Option<RetryWith>,
    pub attempts: u32,
    pub remaining_attempts: u32,
    /// The event's `created`.
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The session record to store; `None` when the event is stale and nothing changes.
    pub session: Option<SessionRecord>,
    /// The user record to store, when it changed.
    pub user: Option<UserRecord>,
    pub notice: Option<UserNotice>,
}

impl Transition {
    fn unchanged() -> Self {
        Self {
            session: None,
            user: None,
            notice: None,
        }
    }
}

/// Whether deployment `deployment_id` created the session: its marker, or our record of it
/// (a redacted session's metadata is erased). Only such a session's events change a user.
pub fn is_ours(
    session: &VerificationSession,
    stored: Option<&SessionRecord>,
    deployment_id: &str,
) -> bool {
    stored.is_some_and(|s| s.made_here)
        || crate::provenance::made_here(&session.metadata, deployment_id)
}

/// Why an event naming a user is not applied: its session was recorded for another user
/// (its metadata was changed at Stripe). Applying it would write the recorded user's records
/// from the named user's queue.
pub const OWNER_CHANGED: &str = "session_recorded_for_another_user";

/// Whether the event's metadata names another user than the one recorded for its session.
pub fn owner_changed(session: &VerificationSession, stored: Option<&SessionRecord>) -> bool {
    let named = session
        .metadata
        .get("user_id")
        .map(|u| u.trim())
        .filter(|u| is_user_id(u));
    match (named, stored.and_then(|s| s.user_id.as_deref())) {
        (Some(named), Some(recorded)) => named != recorded,
        _ => false,
    }
}

/// The user an event belongs to: who we recorded the session for, else the session's
/// metadata (the `created` event may arrive before the creation is recorded). Metadata can be
/// updated at Stripe, and is erased by a redaction: once recorded, our record decides.
pub fn user_of(session: &VerificationSession, stored: Option<&SessionRecord>) -> Option<String> {
    stored.and_then(|s| s.user_id.clone()).or_else(|| {
        session
            .metadata
            .get("user_id")
            .map(|u| u.trim())
            .filter(|u| is_user_id(u))
            .map(str::to_owned)
    })
}

/// Applies one event to the stored session and user records: the session step, then the
/// user step for the session's user.
pub fn apply(
    stored_session: Option<&SessionRecord>,
    stored_user: Option<&UserRecord>,
    incoming: Incoming<'_>,
    max_attempts: u32,
) -> Transition {
    let Some(session_record) = session_step(stored_session, incoming) else {
        return late_submission(stored_session, stored_user, incoming);
    };
    // A further submission of the session: another attempt.
    let resubmitted = session_record
        .resubmissions()
        .saturating_sub(stored_session.map_or(0, SessionRecord::resubmissions));
    let (user, notice) = match &session_record.user_id {
        Some(user_id) => user_step(
            stored_user,
            user_id,
            &session_record,
            incoming,
            (max_attempts, resubmitted),
        ),
        None => (None, None),
    };
    Transition {
        session: Some(session_record),
        user,
        notice,
    }
}

/// Whether the event changes nothing for the stored session: older than what is stored
/// (ties broken by the order Stripe emits them in), after a terminal status (only a
/// redaction follows verified and canceled), a repeat, or anything but a redaction after one.
fn is_stale(stored: &SessionRecord, kind: SessionEvent, event_created: i64) -> bool {
    let older = (event_created, kind.rank())
        < (
            stored.event_created,
            stored.last_event.map_or(0, SessionEvent::rank),
        );
    let terminal = matches!(stored.status.as_str(), "verified" | "canceled")
        && !matches!(kind, SessionEvent::Redacted);
    let repeat = stored.last_event == Some(kind) && stored.event_created == event_created;
    older || terminal || repeat || (stored.redacted && kind != SessionEvent::Redacted)
}

/// The session step: the session record after the event, or `None` when it is stale.
pub fn session_step(
    stored_session: Option<&SessionRecord>,
    incoming: Incoming<'_>,
) -> Option<SessionRecord> {
    let Incoming {
        event_created,
        kind,
        session,
        ..
    } = incoming;
    if stored_session.is_some_and(|stored| is_stale(stored, kind, event_created)) {
        return None;
    }
    let status = match kind {
        SessionEvent::Created => session.status.clone(),
        SessionEvent::Processing => "processing".into(),
        SessionEvent::RequiresInput => "requires_input".into(),
        SessionEvent::Verified => "verified".into(),
        SessionEvent::Canceled => "canceled".into(),
        // Redaction does not change the outcome, it removes the data behind it.
        SessionEvent::Redacted => {
            stored_session.map_or_else(|| session.status.clone(), |s| s.status.clone())
        }
    };
    let last_error = (kind == SessionEvent::RequiresInput).then(|| {
        session
            .last_error
            .as_ref()
            .map(LastError::from)
            .unwrap_or(LastError {
                code: None,
                reason: None,
            })
    });
    Some(SessionRecord {
        version: SESSION_RECORD_VERSION,
        id: session.id.clone(),
        user_id: user_of(session, stored_session),
        status,
        last_error,
        session_created: stored_session
            .map_or(session.created, |s| s.session_created.max(session.created)),
        event_created,
        last_event: Some(kind),
        redacted: kind == SessionEvent::Redacted || stored_session.is_some_and(|s| s.redacted),
        // Only sessions made here are applied (`is_ours`, checked by the handler first).
        made_here: true,
        ..tracked(stored_session, incoming)
    })
}

/// The submissions and checks of the session after the event (see
/// [`SessionRecord::submissions`]), in a record that is otherwise `stored`'s (or empty).
fn tracked(stored: Option<&SessionRecord>, incoming: Incoming<'_>) -> SessionRecord {
    let mut record = stored
        .cloned()
        .unwrap_or_else(|| SessionRecord::made_here(incoming.session, None));
    let code = incoming
        .session
        .last_error
        .as_ref()
        .and_then(|e| e.code.as_deref());
    let list = match incoming.kind {
        SessionEvent::Processing => Some(&mut record.submitted_at),
        SessionEvent::Verified => Some(&mut record.checked_at),
        SessionEvent::RequiresInput if code.is_some_and(|c| c != "abandoned") => {
            Some(&mut record.checked_at)
        }
        _ => None,
    };
    if let Some(list) = list.filter(|l| !l.contains(&incoming.event_created)) {
        list.push(incoming.event_created);
        sort_times(list);
    }
    record
}

/// Sorts a record's few times in place. By insertion: `sort_unstable` links its pattern-
/// defeating quicksort and small-sort networks into the wasm (4.4 KB) for lists of a handful.
fn sort_times(times: &mut [i64]) {
    for i in 1..times.len() {
        let mut j = i;
        while j > 0 && times[j - 1] > times[j] {
            times.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// A `processing` or outcome event older than what is stored (it arrived after a later
/// event) changes no state, but the submission happened: it is counted (a second or later
/// one is an attempt of the user's), and nothing else changes.
fn late_submission(
    stored_session: Option<&SessionRecord>,
    stored_user: Option<&UserRecord>,
    incoming: Incoming<'_>,
) -> Transition {
    let Some(stored) = stored_session.filter(|s| !s.redacted) else {
        return Transition::unchanged();
    };
    let session = tracked(Some(stored), incoming);
    if session == *stored {
        return Transition::unchanged();
    }
    let more = session
        .resubmissions()
        .saturating_sub(stored.resubmissions());
    let user = match &stored.user_id {
        Some(user_id) if more > 0 => {
            let mut user = stored_user
                .cloned()
                .unwrap_or_else(|| UserRecord::new(user_id));
            user.resubmissions = user.resubmissions.saturating_add(more);
            Some(user)
        }
        _ => None,
    };
    Transition {
        session: Some(session),
        user,
        notice: None,
    }
}

/// The user step: the user record after the session step wrote `session_record` (`None`
/// when it did not change), and the notice to send, if any.
/// `limits`: the attempt limit, and the further submissions of the session the event adds.
pub fn user_step(
    stored_user: Option<&UserRecord>,
    user_id: &str,
    session_record: &SessionRecord,
    incoming: Incoming<'_>,
    (max_attempts, resubmitted): (u32, u32),
) -> (Option<UserRecord>, Option<UserNotice>) {
    let Incoming {
        event_created,
        kind,
        session,
        ..
    } = incoming;
    let mut user = stored_user
        .cloned()
        .unwrap_or_else(|| UserRecord::new(user_id));
    let is_latest = user.add_session(&session.id, session_record.session_created);
    // The user submitted a re-opened session again: one more attempt.
    user.resubmissions = user.resubmissions.saturating_add(resubmitted);
    update_user(&mut user, session_record, kind, is_latest, event_created);
    let notify = match kind {
        SessionEvent::Verified => stored_user.and_then(|u| u.verified_at).is_none(),
        SessionEvent::RequiresInput => is_latest && user.verified_at.is_none(),
        _ => false,
    };
    let notice = notify.then(|| notice(&user, session_record, kind, event_created, max_attempts));
    let user_changed = stored_user != Some(&user);
    (user_changed.then_some(user), notice)
}

/// What the event does to the user's own status, error and next step.
fn update_user(
    user: &mut UserRecord,
    session_record: &SessionRecord,
    kind: SessionEvent,
    is_latest: bool,
    event_created: i64,
) {
    let status = &session_record.status;
    let last_error = session_record.last_error.as_ref();
    match kind {
        SessionEvent::Verified if user.verified_at.is_none() => {
            user.status = "verified".into();
            user.last_error = None;
            user.next = Next::None;
            user.verified_at = Some(event_created);
            user.updated_at = user.updated_at.max(event_created);
        }
        _ if !is_latest || user.verified_at.is_some() => {
            // An older session's news, or a user already verified: only the count changes.
            if kind == SessionEvent::Redacted
                && user.latest_session.as_deref() == Some(&session_record.id)
            {
                user.last_error = None;
            }
        }
        SessionEvent::RequiresInput => {
            user.status = status.clone();
            user.next = classify(last_error.and_then(|e| e.code.as_deref()));
            user.last_error = last_error.cloned();
            user.updated_at = user.updated_at.max(event_created);
        }
        SessionEvent::Redacted => {
            user.last_error = None;
        }
        SessionEvent::Created | SessionEvent::Processing | SessionEvent::Canceled => {
            user.status = status.clone();
            user.last_error = None;
            // Waiting for the user or for Stripe; a canceled session may be started again.
            user.next = match kind {
                SessionEvent::Canceled => Next::Retry,
                _ => Next::None,
            };
            user.updated_at = user.updated_at.max(event_created);
        }
        SessionEvent::Verified => {}
    }
}

/// The notice for a verified or requires-input event.
fn notice(
    user: &UserRecord,
    session_record: &SessionRecord,
    kind: SessionEvent,
    event_created: i64,
    max_attempts: u32,
) -> UserNotice {
    let error = session_record.last_error.as_ref();
    UserNotice {
        user_id: user.user_id.clone(),
        session_id: session_record.id.clone(),
        status: session_record.status.clone(),
        code: error.and_then(|e| e.code.clone()),
        reason: error.and_then(|e| e.reason.clone()),
        may_retry: user.may_retry(max_attempts),
        next: if kind == SessionEvent::RequiresInput
            && user.next == Next::Retry
            && !user.may_retry(max_attempts)
        {
            // Retryable in itself, but no attempts left.
            Next::Final
        } else {
            user.next
        },
        user_action: (kind == SessionEvent::RequiresInput).then(|| {
            if user.may_retry(max_attempts) {
                guidance(error.and_then(|e| e.code.as_deref())).1
            } else {
                UserAction::ContactSupport
            }
        }),
        retry_with: user.retry_with(max_attempts),
        attempts: user.attempts(),
        remaining_attempts: user.remaining_attempts(max_attempts),
        created_at: event_created,
    }
}

/// An application user id as it may appear in a KV key: 1–128 characters from
/// `[A-Za-z0-9_.@-]`.
pub fn is_user_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_explanation_says_why_a_user_may_or_may_not_retry() {
        let mut user = UserRecord::new("u");
        user.add_session("vs_1", 10);
        user.status = "requires_input".into();
        user.next = Next::None;
        // A brand-new session: may_retry false, next none, because this session is the one to finish.
        assert!(!user.may_retry(3));
        assert!(user
            .explanation(3)
            .contains("open and waiting for the user"));
        user.status = "processing".into();
        assert!(user.explanation(3).starts_with("Stripe is checking"));
        user.next = Next::Retry;
        user.last_error = Some(LastError {
            code: Some("document_expired".into()),
            reason: None,
        });
        assert!(user.may_retry(3));
        user.status = "requires_input".into();
        // No session to re-open (none recorded as the latest): a new one.
        user.latest_session = None;
        assert!(user
            .explanation(3)
            .contains("document_expired; the user may start another (2 left)"));
        assert_eq!(user.retry_with(3), Some(RetryWith::NewSession));
        user.latest_session = Some("vs_1".into());
        assert!(user
            .explanation(3)
            .contains("document_expired; the user may submit it again"));
        assert_eq!(user.retry_with(3), Some(RetryWith::ReopenSession));
        assert!(user.explanation(1).starts_with("all 1 attempts are used"));
        user.next = Next::ManualReview;
        assert!(user.explanation(3).contains("a person reviews the case"));
        user.next = Next::Final;
        assert!(user
            .explanation(3)
            .contains("another attempt cannot change"));
        user.verified_at = Some(20);
        assert!(user.explanation(3).starts_with("verified"));
    }
    use crate::objects::Metadata;

    const MAX: u32 = 3;

    fn session(id: &str, user: Option<&str>, created: i64) -> VerificationSession {
        let mut metadata = Metadata::new();
        if let Some(user) = user {
            metadata.insert("user_id".into(), user.into());
        }
        VerificationSession {
            id: id.into(),
            status: "requires_input".into(),
            created,
            url: None,
            client_secret: None,
            last_error: None,
            metadata,
        }
    }

    fn failed(mut s: VerificationSession, code: &str) -> VerificationSession {
        s.last_error = Some(VerificationLastError {
            code: Some(code.into()),
            reason: Some(format!("reason for {code}")),
        });
        s
    }

    /// Applies events in order, carrying the records like the handler does.
    struct World {
        sessions: std::collections::BTreeMap<String, SessionRecord>,
        user: Option<UserRecord>,
        notices: Vec<UserNotice>,
    }

    impl World {
        fn new() -> Self {
            Self {
                sessions: Default::default(),
                user: None,
                notices: Vec::new(),
            }
        }

        fn deliver(&mut self, kind: SessionEvent, at: i64, s: &VerificationSession) -> bool {
            let t = apply(
                self.sessions.get(&s.id),
                self.user.as_ref(),
                Incoming {
                    event_id: "evt_x",
                    event_created: at,
                    kind,
                    session: s,
                },
                MAX,
            );
            // Whether the session's state moved (a late event only adds to its counts).
            let state = |r: &SessionRecord| SessionRecord {
                submitted_at: Vec::new(),
                checked_at: Vec::new(),
                ..r.clone()
            };
            let changed = t
                .session
                .as_ref()
                .is_some_and(|new| self.sessions.get(&s.id).map(state) != Some(state(new)));
            if let Some(record) = t.session {
                self.sessions.insert(record.id.clone(), record);
            }
            if let Some(user) = t.user {
                self.user = Some(user);
            }
            self.notices.extend(t.notice);
            changed
        }

        fn user(&self) -> &UserRecord {
            self.user.as_ref().unwrap()
        }
    }

    #[test]
    fn event_types_are_recognised_and_others_are_not() {
        for (t, kind) in [
            (
                "identity.verification_session.created",
                SessionEvent::Created,
            ),
            (
                "identity.verification_session.processing",
                SessionEvent::Processing,
            ),
            (
                "identity.verification_session.requires_input",
                SessionEvent::RequiresInput,
            ),
            (
                "identity.verification_session.verified",
                SessionEvent::Verified,
            ),
            (
                "identity.verification_session.canceled",
                SessionEvent::Canceled,
            ),
            (
                "identity.verification_session.redacted",
                SessionEvent::Redacted,
            ),
        ] {
            assert_eq!(SessionEvent::from_type(t), Some(kind));
        }
        for t in [
            "identity.verification_session.other",
            "checkout.session.completed",
            "",
        ] {
            assert_eq!(SessionEvent::from_type(t), None);
        }
    }

    #[test]
    fn each_listed_code_is_decided_as_the_issue_says() {
        for code in ["consent_declined", "selfie_manipulated"] {
            assert_eq!(classify(Some(code)), Next::ManualReview, "{code}");
        }
        for code in ["under_supported_age", "country_not_supported"] {
            assert_eq!(classify(Some(code)), Next::Final, "{code}");
        }
        for code in [
            "document_expired",
            "document_unverified_other",
            "document_type_not_supported",
            "selfie_document_missing_photo",
            "selfie_face_mismatch",
            "selfie_unverified_other",
            "id_number_insufficient_document_data",
            "id_number_mismatch",
            "id_number_unverified_other",
            "email_verification_declined",
            "phone_verification_declined",
            "abandoned",
            "device_not_supported",
            "a_code_stripe_adds_next_year",
        ] {
            assert_eq!(classify(Some(code)), Next::Retry, "{code}");
        }
        assert_eq!(classify(None), Next::Retry);
        assert_eq!(
            guidance(Some("abandoned")).1,
            UserAction::FinishVerification
        );
        assert_eq!(
            guidance(Some("device_not_supported")).1,
            UserAction::SwitchDevice
        );
        assert_eq!(
            guidance(Some("document_expired")).1,
            UserAction::UseAnotherDocument
        );
        assert_eq!(
            guidance(Some("a_code_stripe_adds_next_year")),
            (Next::Retry, UserAction::TryAgain)
        );
    }

    #[test]
    fn every_code_of_stripes_enum_is_decided_explicitly_and_no_other() {
        let objects: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/stripe_objects.json")).unwrap();
        let mut sdk: Vec<&str> = objects["enums"]["identity.verification_session.last_error.code"]
            .as_array()
            .expect("the SDK's code enum")
            .iter()
            .filter_map(|code| code.as_str())
            .collect();
        let mut ours: Vec<&str> = LAST_ERROR_CODES.iter().map(|(code, ..)| *code).collect();
        sdk.sort_unstable();
        ours.sort_unstable();
        assert_eq!(sdk.len(), 19, "the pinned SDK lists 19 codes");
        assert_eq!(ours, sdk);
    }

    #[test]
    fn verified_stores_the_time_and_notifies_once() {
        let mut w = World::new();
        let s = session("vs_1", Some("u_1"), 100);
        w.deliver(SessionEvent::Created, 100, &s);
        assert!(w.notices.is_empty(), "created does not notify");
        assert_eq!(
            (w.user().status.as_str(), w.user().attempts()),
            ("requires_input", 1)
        );
        w.deliver(SessionEvent::Processing, 110, &s);
        assert_eq!(
            (w.user().status.as_str(), w.user().next),
            ("processing", Next::None)
        );
        w.deliver(SessionEvent::Verified, 120, &s);
        let user = w.user();
        assert_eq!(
            (user.status.as_str(), user.verified_at),
            ("verified", Some(120))
        );
        assert_eq!(w.notices.len(), 1);
        let notice = &w.notices[0];
        assert_eq!(
            (
                notice.status.as_str(),
                notice.may_retry,
                notice.code.as_deref()
            ),
            ("verified", false, None)
        );
        assert_eq!(notice.created_at, 120);
        assert!(
            !w.deliver(SessionEvent::Verified, 130, &s),
            "a second verified event changes nothing"
        );
        assert_eq!(w.notices.len(), 1);
    }

    #[test]
    fn requires_input_stores_the_error_and_says_whether_to_retry() {
        for (code, next, may_retry) in [
            ("document_expired", Next::Retry, true),
            ("document_unverified_other", Next::Retry, true),
            ("document_type_not_supported", Next::Retry, true),
            ("selfie_face_mismatch", Next::Retry, true),
            ("id_number_mismatch", Next::Retry, true),
            ("brand_new_code", Next::Retry, true),
            ("consent_declined", Next::ManualReview, false),
            ("under_supported_age", Next::Final, false),
            ("country_not_supported", Next::Final, false),
        ] {
            let mut w = World::new();
            w.deliver(
                SessionEvent::RequiresInput,
                100,
                &failed(session("vs_1", Some("u_1"), 90), code),
            );
            let user = w.user();
            assert_eq!(
                user.last_error.as_ref().unwrap().code.as_deref(),
                Some(code)
            );
            assert_eq!(
                user.last_error.as_ref().unwrap().reason,
                Some(format!("reason for {code}"))
            );
            assert_eq!(
                (user.next, user.may_retry(MAX)),
                (next, may_retry),
                "{code}"
            );
            let notice = &w.notices[0];
            assert_eq!(
                (notice.code.as_deref(), notice.may_retry, notice.next),
                (Some(code), may_retry, next)
            );
            assert_eq!((notice.attempts, notice.remaining_attempts), (1, 2));
            let refusal = may_create(Some(user), MAX);
            assert_eq!(refusal.is_ok(), may_retry, "{code}: {refusal:?}");
        }
    }

    #[test]
    fn the_attempt_limit_counts_distinct_sessions() {
        let mut w = World::new();
        for (i, id) in ["vs_1", "vs_2", "vs_3"].iter().enumerate() {
            let at = 100 + 10 * i as i64;
            let s = session(id, Some("u_1"), at);
            assert!(may_create(w.user.as_ref(), MAX).is_ok());
            w.deliver(SessionEvent::Created, at, &s);
            w.deliver(SessionEvent::Created, at, &s); // a redelivery counts once
            w.deliver(
                SessionEvent::RequiresInput,
                at + 5,
                &failed(s, "document_expired"),
            );
        }
        let user = w.user();
        assert_eq!(
            (
                user.attempts(),
                user.remaining_attempts(MAX),
                user.may_retry(MAX)
            ),
            (3, 0, false)
        );
        assert_eq!(
            may_create(Some(user), MAX),
            Err(Refusal::AttemptsExhausted { max: 3 })
        );
        let last = w.notices.last().unwrap();
        assert_eq!(
            (last.may_retry, last.next, last.remaining_attempts),
            (false, Next::Final, 0)
        );
        assert_eq!(
            may_create(Some(user), 4),
            Ok(()),
            "a higher limit allows more"
        );
    }

    #[test]
    fn a_users_sessions_are_listed_oldest_first_whatever_order_their_events_arrive_in() {
        let older = session("vs_b", Some("u_1"), 100);
        let newer = session("vs_a", Some("u_1"), 130);
        let oldest = session("vs_c", Some("u_1"), 70);
        let events = [
            (SessionEvent::Created, 70, oldest.clone()),
            (
                SessionEvent::RequiresInput,
                80,
                failed(oldest, "document_expired"),
            ),
            (SessionEvent::Created, 100, older.clone()),
            (
                SessionEvent::RequiresInput,
                120,
                failed(older, "document_expired"),
            ),
            (SessionEvent::Created, 130, newer.clone()),
            (SessionEvent::Verified, 150, newer),
        ];
        let mut in_order = World::new();
        for (kind, at, s) in &events {
            in_order.deliver(*kind, *at, s);
        }
        assert_eq!(in_order.user().sessions, ["vs_c", "vs_b", "vs_a"]);
        for order in [[5, 3, 1, 4, 2, 0], [2, 5, 0, 3, 1, 4], [4, 0, 5, 1, 2, 3]] {
            let mut shuffled = World::new();
            for i in order {
                let (kind, at, s) = &events[i];
                shuffled.deliver(*kind, *at, s);
            }
            assert_eq!(shuffled.user, in_order.user, "order {order:?}");
        }
    }

    #[test]
    fn a_verified_user_may_not_start_again() {
        let mut w = World::new();
        w.deliver(
            SessionEvent::Verified,
            100,
            &session("vs_1", Some("u_1"), 90),
        );
        assert_eq!(
            may_create(w.user.as_ref(), MAX),
            Err(Refusal::AlreadyVerified)
        );
        assert_eq!(may_create(None, MAX), Ok(()));
    }

    #[test]
    fn out_of_order_events_end_where_in_order_ones_do() {
        let s = session("vs_1", Some("u_1"), 90);
        let stale = failed(s.clone(), "document_expired");
        let events = [
            (SessionEvent::Created, 90, s.clone()),
            (SessionEvent::RequiresInput, 100, stale.clone()),
            (SessionEvent::Processing, 110, s.clone()),
            (SessionEvent::Verified, 120, s.clone()),
        ];
        let mut in_order = World::new();
        for (kind, at, s) in &events {
            in_order.deliver(*kind, *at, s);
        }
        let mut reversed = World::new();
        for (kind, at, s) in events.iter().rev() {
            reversed.deliver(*kind, *at, s);
        }
        assert_eq!(in_order.user, reversed.user);
        assert_eq!(in_order.sessions, reversed.sessions);
        assert_eq!(in_order.user().status, "verified");
        // A stale requires_input after verified is not even told to the user.
        assert!(!in_order.deliver(SessionEvent::RequiresInput, 105, &stale));
        assert_eq!(
            in_order
                .notices
                .iter()
                .filter(|n| n.status == "requires_input")
                .count(),
            1
        );
        assert_eq!(in_order.user().verified_at, Some(120));
    }

    #[test]
    fn a_resubmission_counts_once_when_the_user_submits_in_either_arrival_order() {
        let s = session("vs_1", Some("u_1"), 100);
        let expired = failed(s.clone(), "document_expired");
        let mismatch = failed(s.clone(), "selfie_face_mismatch");
        // Submitted (105), failed (106), re-opened and submitted again (110), failed (111).
        let events = [
            (SessionEvent::Created, 100, &s),
            (SessionEvent::Processing, 105, &s),
            (SessionEvent::RequiresInput, 106, &expired),
            (SessionEvent::Processing, 110, &s),
            (SessionEvent::RequiresInput, 111, &mismatch),
        ];
        let mut in_order = World::new();
        for (kind, at, session) in events {
            in_order.deliver(kind, at, session);
        }
        let user = in_order.user();
        assert_eq!((user.sessions.len(), user.resubmissions), (1, 1));
        assert_eq!(
            (user.attempts(), user.remaining_attempts(MAX)),
            (2, 1),
            "two submissions of one session"
        );
        assert_eq!(user.reopenable(), Some("vs_1"));
        assert_eq!(in_order.notices.last().unwrap().attempts, 2);
        // The second processing after the last failure, and every event twice.
        let mut shuffled = World::new();
        for i in [0, 1, 2, 4, 3, 3, 1, 4] {
            let (kind, at, session) = events[i];
            shuffled.deliver(kind, at, session);
        }
        assert_eq!(shuffled.user(), in_order.user());
        assert_eq!(shuffled.sessions, in_order.sessions);
        assert_eq!(in_order.sessions["vs_1"].submitted_at, [105, 110]);
    }

    #[test]
    fn requires_input_in_the_same_second_as_processing_follows_it_in_either_arrival_order() {
        let s = session("vs_1", Some("u_1"), 100);
        let failed_session = failed(s.clone(), "document_expired");
        for processing_first in [true, false] {
            let mut w = World::new();
            w.deliver(SessionEvent::Created, 100, &s);
            if processing_first {
                w.deliver(SessionEvent::Processing, 105, &s);
                assert!(w.deliver(SessionEvent::RequiresInput, 105, &failed_session));
            } else {
                assert!(w.deliver(SessionEvent::RequiresInput, 105, &failed_session));
                // Processing is before requires_input: only the submission is kept.
                w.deliver(SessionEvent::Processing, 105, &s);
                assert_eq!(w.sessions["vs_1"].status, "requires_input");
            }
            assert_eq!(w.sessions["vs_1"].submitted_at, [105]);
            assert_eq!(w.user().attempts(), 1);
            assert_eq!(
                w.user().status,
                "requires_input",
                "processing first: {processing_first}"
            );
            assert_eq!(
                w.user().last_error.as_ref().unwrap().code.as_deref(),
                Some("document_expired")
            );
            assert_eq!(w.notices.len(), 1, "the failure is notified once");
        }
    }

    #[test]
    fn an_older_event_of_the_same_second_is_ordered_by_kind() {
        let mut w = World::new();
        let s = session("vs_1", Some("u_1"), 100);
        w.deliver(
            SessionEvent::RequiresInput,
            100,
            &failed(s.clone(), "document_expired"),
        );
        assert!(
            !w.deliver(SessionEvent::Created, 100, &s),
            "created is before requires_input"
        );
        assert_eq!(
            w.user().last_error.as_ref().unwrap().code.as_deref(),
            Some("document_expired")
        );
    }

    #[test]
    fn the_user_follows_the_newest_session() {
        let mut w = World::new();
        let old = session("vs_old", Some("u_1"), 100);
        let new = session("vs_new", Some("u_1"), 200);
        w.deliver(SessionEvent::Created, 200, &new);
        // The older session fails later: recorded for that session, the user is unaffected.
        w.deliver(
            SessionEvent::RequiresInput,
            300,
            &failed(old.clone(), "under_supported_age"),
        );
        let user = w.user();
        assert_eq!(user.latest_session.as_deref(), Some("vs_new"));
        assert_eq!((user.next, user.last_error.as_ref()), (Next::None, None));
        assert_eq!(user.attempts(), 2);
        assert!(w.notices.is_empty());
        assert_eq!(w.sessions["vs_old"].status, "requires_input");
        // ... but a verification of an older session does verify the person.
        w.deliver(SessionEvent::Verified, 310, &old);
        assert_eq!(w.user().verified_at, Some(310));
    }

    #[test]
    fn a_session_without_a_user_is_recorded_under_its_id() {
        let mut w = World::new();
        w.deliver(SessionEvent::Verified, 100, &session("vs_anon", None, 90));
        assert!(w.user.is_none());
        assert!(w.notices.is_empty());
        assert_eq!(w.sessions["vs_anon"].user_id, None);
        assert_eq!(w.sessions["vs_anon"].status, "verified");
        // A blank or unusable user id counts as none.
        let mut odd = session("vs_odd", None, 90);
        odd.metadata.insert("user_id".into(), "a:b/c".into());
        assert_eq!(user_of(&odd, None), None);
    }

    #[test]
    fn the_stored_user_id_is_used_when_metadata_is_gone() {
        let mut w = World::new();
        w.deliver(
            SessionEvent::Created,
            100,
            &session("vs_1", Some("u_1"), 100),
        );
        w.deliver(SessionEvent::Verified, 110, &session("vs_1", None, 100));
        assert_eq!(w.user().status, "verified");
    }

    #[test]
    fn redaction_removes_the_error_and_keeps_the_ids_and_outcome() {
        let mut w = World::new();
        let s = session("vs_1", Some("u_1"), 100);
        w.deliver(
            SessionEvent::RequiresInput,
            110,
            &failed(s.clone(), "document_expired"),
        );
        w.deliver(SessionEvent::Redacted, 120, &s);
        let record = &w.sessions["vs_1"];
        assert_eq!((record.redacted, record.last_error.as_ref()), (true, None));
        assert_eq!(
            (record.status.as_str(), record.user_id.as_deref()),
            ("requires_input", Some("u_1"))
        );
        assert_eq!(w.user().last_error, None);
        assert_eq!(w.user().sessions, vec!["vs_1".to_owned()]);
        // Nothing but another redaction changes a redacted session.
        assert!(!w.deliver(
            SessionEvent::RequiresInput,
            130,
            &failed(s, "document_expired")
        ));
    }

    #[test]
    fn canceled_allows_a_new_attempt() {
        let mut w = World::new();
        let s = session("vs_1", Some("u_1"), 100);
        w.deliver(SessionEvent::Canceled, 110, &s);
        assert_eq!(
            (w.user().status.as_str(), w.user().next),
            ("canceled", Next::Retry)
        );
        assert!(may_create(w.user.as_ref(), MAX).is_ok());
        assert!(
            !w.deliver(SessionEvent::Verified, 120, &s),
            "a canceled session stays canceled"
        );
    }

    #[test]
    fn user_ids_are_checked_before_they_become_keys() {
        for ok in ["u_1", "user-42", "a.b@example.com"] {
            assert!(is_user_id(ok), "{ok}");
        }
        for bad in ["", "a:b", "a/b", "a b", &"x".repeat(129), "é"] {
            assert!(!is_user_id(bad), "{bad}");
        }
    }

    /// `sort_times` sorts as `sort_unstable` does, whatever the order it is given.
    #[test]
    fn sort_times_sorts_as_sort_unstable() {
        let mut seed = 7u64;
        for len in 0..12 {
            for _ in 0..50 {
                let mut times: Vec<i64> = (0..len)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        (seed >> 60) as i64 - 8
                    })
                    .collect();
                let mut expected = times.clone();
                expected.sort_unstable();
                sort_times(&mut times);
                assert_eq!(times, expected);
            }
        }
    }
}
