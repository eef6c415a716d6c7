//! Aggregates on the event store (optimistic concurrency, conflict retries,
//! snapshots) and projections (checkpointed read models, restart, rebuild).

use std::collections::BTreeMap;

use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{AllFilter, Direction, EventStore, ExpectedVersion, RecordedEvent, StreamFrom};
use eddy_runtime::{
    Aggregate, AggregateError, FileModel, MemoryModel, Projection, Projector, ProjectorConfig,
    Repository, snapshot_stream,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Account {
    opened: bool,
    balance: i64,
    deposits: u32,
}

#[derive(Debug, Serialize, Deserialize)]
enum AccountEvent {
    Opened,
    Deposited { amount: i64 },
    Withdrawn { amount: i64 },
}

enum Command {
    Open,
    Deposit(i64),
    Withdraw(i64),
}

#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("the account is not open")]
    NotOpen,
    #[error("insufficient funds: {0} left")]
    Insufficient(i64),
}

impl Aggregate for Account {
    type Command = Command;
    type Event = AccountEvent;
    type Error = Refused;
    const CATEGORY: &'static str = "account";

    fn decide(&self, command: Command) -> Result<Vec<AccountEvent>, Refused> {
        match command {
            Command::Open if self.opened => Ok(vec![]),
            Command::Open => Ok(vec![AccountEvent::Opened]),
            _ if !self.opened => Err(Refused::NotOpen),
            Command::Deposit(amount) => Ok(vec![AccountEvent::Deposited { amount }]),
            Command::Withdraw(amount) if amount > self.balance => {
                Err(Refused::Insufficient(self.balance))
            }
            Command::Withdraw(amount) => Ok(vec![AccountEvent::Withdrawn { amount }]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened => self.opened = true,
            AccountEvent::Deposited { amount } => {
                self.balance += amount;
                self.deposits += 1;
            }
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }

    fn event_type(event: &AccountEvent) -> &'static str {
        match event {
            AccountEvent::Opened => "AccountOpened",
            AccountEvent::Deposited { .. } => "MoneyDeposited",
            AccountEvent::Withdrawn { .. } => "MoneyWithdrawn",
        }
    }
}

fn broker(dir: &std::path::Path) -> Broker {
    Broker::open(dir, BrokerConfig::default()).unwrap()
}

#[tokio::test]
async fn commands_decide_events_and_refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = broker(dir.path());
    let repo: Repository<_, Account> = Repository::new(store.clone());
    let refused = repo.execute("1", || Command::Deposit(5)).await;
    assert!(matches!(
        refused,
        Err(AggregateError::Rejected(Refused::NotOpen))
    ));
    repo.execute("1", || Command::Open).await.unwrap();
    let again = repo.execute("1", || Command::Open).await.unwrap();
    assert_eq!(again.appended, 0, "opening an open account decides nothing");
    repo.execute("1", || Command::Deposit(10)).await.unwrap();
    let done = repo.execute("1", || Command::Withdraw(4)).await.unwrap();
    assert_eq!((done.state.balance, done.version), (6, Some(2)));
    let over = repo.execute("1", || Command::Withdraw(7)).await;
    assert!(matches!(
        over,
        Err(AggregateError::Rejected(Refused::Insufficient(6)))
    ));
    let loaded = repo.load("1").await.unwrap();
    assert_eq!(loaded.state, done.state);
    let types: Vec<String> = store
        .read_stream("account-1", StreamFrom::Start, Direction::Forward, 10)
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.event.ty)
        .collect();
    assert_eq!(types, ["AccountOpened", "MoneyDeposited", "MoneyWithdrawn"]);
}

/// Commands racing on one aggregate: without retries all but one of each
/// race fail with a conflict; with retries every deposit lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_commands_conflict_and_retries_land_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = broker(dir.path());
    let strict: Repository<_, Account> = Repository::new(store.clone());
    strict.execute("7", || Command::Open).await.unwrap();

    let race = |repo: Repository<Broker, Account>| async move {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let repo = repo.clone();
                tokio::spawn(async move { repo.execute("7", || Command::Deposit(1)).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        outcomes
    };
    let outcomes = race(strict.clone()).await;
    let ok = outcomes.iter().filter(|o| o.is_ok()).count();
    assert!(ok >= 1);
    for o in &outcomes {
        if let Err(e) = o {
            assert!(matches!(e, AggregateError::Conflict(_)), "{e}");
        }
    }
    let after_strict = strict.load("7").await.unwrap().state.deposits;
    assert_eq!(
        after_strict as usize, ok,
        "only the winners' deposits landed"
    );

    let patient = strict.clone().conflict_retries(100);
    let outcomes = race(patient.clone()).await;
    assert!(outcomes.iter().all(|o| o.is_ok()));
    let state = patient.load("7").await.unwrap().state;
    assert_eq!(state.deposits as usize, ok + 8);
    assert_eq!(state.balance, (ok + 8) as i64);
}

#[tokio::test]
async fn a_snapshot_shortens_loading_and_gives_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = broker(dir.path());
    let snapping: Repository<_, Account> = Repository::new(store.clone()).snapshot_every(10);
    snapping.execute("9", || Command::Open).await.unwrap();
    for i in 0..24 {
        snapping
            .execute("9", move || Command::Deposit(i))
            .await
            .unwrap();
    }
    // 25 events: snapshots after the 10th and the 20th; the store keeps
    // the last one only.
    let loaded = snapping.load("9").await.unwrap();
    assert_eq!(loaded.snapshot_version, Some(19));
    assert_eq!(loaded.events_read, 5);
    let plain: Repository<_, Account> = Repository::new(store.clone());
    let folded = plain.load("9").await.unwrap();
    assert_eq!(folded.events_read, 25);
    assert_eq!(folded.snapshot_version, None);
    assert_eq!(
        (loaded.state, loaded.version),
        (folded.state, folded.version)
    );
    let snaps = store
        .read_stream(
            &snapshot_stream("account-9"),
            StreamFrom::Start,
            Direction::Forward,
            10,
        )
        .await
        .unwrap();
    assert_eq!(snaps.events.len(), 1, "only the latest snapshot is kept");
    assert_eq!(snaps.last_version, Some(1));
}

