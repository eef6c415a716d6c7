//! The circuit breaker against a model: random settings and random runs of
//! calls, outcomes and passing time, checked step by step against a model
//! that keeps every outcome since the last state change and recomputes
//! each trip rule from that whole history by scanning it (where the breaker
//! keeps bounded windows and running counts).

use eddy_runtime::{
    Breaker, BreakerConfig, BreakerState, FailureRate, FailuresWithin, Outcome, Permit, Rejected,
    Window,
};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until_ms: i64 },
    HalfOpen { admitted: u32, succeeded: u32 },
}

/// The model: the state, its epoch, and the outcomes seen in it.
#[derive(Debug)]
struct Model {
    config: BreakerConfig,
    phase: Phase,
    epoch: u64,
    /// (time, failed) of every outcome recorded since the last change.
    history: Vec<(i64, bool)>,
    /// (from, to, at) of every change.
    transitions: Vec<(BreakerState, BreakerState, i64)>,
}

impl Model {
    fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn change(&mut self, to: Phase, now: i64) {
        let from = self.state();
        self.phase = to;
        self.epoch += 1;
        self.history.clear();
        self.transitions.push((from, self.state(), now));
    }

    fn open(&mut self, now: i64) {
        self.change(
            Phase::Open {
                until_ms: now + self.config.open_ms as i64,
            },
            now,
        );
    }

    /// `Ok(epoch)` of the permit, or the rejection.
    fn try_call(&mut self, now: i64) -> Result<(u64, i64), Rejected> {
        if let Phase::Open { until_ms } = self.phase {
            if now < until_ms {
                return Err(Rejected {
                    state: BreakerState::Open,
                    retry_after_ms: Some((until_ms - now) as u64),
                });
            }
            self.change(
                Phase::HalfOpen {
                    admitted: 0,
                    succeeded: 0,
                },
                now,
            );
        }
        if let Phase::HalfOpen {
            admitted,
            succeeded,
        } = self.phase
        {
            if admitted == self.config.half_open_probes {
                return Err(Rejected {
                    state: BreakerState::HalfOpen,
                    retry_after_ms: None,
                });
            }
            self.phase = Phase::HalfOpen {
                admitted: admitted + 1,
                succeeded,
            };
        }
        Ok((self.epoch, now))
    }

    fn record(&mut self, (epoch, started): (u64, i64), failed: bool, now: i64) {
        if epoch != self.epoch {
            return;
        }
        let failed = failed
            || self
                .config
                .slow_call_ms
                .is_some_and(|t| now - started >= t as i64);
        match self.phase {
            Phase::Open { .. } => unreachable!("no permit of an open epoch"),
            Phase::HalfOpen {
                admitted,
                succeeded,
            } => {
                if failed {
                    self.open(now);
                } else if succeeded + 1 == self.config.half_open_probes {
                    self.change(Phase::Closed, now);
                } else {
                    self.phase = Phase::HalfOpen {
                        admitted,
                        succeeded: succeeded + 1,
                    };
                }
            }
            Phase::Closed => {
                self.history.push((now, failed));
                if self.trips(now) {
                    self.open(now);
                }
            }
        }
    }

    /// Whether any rule fires on the history, scanned whole.
    fn trips(&self, now: i64) -> bool {
        let h = &self.history;
        if let Some(n) = self.config.consecutive_failures {
            let trailing = h.iter().rev().take_while(|(_, f)| *f).count();
            if trailing >= n as usize {
                return true;
            }
        }
        if let Some(w) = self.config.failures_within {
            let last_failed = h.last().is_some_and(|(_, f)| *f);
            let failures: Vec<i64> = h.iter().filter(|(_, f)| *f).map(|(t, _)| *t).collect();
            if last_failed
                && failures.len() >= w.failures as usize
                && now - failures[failures.len() - w.failures as usize] <= w.within_ms as i64
            {
                return true;
            }
        }
        if let Some(r) = self.config.failure_rate {
            let window: Vec<bool> = match r.window {
                Window::Calls(n) => h.iter().rev().take(n as usize).map(|(_, f)| *f).collect(),
                Window::Time { ms, calls_max } => h
                    .iter()
                    .rev()
                    .filter(|(t, _)| *t > now - ms as i64)
                    .take(calls_max as usize)
                    .map(|(_, f)| *f)
                    .collect(),
            };
            let failed = window.iter().filter(|f| **f).count();
            if window.len() >= r.min_calls as usize && failed as f64 >= r.rate * window.len() as f64
            {
                return true;
            }
        }
        false
    }
}

