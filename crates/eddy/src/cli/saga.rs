//! `eddy saga list|show`: the sagas an orchestrator ran or runs, read from
//! the event store (their streams `saga-<id>`): each one's state, and one
//! saga's history step by step.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use eddy_bus::EventStore;
use eddy_runtime::saga::{Phase, SagaEvent, SagaSummary, Status, list_sagas, saga_history};
use serde_json::json;

use super::connect::{Remote, with_folder};
use super::output::{Out, Table, time};

#[derive(Debug, Args)]
pub struct SagaArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Every saga: its definition, state, steps done and compensated.
    List(ListArgs),
    /// One saga's history: every step sent, its outcome, compensations.
    Show(ShowArgs),
    /// Ask for a saga to be undone: its orchestrator takes it in at the
    /// saga's next step, lets the step in flight finish, and compensates
    /// what was done, in reverse.
    Cancel(CancelArgs),
}

#[derive(Debug, Args)]
struct CancelArgs {
    /// The saga's id.
    id: String,
    /// Why (kept in its history).
    #[arg(long, default_value = "cancelled from the command line")]
    reason: String,
    #[command(flatten)]
    place: Where,
}

#[derive(Debug, Args)]
struct Where {
    /// Read an embedded store's folder (not in use by another process)
    /// instead of a server.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only sagas in this state.
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    #[command(flatten)]
    place: Where,
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// The saga's id.
    id: String,
    #[command(flatten)]
    place: Where,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StatusArg {
    Running,
    Compensating,
    Completed,
    Compensated,
}

impl StatusArg {
    fn status(self) -> Status {
        match self {
            StatusArg::Running => Status::Running,
            StatusArg::Compensating => Status::Compensating,
            StatusArg::Completed => Status::Completed,
            StatusArg::Compensated => Status::Compensated,
        }
    }
}

pub fn run(args: SagaArgs) -> Result<()> {
    let place = match &args.verb {
        Verb::List(a) => &a.place,
        Verb::Show(a) => &a.place,
        Verb::Cancel(a) => &a.place,
    };
    let text = match &place.dir {
        Some(dir) => with_folder(dir, async |bus| render(bus, &args.verb).await)?,
        None => {
            let mut text = None;
            place.remote.run(|client| {
                let (verb, text) = (&args.verb, &mut text);
                async move {
                    *text = Some(render(&client, verb).await?);
                    Ok(())
                }
            })?;
            text.unwrap_or_default()
        }
    };
    let mut out = Out::new();
    out.text(&text)?;
    out.flush()
}

async fn render<S: EventStore>(store: &S, verb: &Verb) -> Result<String> {
    match verb {
        Verb::Cancel(a) => Ok(
            if eddy_runtime::saga::request_cancel(store, &a.id, &a.reason).await? {
                format!(
                    "cancel requested for saga {}: its orchestrator compensates it at its next step\n",
                    a.id
                )
            } else {
                format!(
                    "saga {} is over or being cancelled already: nothing to do\n",
                    a.id
                )
            },
        ),
        Verb::List(a) => {
            let mut sagas = list_sagas(store).await?;
            if let Some(s) = a.status {
                sagas.retain(|x| x.status == s.status());
            }
            Ok(if a.place.remote.json {
                let v: Vec<serde_json::Value> = sagas.iter().map(summary_json).collect();
                format!("{}\n", serde_json::to_string_pretty(&v)?)
            } else {
                list_table(&sagas)
            })
        }
        Verb::Show(a) => {
            let history = saga_history(store, &a.id).await?;
            if a.place.remote.json {
                let v: Vec<serde_json::Value> = history
                    .iter()
                    .map(|(e, ev)| {
                        json!({
                            "version": e.version,
                            "position": e.position,
                            "time": time(e.timestamp_ms),
                            "event": ev,
                        })
                    })
                    .collect();
                return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
            }
            let mut table = Table::new(&["#", "TIME", "EVENT", "STEP", "DETAIL"]);
            let mut steps: Vec<String> = Vec::new();
            for (e, ev) in &history {
                let step = |i: usize| steps.get(i).cloned().unwrap_or_else(|| i.to_string());
                let (name, at, detail) = match ev {
                    SagaEvent::SagaStarted {
                        definition,
                        steps: names,
                        data,
                    } => {
                        steps.clone_from(names);
                        (
                            "started".to_string(),
                            String::new(),
                            format!("{definition} {data}"),
                        )
                    }
                    SagaEvent::CommandSent {
                        step: i,
                        phase,
                        attempt,
                        deadline_ms,
                    } => (
                        format!("{} sent", phase_word(*phase)),
                        step(*i),
                        format!("attempt {attempt}, times out at {}", time(*deadline_ms)),
                    ),
                    SagaEvent::StepSucceeded {
                        step: i,
                        phase,
                        result,
                    } => (
                        format!("{} done", phase_word(*phase)),
                        step(*i),
                        result.to_string(),
                    ),
                    SagaEvent::StepFailed { step: i, reason } => {
                        ("action failed".to_string(), step(*i), reason.clone())
                    }
                    SagaEvent::StepTimedOut {
                        step: i,
                        phase,
                        attempt,
                    } => (
                        format!("{} timed out", phase_word(*phase)),
                        step(*i),
                        format!("attempt {attempt}"),
                    ),
                    SagaEvent::CancelRequested { reason } => (
                        "cancel requested".to_string(),
                        String::new(),
                        reason.clone(),
                    ),
                    SagaEvent::SagaCompleted => {
                        ("completed".to_string(), String::new(), String::new())
                    }
                    SagaEvent::SagaCompensated { reason } => {
                        ("compensated".to_string(), String::new(), reason.clone())
                    }
                };
                table.row(vec![
                    e.version.to_string(),
                    time(e.timestamp_ms),
                    name,
                    at,
                    detail,
                ]);
            }
            Ok(format!(
                "saga {} (stream saga-{})\n{}",
                a.id,
                a.id,
                table.render()
            ))
        }
    }
}

fn phase_word(p: Phase) -> &'static str {
    match p {
        Phase::Do => "action",
        Phase::Undo => "compensation",
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Running => "running",
        Status::Compensating => "compensating",
        Status::Completed => "completed",
        Status::Compensated => "compensated",
    }
}

fn summary_json(s: &SagaSummary) -> serde_json::Value {
    json!({
        "id": s.id,
        "definition": s.definition,
        "status": status_word(s.status),
        "steps_done": s.steps_done,
        "steps_compensated": s.steps_compensated,
        "reason": s.reason,
        "events": s.events,
        "started": time(s.started_ms),
        "updated": time(s.updated_ms),
    })
}

fn list_table(sagas: &[SagaSummary]) -> String {
    let mut table = Table::new(&[
        "SAGA",
        "DEFINITION",
        "STATUS",
        "DONE",
        "UNDONE",
        "UPDATED",
        "REASON",
    ]);
    for s in sagas {
        table.row(vec![
            s.id.clone(),
            s.definition.clone(),
            status_word(s.status).to_string(),
            s.steps_done.to_string(),
            s.steps_compensated.to_string(),
            time(s.updated_ms),
            s.reason.clone().unwrap_or_default(),
        ]);
    }
    format!("{}{} sagas\n", table.render(), sagas.len())
}
