//! The orchestrator: runs sagas on a bus that is also an event store.
//!
//! Every saga it runs is in memory (its folded state and stream version)
//! behind its own lock; a transition appends the saga's next event with the
//! version it holds as the expected version, then acts. Two loops drive
//! it: replies (a durable subscription on the replies topic; a reply is
//! acked once its outcome is recorded) and deadlines (every `tick_ms`, by
//! the injected clock).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use eddy_bus::store::check_stream_name;
use eddy_bus::{
    AllFilter, Bus, BusError, DeliveryMode, Event, EventStore, ExpectedVersion, FetchOptions,
    StartAt, SubscriptionConfig, TopicConfig,
};
use eddy_log::{Clock, SystemClock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::state::{Next, Phase, SagaEvent, SagaState};
use super::{
    IDEMPOTENCY_KEY_HEADER, SAGA_CATEGORY, SAGA_ID_HEADER, SAGA_PHASE_HEADER, SAGA_REPLY_TO_HEADER,
    SAGA_STEP_HEADER, STEP_FAILED_TYPE, STEP_SUCCEEDED_TYPE, SagaDefinition, decode_saga_event,
    saga_stream,
};

/// How an orchestrator runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrchestratorConfig {
    /// The durable subscription on the replies topic.
    pub subscription: String,
    /// How often deadlines are checked (real time).
    pub tick_ms: u64,
    /// Replies fetched at a time.
    pub fetch_max: u32,
    /// The CloudEvents source of the commands it sends.
    pub source: String,
    /// Partitions of the command and reply topics it creates.
    pub partitions: u32,
    /// The lease of a reply it fetched: after a crash, a reply the dead
    /// orchestrator held comes back to the new one this much later. Keep
    /// steps' timeouts above it, so that such a reply beats the timeout.
    pub reply_ack_wait_ms: u64,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            subscription: "saga-orchestrator".into(),
            tick_ms: 100,
            fetch_max: 256,
            source: "saga-orchestrator".into(),
            partitions: 4,
            reply_ack_wait_ms: 2_000,
        }
    }
}

/// What an orchestrator has done since it started.
#[derive(Debug, Default)]
pub struct SagaStats {
    /// Sagas started.
    pub started: AtomicU64,
    /// Unfinished sagas picked up from the store at start.
    pub resumed: AtomicU64,
    /// Commands sent (each attempt, and each one sent again on resume).
    pub commands_sent: AtomicU64,
    /// Replies recorded.
    pub replies: AtomicU64,
    /// Replies ignored (late, repeated, or for no running saga).
    pub replies_ignored: AtomicU64,
    /// Attempts that timed out.
    pub timeouts: AtomicU64,
    /// Sagas completed.
    pub completed: AtomicU64,
    /// Sagas compensated.
    pub compensated: AtomicU64,
}

/// Called with a saga's id and each event recorded for it, once durable.
pub type Observer = Arc<dyn Fn(&str, &SagaEvent) + Send + Sync>;

/// An orchestrator being set up: its bus, clock and saga definitions.
pub struct Orchestrator<B> {
    bus: B,
    config: OrchestratorConfig,
    clock: Arc<dyn Clock>,
    defs: HashMap<String, Arc<SagaDefinition>>,
    observer: Option<Observer>,
}

impl<B: std::fmt::Debug> std::fmt::Debug for Orchestrator<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("bus", &self.bus)
            .field("config", &self.config)
            .field("defs", &self.defs)
            .finish_non_exhaustive()
    }
}

/// One saga being run.
#[derive(Debug)]
struct Active {
    id: String,
    def: Arc<SagaDefinition>,
    state: SagaState,
    /// The version of its stream's last event.
    version: u64,
}

struct Shared<B> {
    bus: B,
    config: OrchestratorConfig,
    clock: Arc<dyn Clock>,
    defs: HashMap<String, Arc<SagaDefinition>>,
    sagas: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Active>>>>,
    stats: SagaStats,
    observer: Option<Observer>,
}

impl<B: std::fmt::Debug> std::fmt::Debug for Shared<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("bus", &self.bus)
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// A running orchestrator.
#[derive(Debug)]
pub struct RunningOrchestrator<B> {
    shared: Arc<Shared<B>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn bad(reason: String) -> BusError {
    BusError::InvalidArgument {
        what: "saga",
        reason,
    }
}

impl<B: Bus + EventStore + Clone> Orchestrator<B> {
    /// An orchestrator on `bus`, on the system clock.
    pub fn new(bus: B, config: OrchestratorConfig) -> Orchestrator<B> {
        Orchestrator {
            bus,
            config,
            clock: Arc::new(SystemClock),
            defs: HashMap::new(),
            observer: None,
        }
    }

