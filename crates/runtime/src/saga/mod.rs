//! Orchestrated sagas: a central orchestrator runs a list of steps, each a
//! command sent point-to-point to a service and a reply awaited, and on a
//! failure runs the compensations of the steps that took effect, in
//! reverse order.
//!
//! ```text
//!  start(id, data) ─▶ saga-<id>: SagaStarted
//!  for each step:     CommandSent ─▶ publish <step topic>: <action>   ──▶ participant
//!                     StepSucceeded ◀── reply on <replies topic>       ◀── (does it once,
//!                       | StepFailed  ─▶ compensate                         by its key)
//!                       | StepTimedOut ─▶ send again (max_attempts), then compensate
//!  compensate:        CommandSent(undo) for each done step, last first ─▶ SagaCompensated
//!  all done:          SagaCompleted
//! ```
//!
//! A saga's state is event-sourced in the event store (stream
//! `saga-<id>`), and every transition is recorded there **before** it
//! acts: a command is recorded as sent, then published. An orchestrator
//! that crashes anywhere resumes each unfinished saga from its stream,
//! sending the command it waits for again. Each command carries an
//! idempotency key (`idempotencykey`: `<saga>.<step>.<do|undo>`, the same
//! for every attempt) and an id per attempt (`<saga>.<step>.<phase>.<n>`,
//! the same when a crash makes it be sent again, so the bus's dedup window
//! drops the copy); a participant on `eddy-runtime`'s [`Service`] with a
//! processed-id store does it once per key (see
//! [`crate::service::Context::idempotency_key`]).
//!
//! Participants reply with [`SagaCommand::succeeded`] or
//! [`SagaCommand::failed`]. A step whose every attempt timed out may have
//! taken effect, so it is compensated too: a participant treats a
//! compensation of an action it never did as done. Compensations are
//! retried until they succeed.
//!
//! [`Service`]: crate::service::Service

mod orchestrator;
mod state;

use bytes::Bytes;
use eddy_bus::{AllFilter, BusError, Direction, Event, EventStore, RecordedEvent, StreamFrom};
use serde::{Deserialize, Serialize};

pub use orchestrator::{
    Observer, Orchestrator, OrchestratorConfig, RunningOrchestrator, SagaStats,
};
pub use state::{Awaiting, Next, Phase, SagaEvent, SagaState, Status};

/// The category of saga streams: `saga-<id>`.
pub const SAGA_CATEGORY: &str = "saga";
/// The header naming a command's saga.
pub const SAGA_ID_HEADER: &str = "sagaid";
/// The header naming a command's step.
pub const SAGA_STEP_HEADER: &str = "sagastep";
/// The header saying `do` or `undo`.
pub const SAGA_PHASE_HEADER: &str = "sagaphase";
/// The header naming the topic to reply to.
pub const SAGA_REPLY_TO_HEADER: &str = "sagareplyto";
/// The header holding a command's idempotency key (the same for every
/// attempt of a step's action, or of its compensation).
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotencykey";
/// The type of a participant's reply that the command is done.
pub const STEP_SUCCEEDED_TYPE: &str = "SagaStepSucceeded";
/// The type of a participant's reply that it refused the action.
pub const STEP_FAILED_TYPE: &str = "SagaStepFailed";

/// A step: the command that does it and the one that undoes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepDefinition {
    /// Its name (`reserve-inventory`), in headers and history.
    pub name: String,
    /// The topic its commands go to (point-to-point: the participant's
    /// subscription shares them among its consumers).
    pub topic: String,
    /// The action's command type (`ReserveInventory`).
    pub action: String,
    /// The compensation's command type (`ReleaseInventory`), if the step
    /// can be undone.
    pub compensation: Option<String>,
    /// How long one attempt waits for its reply.
    pub timeout_ms: u64,
    /// Attempts of the action before the step fails (at least 1).
    /// Compensations are tried until they succeed.
    pub max_attempts: u32,
}

impl StepDefinition {
    /// A step sending `action` to `topic`, no compensation, a 10 s timeout
    /// and 3 attempts.
    pub fn new(name: &str, topic: &str, action: &str) -> StepDefinition {
        StepDefinition {
            name: name.to_string(),
            topic: topic.to_string(),
            action: action.to_string(),
            compensation: None,
            timeout_ms: 10_000,
            max_attempts: 3,
        }
    }

    /// Sets the compensation's command type.
    pub fn compensate_with(mut self, compensation: &str) -> StepDefinition {
        self.compensation = Some(compensation.to_string());
        self
    }

