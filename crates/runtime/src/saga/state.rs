//! A saga's state as the fold of its events, and what it must do next —
//! pure: no I/O, no clock (times are the caller's), so recovery and live
//! running decide the same way.

use serde::{Deserialize, Serialize};

use super::SagaDefinition;

/// Which way a step's command goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The step's action.
    Do,
    /// Its compensation.
    Undo,
}

impl Phase {
    /// `do` or `undo`, as in the command's `sagaphase` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Do => "do",
            Phase::Undo => "undo",
        }
    }

    /// Parses a `sagaphase` header.
    pub fn parse(s: &str) -> Option<Phase> {
        match s {
            "do" => Some(Phase::Do),
            "undo" => Some(Phase::Undo),
            _ => None,
        }
    }
}

/// What happened to a saga: the events of its stream `saga-<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SagaEvent {
    /// It began, with the data every command carries.
    SagaStarted {
        /// The definition it runs.
        definition: String,
        /// The names of its steps, in order (for reading the history).
        #[serde(default)]
        steps: Vec<String>,
        /// The data given at the start.
        data: serde_json::Value,
    },
    /// A step's command was about to be sent (recorded first, so a crash
    /// after it sends the same command again).
    CommandSent {
        /// The step's index.
        step: usize,
        /// Action or compensation.
        phase: Phase,
        /// 1 for the first try.
        attempt: u32,
        /// When the attempt times out (the orchestrator's clock, ms).
        deadline_ms: i64,
    },
    /// The participant reported the command done.
    StepSucceeded {
        /// The step's index.
        step: usize,
        /// Action or compensation.
        phase: Phase,
        /// What the participant replied.
        result: serde_json::Value,
    },
    /// The participant refused the action: it had no effect, and the saga
    /// compensates the steps before it.
    StepFailed {
        /// The step's index.
        step: usize,
        /// Why.
        reason: String,
    },
    /// No reply came before the deadline.
    StepTimedOut {
        /// The step's index.
        step: usize,
        /// Action or compensation.
        phase: Phase,
        /// The attempt that timed out.
        attempt: u32,
    },
    /// Someone asked for the saga to be undone.
    CancelRequested {
        /// Why.
        reason: String,
    },
    /// Every step is done.
    SagaCompleted,
    /// Every step that took effect (or may have) was compensated.
    SagaCompensated {
        /// Why the saga was compensated.
        reason: String,
    },
}

impl SagaEvent {
    /// The event's type name (its CloudEvents type in the store).
    pub fn type_name(&self) -> &'static str {
        match self {
            SagaEvent::SagaStarted { .. } => "SagaStarted",
            SagaEvent::CommandSent { .. } => "CommandSent",
            SagaEvent::StepSucceeded { .. } => "StepSucceeded",
            SagaEvent::StepFailed { .. } => "StepFailed",
            SagaEvent::StepTimedOut { .. } => "StepTimedOut",
            SagaEvent::CancelRequested { .. } => "CancelRequested",
            SagaEvent::SagaCompleted => "SagaCompleted",
            SagaEvent::SagaCompensated { .. } => "SagaCompensated",
        }
    }
}

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Running its steps.
    Running,
    /// Running compensations.
    Compensating,
    /// Done: every step succeeded.
    Completed,
    /// Done: compensated.
    Compensated,
}

impl Status {
    /// Whether the saga is over.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Compensated)
    }
}

/// A command the saga waits for a reply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Awaiting {
    /// The step's index.
    pub step: usize,
    /// Action or compensation.
    pub phase: Phase,
    /// Which try.
    pub attempt: u32,
    /// When it times out.
    pub deadline_ms: i64,
}

/// What the orchestrator must do for a saga now.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Record and send this command.
    Send {
        /// The step's index.
        step: usize,
        /// Action or compensation.
        phase: Phase,
        /// Which try.
        attempt: u32,
    },
    /// Wait for the reply to the command in flight (until its deadline).
    Wait(Awaiting),
    /// Record the end.
    Finish(SagaEvent),
    /// Nothing: the saga is over.
    Nothing,
}

/// A saga folded from its events.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaState {
    /// The definition it runs.
    pub definition: String,
    /// The data given at the start.
    pub data: serde_json::Value,
    /// Per step: its action succeeded.
    pub done: Vec<bool>,
    /// Per step: its action timed out on every attempt, so it may have
    /// taken effect; it is compensated too.
    pub uncertain: Vec<bool>,
    /// Per step: compensated.
    pub compensated: Vec<bool>,
    /// The command in flight.
    pub awaiting: Option<Awaiting>,
    /// A command to send again after a timeout: (step, phase, attempt).
    pub retry: Option<(usize, Phase, u32)>,
    /// Why it compensates (a failed step), if it does.
    pub failure: Option<String>,
    /// Why it was cancelled, if it was.
    pub cancelled: Option<String>,
    /// Where it is.
    pub status: Status,
}

