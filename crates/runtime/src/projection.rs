//! Projections: read models folded from the event store's feeds.
//!
//! A [`Projection`] says which events it reads (an [`AllFilter`]) and how
//! each one changes its state. A [`Projector`] runs it: a catch-up
//! subscription from the checkpoint its [`ReadModelStore`] saved, the state
//! served to readers through a [`View`], and the state saved **with** its
//! checkpoint in one atomic write every `save_every` events and whenever it
//! catches up — so after a crash the read model and its position agree,
//! and no event is applied twice or skipped.
//!
//! ```text
//!  $all ─CatchUp(filter, checkpoint)─▶ apply ─▶ View (readers)
//!                                        └─ every N events / when caught up:
//!                                           save(state, checkpoint) atomically
//! ```
//!
//! [`Projector::rebuild`] folds the projection again from position 0 into
//! a new read model while the old one keeps serving, then swaps it in.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use eddy_bus::{AllFilter, BusError, CatchUp, EventStore, RecordedEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A read model folded from events.
pub trait Projection: Send + Sync + 'static {
    /// The read model.
    type State: Default + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The events it reads.
    fn filter(&self) -> AllFilter;

    /// Folds one event into the state.
    fn apply(&self, state: &mut Self::State, event: &RecordedEvent);
}

/// Why a projection stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] BusError),
    /// The read model could not be saved or loaded.
    #[error("read model {what}: {reason}")]
    Model {
        /// Which read model.
        what: String,
        /// What failed.
        reason: String,
    },
}

/// Where a read model and its checkpoint are kept, together.
pub trait ReadModelStore<T>: Send + Sync + 'static {
    /// The saved state and the `$all` position after the last event folded
    /// into it; `None` if nothing was saved.
    fn load(&self) -> impl Future<Output = Result<Option<(T, u64)>, ProjectionError>> + Send;

    /// Saves the state and its checkpoint, both or neither.
    fn save(
        &self,
        state: &T,
        checkpoint: u64,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;
}

/// A read model in a JSON file, `{"checkpoint": …, "state": …}`, replaced
/// atomically (a new file, fsynced, renamed over the old, the folder
/// fsynced).
#[derive(Debug, Clone)]
pub struct FileModel {
    path: PathBuf,
}

impl FileModel {
    /// The read model in `path`.
    pub fn new(path: impl Into<PathBuf>) -> FileModel {
        FileModel { path: path.into() }
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: impl std::fmt::Display) -> ProjectionError {
        ProjectionError::Model {
            what: self.path.display().to_string(),
            reason: e.to_string(),
        }
    }
}

#[derive(serde::Serialize)]
struct Saved<'a, T> {
    checkpoint: u64,
    state: &'a T,
}

#[derive(serde::Deserialize)]
struct Loaded<T> {
    checkpoint: u64,
    state: T,
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> ReadModelStore<T> for FileModel {
    async fn load(&self) -> Result<Option<(T, u64)>, ProjectionError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        let loaded: Loaded<T> = serde_json::from_slice(&bytes).map_err(|e| self.error(e))?;
        Ok(Some((loaded.state, loaded.checkpoint)))
    }

    async fn save(&self, state: &T, checkpoint: u64) -> Result<(), ProjectionError> {
        let bytes = serde_json::to_vec(&Saved { checkpoint, state }).map_err(|e| self.error(e))?;
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty());
            std::fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
        };
        write().map_err(|e| self.error(e))
    }
}