    /// Sets the per-attempt timeout and the number of attempts.
    pub fn timeout(mut self, timeout_ms: u64, max_attempts: u32) -> StepDefinition {
        self.timeout_ms = timeout_ms;
        self.max_attempts = max_attempts.max(1);
        self
    }
}

/// A saga: its steps, in order, and where their replies come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaDefinition {
    /// Its name, recorded when a saga starts.
    pub name: String,
    /// The topic participants reply to.
    pub replies_topic: String,
    /// The steps.
    pub steps: Vec<StepDefinition>,
}

impl SagaDefinition {
    /// A definition.
    pub fn new(name: &str, replies_topic: &str, steps: Vec<StepDefinition>) -> SagaDefinition {
        SagaDefinition {
            name: name.to_string(),
            replies_topic: replies_topic.to_string(),
            steps,
        }
    }
}

/// The stream of saga `id`.
pub fn saga_stream(id: &str) -> String {
    format!("{SAGA_CATEGORY}-{id}")
}

/// A saga's command as a participant receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaCommand {
    /// The saga.
    pub saga: String,
    /// The step's name.
    pub step: String,
    /// Action or compensation.
    pub phase: Phase,
    /// Where to reply.
    pub reply_to: String,
    /// The same for every attempt of this step's action (or compensation).
    pub idempotency_key: String,
    /// The saga's data.
    pub data: Bytes,
}

fn header<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    event
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

impl SagaCommand {
    /// The saga command an event carries, if it is one.
    pub fn from_event(event: &Event) -> Option<SagaCommand> {
        Some(SagaCommand {
            saga: header(event, SAGA_ID_HEADER)?.to_string(),
            step: header(event, SAGA_STEP_HEADER)?.to_string(),
            phase: Phase::parse(header(event, SAGA_PHASE_HEADER)?)?,
            reply_to: header(event, SAGA_REPLY_TO_HEADER)?.to_string(),
            idempotency_key: header(event, IDEMPOTENCY_KEY_HEADER)?.to_string(),
            data: event.data.clone(),
        })
    }

    fn reply(&self, ty: &str, body: serde_json::Value) -> Event {
        let mut event = Event::new(ty, body.to_string())
            .with_key(self.saga.clone())
            .with_correlation_id(self.saga.clone())
            .with_header(SAGA_ID_HEADER, self.saga.clone())
            .with_header(SAGA_STEP_HEADER, self.step.clone())
            .with_header(SAGA_PHASE_HEADER, self.phase.as_str());
        event.data_content_type = Some("application/json".into());
        event
    }

    /// The reply that the command is done, with a result for the saga's
    /// history. Publish it to [`SagaCommand::reply_to`].
    pub fn succeeded(&self, result: serde_json::Value) -> Event {
        self.reply(STEP_SUCCEEDED_TYPE, serde_json::json!({ "result": result }))
    }

    /// The reply that the action was refused and had no effect.
    pub fn failed(&self, reason: &str) -> Event {
        self.reply(STEP_FAILED_TYPE, serde_json::json!({ "reason": reason }))
    }
}

/// One saga as `eddy saga list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaSummary {
    /// Its id.
    pub id: String,
    /// Its definition.
    pub definition: String,
    /// Where it is.
    pub status: Status,
    /// The steps whose action succeeded.
    pub steps_done: usize,
    /// The steps compensated.
    pub steps_compensated: usize,
    /// Why it compensates, if it does.
    pub reason: Option<String>,
    /// Events in its stream.
    pub events: u64,
    /// When it started and last changed (store time, ms).
    pub started_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
}

/// A saga's events, decoded; an event that is not a saga event is an
/// error naming it.
pub fn decode_saga_event(e: &RecordedEvent) -> Result<SagaEvent, BusError> {
    serde_json::from_slice(&e.event.data).map_err(|err| {
        BusError::Corrupt(format!(
            "event {} of {:?} is not a saga event: {err}",
            e.version, e.stream
        ))
    })
}