impl SagaState {
    /// A saga that has just started.
    pub fn started(definition: &str, data: serde_json::Value, steps: usize) -> SagaState {
        SagaState {
            definition: definition.to_string(),
            data,
            done: vec![false; steps],
            uncertain: vec![false; steps],
            compensated: vec![false; steps],
            awaiting: None,
            retry: None,
            failure: None,
            cancelled: None,
            status: Status::Running,
        }
    }

    fn compensating(&self) -> bool {
        self.failure.is_some() || self.cancelled.is_some()
    }

    /// Folds one more event in. Events that do not fit (a step index out of
    /// range) are ignored: the state never panics on stored data.
    pub fn apply(&mut self, event: &SagaEvent, def: &SagaDefinition) {
        let fits = |step: usize| step < self.done.len();
        match *event {
            SagaEvent::SagaStarted { .. } => {}
            SagaEvent::CommandSent {
                step,
                phase,
                attempt,
                deadline_ms,
            } if fits(step) => {
                self.retry = None;
                self.awaiting = Some(Awaiting {
                    step,
                    phase,
                    attempt,
                    deadline_ms,
                });
            }
            SagaEvent::StepSucceeded { step, phase, .. } if fits(step) => {
                self.awaiting = None;
                match phase {
                    Phase::Do => self.done[step] = true,
                    Phase::Undo => self.compensated[step] = true,
                }
            }
            SagaEvent::StepFailed { step, ref reason } if fits(step) => {
                self.awaiting = None;
                if self.failure.is_none() {
                    let name = &def.steps[step].name;
                    self.failure = Some(format!("{name} failed: {reason}"));
                }
            }
            SagaEvent::StepTimedOut {
                step,
                phase,
                attempt,
            } if fits(step) => {
                self.awaiting = None;
                let max = def.steps[step].max_attempts.max(1);
                // An action that timed out may have taken effect. Out of
                // attempts — or with the saga compensating, when it is not
                // tried again — it is compensated too.
                if phase == Phase::Do && (attempt >= max || self.compensating()) {
                    self.uncertain[step] = true;
                    if !self.compensating() {
                        let name = &def.steps[step].name;
                        self.failure = Some(format!(
                            "{name} timed out {attempt} time(s) without a reply"
                        ));
                    }
                } else {
                    self.retry = Some((step, phase, attempt + 1));
                }
            }
            SagaEvent::CancelRequested { ref reason }
                if self.cancelled.is_none() && !self.status.is_final() =>
            {
                self.cancelled = Some(reason.clone());
                // An action that timed out and was to be tried again may
                // have taken effect: it is compensated too.
                if let Some((step, Phase::Do, _)) = self.retry.take() {
                    self.uncertain[step] = true;
                }
            }
            SagaEvent::SagaCompleted => self.status = Status::Completed,
            SagaEvent::SagaCompensated { .. } => self.status = Status::Compensated,
            _ => {}
        }
        if !self.status.is_final() && self.compensating() {
            self.status = Status::Compensating;
        }
    }

