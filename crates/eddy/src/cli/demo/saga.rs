//! `eddy demo shop --style orchestration`: the seed's "Orchestration with
//! Saga Pattern". An orchestrator runs each order as a saga — reserve
//! inventory → process payment → create shipment → send notification —
//! and compensates in reverse when a step fails: a declined payment
//! releases the inventory; a failed shipment refunds the payment, then
//! releases the inventory.
//!
//! Each participant is a service on `eddy-runtime` with a processed-id
//! store; its effect is an event appended to its own ledger stream in the
//! event store (`inventory-<order>`, `payment-<order>`, …) with an id
//! derived from the command's idempotency key, so a command sent again
//! (a timeout, a resumed orchestrator) takes effect once. The run's
//! summary checks every order's ledgers against its saga's outcome.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use eddy_bus::{Bus, BusError, Direction, Event, EventStore, ExpectedVersion, StreamFrom};
use eddy_log::SystemClock;
use eddy_runtime::saga::{
    Orchestrator, OrchestratorConfig, Phase, SagaCommand, SagaDefinition, SagaEvent, SagaSummary,
    Status, StepDefinition, list_sagas,
};
use eddy_runtime::{
    Context, HandlerError, ProcessedConfig, ProcessedIds, Running, Service, ServiceConfig,
};

use super::shop::{Order, ShopConfig, chance, order_of};

/// The saga's name.
pub const DEFINITION: &str = "order-fulfilment";
/// Where participants reply.
pub const REPLIES: &str = "shop.saga-replies";
/// The lease of a command a participant fetched.
const COMMAND_ACK_WAIT_MS: u64 = 2_000;
/// The participants, in step order.
pub const PARTICIPANTS: [&str; 4] = ["inventory", "payment", "shipping", "notification"];
/// The steps' names, in order.
pub const STEPS: [&str; 4] = [
    "reserve-inventory",
    "process-payment",
    "create-shipment",
    "send-notification",
];

/// What a run injects and how its steps wait.
#[derive(Debug, Clone)]
pub struct SagaRun {
    /// The shop's settings (seed, run id, orders, failure rates).
    pub shop: ShopConfig,
    /// Share of shipments that fail.
    pub shipment_failure_rate: f64,
    /// Per-attempt timeout of every step.
    pub step_timeout_ms: u64,
    /// Print each saga event as it is recorded, and stop (for a test to
    /// kill the process) right after the first one matching this:
    /// `<EventType>:<step>:<phase>`, `*` for any part.
    pub pause_after: Option<String>,
    /// Print each saga event as it is recorded.
    pub trace: bool,
}

/// The saga definition of an order.
pub fn definition(step_timeout_ms: u64) -> SagaDefinition {
    let commands = |p: &str| format!("shop.{p}-commands");
    SagaDefinition::new(
        DEFINITION,
        REPLIES,
        vec![
            StepDefinition::new(STEPS[0], &commands("inventory"), "ReserveInventory")
                .compensate_with("ReleaseInventory")
                .timeout(step_timeout_ms, 3),
            StepDefinition::new(STEPS[1], &commands("payment"), "ProcessPayment")
                .compensate_with("RefundPayment")
                .timeout(step_timeout_ms, 3),
            StepDefinition::new(STEPS[2], &commands("shipping"), "CreateShipment")
                .compensate_with("CancelShipment")
                .timeout(step_timeout_ms, 3),
            StepDefinition::new(STEPS[3], &commands("notification"), "SendNotification")
                .timeout(step_timeout_ms, 3),
        ],
    )
}