/// The grain of time in the generated runs and settings.
const STEP_MS: u64 = 50;

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    TryCall,
    /// Reports the `n`-th outstanding call (modulo how many there are).
    Finish {
        n: usize,
        failed: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Time moves in steps of 50 ms, and every setting below is a
        // multiple of 50 ms, so that outcomes land exactly on the edges.
        3 => (0u64..=6).prop_map(|n| Op::Advance(n * STEP_MS)),
        1 => (20u64..=100).prop_map(|n| Op::Advance(n * STEP_MS)),
        4 => Just(Op::TryCall),
        5 => (any::<usize>(), prop::bool::weighted(0.45)).prop_map(|(n, failed)| Op::Finish { n, failed }),
    ]
}

fn config() -> impl Strategy<Value = BreakerConfig> {
    let window = prop_oneof![
        (1u32..=12).prop_map(Window::Calls),
        ((1u64..=40), (1u32..=12)).prop_map(|(n, calls_max)| Window::Time {
            ms: n * STEP_MS,
            calls_max
        }),
    ];
    let rate = (window, 1u32..=12, 1u32..=10).prop_map(|(window, min, tenths)| {
        let held = match window {
            Window::Calls(n) => n,
            Window::Time { calls_max, .. } => calls_max,
        };
        FailureRate {
            rate: f64::from(tenths) / 10.0,
            window,
            min_calls: min.min(held),
        }
    });
    (
        prop::option::of(1u32..=6),
        prop::option::of((1u32..=6, (1u64..=40).prop_map(|n| n * STEP_MS))),
        prop::option::of(rate),
        prop::option::of((1u64..=8).prop_map(|n| n * STEP_MS)),
        (1u64..=60).prop_map(|n| n * STEP_MS),
        1u32..=3,
    )
        .prop_map(
            |(consecutive, within, rate, slow, open_ms, probes)| BreakerConfig {
                // At least one rule, as validate requires.
                consecutive_failures: if within.is_none() && rate.is_none() {
                    Some(consecutive.unwrap_or(3))
                } else {
                    consecutive
                },
                failures_within: within.map(|(failures, within_ms)| FailuresWithin {
                    failures,
                    within_ms,
                }),
                failure_rate: rate,
                slow_call_ms: slow,
                open_ms,
                half_open_probes: probes,
            },
        )
}

/// Only a failure rate over a short time window: where a call falls out of
/// the window decides the rate, so the window's edges are exercised.
fn time_rate_only() -> impl Strategy<Value = BreakerConfig> {
    (1u64..=6, 2u32..=12, 1u32..=12, 1u32..=10, 1u64..=10).prop_map(
        |(n, calls_max, min, tenths, open)| BreakerConfig {
            consecutive_failures: None,
            failures_within: None,
            failure_rate: Some(FailureRate {
                rate: f64::from(tenths) / 10.0,
                window: Window::Time {
                    ms: n * STEP_MS,
                    calls_max,
                },
                min_calls: min.min(calls_max),
            }),
            slow_call_ms: None,
            open_ms: open * STEP_MS,
            half_open_probes: 1,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn breaker_matches_model(config in prop_oneof![3 => config(), 1 => time_rate_only()], ops in prop::collection::vec(op(), 1..200)) {
        let mut breaker = Breaker::new(config.clone()).expect("valid settings");
        let mut model = Model {
            config,
            phase: Phase::Closed,
            epoch: 0,
            history: Vec::new(),
            transitions: Vec::new(),
        };
        let mut now = 1_000_000i64;
        let mut outstanding: Vec<(Permit, (u64, i64))> = Vec::new();
        let mut transitions = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Advance(ms) => now += ms as i64,
                Op::TryCall => {
                    let got = breaker.try_call(now);
                    let want = model.try_call(now);
                    match (got, want) {
                        (Ok(permit), Ok(m)) => outstanding.push((permit, m)),
                        (Err(a), Err(b)) => prop_assert_eq!(a, b, "step {}", step),
                        (a, b) => prop_assert!(false, "step {}: breaker {:?}, model {:?}", step, a, b),
                    }
                }
                Op::Finish { n, failed } => {
                    if outstanding.is_empty() {
                        continue;
                    }
                    let (permit, m) = outstanding.swap_remove(n % outstanding.len());
                    let outcome = if failed { Outcome::Failure } else { Outcome::Success };
                    breaker.record(permit, outcome, now);
                    model.record(m, failed, now);
                }
            }
            prop_assert_eq!(breaker.state(), model.state(), "step {}", step);
            transitions.extend(breaker.drain_transitions().into_iter().map(|t| (t.from, t.to, t.at_ms)));
            prop_assert_eq!(&transitions, &model.transitions, "step {}", step);
        }
    }
}