    /// Calls `f` with each saga event recorded, once it is durable (for
    /// logs, metrics, or a demo's progress).
    pub fn observe(mut self, f: impl Fn(&str, &SagaEvent) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(f));
        self
    }

    /// Reads time (deadlines) from `clock`.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Adds a saga definition.
    pub fn define(mut self, def: SagaDefinition) -> Self {
        self.defs.insert(def.name.clone(), Arc::new(def));
        self
    }

    /// Creates the topics and the replies subscription if missing, resumes
    /// every unfinished saga in the store, and starts the reply and
    /// deadline loops.
    pub async fn start(self) -> Result<RunningOrchestrator<B>, BusError> {
        let replies: Vec<&str> = {
            let mut r: Vec<&str> = self
                .defs
                .values()
                .map(|d| d.replies_topic.as_str())
                .collect();
            r.sort_unstable();
            r.dedup();
            r
        };
        let [replies_topic] = replies[..] else {
            return Err(bad(format!(
                "an orchestrator's definitions share one replies topic, not {replies:?}"
            )));
        };
        let replies_topic = replies_topic.to_string();
        for def in self.defs.values() {
            if def.steps.is_empty() {
                return Err(bad(format!("saga {:?} has no steps", def.name)));
            }
        }
        let mut topics: Vec<String> = self
            .defs
            .values()
            .flat_map(|d| d.steps.iter().map(|s| s.topic.clone()))
            .collect();
        topics.push(replies_topic.clone());
        topics.sort();
        topics.dedup();
        for t in &topics {
            match self
                .bus
                .create_topic(t, TopicConfig::with_partitions(self.config.partitions))
                .await
            {
                Ok(_) | Err(BusError::TopicExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let sub = SubscriptionConfig::new(&replies_topic)
            .start_at(StartAt::Earliest)
            .mode(DeliveryMode::Shared)
            .ack_wait_ms(self.config.reply_ack_wait_ms);
        match self
            .bus
            .create_subscription(&self.config.subscription, sub)
            .await
        {
            Ok(_) | Err(BusError::SubscriptionExists(_)) => {}
            Err(e) => return Err(e),
        }
        let shared = Arc::new(Shared {
            bus: self.bus,
            config: self.config,
            clock: self.clock,
            defs: self.defs,
            sagas: Mutex::new(HashMap::new()),
            stats: SagaStats::default(),
            observer: self.observer,
        });
        shared.resume().await?;
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(Arc::clone(&shared).reply_loop(stopped.clone())),
            tokio::spawn(Arc::clone(&shared).deadline_loop(stopped)),
        ];
        Ok(RunningOrchestrator {
            shared,
            stop,
            tasks,
        })
    }
}

impl<B: Bus + EventStore + Clone> RunningOrchestrator<B> {
    /// Starts saga `id` of definition `definition` with `data`. Starting
    /// the same saga again (same id) does nothing and returns `false`.
    pub async fn start_saga(
        &self,
        definition: &str,
        id: &str,
        data: serde_json::Value,
    ) -> Result<bool, BusError> {
        self.shared.start_saga(definition, id, data).await
    }

    /// Asks for a saga to be undone: the step in flight finishes, then the
    /// done steps are compensated in reverse. `false` if it is over
    /// already (or unknown).
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<bool, BusError> {
        self.shared.cancel(id, reason).await
    }

    /// Records every attempt whose deadline has passed (by the clock) and
    /// acts on it; the deadline loop calls this every `tick_ms`.
    pub async fn check_deadlines(&self) -> Result<(), BusError> {
        self.shared.check_deadlines().await
    }

    /// The state of a saga this orchestrator runs (`None` once it is over).
    pub async fn state(&self, id: &str) -> Option<SagaState> {
        let cell = self.shared.cell(id)?;
        Some(cell.lock().await.state.clone())
    }

    /// How many sagas it runs now.
    pub fn running(&self) -> usize {
        self.shared.lock_sagas().len()
    }

    /// Its counters.
    pub fn stats(&self) -> &SagaStats {
        &self.shared.stats
    }

    /// Stops both loops; a saga's progress so far is in the store.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

impl<B: Bus + EventStore + Clone> Shared<B> {
    fn lock_sagas(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<Active>>>> {
        self.sagas.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cell(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<Active>>> {
        self.lock_sagas().get(id).cloned()
    }

    async fn start_saga(
        &self,
        definition: &str,
        id: &str,
        data: serde_json::Value,
    ) -> Result<bool, BusError> {
        let def = self
            .defs
            .get(definition)
            .cloned()
            .ok_or_else(|| bad(format!("no saga is defined as {definition:?}")))?;
        let stream = saga_stream(id);
        check_stream_name(&stream)?;
        let started = SagaEvent::SagaStarted {
            definition: def.name.clone(),
            steps: def.steps.iter().map(|s| s.name.clone()).collect(),
            data: data.clone(),
        };
        let event = to_event(&stream, 0, &started)?;
        let r = match self
            .bus
            .append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
        {
            Ok(r) => r,
            Err(BusError::WrongExpectedVersion { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if r.duplicate {
            return Ok(false);
        }
        self.stats.started.fetch_add(1, Ordering::Relaxed);
        if let Some(observe) = &self.observer {
            observe(id, &started);
        }
        let active = Active {
            id: id.to_string(),
            state: SagaState::started(&def.name, data, def.steps.len()),
            def,
            version: r.last_version,
        };
        let cell = Arc::new(tokio::sync::Mutex::new(active));
        self.lock_sagas().insert(id.to_string(), Arc::clone(&cell));
        let mut active = cell.lock().await;
        self.advance(&mut active).await?;
        Ok(true)
    }

    async fn cancel(&self, id: &str, reason: &str) -> Result<bool, BusError> {
        let Some(cell) = self.cell(id) else {
            return Ok(false);
        };
        let mut active = cell.lock().await;
        if active.state.status.is_final() || active.state.cancelled.is_some() {
            return Ok(false);
        }
        let event = SagaEvent::CancelRequested {
            reason: reason.to_string(),
        };
        self.record(&mut active, event).await?;
        self.advance(&mut active).await?;
        Ok(true)
    }

    /// Appends `event` to the saga's stream at the version it holds, and
    /// folds it in. A conflict (someone else wrote to the stream) reloads
    /// the saga and is returned: the caller decides again.
    async fn record(&self, active: &mut Active, event: SagaEvent) -> Result<(), BusError> {
        let stream = saga_stream(&active.id);
        let next = active.version + 1;
        let stored = to_event(&stream, next, &event)?;
        match self
            .bus
            .append(
                &stream,
                ExpectedVersion::Exact(active.version),
                vec![stored],
            )
            .await
        {
            Ok(r) => {
                active.version = r.last_version;
                active.state.apply(&event, &active.def);
                if active.state.status.is_final() {
                    // Over: no longer run (before the observer hears of it,
                    // so that it sees `running` without this saga).
                    self.lock_sagas().remove(&active.id);
                }
                if let Some(observe) = &self.observer {
                    observe(&active.id, &event);
                }
                Ok(())
            }
            Err(e @ BusError::WrongExpectedVersion { .. }) => {
                self.reload(active).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn reload(&self, active: &mut Active) -> Result<(), BusError> {
        let history = super::saga_history(&self.bus, &active.id).await?;
        let mut state = SagaState::started(
            &active.def.name,
            serde_json::Value::Null,
            active.def.steps.len(),
        );
        for (e, event) in &history {
            if let SagaEvent::SagaStarted { data, .. } = event {
                state.data = data.clone();
            }
            state.apply(event, &active.def);
            active.version = e.version;
        }
        active.state = state;
        Ok(())
    }

    /// Does what the saga's state asks for until it waits for a reply or
    /// is over.
    async fn advance(&self, active: &mut Active) -> Result<(), BusError> {
        let mut conflicts = 0;
        loop {
            let result = match active.state.next(&active.def) {
                Next::Wait(_) | Next::Nothing => return Ok(()),
                Next::Send {
                    step,
                    phase,
                    attempt,
                } => {
                    let timeout = active.def.steps[step].timeout_ms;
                    let deadline_ms = self
                        .clock
                        .now_ms()
                        .saturating_add(i64::try_from(timeout).unwrap_or(i64::MAX));
                    let sent = SagaEvent::CommandSent {
                        step,
                        phase,
                        attempt,
                        deadline_ms,
                    };
                    match self.record(active, sent).await {
                        Ok(()) => {
                            self.send(active, step, phase, attempt).await;
                            return Ok(());
                        }
                        Err(e) => Err(e),
                    }
                }
                Next::Finish(end) => {
                    let completed = end == SagaEvent::SagaCompleted;
                    match self.record(active, end).await {
                        Ok(()) => {
                            let counter = if completed {
                                &self.stats.completed
                            } else {
                                &self.stats.compensated
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(saga = %active.id, completed, "saga over");
                            return Ok(());
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match result {
                Err(BusError::WrongExpectedVersion { .. }) if conflicts < 10 => conflicts += 1,
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
    }

    /// Publishes the command of (step, phase, attempt). A failure is only
    /// logged: the attempt times out and is sent again.
    async fn send(&self, active: &Active, step: usize, phase: Phase, attempt: u32) {
        let def = &active.def.steps[step];
        let ty = match phase {
            Phase::Do => def.action.as_str(),
            Phase::Undo => def.compensation.as_deref().unwrap_or(def.action.as_str()),
        };
        let id = &active.id;
        let key = format!("{id}.{}.{}", def.name, phase.as_str());
        let data = serde_json::to_vec(&active.state.data).unwrap_or_default();
        let mut command = Event::new(ty, data)
            .with_id(format!("{key}.{attempt}"))
            .with_source(self.config.source.clone())
            .with_key(id.clone())
            .with_correlation_id(id.clone())
            .with_header(SAGA_ID_HEADER, id.clone())
            .with_header(SAGA_STEP_HEADER, def.name.clone())
            .with_header(SAGA_PHASE_HEADER, phase.as_str())
            .with_header(SAGA_REPLY_TO_HEADER, active.def.replies_topic.clone())
            .with_header(IDEMPOTENCY_KEY_HEADER, key);
        command.data_content_type = Some("application/json".into());
        match self.bus.publish(&def.topic, command).await {
            Ok(_) => {
                self.stats.commands_sent.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(saga = %id, step = %def.name, phase = phase.as_str(), attempt, "command sent");
            }
            Err(e) => {
                tracing::warn!(saga = %id, step = %def.name, error = %e, "sending a saga command failed; it is sent again at its deadline");
            }
        }
    }

    /// Picks up every unfinished saga in the store: sends again the command
    /// each one waits for, and moves on those that wait for nothing.
    async fn resume(&self) -> Result<(), BusError> {
        let mut found: HashMap<String, Active> = HashMap::new();
        let mut from = 0;
        loop {
            let slice = self
                .bus
                .read_all(from, AllFilter::Category(SAGA_CATEGORY.into()), 1_000, 0)
                .await?;
            for e in &slice.events {
                let Some(id) = e.stream.strip_prefix("saga-") else {
                    continue;
                };
                let event = match decode_saga_event(e) {
                    Ok(ev) => ev,
                    Err(err) => {
                        tracing::warn!(error = %err, "skipping an undecodable saga event");
                        continue;
                    }
                };
                if let SagaEvent::SagaStarted {
                    definition, data, ..
                } = &event
                {
                    match self.defs.get(definition) {
                        Some(def) => {
                            found.insert(
                                id.to_string(),
                                Active {
                                    id: id.to_string(),
                                    def: Arc::clone(def),
                                    state: SagaState::started(
                                        definition,
                                        data.clone(),
                                        def.steps.len(),
                                    ),
                                    version: e.version,
                                },
                            );
                        }
                        None => {
                            tracing::warn!(
                                saga = id,
                                definition,
                                "not resuming a saga of an unknown definition"
                            );
                        }
                    }
                    continue;
                }
                if let Some(active) = found.get_mut(id) {
                    active.state.apply(&event, &active.def);
                    active.version = e.version;
                    if active.state.status.is_final() {
                        found.remove(id);
                    }
                }
            }
            if slice.events.is_empty() && slice.next >= slice.head {
                break;
            }
            from = slice.next;
        }
        let cells: Vec<Arc<tokio::sync::Mutex<Active>>> = {
            let mut sagas = self.lock_sagas();
            found
                .into_iter()
                .map(|(id, active)| {
                    let cell = Arc::new(tokio::sync::Mutex::new(active));
                    sagas.insert(id, Arc::clone(&cell));
                    cell
                })
                .collect()
        };
        self.stats
            .resumed
            .fetch_add(cells.len() as u64, Ordering::Relaxed);
        for cell in cells {
            let mut active = cell.lock().await;
            if let Next::Wait(a) = active.state.next(&active.def) {
                // It may never have left: send it again, same id.
                self.send(&active, a.step, a.phase, a.attempt).await;
            } else {
                self.advance(&mut active).await?;
            }
        }
        Ok(())
    }

    async fn reply_loop(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let sub = self.config.subscription.clone();
        let options = FetchOptions {
            max: self.config.fetch_max,
            wait_ms: 1_000,
        };
        loop {
            let fetched = tokio::select! {
                f = self.bus.fetch(&sub, options.clone()) => f,
                _ = stopped.wait_for(|s| *s) => return,
            };
            let deliveries = match fetched {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "fetching saga replies failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        _ = stopped.wait_for(|s| *s) => return,
                    }
                }
            };
            for d in deliveries {
                match self.on_reply(&d.event.event).await {
                    Ok(()) => {
                        if let Err(e) = self.bus.ack(&sub, &d.ack_id).await {
                            tracing::warn!(error = %e, "acking a saga reply failed");
                        }
                    }
                    // Not acked: it comes back after its lease.
                    Err(e) => tracing::warn!(error = %e, "recording a saga reply failed"),
                }
            }
        }
    }

    /// Records a participant's reply if the saga waits for it; ignores it
    /// otherwise (late, repeated, unknown saga).
    async fn on_reply(&self, reply: &Event) -> Result<(), BusError> {
        let header = |n: &str| {
            reply
                .headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        let (Some(id), Some(step), Some(phase)) = (
            header(SAGA_ID_HEADER),
            header(SAGA_STEP_HEADER),
            header(SAGA_PHASE_HEADER).and_then(Phase::parse),
        ) else {
            self.stats.replies_ignored.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let Some(cell) = self.cell(id) else {
            self.stats.replies_ignored.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let mut active = cell.lock().await;
        let body: serde_json::Value = serde_json::from_slice(&reply.data).unwrap_or_default();
        // Someone else may have written to the saga's stream (a cancel):
        // the reload that a conflict makes decides again.
        for _ in 0..10 {
            let Some(awaiting) = active.state.awaiting else {
                self.stats.replies_ignored.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            };
            if active.def.steps[awaiting.step].name != step || awaiting.phase != phase {
                self.stats.replies_ignored.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let outcome = match (reply.ty.as_str(), phase) {
                (STEP_SUCCEEDED_TYPE, _) => SagaEvent::StepSucceeded {
                    step: awaiting.step,
                    phase,
                    result: body.get("result").cloned().unwrap_or_default(),
                },
                (STEP_FAILED_TYPE, Phase::Do) => SagaEvent::StepFailed {
                    step: awaiting.step,
                    reason: body
                        .get("reason")
                        .and_then(|r| r.as_str())
                        .unwrap_or("no reason given")
                        .to_string(),
                },
                // A compensation must succeed: a refusal waits for the
                // deadline, and the compensation is sent again.
                _ => {
                    self.stats.replies_ignored.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
            };
            match self.record(&mut active, outcome).await {
                Ok(()) => {
                    self.stats.replies.fetch_add(1, Ordering::Relaxed);
                    return self.advance(&mut active).await;
                }
                Err(BusError::WrongExpectedVersion { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(BusError::Storage(format!(
            "saga {id} kept changing under its orchestrator"
        )))
    }

    async fn deadline_loop(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let every = Duration::from_millis(self.config.tick_ms.max(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.check_deadlines().await {
                tracing::warn!(error = %e, "checking saga deadlines failed");
            }
        }
    }

    async fn check_deadlines(&self) -> Result<(), BusError> {
        let now = self.clock.now_ms();
        let cells: Vec<_> = self.lock_sagas().values().cloned().collect();
        for cell in cells {
            let mut active = cell.lock().await;
            let Some(a) = active.state.awaiting else {
                continue;
            };
            if a.deadline_ms > now {
                continue;
            }
            self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
            let timed_out = SagaEvent::StepTimedOut {
                step: a.step,
                phase: a.phase,
                attempt: a.attempt,
            };
            match self.record(&mut active, timed_out).await {
                Ok(()) | Err(BusError::WrongExpectedVersion { .. }) => {}
                Err(e) => return Err(e),
            }
            self.advance(&mut active).await?;
        }
        Ok(())
    }
}

/// The stored form of a saga event: JSON, its type as the CloudEvents
/// type, an id from its stream and version (so a retried append is
/// recognised).
fn to_event(stream: &str, version: u64, event: &SagaEvent) -> Result<Event, BusError> {
    let data = serde_json::to_vec(event).map_err(|e| bad(format!("encode a saga event: {e}")))?;
    let mut stored = Event::new(event.type_name(), data)
        .with_id(format!("{stream}@{version}"))
        .with_source("saga-orchestrator");
    stored.data_content_type = Some("application/json".into());
    Ok(stored)
}