/// What each command does to its participant's ledger, and whether the
/// seed makes the action fail.
fn effect(run: &SagaRun, cmd: &SagaCommand, order: &Order) -> Result<&'static str, String> {
    let seed = run.shop.seed;
    let id = &order.order;
    match (cmd.step.as_str(), cmd.phase) {
        ("reserve-inventory", Phase::Do) => {
            if chance(seed, "stock", id) < run.shop.out_of_stock_rate {
                Err(format!("{} is out of stock", order.sku))
            } else {
                Ok("InventoryReserved")
            }
        }
        ("reserve-inventory", Phase::Undo) => Ok("InventoryReleased"),
        ("process-payment", Phase::Do) => {
            if chance(seed, "payment", id) < run.shop.payment_failure_rate {
                Err("the card was declined".into())
            } else {
                Ok("PaymentCaptured")
            }
        }
        ("process-payment", Phase::Undo) => Ok("PaymentRefunded"),
        ("create-shipment", Phase::Do) => {
            if chance(seed, "shipment", id) < run.shipment_failure_rate {
                Err("no courier accepts the parcel".into())
            } else {
                Ok("ShipmentCreated")
            }
        }
        ("create-shipment", Phase::Undo) => Ok("ShipmentCancelled"),
        ("send-notification", _) => Ok("CustomerNotified"),
        (step, _) => Err(format!("no step {step}")),
    }
}

/// The id of a ledger event: from the command's idempotency key (the same
/// for every attempt), so the store recognises a second append.
fn ledger_id(key: &str) -> String {
    format!("ledger.{key}")
}

async fn handle<B: Bus + EventStore + Clone>(
    ctx: Context<B>,
    order: Order,
    run: Arc<SagaRun>,
    participant: &'static str,
) -> Result<(), HandlerError> {
    let Some(cmd) = SagaCommand::from_event(&ctx.event().event) else {
        return Err(HandlerError::permanent("not a saga command"));
    };
    let stream = format!("{participant}-{}", order.order);
    if cmd.phase == Phase::Undo {
        // Undoing an action that never took effect (it timed out before it
        // arrived) is done already.
        let held = ctx
            .bus()
            .read_stream(&stream, StreamFrom::Start, Direction::Forward, 1)
            .await?;
        if held.events.is_empty() {
            let reply = cmd.succeeded(serde_json::json!({ "effect": "nothing to undo" }));
            ctx.publish(&cmd.reply_to, reply).await?;
            return Ok(());
        }
    }
    let reply = match effect(&run, &cmd, &order) {
        Ok(ty) => {
            let mut e = Event::new(ty, format!("{{\"amount_cents\":{}}}", order.amount_cents))
                .with_id(ledger_id(&cmd.idempotency_key))
                .with_source(participant)
                .with_correlation_id(order.order.clone());
            e.data_content_type = Some("application/json".into());
            ctx.bus()
                .append(&stream, ExpectedVersion::Any, vec![e])
                .await?;
            cmd.succeeded(serde_json::json!({ "effect": ty }))
        }
        Err(reason) => cmd.failed(&reason),
    };
    ctx.publish(&cmd.reply_to, reply).await?;
    Ok(())
}

/// Starts the participant `name` (commands on `shop.<name>-commands`).
pub fn start_participant<B: Bus + EventStore + Clone>(
    name: &'static str,
    bus: &B,
    run: &Arc<SagaRun>,
    data: &Path,
) -> Result<Running> {
    let processed = ProcessedIds::open(
        data.join(name),
        ProcessedConfig::default(),
        Arc::new(SystemClock),
    )
    .with_context(|| format!("open the {name} service's processed ids"))?;
    let config = ServiceConfig {
        name: name.to_string(),
        concurrency: 32,
        fetch_wait_ms: 100,
        ..ServiceConfig::default()
    };
    let sub = format!("{name}-commands");
    let types: &[&str] = match name {
        "inventory" => &["ReserveInventory", "ReleaseInventory"],
        "payment" => &["ProcessPayment", "RefundPayment"],
        "shipping" => &["CreateShipment", "CancelShipment"],
        _ => &["SendNotification"],
    };
    let mut service = Service::new(bus.clone(), config).processed_ids(processed);
    for ty in types {
        let run = Arc::clone(run);
        service = service.on(&sub, ty, move |ctx, order: Order| {
            let run = Arc::clone(&run);
            async move { handle(ctx, order, run, name).await }
        });
    }
    Ok(service.start())
}

