//! The work an entity's queue runs (its Durable Object, one piece at a time): every piece of
//! work that read-modify-writes an entity's records, as it crosses the binding, and the one
//! function that runs it with the existing handlers. Pure apart from the ports in
//! [`Services`], so it runs natively against `MemoryStore` and a fake transport.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::billing::{ChargeRecord, ChargeRequest};
use crate::entity::Entity;
use crate::error::{AppError, Relayed};
use crate::event::{Event, EventRecord};
use crate::event_log::Entry;
use crate::handlers::{charges, identity, setup};
use crate::http::Transport;
use crate::objects::CheckoutSession;
use crate::pages::{self, SuccessView};
use crate::services::{Services, Trace, TraceData};
use crate::store::Store;
use crate::webhook::{process, Receipt};

/// One piece of work, sent by the worker to the entity's queue, never from the internet.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// A verified event (its signature was checked by the worker that received it).
    Event(Event),
    /// `POST /identity/verification-sessions`, validated.
    CreateSession(identity::CreateSession),
    /// `POST /charges`, parsed.
    Charge(ChargeWork),
    /// `GET /success`, after the session was retrieved (Stripe's text of it, so that no
    /// encoder of the session is built): its completion recorded.
    Success(Box<RawValue>),
}

/// A charge's work; `origin` is where a recovery session returns. The struct variant it was,
/// as a struct of its own, with the same JSON: read from an object only (`decode_map!`), so
/// no second decoder from an array is built for it.
#[derive(Debug, Serialize)]
pub struct ChargeWork {
    pub request: ChargeRequest,
    pub origin: String,
}
crate::json::decode_map!(ChargeWork {
    request: "request" required,
    origin: "origin" required,
});

impl Work {
    /// Whose records this work writes: the queue it must run in. `None`: an event of a type
    /// this service does not act on (it writes its own `event:{id}` only).
    pub fn entity(&self) -> Option<Entity> {
        match self {
            // The route reads the recorded owner and calls `Entity::of_event` itself.
            Self::Event(event) => Entity::of_event(event, None),
            Self::CreateSession(request) => Some(Entity::user(&request.user_id)),
            Self::Charge(charge) => Some(Entity::customer(&charge.request.customer)),
            Self::Success(raw) => {
                let session: CheckoutSession = serde_json::from_str(raw.get()).ok()?;
                Entity::of_checkout_session(&session)
            }
        }
    }

    /// An event is handled within the webhook's Stripe budget (Stripe waits only so long).
    pub fn is_event(&self) -> bool {
        matches!(self, Self::Event(_))
    }
}

/// How the event index lists an event a queue handles, but for its record: the entity whose
/// queue handled it, and whether Stripe delivered it (see [`Entry`]). The queue sends that row
/// with the work's own list rows (one request to the index). It travels in a header
/// ([`INDEX_HEADER`]), not in the body, so that during a deploy a worker and a queue of two
/// versions still read each other's work (one that does not know it indexes as before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexAs {
    pub entity: Option<String>,
    pub delivered: bool,
}

/// The header that carries [`IndexAs`]: `delivered` or `recorded`, then the entity after a
/// space when there is one.
pub const INDEX_HEADER: &str = "event-index";

impl IndexAs {
    pub fn header(&self) -> String {
        let mark = if self.delivered {
            "delivered"
        } else {
            "recorded"
        };
        match &self.entity {
            Some(entity) => format!("{mark} {entity}"),
            None => mark.to_owned(),
        }
    }

    /// The event index's entry for `record`, listed this way.
    pub fn entry(self, record: EventRecord) -> Entry {
        Entry {
            record,
            entity: self.entity,
            delivered: self.delivered,
        }
    }

