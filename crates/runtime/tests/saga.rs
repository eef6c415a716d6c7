//! The saga orchestrator on an embedded bus: steps in order, compensation
//! in reverse on a failure, timeouts and retries by an injected clock,
//! cancellation, and resuming after a stop with every effect once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_broker::{Broker, BrokerConfig, ManualClock};
use eddy_bus::{Bus, FetchOptions, StartAt, SubscriptionConfig, TopicConfig};
use eddy_runtime::saga::{
    Orchestrator, OrchestratorConfig, Phase, RunningOrchestrator, SagaCommand, SagaDefinition,
    SagaEvent, Status, StepDefinition, list_sagas, saga_history,
};

/// What a participant does with a command.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    Succeed,
    Fail,
    /// Drop it without a reply (a lost message, a slow service).
    Ignore,
    /// Do it, but the reply is lost.
    SucceedSilently,
}

type Rule = Arc<dyn Fn(&SagaCommand, u32) -> Act + Send + Sync>;

/// Participants for every step: each applies a command's effect once per
/// idempotency key, counts what it received, and replies per `rule`
/// (given the command and how many times its key was received).
#[derive(Clone, Default)]
struct Participants {
    received: Arc<Mutex<HashMap<String, u32>>>,
    /// Effects by idempotency key, in the order they took effect.
    effects: Arc<Mutex<Vec<String>>>,
}

impl Participants {
    fn effects(&self) -> Vec<String> {
        self.effects.lock().unwrap().clone()
    }

    fn effects_of(&self, saga: &str) -> Vec<String> {
        self.effects()
            .into_iter()
            .filter(|k| k.starts_with(&format!("{saga}.")))
            .collect()
    }

    fn spawn(&self, bus: Broker, topic: &'static str, rule: Rule) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let sub = format!("{}-worker", topic.replace('.', "-"));
            match bus
                .create_subscription(
                    &sub,
                    SubscriptionConfig::new(topic).start_at(StartAt::Earliest),
                )
                .await
            {
                Ok(_) | Err(eddy_bus::BusError::SubscriptionExists(_)) => {}
                Err(e) => panic!("{e}"),
            }
            loop {
                let Ok(batch) = bus
                    .fetch(
                        &sub,
                        FetchOptions {
                            max: 16,
                            wait_ms: 200,
                        },
                    )
                    .await
                else {
                    return;
                };
                for d in batch {
                    let cmd = SagaCommand::from_event(&d.event.event).expect("a saga command");
                    let seen = {
                        let mut r = me.received.lock().unwrap();
                        let n = r.entry(cmd.idempotency_key.clone()).or_default();
                        *n += 1;
                        *n
                    };
                    let act = rule(&cmd, seen);
                    if matches!(act, Act::Succeed | Act::SucceedSilently) {
                        let mut effects = me.effects.lock().unwrap();
                        if !effects.contains(&cmd.idempotency_key) {
                            effects.push(cmd.idempotency_key.clone());
                        }
                    }
                    match act {
                        Act::Ignore | Act::SucceedSilently => {}
                        act => {
                            let reply = if act == Act::Succeed {
                                cmd.succeeded(serde_json::json!({ "by": topic }))
                            } else {
                                cmd.failed("refused by the test")
                            };
                            bus.publish(&cmd.reply_to, reply).await.unwrap();
                        }
                    }
                    bus.ack(&sub, &d.ack_id).await.unwrap();
                }
            }
        })
    }
}

fn shop() -> SagaDefinition {
    SagaDefinition::new(
        "shop",
        "saga.replies",
        vec![
            StepDefinition::new("reserve", "inventory.commands", "ReserveInventory")
                .compensate_with("ReleaseInventory")
                .timeout(1_000, 2),
            StepDefinition::new("pay", "payment.commands", "ProcessPayment")
                .compensate_with("RefundPayment")
                .timeout(1_000, 2),
            StepDefinition::new("ship", "shipping.commands", "CreateShipment")
                .compensate_with("CancelShipment")
                .timeout(1_000, 2),
            StepDefinition::new("notify", "notification.commands", "SendNotification"),
        ],
    )
}

const TOPICS: [&str; 4] = [
    "inventory.commands",
    "payment.commands",
    "shipping.commands",
    "notification.commands",
];

