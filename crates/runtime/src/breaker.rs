//! A circuit breaker: the seed's Closed → Open → HalfOpen state machine
//! around one downstream dependency.
//!
//! ```text
//!            a trip rule fires                 the open time passes
//!   Closed ─────────────────────▶ Open ─────────────────────────────▶ HalfOpen
//!     ▲                            ▲                                      │
//!     │                            └──────── a probe fails ───────────────┤
//!     └───────────────── every probe succeeds ────────────────────────────┘
//! ```
//!
//! - **Closed**: calls go through; each outcome feeds the trip rules. Any
//!   rule that fires opens the breaker: N consecutive failures; N failures
//!   within T ms (whatever succeeded in between — a rule Resilience4j
//!   cannot express); a failure rate over the last N calls or the last T
//!   ms, once enough calls were seen. A call slower than `slow_call_ms`
//!   counts as a failure whatever it returned.
//! - **Open**: calls are refused at once, with the time left; the service
//!   runtime pauses fetching for the subscriptions that depend on the
//!   dependency, so events wait instead of burning delivery attempts.
//! - **HalfOpen**: once the open time has passed, up to
//!   `half_open_probes` calls are let through; the first failure reopens,
//!   and when that many have succeeded the breaker closes.
//!
//! The breaker is a plain value: time comes in as milliseconds on the
//! caller's clock (so tests drive it without sleeping), and nothing here
//! blocks, spawns or allocates beyond its bounded windows. An outcome is
//! reported with the [`Permit`] its call was given; an outcome of a call
//! that started before the last state change is ignored, so a slow call
//! admitted while Closed cannot reopen a breaker that has since closed
//! again, nor count as a probe.

use std::collections::VecDeque;
use std::fmt;

/// Largest count any window or threshold may hold: every buffer of a
/// breaker is bounded by its settings, and they by this.
pub const WINDOW_CALLS_MAX: u32 = 100_000;
/// State changes kept for [`Breaker::drain_transitions`]; older ones are
/// dropped.
pub const TRANSITIONS_KEPT: usize = 64;

/// When a breaker opens, and how it recovers. [`BreakerConfig::default`]:
/// open after 5 consecutive failures, for 30 s, then one probe.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Open after this many failures in a row.
    pub consecutive_failures: Option<u32>,
    /// Open after this many failures within this time.
    pub failures_within: Option<FailuresWithin>,
    /// Open when this share of the calls in a window failed.
    pub failure_rate: Option<FailureRate>,
    /// A call that takes at least this long counts as a failure.
    pub slow_call_ms: Option<u64>,
    /// How long the breaker stays open before it lets probes through.
    pub open_ms: u64,
    /// Probes let through while half-open; all must succeed to close.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: Some(5),
            failures_within: None,
            failure_rate: None,
            slow_call_ms: None,
            open_ms: 30_000,
            half_open_probes: 1,
        }
    }
}

/// `failures` failures within `within_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailuresWithin {
    pub failures: u32,
    pub within_ms: u64,
}

/// A failure rate over a window of calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureRate {
    /// The share of failed calls that opens the breaker, in (0, 1].
    pub rate: f64,
    pub window: Window,
    /// Calls the window must hold before the rate counts.
    pub min_calls: u32,
}

/// Which recent calls a failure rate is taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last this many calls.
    Calls(u32),
    /// The calls of the last `ms` milliseconds, at most the latest
    /// `calls_max` of them (the window's memory bound).
    Time { ms: u64, calls_max: u32 },
}

/// A setting that cannot work, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker setting `{setting}`: {reason}")]
pub struct BreakerConfigError {
    pub setting: &'static str,
    pub reason: String,
}