    /// `None` for a value [`IndexAs::header`] does not write (the worker then indexes).
    pub fn from_header(value: &str) -> Option<Self> {
        let (mark, entity) = match value.split_once(' ') {
            Some((mark, entity)) => (mark, Some(entity.to_owned())),
            None => (value, None),
        };
        let delivered = match mark {
            "delivered" => true,
            "recorded" => false,
            _ => return None,
        };
        Some(Self { entity, delivered })
    }
}

/// What the queue answers: the work's result, or its error as it is to be answered and logged,
/// and the trace for the worker's log line.
#[derive(Debug, Serialize)]
pub struct Answer<T> {
    pub result: Result<T, Relayed>,
    pub trace: TraceData,
}

/// An [`Answer`] as read, its result's value kept as text: the answer's decoder is built once,
/// not once per kind of result (each copy also held the trace's and the error's decoders).
struct AnswerText {
    result: Result<Box<RawValue>, Relayed>,
    trace: TraceData,
}
crate::json::decode_map!(AnswerText {
    result: "result" required,
    trace: "trace" required,
});

/// Reads the JSON [`Answer`]'s `Serialize` writes (serde_json only: the value is kept raw).
impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Answer<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let AnswerText { result, trace } = <AnswerText as Deserialize>::deserialize(deserializer)?;
        let result = match result {
            Ok(raw) => Ok(serde_json::from_str(raw.get())
                .map_err(|error| serde::de::Error::custom(crate::json::nested_error(error)))?),
            Err(relayed) => Err(relayed),
        };
        Ok(Self { result, trace })
    }
}

impl<T> Answer<T> {
    pub fn new(result: Result<T, AppError>, trace: &Trace) -> Self {
        Self {
            result: result.map_err(|e| e.relay()),
            trace: trace.snapshot(),
        }
    }

    /// On the worker's side: the trace joins the request's, the error becomes the worker's.
    pub fn into_result(self, trace: &Trace) -> Result<T, AppError> {
        trace.absorb(self.trace);
        self.result.map_err(|r| AppError::Relayed(Box::new(r)))
    }
}

/// The result of each kind of work, as the worker reads it back.
pub type EventAnswer = Answer<Receipt>;
pub type CreateSessionAnswer = Answer<identity::Created>;
pub type ChargeAnswer = Answer<ChargeRecord>;
/// The success page's status and HTML, failures included (their page depends on the error).
pub type PageAnswer = Answer<(u16, String)>;

/// Runs one piece of work; the answer as JSON. `services` are the queue's (its table and KV),
/// with the webhook's budget for an event. The list rows its writes left, and an event's own
/// row (`index`), go to the index in one request at the end ([`Store::flush`]).
pub async fn run<S: Store, T: Transport>(
    work: Work,
    index: Option<IndexAs>,
    services: &Services<'_, S, T>,
) -> String {
    let store = services.store;
    match work {
        Work::Event(event) => {
            let result = process(services, event, services.now).await;
            let result = indexed(store, result.map_err(AppError::from), index).await;
            encode(Answer::new(result, services.trace))
        }
        Work::CreateSession(request) => {
            let result = identity::create_session(&request, services).await;
            encode(Answer::new(flushed(store, result).await, services.trace))
        }
        Work::Charge(ChargeWork { request, origin }) => {
            let result = charges::create_charge(services, &request, &origin).await;
            encode(Answer::new(flushed(store, result).await, services.trace))
        }
        Work::Success(raw) => {
            let result = match crate::services::decode_raw::<CheckoutSession>(&raw) {
                Ok(session) => setup::complete_retrieved(services, &session).await,
                Err(error) => Err(error),
            };
            let result = flushed(store, result).await;
            encode(Answer::new(
                Ok(success_page(result, services.trace)),
                services.trace,
            ))
        }
    }
}

/// The work's list rows sent. A flush that failed fails the work as a failed write would:
/// its records stay pending in the table (written again before the next work) and its writer
/// retries.
async fn flushed<S: Store, R>(store: &S, result: Result<R, AppError>) -> Result<R, AppError> {
    match store.flush(None).await {
        Ok(_) => result,
        Err(error) => result.and(Err(error.into())),
    }
}