#[test]
fn n_failures_within_t_opens_whatever_succeeded_in_between() {
    // Three failures within 1 s open the breaker even with successes
    // between them; spread over more than 1 s they do not.
    let config = BreakerConfig {
        consecutive_failures: None,
        failures_within: Some(FailuresWithin {
            failures: 3,
            within_ms: 1000,
        }),
        ..BreakerConfig::default()
    };
    let mut b = Breaker::new(config).unwrap();
    let call = |b: &mut Breaker, at: i64, outcome| {
        let permit = b.try_call(at).expect("admitted");
        b.record(permit, outcome, at);
    };
    call(&mut b, 0, Outcome::Failure);
    call(&mut b, 600, Outcome::Failure);
    call(&mut b, 700, Outcome::Success);
    call(&mut b, 1200, Outcome::Failure); // 0, 600, 1200: 1,200 ms apart
    assert_eq!(b.state(), BreakerState::Closed);
    call(&mut b, 1300, Outcome::Success);
    call(&mut b, 1500, Outcome::Failure); // 600, 1200, 1500: within 1 s
    assert_eq!(b.state(), BreakerState::Open);
    let t = b.drain_transitions();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].reason, "3 failures within 1000 ms");
    assert_eq!(
        b.try_call(1600).unwrap_err(),
        Rejected {
            state: BreakerState::Open,
            retry_after_ms: Some(29_900)
        }
    );
}

#[test]
fn a_slow_success_counts_as_a_failure_and_a_stale_outcome_is_ignored() {
    let config = BreakerConfig {
        consecutive_failures: Some(1),
        slow_call_ms: Some(100),
        open_ms: 50,
        ..BreakerConfig::default()
    };
    let mut b = Breaker::new(config).unwrap();
    let early = b.try_call(0).unwrap();
    let slow = b.try_call(0).unwrap();
    b.record(slow, Outcome::Success, 100);
    assert_eq!(b.state(), BreakerState::Open, "100 ms is slow");
    let probe = b.try_call(150).unwrap();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    // A failure of a call admitted before the breaker opened is stale.
    b.record(early, Outcome::Failure, 151);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(
        b.try_call(152).unwrap_err().retry_after_ms,
        None,
        "the one probe is out"
    );
    b.record(probe, Outcome::Success, 160);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn settings_that_cannot_work_are_refused_by_name() {
    let refused = |config: BreakerConfig| Breaker::new(config).unwrap_err().setting;
    let none = BreakerConfig {
        consecutive_failures: None,
        ..BreakerConfig::default()
    };
    assert_eq!(refused(none), "consecutive_failures");
    let rate = |rate, window, min_calls| BreakerConfig {
        failure_rate: Some(FailureRate {
            rate,
            window,
            min_calls,
        }),
        ..BreakerConfig::default()
    };
    assert_eq!(
        refused(rate(0.0, Window::Calls(10), 5)),
        "failure_rate.rate"
    );
    assert_eq!(
        refused(rate(f64::NAN, Window::Calls(10), 5)),
        "failure_rate.rate"
    );
    assert_eq!(
        refused(rate(0.5, Window::Calls(10), 11)),
        "failure_rate.min_calls"
    );
    assert_eq!(
        refused(rate(
            0.5,
            Window::Calls(eddy_runtime::breaker::WINDOW_CALLS_MAX + 1),
            1
        )),
        "failure_rate.window.calls"
    );
    assert_eq!(
        refused(rate(
            0.5,
            Window::Time {
                ms: 0,
                calls_max: 10
            },
            1
        )),
        "failure_rate.window.ms"
    );
    let probes = BreakerConfig {
        half_open_probes: 0,
        ..BreakerConfig::default()
    };
    assert_eq!(refused(probes), "half_open_probes");
}