impl BreakerConfig {
    /// Checks that the settings can work together.
    pub fn validate(&self) -> Result<(), BreakerConfigError> {
        let invalid = |setting, reason: String| Err(BreakerConfigError { setting, reason });
        let count = |setting, n: u32| {
            if n == 0 || n > WINDOW_CALLS_MAX {
                invalid(setting, format!("{n} is not in 1..={WINDOW_CALLS_MAX}"))
            } else {
                Ok(())
            }
        };
        if self.consecutive_failures.is_none()
            && self.failures_within.is_none()
            && self.failure_rate.is_none()
        {
            return invalid(
                "consecutive_failures",
                "no rule would ever open the breaker: set consecutive_failures, \
                 failures_within or failure_rate"
                    .into(),
            );
        }
        if let Some(n) = self.consecutive_failures {
            count("consecutive_failures", n)?;
        }
        if let Some(w) = self.failures_within {
            count("failures_within.failures", w.failures)?;
            if w.within_ms == 0 {
                return invalid("failures_within.within_ms", "must be at least 1 ms".into());
            }
        }
        if let Some(r) = self.failure_rate {
            if !(r.rate > 0.0 && r.rate <= 1.0) {
                return invalid(
                    "failure_rate.rate",
                    format!("{} is not a share in (0, 1]", r.rate),
                );
            }
            count("failure_rate.min_calls", r.min_calls)?;
            let held = match r.window {
                Window::Calls(n) => {
                    count("failure_rate.window.calls", n)?;
                    n
                }
                Window::Time { ms, calls_max } => {
                    if ms == 0 {
                        return invalid("failure_rate.window.ms", "must be at least 1 ms".into());
                    }
                    count("failure_rate.window.calls_max", calls_max)?;
                    calls_max
                }
            };
            if r.min_calls > held {
                return invalid(
                    "failure_rate.min_calls",
                    format!("{} is more than the window can hold ({held})", r.min_calls),
                );
            }
        }
        if self.open_ms == 0 {
            return invalid("open_ms", "must be at least 1 ms".into());
        }
        count("half_open_probes", self.half_open_probes)
    }
}

/// The breaker's state, as the seed's diagram names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        })
    }
}

/// Leave for one call; hand it back with the call's [`Outcome`].
#[derive(Debug)]
#[must_use = "report the call's outcome with Breaker::record"]
pub struct Permit {
    epoch: u64,
    started_ms: i64,
}

/// A call refused: the breaker is open, or half-open with every probe out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub state: BreakerState,
    /// When open: the time left until probes are let through. `None`
    /// while half-open: when a probe returns.
    pub retry_after_ms: Option<u64>,
}

/// How a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// A change of state, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: BreakerState,
    pub to: BreakerState,
    pub at_ms: i64,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until_ms: i64 },
    HalfOpen { admitted: u32, succeeded: u32 },
}

/// One dependency's circuit breaker; see the [module](self) documentation.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    phase: Phase,
    /// Bumped by every state change: permits of an older epoch are stale.
    epoch: u64,
    /// Failures since the last success (while closed).
    consecutive: u32,
    /// Times of the latest failures, at most `failures_within.failures`.
    failure_times: VecDeque<i64>,
    /// The failure-rate window: (time, failed), oldest first.
    calls: VecDeque<(i64, bool)>,
    /// Failed calls in `calls`.
    calls_failed: usize,
    transitions: VecDeque<Transition>,
}