    /// What to do now.
    pub fn next(&self, def: &SagaDefinition) -> Next {
        if self.status.is_final() {
            return Next::Nothing;
        }
        if let Some(a) = self.awaiting {
            return Next::Wait(a);
        }
        if let Some((step, phase, attempt)) = self.retry {
            // A retried action is not sent once the saga compensates.
            if !(phase == Phase::Do && self.compensating()) {
                return Next::Send {
                    step,
                    phase,
                    attempt,
                };
            }
        }
        if !self.compensating() {
            return match self.done.iter().position(|d| !d) {
                Some(step) => Next::Send {
                    step,
                    phase: Phase::Do,
                    attempt: 1,
                },
                None => Next::Finish(SagaEvent::SagaCompleted),
            };
        }
        let undo = (0..self.done.len()).rev().find(|&i| {
            (self.done[i] || self.uncertain[i])
                && !self.compensated[i]
                && def.steps[i].compensation.is_some()
        });
        match undo {
            Some(step) => Next::Send {
                step,
                phase: Phase::Undo,
                attempt: 1,
            },
            None => Next::Finish(SagaEvent::SagaCompensated {
                reason: self
                    .failure
                    .clone()
                    .or_else(|| self.cancelled.clone().map(|r| format!("cancelled: {r}")))
                    .unwrap_or_default(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::{SagaDefinition, StepDefinition};

    fn def() -> SagaDefinition {
        let step = |name: &str, undo: Option<&str>| StepDefinition {
            compensation: undo.map(str::to_string),
            max_attempts: 2,
            ..StepDefinition::new(name, "svc.commands", name)
        };
        SagaDefinition::new(
            "shop",
            "saga.replies",
            vec![
                step("reserve", Some("release")),
                step("pay", Some("refund")),
                step("ship", Some("cancel-shipment")),
                step("notify", None),
            ],
        )
    }

    /// Runs `events` and returns the commands the state asked for along
    /// the way, as (step, phase) in order.
    fn run(events: &[SagaEvent]) -> (SagaState, Next) {
        let d = def();
        let mut s = SagaState::started("shop", serde_json::json!({}), d.steps.len());
        for e in events {
            s.apply(e, &d);
        }
        let next = s.next(&d);
        (s, next)
    }

    fn sent(step: usize, phase: Phase, attempt: u32) -> SagaEvent {
        SagaEvent::CommandSent {
            step,
            phase,
            attempt,
            deadline_ms: 100,
        }
    }

    fn ok(step: usize, phase: Phase) -> SagaEvent {
        SagaEvent::StepSucceeded {
            step,
            phase,
            result: serde_json::Value::Null,
        }
    }

    #[test]
    fn steps_run_in_order_then_the_saga_completes() {
        let mut events = Vec::new();
        for step in 0..4 {
            let (_, next) = run(&events);
            assert_eq!(
                next,
                Next::Send {
                    step,
                    phase: Phase::Do,
                    attempt: 1
                }
            );
            events.push(sent(step, Phase::Do, 1));
            assert!(matches!(run(&events).1, Next::Wait(_)));
            events.push(ok(step, Phase::Do));
        }
        assert_eq!(run(&events).1, Next::Finish(SagaEvent::SagaCompleted));
        events.push(SagaEvent::SagaCompleted);
        assert_eq!(run(&events).1, Next::Nothing);
    }

    #[test]
    fn a_failed_step_compensates_the_done_ones_in_reverse() {
        let mut events = vec![
            sent(0, Phase::Do, 1),
            ok(0, Phase::Do),
            sent(1, Phase::Do, 1),
            ok(1, Phase::Do),
        ];
        events.push(sent(2, Phase::Do, 1));
        events.push(SagaEvent::StepFailed {
            step: 2,
            reason: "no courier".into(),
        });
        let (s, next) = run(&events);
        assert_eq!(s.status, Status::Compensating);
        assert_eq!(
            next,
            Next::Send {
                step: 1,
                phase: Phase::Undo,
                attempt: 1
            }
        );
        events.extend([sent(1, Phase::Undo, 1), ok(1, Phase::Undo)]);
        assert_eq!(
            run(&events).1,
            Next::Send {
                step: 0,
                phase: Phase::Undo,
                attempt: 1
            }
        );
        events.extend([sent(0, Phase::Undo, 1), ok(0, Phase::Undo)]);
        assert_eq!(
            run(&events).1,
            Next::Finish(SagaEvent::SagaCompensated {
                reason: "ship failed: no courier".into()
            })
        );
    }

    #[test]
    fn timeouts_retry_then_fail_and_the_uncertain_step_is_compensated_too() {
        let mut events = vec![
            sent(0, Phase::Do, 1),
            ok(0, Phase::Do),
            sent(1, Phase::Do, 1),
        ];
        events.push(SagaEvent::StepTimedOut {
            step: 1,
            phase: Phase::Do,
            attempt: 1,
        });
        assert_eq!(
            run(&events).1,
            Next::Send {
                step: 1,
                phase: Phase::Do,
                attempt: 2
            }
        );
        events.push(sent(1, Phase::Do, 2));
        events.push(SagaEvent::StepTimedOut {
            step: 1,
            phase: Phase::Do,
            attempt: 2,
        });
        let (s, next) = run(&events);
        assert_eq!(s.status, Status::Compensating);
        assert_eq!(
            next,
            Next::Send {
                step: 1,
                phase: Phase::Undo,
                attempt: 1
            },
            "it may have taken effect"
        );
        // A compensation is retried as long as it takes.
        events.push(sent(1, Phase::Undo, 1));
        for attempt in 1..5 {
            events.push(SagaEvent::StepTimedOut {
                step: 1,
                phase: Phase::Undo,
                attempt,
            });
            assert_eq!(
                run(&events).1,
                Next::Send {
                    step: 1,
                    phase: Phase::Undo,
                    attempt: attempt + 1
                }
            );
            events.push(sent(1, Phase::Undo, attempt + 1));
        }
    }

    #[test]
    fn a_cancel_waits_for_the_step_in_flight_then_compensates_it() {
        let mut events = vec![
            sent(0, Phase::Do, 1),
            ok(0, Phase::Do),
            sent(1, Phase::Do, 1),
        ];
        events.push(SagaEvent::CancelRequested {
            reason: "customer".into(),
        });
        assert!(matches!(run(&events).1, Next::Wait(_)));
        events.push(ok(1, Phase::Do));
        assert_eq!(
            run(&events).1,
            Next::Send {
                step: 1,
                phase: Phase::Undo,
                attempt: 1
            }
        );
        events.extend([
            sent(1, Phase::Undo, 1),
            ok(1, Phase::Undo),
            sent(0, Phase::Undo, 1),
            ok(0, Phase::Undo),
        ]);
        assert_eq!(
            run(&events).1,
            Next::Finish(SagaEvent::SagaCompensated {
                reason: "cancelled: customer".into()
            })
        );
    }

    #[test]
    fn out_of_range_steps_are_ignored() {
        let (s, next) = run(&[sent(9, Phase::Do, 1), ok(9, Phase::Undo)]);
        assert_eq!(s.status, Status::Running);
        assert_eq!(
            next,
            Next::Send {
                step: 0,
                phase: Phase::Do,
                attempt: 1
            }
        );
    }
}