struct World {
    _dir: tempfile::TempDir,
    bus: Broker,
    clock: Arc<ManualClock>,
    people: Participants,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

async fn world(rule: Rule) -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let bus = Broker::open_with_clock(dir.path(), BrokerConfig::default(), clock.clone()).unwrap();
    for t in TOPICS.iter().chain(["saga.replies"].iter()) {
        bus.create_topic(t, TopicConfig::with_partitions(2))
            .await
            .unwrap();
    }
    let people = Participants::default();
    let workers = TOPICS
        .iter()
        .map(|t| people.spawn(bus.clone(), t, Arc::clone(&rule)))
        .collect();
    World {
        _dir: dir,
        bus,
        clock,
        people,
        workers,
    }
}

async fn orchestrator(w: &World) -> RunningOrchestrator<Broker> {
    let config = OrchestratorConfig {
        tick_ms: 20,
        ..OrchestratorConfig::default()
    };
    Orchestrator::new(w.bus.clone(), config)
        .clock(w.clock.clone())
        .define(shop())
        .start()
        .await
        .unwrap()
}

/// Waits (bounded) until every saga in the store is over; returns their
/// statuses by id.
async fn settle(w: &World) -> BTreeMap<String, Status> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all = list_sagas(&w.bus).await.unwrap();
        if all.iter().all(|s| s.status.is_final()) {
            return all.into_iter().map(|s| (s.id, s.status)).collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sagas still running: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn types(history: &[(eddy_bus::RecordedEvent, SagaEvent)]) -> Vec<String> {
    history
        .iter()
        .map(|(_, e)| match e {
            SagaEvent::CommandSent {
                step,
                phase,
                attempt,
                ..
            } => {
                format!("sent {step} {} #{attempt}", phase.as_str())
            }
            SagaEvent::StepSucceeded { step, phase, .. } => format!("ok {step} {}", phase.as_str()),
            other => other.type_name().to_string(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_runs_its_steps_in_order_and_completes() {
    let w = world(Arc::new(|_, _| Act::Succeed)).await;
    let o = orchestrator(&w).await;
    assert!(
        o.start_saga("shop", "order-1", serde_json::json!({"amount": 30}))
            .await
            .unwrap()
    );
    assert!(
        !o.start_saga("shop", "order-1", serde_json::json!({}))
            .await
            .unwrap(),
        "started once"
    );
    assert_eq!(settle(&w).await.get("order-1"), Some(&Status::Completed));
    let history = saga_history(&w.bus, "order-1").await.unwrap();
    assert_eq!(
        types(&history),
        [
            "SagaStarted",
            "sent 0 do #1",
            "ok 0 do",
            "sent 1 do #1",
            "ok 1 do",
            "sent 2 do #1",
            "ok 2 do",
            "sent 3 do #1",
            "ok 3 do",
            "SagaCompleted"
        ]
    );
    assert_eq!(
        w.people.effects_of("order-1"),
        [
            "order-1.reserve.do",
            "order-1.pay.do",
            "order-1.ship.do",
            "order-1.notify.do"
        ]
    );
    o.stop().await;
}

/// The demo's branches: payment fails → inventory released; shipment fails
/// → payment refunded, then inventory released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_compensates_the_completed_ones_in_reverse() {
    let rule: Rule = Arc::new(
        |cmd, _| match (cmd.saga.as_str(), cmd.step.as_str(), cmd.phase) {
            ("order-pay", "pay", Phase::Do) | ("order-ship", "ship", Phase::Do) => Act::Fail,
            _ => Act::Succeed,
        },
    );
    let w = world(rule).await;
    let o = orchestrator(&w).await;
    for id in ["order-pay", "order-ship"] {
        o.start_saga("shop", id, serde_json::json!({}))
            .await
            .unwrap();
    }
    let done = settle(&w).await;
    assert_eq!(done.get("order-pay"), Some(&Status::Compensated));
    assert_eq!(done.get("order-ship"), Some(&Status::Compensated));
    assert_eq!(
        w.people.effects_of("order-pay"),
        ["order-pay.reserve.do", "order-pay.reserve.undo"]
    );
    assert_eq!(
        w.people.effects_of("order-ship"),
        [
            "order-ship.reserve.do",
            "order-ship.pay.do",
            "order-ship.pay.undo",
            "order-ship.reserve.undo"
        ]
    );
    let summary = list_sagas(&w.bus).await.unwrap();
    let ship = summary.iter().find(|s| s.id == "order-ship").unwrap();
    assert_eq!((ship.steps_done, ship.steps_compensated), (2, 2));
    assert_eq!(
        ship.reason.as_deref(),
        Some("ship failed: refused by the test")
    );
    o.stop().await;
}

/// A lost command times out (by the injected clock) and is sent again with
/// the same idempotency key; a step that never answers is compensated too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_retry_with_the_same_key_then_compensate() {
    let rule: Rule =
        Arc::new(
            |cmd, seen| match (cmd.saga.as_str(), cmd.step.as_str(), cmd.phase) {
                // The first payment command is lost; the second gets through.
                ("order-slow", "pay", Phase::Do) if seen == 1 => Act::Ignore,
                // Shipping never answers, though the second try takes effect.
                ("order-dead", "ship", Phase::Do) if seen == 2 => Act::SucceedSilently,
                ("order-dead", "ship", Phase::Do) => Act::Ignore,
                _ => Act::Succeed,
            },
        );
    let w = world(rule).await;
    let o = orchestrator(&w).await;
    o.start_saga("shop", "order-slow", serde_json::json!({}))
        .await
        .unwrap();
    o.start_saga("shop", "order-dead", serde_json::json!({}))
        .await
        .unwrap();
    // Until the clock moves, both wait for a reply that does not come.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let slow = o.state("order-slow").await.and_then(|s| s.awaiting);
        let dead = o.state("order-dead").await.and_then(|s| s.awaiting);
        if slow.is_some_and(|a| a.step == 1) && dead.is_some_and(|a| a.step == 2) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The first deadlines pass: both are sent again (same keys).
    w.clock.advance_ms(1_001);
    o.check_deadlines().await.unwrap();
    let received = |key: &str| w.people.received.lock().unwrap().get(key).copied();
    while received("order-dead.ship.do") != Some(2)
        || o.state("order-slow")
            .await
            .and_then(|s| s.awaiting)
            .is_some_and(|a| a.step == 1)
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The second: the shipment is out of attempts.
    w.clock.advance_ms(1_001);
    o.check_deadlines().await.unwrap();
    let done = settle(&w).await;
    assert_eq!(done.get("order-slow"), Some(&Status::Completed));
    assert_eq!(done.get("order-dead"), Some(&Status::Compensated));
    assert_eq!(
        w.people.received.lock().unwrap().get("order-slow.pay.do"),
        Some(&2)
    );
    assert_eq!(
        w.people.effects_of("order-dead"),
        [
            "order-dead.reserve.do",
            "order-dead.pay.do",
            "order-dead.ship.do",
            "order-dead.ship.undo",
            "order-dead.pay.undo",
            "order-dead.reserve.undo"
        ],
        "the step that never answered is compensated too"
    );
    o.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_saga_compensates_what_it_did() {
    // Shipping holds its commands until the saga is cancelled.
    let hold = Arc::new(Mutex::new(true));
    let held = Arc::clone(&hold);
    let rule: Rule = Arc::new(move |cmd, _| {
        if cmd.step == "ship" && cmd.phase == Phase::Do && *held.lock().unwrap() {
            Act::Ignore
        } else {
            Act::Succeed
        }
    });
    let w = world(rule).await;
    let o = orchestrator(&w).await;
    o.start_saga("shop", "order-c", serde_json::json!({}))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while o
        .state("order-c")
        .await
        .and_then(|s| s.awaiting)
        .is_none_or(|a| a.step != 2)
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        o.cancel("order-c", "customer changed their mind")
            .await
            .unwrap()
    );
    *hold.lock().unwrap() = false;
    // The shipment in flight times out. It is not tried again (the saga is
    // cancelled), but it may have taken effect: it is compensated first.
    w.clock.advance_ms(1_001);
    o.check_deadlines().await.unwrap();
    assert_eq!(settle(&w).await.get("order-c"), Some(&Status::Compensated));
    assert_eq!(
        w.people.effects_of("order-c"),
        [
            "order-c.reserve.do",
            "order-c.pay.do",
            "order-c.ship.undo",
            "order-c.pay.undo",
            "order-c.reserve.undo"
        ]
    );
    let sagas = list_sagas(&w.bus).await.unwrap();
    assert_eq!(
        sagas[0].reason.as_deref(),
        Some("cancelled: customer changed their mind")
    );
    o.stop().await;
}

/// An orchestrator stopped with sagas in flight; a new one resumes each
/// from its stream and every effect still happens once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_orchestrator_resumes_unfinished_sagas() {
    let gate = Arc::new(Mutex::new(true));
    let g = Arc::clone(&gate);
    let rule: Rule = Arc::new(move |cmd, _| {
        if cmd.step == "pay" && *g.lock().unwrap() {
            Act::Ignore
        } else if cmd.saga.ends_with("-x") && cmd.step == "ship" && cmd.phase == Phase::Do {
            Act::Fail
        } else {
            Act::Succeed
        }
    });
    let w = world(rule).await;
    let first = orchestrator(&w).await;
    for i in 0..6 {
        let id = if i % 2 == 0 {
            format!("order-{i}")
        } else {
            format!("order-{i}-x")
        };
        first
            .start_saga("shop", &id, serde_json::json!({ "n": i }))
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while first
        .stats()
        .commands_sent
        .load(std::sync::atomic::Ordering::Relaxed)
        < 12
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.stop().await;
    *gate.lock().unwrap() = false;
    let second = orchestrator(&w).await;
    assert_eq!(
        second
            .stats()
            .resumed
            .load(std::sync::atomic::Ordering::Relaxed),
        6
    );
    // The payments sent before the stop were dropped; the resumed
    // orchestrator's were sent again under the same ids (the bus dropped
    // them as duplicates), so the deadlines bring them back.
    w.clock.advance_ms(1_001);
    second.check_deadlines().await.unwrap();
    let done = settle(&w).await;
    for (id, status) in &done {
        let expected = if id.ends_with("-x") {
            Status::Compensated
        } else {
            Status::Completed
        };
        assert_eq!(status, &expected, "{id}");
        let effects = w.people.effects_of(id);
        let mut unique = effects.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), effects.len(), "each effect once: {effects:?}");
    }
    second.stop().await;
    for t in &w.workers {
        t.abort();
    }
}

/// A cancel written to the saga's stream by someone else (the CLI) is
/// taken in at the saga's next transition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_through_the_store_is_taken_in_at_the_next_transition() {
    let hold = Arc::new(Mutex::new(true));
    let held = Arc::clone(&hold);
    let rule: Rule = Arc::new(move |cmd, _| {
        if cmd.step == "pay" && cmd.phase == Phase::Do && *held.lock().unwrap() {
            Act::Ignore
        } else {
            Act::Succeed
        }
    });
    let w = world(rule).await;
    let o = orchestrator(&w).await;
    o.start_saga("shop", "order-e", serde_json::json!({}))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while o
        .state("order-e")
        .await
        .and_then(|s| s.awaiting)
        .is_none_or(|a| a.step != 1)
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        eddy_runtime::saga::request_cancel(&w.bus, "order-e", "by an operator")
            .await
            .unwrap()
    );
    assert!(
        !eddy_runtime::saga::request_cancel(&w.bus, "order-e", "twice")
            .await
            .unwrap()
    );
    *hold.lock().unwrap() = false;
    // The payment's deadline passes: the orchestrator finds the cancel.
    w.clock.advance_ms(1_001);
    assert_eq!(settle(&w).await.get("order-e"), Some(&Status::Compensated));
    assert_eq!(
        w.people.effects_of("order-e"),
        [
            "order-e.reserve.do",
            "order-e.pay.undo",
            "order-e.reserve.undo"
        ]
    );
    let sagas = list_sagas(&w.bus).await.unwrap();
    assert_eq!(
        sagas[0].reason.as_deref(),
        Some("cancelled: by an operator")
    );
    let missing = eddy_runtime::saga::request_cancel(&w.bus, "order-none", "x").await;
    assert!(matches!(
        missing,
        Err(eddy_bus::BusError::StreamNotFound(_))
    ));
    o.stop().await;
}