/// [`flushed`], with the event's own row when it wrote a record; a receipt whose row went
/// with them no longer carries the record (the worker indexes only what is left to index).
async fn indexed<S: Store>(
    store: &S,
    result: Result<Receipt, AppError>,
    index: Option<IndexAs>,
) -> Result<Receipt, AppError> {
    let entry = match (&result, index) {
        (Ok(receipt), Some(index)) => receipt
            .record
            .as_deref()
            .map(|record| index.entry(record.clone())),
        _ => None,
    };
    match store.flush(entry).await {
        Ok(true) => result.map(|receipt| Receipt {
            record: None,
            ..receipt
        }),
        Ok(false) => result,
        Err(error) => result.and(Err(error.into())),
    }
}

/// The success page for what recording the session came to: failures are pages too, never
/// quoting Stripe, and one that a retry may get past is noted for the log.
pub fn success_page(result: Result<SuccessView, AppError>, trace: &Trace) -> (u16, String) {
    match result {
        Ok(view) => (view.status(), view.render()),
        Err(error) => {
            if error.status() >= 500 {
                // Status, type, code and request id of a Stripe error, never its message.
                trace.note(format!("success page failed: {}", error.log_text()));
            }
            pages::success_error_page(&error)
        }
    }
}

/// The answer of work that could not start (the queue's settings or stores unavailable).
pub fn refused(error: AppError, trace: &Trace) -> String {
    encode(Answer::<()>::new(Err(error), trace))
}