/// A read model in memory (tests, and models rebuilt at every start).
#[derive(Debug)]
pub struct MemoryModel<T> {
    saved: Mutex<Option<(Vec<u8>, u64)>>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T> Default for MemoryModel<T> {
    fn default() -> Self {
        MemoryModel {
            saved: Mutex::new(None),
            _t: std::marker::PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> ReadModelStore<T> for MemoryModel<T> {
    async fn load(&self) -> Result<Option<(T, u64)>, ProjectionError> {
        let saved = self.saved.lock().unwrap_or_else(PoisonError::into_inner);
        match &*saved {
            None => Ok(None),
            Some((bytes, at)) => serde_json::from_slice(bytes)
                .map(|t| Some((t, *at)))
                .map_err(|e| ProjectionError::Model {
                    what: "memory".into(),
                    reason: e.to_string(),
                }),
        }
    }

    async fn save(&self, state: &T, checkpoint: u64) -> Result<(), ProjectionError> {
        let bytes = serde_json::to_vec(state).map_err(|e| ProjectionError::Model {
            what: "memory".into(),
            reason: e.to_string(),
        })?;
        *self.saved.lock().unwrap_or_else(PoisonError::into_inner) = Some((bytes, checkpoint));
        Ok(())
    }
}

impl<T, M: ReadModelStore<T>> ReadModelStore<T> for Arc<M> {
    fn load(&self) -> impl Future<Output = Result<Option<(T, u64)>, ProjectionError>> + Send {
        self.as_ref().load()
    }

    fn save(
        &self,
        state: &T,
        checkpoint: u64,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        self.as_ref().save(state, checkpoint)
    }
}

/// The state a projector serves, and how far it has read.
#[derive(Debug)]
pub struct View<T> {
    state: tokio::sync::RwLock<T>,
    position: watch::Sender<u64>,
    live: AtomicBool,
}

impl<T> View<T> {
    /// Reads the state.
    pub async fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&*self.state.read().await)
    }

    /// The `$all` position after the last event folded in.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Waits until the state holds every event before `position` (the
    /// position after an append: read your own writes).
    pub async fn caught_up_to(&self, position: u64) {
        let mut rx = self.position.subscribe();
        // The sender lives in `self`: it cannot close while we wait.
        let _ = rx.wait_for(|&p| p >= position).await;
    }

    fn set_position(&self, position: u64) {
        self.position.send_if_modified(|p| {
            let moved = *p != position;
            *p = position;
            moved
        });
    }

    /// Whether it had caught up with the store when it last looked.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }
}

/// How a projector runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectorConfig {
    /// Saves the read model after this many events (and whenever it
    /// catches up).
    pub save_every: u64,
    /// Events read per step.
    pub batch: u32,
    /// How long a caught-up projector waits for new events per read.
    pub wait_ms: u64,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            save_every: 1_000,
            batch: 500,
            wait_ms: 1_000,
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Events folded into the new read model.
    pub events: u64,
    /// The position it was swapped in at.
    pub position: u64,
}

/// A running projection.
#[derive(Debug)]
pub struct Projector<S, P: Projection, M> {
    store: S,
    projection: Arc<P>,
    config: ProjectorConfig,
    view: Arc<View<P::State>>,
    task: Option<Following<M>>,
}

impl<S, P, M> Projector<S, P, M>
where
    S: EventStore + Clone,
    P: Projection,
    M: ReadModelStore<P::State>,
{
    /// Loads the read model from `model` and follows the store from its
    /// checkpoint.
    pub async fn start(
        store: S,
        projection: P,
        model: M,
        config: ProjectorConfig,
    ) -> Result<Self, ProjectionError> {
        let (state, position) = model.load().await?.unwrap_or_default();
        let view = Arc::new(View {
            state: tokio::sync::RwLock::new(state),
            position: watch::Sender::new(position),
            live: AtomicBool::new(false),
        });
        let projection = Arc::new(projection);
        let task = Some(spawn(
            store.clone(),
            Arc::clone(&projection),
            model,
            Arc::clone(&view),
            config,
        ));
        Ok(Projector {
            store,
            projection,
            config,
            view,
            task,
        })
    }

    /// The state it serves.
    pub fn view(&self) -> Arc<View<P::State>> {
        Arc::clone(&self.view)
    }

    /// Stops following the store, saving the read model; returns its store.
    pub async fn stop(mut self) -> Result<M, ProjectionError> {
        self.halt().await
    }

    async fn halt(&mut self) -> Result<M, ProjectionError> {
        let Some((stop, task)) = self.task.take() else {
            return Err(ProjectionError::Model {
                what: "projector".into(),
                reason: "it was stopped by a failed rebuild".into(),
            });
        };
        let _ = stop.send(true);
        task.await.map_err(|e| ProjectionError::Model {
            what: "projector".into(),
            reason: format!("its task failed: {e}"),
        })?
    }

    /// Folds the projection again from position 0 into `model` while the
    /// current read model keeps serving; once the new one has caught up,
    /// it is swapped in and followed from there. Returns the old read
    /// model's store (to delete it, say).
    pub async fn rebuild(&mut self, model: M) -> Result<(M, Rebuilt), ProjectionError> {
        let mut fresh = P::State::default();
        // Catch up while the live projector serves.
        let mut events = 0;
        let mut sub =
            CatchUp::new(self.store.clone(), self.projection.filter(), 0).batch(self.config.batch);
        while !sub.is_live() {
            if let Some(e) = sub.try_next(0).await? {
                self.projection.apply(&mut fresh, &e);
                events += 1;
            }
        }
        // Stop the live one, take the last events, swap.
        let old = self.halt().await?;
        while let Some(e) = sub.try_next(0).await? {
            self.projection.apply(&mut fresh, &e);
            events += 1;
        }
        let position = sub.position();
        model.save(&fresh, position).await?;
        *self.view.state.write().await = fresh;
        self.view.set_position(position);
        self.task = Some(spawn(
            self.store.clone(),
            Arc::clone(&self.projection),
            model,
            Arc::clone(&self.view),
            self.config,
        ));
        Ok((old, Rebuilt { events, position }))
    }
}

/// The task following the store, and its stop signal.
type Following<M> = (watch::Sender<bool>, JoinHandle<Result<M, ProjectionError>>);

/// Starts the task that follows the store into `view`, saving to `model`.
fn spawn<S, P, M>(
    store: S,
    projection: Arc<P>,
    model: M,
    view: Arc<View<P::State>>,
    config: ProjectorConfig,
) -> Following<M>
where
    S: EventStore,
    P: Projection,
    M: ReadModelStore<P::State>,
{
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut sub = CatchUp::new(store, projection.filter(), view.position()).batch(config.batch);
        let mut unsaved = 0u64;
        loop {
            let next = tokio::select! {
                next = sub.try_next(config.wait_ms) => next?,
                _ = stopped.wait_for(|s| *s) => break,
            };
            match next {
                Some(e) => {
                    projection.apply(&mut *view.state.write().await, &e);
                    view.set_position(sub.position());
                    unsaved += 1;
                    if unsaved >= config.save_every {
                        save(&model, &view).await?;
                        unsaved = 0;
                    }
                }
                None => {
                    view.live.store(sub.is_live(), Ordering::Release);
                    if unsaved > 0 {
                        save(&model, &view).await?;
                        unsaved = 0;
                    }
                }
            }
        }
        // Events folded since the last save: save them before stopping.
        view.set_position(sub.position());
        save(&model, &view).await?;
        Ok(model)
    });
    (stop, task)
}

/// Saves the state with its position; the read lock keeps the projector
/// from folding more in meanwhile, and lets readers in.
async fn save<T: Send + Sync, M: ReadModelStore<T>>(
    model: &M,
    view: &View<T>,
) -> Result<(), ProjectionError> {
    let state = view.state.read().await;
    model.save(&state, view.position()).await
}