/// Balances per account and a count of events by type.
struct Balances;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct BalanceModel {
    balances: BTreeMap<String, i64>,
    by_type: BTreeMap<String, u64>,
}

impl Projection for Balances {
    type State = BalanceModel;

    fn filter(&self) -> AllFilter {
        AllFilter::Category("account".into())
    }

    fn apply(&self, state: &mut BalanceModel, e: &RecordedEvent) {
        *state.by_type.entry(e.event.ty.clone()).or_default() += 1;
        let amount = match serde_json::from_slice::<AccountEvent>(&e.event.data) {
            Ok(AccountEvent::Deposited { amount }) => amount,
            Ok(AccountEvent::Withdrawn { amount }) => -amount,
            _ => 0,
        };
        *state.balances.entry(e.stream.clone()).or_default() += amount;
    }
}

async fn fold_all(store: &Broker) -> BalanceModel {
    let mut model = BalanceModel::default();
    let all = store
        .read_all(0, Balances.filter(), 10_000, 0)
        .await
        .unwrap();
    for e in &all.events {
        Balances.apply(&mut model, e);
    }
    model
}

async fn wait_until_at(view: &eddy_runtime::View<BalanceModel>, position: u64) {
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        view.caught_up_to(position),
    )
    .await
    .expect("the projection caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_resumes_from_its_checkpoint_and_a_rebuild_equals_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = broker(&dir.path().join("data"));
    let repo: Repository<_, Account> = Repository::new(store.clone());
    for id in 0..5 {
        repo.execute(&id.to_string(), || Command::Open)
            .await
            .unwrap();
        repo.execute(&id.to_string(), move || Command::Deposit(100 + id))
            .await
            .unwrap();
    }
    // Noise in another category.
    store
        .append(
            "user-1",
            ExpectedVersion::Any,
            vec![eddy_bus::Event::new("UserJoined", "{}")],
        )
        .await
        .unwrap();
    let model_path = dir.path().join("balances.json");
    let config = ProjectorConfig {
        save_every: 3,
        ..ProjectorConfig::default()
    };
    let projector = Projector::start(store.clone(), Balances, FileModel::new(&model_path), config)
        .await
        .unwrap();
    let head = store.read_all(0, AllFilter::All, 1, 0).await.unwrap().head;
    wait_until_at(&projector.view(), head).await;
    assert_eq!(
        projector.view().read(|m| m.clone()).await,
        fold_all(&store).await
    );
    projector.stop().await.unwrap();

    // More events while it is stopped; restarted, it goes on from its
    // checkpoint, applying each event once.
    for id in 0..3 {
        repo.execute(&id.to_string(), || Command::Withdraw(1))
            .await
            .unwrap();
    }
    let mut projector =
        Projector::start(store.clone(), Balances, FileModel::new(&model_path), config)
            .await
            .unwrap();
    let head = store.read_all(0, AllFilter::All, 1, 0).await.unwrap().head;
    wait_until_at(&projector.view(), head).await;
    let live = projector.view().read(|m| m.clone()).await;
    assert_eq!(live, fold_all(&store).await);
    assert_eq!(live.by_type.get("MoneyWithdrawn"), Some(&3));

    // Rebuild from zero into a new file while appends go on.
    let writer = {
        let repo = repo.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                repo.execute("4", || Command::Deposit(1)).await.unwrap();
            }
        })
    };
    let rebuilt_path = dir.path().join("balances-v2.json");
    let (old, report) = projector
        .rebuild(FileModel::new(&rebuilt_path))
        .await
        .unwrap();
    assert_eq!(old.path(), model_path);
    assert!(
        report.events >= 13,
        "every event before the rebuild began: {report:?}"
    );
    writer.await.unwrap();
    let head = store.read_all(0, AllFilter::All, 1, 0).await.unwrap().head;
    wait_until_at(&projector.view(), head).await;
    assert_eq!(
        projector.view().read(|m| m.clone()).await,
        fold_all(&store).await
    );
    projector.stop().await.unwrap();
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&rebuilt_path).unwrap()).unwrap();
    assert_eq!(saved["checkpoint"], head);
}

#[tokio::test]
async fn a_memory_model_starts_from_zero_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = broker(dir.path());
    let repo: Repository<_, Account> = Repository::new(store.clone());
    repo.execute("1", || Command::Open).await.unwrap();
    let projector = Projector::start(
        store.clone(),
        Balances,
        MemoryModel::default(),
        ProjectorConfig::default(),
    )
    .await
    .unwrap();
    let head = store.read_all(0, AllFilter::All, 1, 0).await.unwrap().head;
    wait_until_at(&projector.view(), head).await;
    assert_eq!(projector.view().read(|m| m.by_type.len()).await, 1);
    let model = projector.stop().await.unwrap();
    use eddy_runtime::ReadModelStore;
    let (saved, at) = model.load().await.unwrap().unwrap();
    assert_eq!((saved, at), (fold_all(&store).await, head));
}