impl Breaker {
    /// A closed breaker with `config`, if it is valid.
    pub fn new(config: BreakerConfig) -> Result<Breaker, BreakerConfigError> {
        config.validate()?;
        Ok(Breaker {
            config,
            phase: Phase::Closed,
            epoch: 0,
            consecutive: 0,
            failure_times: VecDeque::new(),
            calls: VecDeque::new(),
            calls_failed: 0,
            transitions: VecDeque::new(),
        })
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The state as of the last call or outcome (an open breaker whose time
    /// has passed turns half-open at the next [`Breaker::try_call`]).
    pub fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// While open: how long until probes are let through, as of `now_ms`
    /// (`None` when closed, half-open, or open past its time).
    pub fn retry_after_ms(&self, now_ms: i64) -> Option<u64> {
        match self.phase {
            Phase::Open { until_ms } if now_ms < until_ms => Some(until_ms.abs_diff(now_ms)),
            _ => None,
        }
    }

    /// Asks to make a call at `now_ms`.
    pub fn try_call(&mut self, now_ms: i64) -> Result<Permit, Rejected> {
        if let Phase::Open { until_ms } = self.phase {
            if now_ms < until_ms {
                return Err(Rejected {
                    state: BreakerState::Open,
                    retry_after_ms: Some(until_ms.abs_diff(now_ms)),
                });
            }
            self.change(
                Phase::HalfOpen {
                    admitted: 0,
                    succeeded: 0,
                },
                now_ms,
                format!("open for {} ms", self.config.open_ms),
            );
        }
        if let Phase::HalfOpen { admitted, .. } = &mut self.phase {
            if *admitted >= self.config.half_open_probes {
                return Err(Rejected {
                    state: BreakerState::HalfOpen,
                    retry_after_ms: None,
                });
            }
            *admitted += 1;
        }
        Ok(Permit {
            epoch: self.epoch,
            started_ms: now_ms,
        })
    }

    /// Reports how the call of `permit` went, at `now_ms`.
    pub fn record(&mut self, permit: Permit, outcome: Outcome, now_ms: i64) {
        if permit.epoch != self.epoch {
            return;
        }
        let slow = self
            .config
            .slow_call_ms
            .is_some_and(|t| now_ms.saturating_sub(permit.started_ms) >= t as i64);
        let failed = outcome == Outcome::Failure || slow;
        match self.phase {
            Phase::Closed => self.record_closed(failed, slow, now_ms),
            Phase::HalfOpen {
                admitted,
                succeeded,
            } => {
                if failed {
                    let why = if slow {
                        "a probe was slow"
                    } else {
                        "a probe failed"
                    };
                    self.open(now_ms, why.into());
                } else if succeeded + 1 >= self.config.half_open_probes {
                    self.change(
                        Phase::Closed,
                        now_ms,
                        format!("{} probes succeeded", self.config.half_open_probes),
                    );
                } else {
                    self.phase = Phase::HalfOpen {
                        admitted,
                        succeeded: succeeded + 1,
                    };
                }
            }
            // No permit of the current epoch exists while open.
            Phase::Open { .. } => {}
        }
    }

    /// The state changes since the last call, oldest first (at most
    /// [`TRANSITIONS_KEPT`]).
    pub fn drain_transitions(&mut self) -> Vec<Transition> {
        self.transitions.drain(..).collect()
    }

    fn record_closed(&mut self, failed: bool, slow: bool, now_ms: i64) {
        self.consecutive = if failed { self.consecutive + 1 } else { 0 };
        if let Some(rule) = self.config.consecutive_failures
            && self.consecutive >= rule
        {
            return self.open(now_ms, format!("{rule} consecutive failures"));
        }
        if let Some(rule) = self.config.failures_within
            && failed
        {
            if self.failure_times.len() == rule.failures as usize {
                self.failure_times.pop_front();
            }
            self.failure_times.push_back(now_ms);
            if self.failure_times.len() == rule.failures as usize
                && self
                    .failure_times
                    .front()
                    .is_some_and(|&first| now_ms.saturating_sub(first) <= rule.within_ms as i64)
            {
                return self.open(
                    now_ms,
                    format!("{} failures within {} ms", rule.failures, rule.within_ms),
                );
            }
        }
        if let Some(rule) = self.config.failure_rate {
            let (held, since) = match rule.window {
                Window::Calls(n) => (n as usize, None),
                Window::Time { ms, calls_max } => {
                    (calls_max as usize, Some(now_ms.saturating_sub(ms as i64)))
                }
            };
            if self.calls.len() == held {
                self.pop_call();
            }
            self.calls.push_back((now_ms, failed));
            self.calls_failed += usize::from(failed);
            if let Some(since) = since {
                while self.calls.front().is_some_and(|&(t, _)| t <= since) {
                    self.pop_call();
                }
            }
            let n = self.calls.len();
            if n >= rule.min_calls as usize && self.calls_failed as f64 >= rule.rate * n as f64 {
                let kind = if slow { "failed or slow" } else { "failed" };
                self.open(
                    now_ms,
                    format!("{} of the last {n} calls {kind}", self.calls_failed),
                );
            }
        }
    }

    fn pop_call(&mut self) {
        if let Some((_, failed)) = self.calls.pop_front() {
            self.calls_failed -= usize::from(failed);
        }
    }

    fn open(&mut self, now_ms: i64, reason: String) {
        let until_ms =
            now_ms.saturating_add(i64::try_from(self.config.open_ms).unwrap_or(i64::MAX));
        self.change(Phase::Open { until_ms }, now_ms, reason);
    }

    /// Moves to `to`, starting a new epoch with empty windows.
    fn change(&mut self, to: Phase, now_ms: i64, reason: String) {
        let from = self.state();
        self.phase = to;
        self.epoch += 1;
        self.consecutive = 0;
        self.failure_times.clear();
        self.calls.clear();
        self.calls_failed = 0;
        if self.transitions.len() == TRANSITIONS_KEPT {
            self.transitions.pop_front();
        }
        self.transitions.push_back(Transition {
            from,
            to: self.state(),
            at_ms: now_ms,
            reason,
        });
    }
}