fn encode<T: Serialize>(answer: Answer<T>) -> String {
    serde_json::to_string(&answer).unwrap_or_else(|_| {
        let error = AppError::Internal("a queue answer does not serialise").relay();
        serde_json::to_string(&Answer::<()> {
            result: Err(error),
            trace: TraceData::default(),
        })
        .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::event::Outcome;
    use crate::record_index::Table;
    use crate::store::entity::{EntityStore, MemoryTable, Table as _};
    use crate::store::{MemoryStore, StoreError};
    use crate::testing::FakeTransport;
    use pollster::block_on;

    fn event(id: &str, kind: &str) -> Event {
        let body = serde_json::json!({
            "id": id, "object": "event", "type": kind, "created": 1, "livemode": false,
            "data": { "object": { "id": "vs_1", "object": "identity.verification_session",
                "status": "processing", "created": 1,
                "metadata": { "user_id": "ann", "created_by": "stripe-edge-webhooks" } } },
        });
        Event::parse(body.to_string().as_bytes()).unwrap()
    }

    fn over_the_binding(work: &Work) -> Work {
        serde_json::from_str(&serde_json::to_string(work).unwrap()).unwrap()
    }

    #[test]
    fn an_event_crosses_the_binding_and_its_receipt_and_trace_come_back() {
        let store = MemoryStore::new();
        let config = Config::from_lookup(|name| {
            (name == crate::config::STRIPE_SECRET_KEY).then(|| "sk_test_queue".to_owned())
        })
        .unwrap();
        let transport = FakeTransport::unreachable();
        let queue_trace = Trace::new();
        let services = Services::new(&store, &transport, &config, 5, &queue_trace);
        let work = over_the_binding(&Work::Event(event(
            "evt_1",
            "identity.verification_session.processing",
        )));
        assert_eq!(work.entity(), Some(Entity::user("ann")));
        let answer: EventAnswer =
            serde_json::from_str(&block_on(run(work, None, &services))).unwrap();
        let worker_trace = Trace::new();
        worker_trace.note("before");
        let receipt = answer.into_result(&worker_trace).unwrap();
        assert_eq!(
            (
                receipt.event_id.as_str(),
                receipt.outcome,
                receipt.duplicate
            ),
            ("evt_1", Outcome::Handled, false)
        );
        assert!(block_on(store.get("identity:user:ann")).unwrap().is_some());
        assert_eq!(worker_trace.snapshot().notes[0], "before");
    }

    fn config() -> Config {
        Config::from_lookup(|name| {
            (name == crate::config::STRIPE_SECRET_KEY).then(|| "sk_test_queue".to_owned())
        })
        .unwrap()
    }

    /// Runs `work` in a queue over `table` and `kv` (a deferring KV, as the queue's is).
    fn run_queued(
        table: &MemoryTable,
        kv: &MemoryStore,
        work: Work,
        index: Option<IndexAs>,
    ) -> EventAnswer {
        let store = EntityStore::new(table, kv, 5);
        block_on(store.catch_up()).unwrap();
        let (config, transport, trace) = (config(), FakeTransport::unreachable(), Trace::new());
        let services = Services::new(&store, &transport, &config, 5, &trace);
        serde_json::from_str(&block_on(run(over_the_binding(&work), index, &services))).unwrap()
    }

    /// `evt_1`, ann's session `processing`, delivered by Stripe, run in ann's queue.
    fn run_anns_event(table: &MemoryTable, kv: &MemoryStore) -> EventAnswer {
        let work = Work::Event(event("evt_1", "identity.verification_session.processing"));
        run_queued(table, kv, work, delivered_as_ann())
    }

    fn delivered_as_ann() -> Option<IndexAs> {
        Some(IndexAs {
            entity: Some("user:ann".into()),
            delivered: true,
        })
    }

    #[test]
    fn an_events_row_and_its_list_rows_go_to_the_index_in_one_request() {
        let (table, kv) = (MemoryTable::new(), MemoryStore::deferring());
        let answer = run_anns_event(&table, &kv);
        let receipt = answer.into_result(&Trace::new()).unwrap();
        // Indexed by the queue: the worker has nothing left to index.
        assert_eq!((receipt.outcome, receipt.record), (Outcome::Handled, None));
        let flushed = kv.flushed();
        assert_eq!(flushed.len(), 1, "{flushed:?}");
        let entry = flushed[0].event.as_ref().unwrap();
        assert_eq!(
            (
                entry.record.id.as_str(),
                entry.entity.as_deref(),
                entry.delivered
            ),
            ("evt_1", Some("user:ann"), true)
        );
        let rows: Vec<_> = flushed[0]
            .tables()
            .map(|(t, r)| (t, r.id.as_str()))
            .collect();
        assert_eq!(rows, [(Some(Table::Users), "ann")]);
        assert!(table.pending().unwrap().is_empty());
    }

    #[test]
    fn a_flush_that_fails_fails_the_work_and_its_rows_go_with_the_next_work() {
        let (table, kv) = (MemoryTable::new(), MemoryStore::deferring());
        kv.set_index_failing(true);
        let answer = run_anns_event(&table, &kv);
        let error = answer.into_result(&Trace::new()).unwrap_err();
        assert!(error.is_retryable(), "{error:?}");
        // In KV, but still pending in the table: its row was not written.
        assert!(block_on(kv.get("identity:user:ann")).unwrap().is_some());
        assert_eq!(table.pending_keys(), ["identity:user:ann"]);
        kv.set_index_failing(false);
        // Stripe's retry: a duplicate now, and the catch-up before it sends the user's row.
        let answer = run_anns_event(&table, &kv);
        assert!(answer.into_result(&Trace::new()).unwrap().duplicate);
        let rows: Vec<_> = kv.flushed()[0]
            .tables()
            .map(|(t, r)| (t, r.id.clone()))
            .collect();
        assert_eq!(rows, [(Some(Table::Users), "ann".to_owned())]);
        assert!(table.pending().unwrap().is_empty());
    }

    #[test]
    fn work_outside_a_deferring_kv_leaves_the_events_row_to_the_worker() {
        let (table, kv) = (MemoryTable::new(), MemoryStore::new());
        let answer = run_anns_event(&table, &kv);
        let receipt = answer.into_result(&Trace::new()).unwrap();
        assert_eq!(receipt.record.map(|r| r.id), Some("evt_1".to_owned()));
        assert!(table.pending().unwrap().is_empty());
    }

    #[test]
    fn how_an_event_is_indexed_crosses_in_a_header_and_nothing_else_is_read_as_it() {
        for index in [
            IndexAs {
                entity: Some("user:ann".into()),
                delivered: true,
            },
            IndexAs {
                entity: Some("customer:cus_1".into()),
                delivered: false,
            },
            IndexAs {
                entity: None,
                delivered: true,
            },
        ] {
            assert_eq!(IndexAs::from_header(&index.header()), Some(index));
        }
        assert_eq!(
            IndexAs::header(&delivered_as_ann().unwrap()),
            "delivered user:ann"
        );
        for other in ["", "1", "Delivered user:ann", "yes user:ann"] {
            assert_eq!(IndexAs::from_header(other), None, "{other}");
        }
    }

    #[test]
    fn an_answer_reads_back_as_written_and_a_result_of_another_type_is_refused() {
        let trace = Trace::new();
        trace.note("paged");
        let text = encode(Answer::new(
            Ok((402u16, "<p>declined</p>".to_owned())),
            &trace,
        ));
        let answer: PageAnswer = serde_json::from_str(&text).unwrap();
        assert_eq!(answer.result.unwrap(), (402, "<p>declined</p>".to_owned()));
        assert_eq!(answer.trace.notes, ["paged"]);
        assert!(serde_json::from_str::<EventAnswer>(&text).is_err());
        let missing_trace = r#"{"result":{"Ok":[200,"x"]}}"#;
        assert!(serde_json::from_str::<PageAnswer>(missing_trace).is_err());
    }

    #[test]
    fn an_error_comes_back_answered_and_logged_as_it_was() {
        let trace = Trace::new();
        trace.note("in the queue");
        let error = AppError::Store(StoreError::Unavailable("kv down".into()));
        let text = refused(error, &trace);
        let answer: EventAnswer = serde_json::from_str(&text).unwrap();
        let worker_trace = Trace::new();
        let relayed = answer.into_result(&worker_trace).unwrap_err();
        let original = AppError::Store(StoreError::Unavailable("kv down".into()));
        assert_eq!(
            (relayed.status(), relayed.code(), relayed.is_retryable()),
            (original.status(), original.code(), original.is_retryable())
        );
        assert_eq!(relayed.body(), original.body());
        assert_eq!(relayed.log_text(), original.log_text());
        assert_eq!(worker_trace.snapshot().notes, ["in the queue"]);
    }

    #[test]
    fn each_route_names_the_entity_its_events_name() {
        let request =
            identity::CreateSession::from_json(serde_json::json!({"user_id": "ann"})).unwrap();
        assert_eq!(
            Work::CreateSession(request).entity(),
            Work::Event(event("evt_2", "identity.verification_session.verified")).entity()
        );
        let charge = Work::Charge(ChargeWork {
            request: ChargeRequest {
                customer: "cus_9".into(),
                amount: 100,
                currency: "usd".into(),
                description: None,
                idempotency_key: "order-9".into(),
                payment_method: None,
            },
            origin: "https://x.test".into(),
        });
        assert_eq!(charge.entity(), Some(Entity::customer("cus_9")));
        assert!(!charge.is_event());
        // The JSON the worker sends its queue, both ways: a worker and a queue of two versions
        // read each other's during a deploy.
        let json = r#"{"charge":{"request":{"customer":"cus_9","amount":100,"currency":"usd","description":null,"idempotency_key":"order-9","payment_method":null},"origin":"https://x.test"}}"#;
        assert_eq!(serde_json::to_string(&charge).unwrap(), json);
        let read: Work = serde_json::from_str(json).unwrap();
        assert_eq!(format!("{read:?}"), format!("{charge:?}"));
    }
}