/// Every saga in the store (read from the `saga` category, in the order
/// they started), folded without their definitions: the summary counts
/// what the events say.
pub async fn list_sagas<S: EventStore>(store: &S) -> Result<Vec<SagaSummary>, BusError> {
    let mut out: Vec<SagaSummary> = Vec::new();
    let mut by_id: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut from = 0;
    loop {
        let slice = store
            .read_all(from, AllFilter::Category(SAGA_CATEGORY.into()), 1_000, 0)
            .await?;
        for e in &slice.events {
            let Some(id) = e.stream.strip_prefix("saga-") else {
                continue;
            };
            let Ok(event) = decode_saga_event(e) else {
                continue;
            };
            let i = match by_id.get(id) {
                Some(&i) => i,
                None => {
                    let SagaEvent::SagaStarted { definition, .. } = &event else {
                        continue;
                    };
                    out.push(SagaSummary {
                        id: id.to_string(),
                        definition: definition.clone(),
                        status: Status::Running,
                        steps_done: 0,
                        steps_compensated: 0,
                        reason: None,
                        events: 0,
                        started_ms: e.timestamp_ms,
                        updated_ms: e.timestamp_ms,
                    });
                    by_id.insert(id.to_string(), out.len() - 1);
                    out.len() - 1
                }
            };
            let s = &mut out[i];
            s.events += 1;
            s.updated_ms = e.timestamp_ms;
            match event {
                SagaEvent::StepSucceeded {
                    phase: Phase::Do, ..
                } => s.steps_done += 1,
                SagaEvent::StepSucceeded {
                    phase: Phase::Undo, ..
                } => s.steps_compensated += 1,
                SagaEvent::StepFailed { reason, .. } => {
                    s.status = Status::Compensating;
                    s.reason.get_or_insert(reason);
                }
                SagaEvent::CancelRequested { reason } => {
                    s.status = Status::Compensating;
                    s.reason.get_or_insert(format!("cancelled: {reason}"));
                }
                SagaEvent::StepTimedOut { .. } if s.status == Status::Running => {}
                SagaEvent::SagaCompleted => s.status = Status::Completed,
                SagaEvent::SagaCompensated { reason } => {
                    s.status = Status::Compensated;
                    s.reason = Some(reason);
                }
                _ => {}
            }
        }
        if slice.events.is_empty() && slice.next >= slice.head {
            return Ok(out);
        }
        from = slice.next;
    }
}

/// Asks, through the store, for saga `id` to be cancelled: appends
/// `CancelRequested` to its stream. The orchestrator running it takes it
/// in at the saga's next transition (a reply or a deadline), lets the step
/// in flight finish, and compensates. `false` if the saga is over (or was
/// cancelled already); `StreamNotFound` if there is no such saga.
pub async fn request_cancel<S: EventStore>(
    store: &S,
    id: &str,
    reason: &str,
) -> Result<bool, BusError> {
    let history = saga_history(store, id).await?;
    let mut last = None;
    for (e, event) in &history {
        last = Some(e.version);
        if matches!(
            event,
            SagaEvent::SagaCompleted
                | SagaEvent::SagaCompensated { .. }
                | SagaEvent::CancelRequested { .. }
        ) {
            return Ok(false);
        }
    }
    let expected = last.map_or(
        eddy_bus::ExpectedVersion::NoStream,
        eddy_bus::ExpectedVersion::Exact,
    );
    let event = SagaEvent::CancelRequested {
        reason: reason.to_string(),
    };
    let data = serde_json::to_vec(&event).map_err(|e| BusError::InvalidArgument {
        what: "reason",
        reason: e.to_string(),
    })?;
    let mut stored = Event::new(event.type_name(), data).with_source("eddy-saga-cancel");
    stored.data_content_type = Some("application/json".into());
    match store.append(&saga_stream(id), expected, vec![stored]).await {
        Ok(_) => Ok(true),
        // It moved on meanwhile: look again.
        Err(BusError::WrongExpectedVersion { .. }) => {
            Box::pin(request_cancel(store, id, reason)).await
        }
        Err(e) => Err(e),
    }
}

/// One saga's history: its events in order; `StreamNotFound` if none.
pub async fn saga_history<S: EventStore>(
    store: &S,
    id: &str,
) -> Result<Vec<(RecordedEvent, SagaEvent)>, BusError> {
    let stream = saga_stream(id);
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let slice = store
            .read_stream(
                &stream,
                StreamFrom::Version(from),
                Direction::Forward,
                1_000,
            )
            .await?;
        if slice.last_version.is_none() {
            return Err(BusError::StreamNotFound(stream));
        }
        for e in slice.events {
            let event = decode_saga_event(&e)?;
            out.push((e, event));
        }
        match slice.next {
            Some(n) => from = n,
            None => return Ok(out),
        }
    }
}