/// Creates the command topics and each participant's subscription.
pub async fn setup<B: Bus>(bus: &B) -> Result<(), BusError> {
    for p in PARTICIPANTS {
        let topic = format!("shop.{p}-commands");
        for made in [
            bus.create_topic(&topic, eddy_bus::TopicConfig::with_partitions(4))
                .await
                .map(|_| ()),
            bus.create_subscription(
                &format!("{p}-commands"),
                // Ordered per saga (the key): a compensation never
                // overtakes its action. A short lease: after a crash, the
                // commands the dead process held come back within it.
                eddy_bus::SubscriptionConfig::new(&topic)
                    .start_at(eddy_bus::StartAt::Earliest)
                    .mode(eddy_bus::DeliveryMode::Ordered)
                    .ack_wait_ms(COMMAND_ACK_WAIT_MS),
            )
            .await
            .map(|_| ()),
        ] {
            match made {
                Ok(()) | Err(BusError::TopicExists(_)) | Err(BusError::SubscriptionExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Whether a recorded saga event matches a `--pause-after` pattern.
fn matches(pattern: &str, event: &SagaEvent) -> bool {
    let (ty, step, phase) = match event {
        SagaEvent::CommandSent { step, phase, .. } => {
            ("CommandSent", step.to_string(), phase.as_str())
        }
        SagaEvent::StepSucceeded { step, phase, .. } => {
            ("StepSucceeded", step.to_string(), phase.as_str())
        }
        SagaEvent::StepFailed { step, .. } => ("StepFailed", step.to_string(), "do"),
        other => (other.type_name(), "*".to_string(), "*"),
    };
    let mut parts = pattern.split(':');
    let ok = |want: Option<&str>, have: &str| want.is_none_or(|w| w == "*" || w == have);
    ok(parts.next(), ty) && ok(parts.next(), &step) && ok(parts.next(), phase)
}

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct SagaSummaryReport {
    /// Sagas started in this run (all orders).
    pub orders: u32,
    /// Completed sagas.
    pub completed: u32,
    /// Compensated sagas, by the step that failed (or `cancelled`).
    pub compensated_by_step: BTreeMap<String, u32>,
    /// Sagas not over by the deadline.
    pub unfinished: Vec<String>,
    /// Orders whose ledgers do not match their saga's outcome.
    pub ledger_mismatches: Vec<String>,
    /// Compensations applied, by participant.
    pub compensations: BTreeMap<String, u32>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Runs every order of the run as a saga on `bus`, with the participants
/// and the orchestrator in this process; then checks the ledgers.
///
/// `connect` gives each part its own handle on the bus: through a server,
/// a connection each (as separate processes would have), so one part's
/// long polls never queue another's requests.
pub async fn run_on<B, F, Fut>(
    connect: F,
    run: SagaRun,
    data: &Path,
    deadline: Duration,
) -> Result<SagaSummaryReport>
where
    B: Bus + EventStore + Clone + std::fmt::Debug,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<B>>,
{
    let run = Arc::new(run);
    let bus = &connect().await?;
    setup(bus).await?;
    let mut participants = Vec::new();
    for p in PARTICIPANTS {
        participants.push(start_participant(p, &connect().await?, &run, data)?);
    }
    // Woken when a saga ends, so the driver need not poll the store.
    let ended_signal = Arc::new(tokio::sync::Notify::new());
    let ended = Arc::clone(&ended_signal);
    let trace = run.trace || run.pause_after.is_some();
    let pause = run.pause_after.clone();
    let orchestrator = Orchestrator::new(
        connect().await?,
        OrchestratorConfig {
            subscription: "shop-saga-orchestrator".into(),
            tick_ms: 50,
            ..OrchestratorConfig::default()
        },
    )
    .define(definition(run.step_timeout_ms))
    .observe(move |id, event| {
        if matches!(
            event,
            SagaEvent::SagaCompleted | SagaEvent::SagaCompensated { .. }
        ) {
            ended.notify_one();
        }
        if trace {
            println!("saga {id} {}", describe(event));
        }
        if let Some(p) = &pause
            && matches(p, event)
        {
            use std::io::Write;
            println!("PAUSED saga {id} after {}", describe(event));
            let _ = std::io::stdout().flush();
            // Wait here to be killed (the crash test sends SIGKILL).
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    })
    .start()
    .await
    .context("start the orchestrator")?;
    let started = Instant::now();
    let ids: Vec<String> = (0..run.shop.orders)
        .map(|n| order_of(&run.shop, n).order)
        .collect();
    for n in 0..run.shop.orders {
        let order = order_of(&run.shop, n);
        let data = serde_json::to_value(&order).context("encode an order")?;
        // Starting a saga that exists (a resumed run) does nothing.
        orchestrator
            .start_saga(DEFINITION, &order.order, data)
            .await?;
    }
    // Every saga of the run is started (or was over already): once the
    // orchestrator runs none, all are over.
    let give_up = tokio::time::Instant::now() + deadline;
    while orchestrator.running() > 0 {
        if tokio::time::timeout_at(give_up, ended_signal.notified())
            .await
            .is_err()
        {
            break;
        }
    }
    let wanted: std::collections::HashSet<&String> = ids.iter().collect();
    let sagas: Vec<SagaSummary> = list_sagas(bus)
        .await?
        .into_iter()
        .filter(|s| wanted.contains(&s.id))
        .collect();
    orchestrator.stop().await;
    for p in participants {
        p.stop().await;
    }
    let mut report = SagaSummaryReport {
        orders: run.shop.orders,
        elapsed: started.elapsed(),
        ..SagaSummaryReport::default()
    };
    for id in &ids {
        let Some(s) = sagas.iter().find(|s| &s.id == id) else {
            report.unfinished.push(id.clone());
            continue;
        };
        match s.status {
            Status::Completed => report.completed += 1,
            Status::Compensated => {
                let step = failed_step(s);
                *report.compensated_by_step.entry(step).or_default() += 1;
            }
            _ => report.unfinished.push(id.clone()),
        }
        if let Some(why) = check_ledgers(bus, s, &mut report.compensations).await? {
            report.ledger_mismatches.push(format!("{id}: {why}"));
        }
    }
    Ok(report)
}

fn describe(event: &SagaEvent) -> String {
    match event {
        SagaEvent::CommandSent {
            step,
            phase,
            attempt,
            ..
        } => format!(
            "CommandSent {} {} #{attempt}",
            STEPS.get(*step).unwrap_or(&"?"),
            phase.as_str()
        ),
        SagaEvent::StepSucceeded { step, phase, .. } => {
            format!(
                "StepSucceeded {} {}",
                STEPS.get(*step).unwrap_or(&"?"),
                phase.as_str()
            )
        }
        SagaEvent::StepFailed { step, reason } => {
            format!("StepFailed {}: {reason}", STEPS.get(*step).unwrap_or(&"?"))
        }
        other => other.type_name().to_string(),
    }
}

/// The step a compensated saga failed at, from its reason.
fn failed_step(s: &SagaSummary) -> String {
    let reason = s.reason.as_deref().unwrap_or_default();
    STEPS
        .iter()
        .find(|step| reason.starts_with(*step))
        .map_or_else(|| "cancelled".to_string(), |s| s.to_string())
}

/// The ledger events of one participant for an order.
async fn ledger<B: EventStore>(bus: &B, participant: &str, order: &str) -> Result<Vec<String>> {
    let slice = bus
        .read_stream(
            &format!("{participant}-{order}"),
            StreamFrom::Start,
            Direction::Forward,
            100,
        )
        .await?;
    Ok(slice.events.into_iter().map(|e| e.event.ty).collect())
}

/// Checks an order's ledgers against its saga: every step done once, and
/// (if compensated) every done step undone once, in reverse order.
async fn check_ledgers<B: EventStore>(
    bus: &B,
    saga: &SagaSummary,
    compensations: &mut BTreeMap<String, u32>,
) -> Result<Option<String>> {
    let expected: [(&str, &str, &str); 4] = [
        ("inventory", "InventoryReserved", "InventoryReleased"),
        ("payment", "PaymentCaptured", "PaymentRefunded"),
        ("shipping", "ShipmentCreated", "ShipmentCancelled"),
        ("notification", "CustomerNotified", ""),
    ];
    let failed_at = STEPS.iter().position(|s| failed_step(saga) == *s);
    for (i, (participant, done, undone)) in expected.iter().enumerate() {
        let got = ledger(bus, participant, &saga.id).await?;
        let want: Vec<String> = match (saga.status, failed_at) {
            (Status::Completed, _) => vec![done.to_string()],
            (Status::Compensated, Some(f)) if i < f => vec![done.to_string(), undone.to_string()],
            // A step that timed out may or may not have taken effect.
            (Status::Compensated, Some(f)) if i == f && got.len() == 2 => {
                vec![done.to_string(), undone.to_string()]
            }
            (Status::Compensated, _) => vec![],
            _ => continue,
        };
        if saga.status == Status::Compensated && want.len() == 2 {
            *compensations.entry(participant.to_string()).or_default() += 1;
        }
        if got != want {
            return Ok(Some(format!(
                "{participant} holds {got:?}, expected {want:?}"
            )));
        }
    }
    // Undone in reverse: each compensation after the later step's.
    if saga.status == Status::Compensated {
        let history = eddy_runtime::saga::saga_history(bus, &saga.id).await?;
        let undone: Vec<usize> = history
            .iter()
            .filter_map(|(_, e)| match e {
                SagaEvent::StepSucceeded {
                    step,
                    phase: Phase::Undo,
                    ..
                } => Some(*step),
                _ => None,
            })
            .collect();
        if undone.windows(2).any(|w| w[0] < w[1]) {
            return Ok(Some(format!("compensations out of order: {undone:?}")));
        }
    }
    Ok(None)
}

/// The run's summary as text.
pub fn render(report: &SagaSummaryReport, run: &SagaRun) -> String {
    let mut out = String::new();
    let compensated: u32 = report.compensated_by_step.values().sum();
    out.push_str(&format!(
        "\n{} orders as sagas in {:.1} s: {} completed, {} compensated, {} unfinished\n",
        report.orders,
        report.elapsed.as_secs_f64(),
        report.completed,
        compensated,
        report.unfinished.len()
    ));
    for step in STEPS {
        if let Some(n) = report.compensated_by_step.get(step) {
            let undone = match step {
                "reserve-inventory" => "nothing to undo",
                "process-payment" => "inventory released",
                "create-shipment" => "payment refunded, then inventory released",
                _ => "shipment cancelled, payment refunded, inventory released",
            };
            out.push_str(&format!("  failed at {step:<18} {n:>5}  ({undone})\n"));
        }
    }
    if let Some(n) = report.compensated_by_step.get("cancelled") {
        out.push_str(&format!("  cancelled                 {n:>5}\n"));
    }
    let comp: Vec<String> = report
        .compensations
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
    out.push_str(&format!(
        "compensations applied (once each): {}\n",
        if comp.is_empty() {
            "none".to_string()
        } else {
            comp.join(", ")
        }
    ));
    out.push_str(&format!(
        "ledgers checked against each saga: {}\n",
        if report.ledger_mismatches.is_empty() {
            "all consistent".to_string()
        } else {
            format!(
                "{} MISMATCHED: {}",
                report.ledger_mismatches.len(),
                report.ledger_mismatches.join("; ")
            )
        }
    ));
    out.push_str(&format!(
        "seed {} (out of stock {}%, payments declined {}%, shipments failing {}%)\n",
        run.shop.seed,
        run.shop.out_of_stock_rate * 100.0,
        run.shop.payment_failure_rate * 100.0,
        run.shipment_failure_rate * 100.0
    ));
    out
}

/// Fails a run that left sagas unfinished or ledgers inconsistent.
pub fn verdict(report: &SagaSummaryReport) -> Result<()> {
    if !report.unfinished.is_empty() {
        bail!(
            "{} sagas did not finish: {}",
            report.unfinished.len(),
            report.unfinished.join(", ")
        );
    }
    if !report.ledger_mismatches.is_empty() {
        bail!(
            "ledgers do not match the sagas: {}",
            report.ledger_mismatches.join("; ")
        );
    }
    Ok(())
}
