//! `eddy-bus-conformance`: the one test suite every implementation of
//! [`eddy_bus::Bus`] passes — the embedded engine, the network client
//! (in-process and through a real `eddy serve`), and the scale-out backend
//! later — and the one every [`eddy_bus::EventStore`] passes.
//!
//! An implementation provides a [`Harness`] (how to open a fresh bus, move
//! its clock, restart it) and expands [`bus_conformance_tests!`] in one of
//! its test files; each case becomes its own `#[tokio::test]`.
//!
//! ```text
//! // crates/broker/tests/conformance.rs
//! struct Embedded;
//! impl eddy_bus_conformance::Harness for Embedded { /* ... */ }
//!
//! eddy_bus_conformance::bus_conformance_tests!(Embedded);
//! ```
//!
//! A bus that is also an event store expands [`store_conformance_tests!`]
//! too: its harness is then a [`StoreHarness`] (any [`Harness`] whose bus
//! is an `EventStore` is one), and the cases cover the store's contract —
//! expected versions, retried appends, stream and `$all` reads, waiting
//! reads, catch-up, settings, delete and re-create, restarts.
//!
//! The generated tests use `#[::tokio::test]`, so the implementing crate
//! needs `tokio` (with the `macros` and `rt-multi-thread` features) among
//! its dependencies or dev-dependencies.
//!
//! The cases are in [`cases`], one `async fn` each, to be called directly
//! as well (to run one case under a debugger, or with a different runtime).
//! They assume the harness clock is the bus's clock: [`Harness::advance`]
//! moves time for leases, retries and append timestamps, and a case checks
//! schedules to the millisecond (nothing one ms before a retry is due, the
//! retry exactly when due).

use std::future::Future;

use eddy_bus::{Bus, EventStore};

#[macro_use]
mod support;
pub mod cases;

/// How the suite drives one implementation.
pub trait Harness: Send + Sync + 'static {
    /// The implementation under test.
    type Bus: Bus + Clone;
    /// Whatever one test's bus needs kept alive (a folder, a clock, a
    /// server process).
    type Env: Send + Sync;

    /// A fresh, empty bus, with its clock at some start time.
    fn open(&self) -> impl Future<Output = (Self::Bus, Self::Env)> + Send;

    /// The bus's clock, in ms since the Unix epoch.
    fn now_ms(&self, env: &Self::Env) -> i64;

    /// Moves the bus's clock forward by `ms` (an injected clock moves; an
    /// implementation on the real clock sleeps).
    fn advance(&self, env: &Self::Env, ms: u64) -> impl Future<Output = ()> + Send;

    /// Closes the bus and opens it again on the same storage, as after a
    /// clean restart.
    fn restart(&self, bus: Self::Bus, env: &Self::Env) -> impl Future<Output = Self::Bus> + Send;
}

/// A harness whose bus is also an [`EventStore`]: what the event-store
/// cases need. Every such [`Harness`] is one.
pub trait StoreHarness: Harness<Bus: EventStore> {}

impl<H: Harness<Bus: EventStore>> StoreHarness for H {}

/// Expands to one `#[tokio::test]` per conformance case, each running the
/// case of [`cases`] with the same name against `$harness` (an expression
/// of a type that implements [`Harness`], evaluated once per test).
///
/// Expand it once, at the top level of an integration-test file (or inside
/// a `mod` of its own). The implementing crate needs `tokio` with the
/// `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! bus_conformance_tests {
    ($harness:expr) => {
        $crate::__bus_conformance_cases! {
            $harness;
            // topics
            topic_lifecycle,
            topic_errors,
            // publishing
            publish_assigns_offsets_and_ids,
            publish_same_key_same_partition_in_order,
            publish_is_idempotent_by_id,
            publish_batch_in_order_with_duplicates,
            publish_batch_is_all_or_nothing,
            // stream reading
            read_round_trips_every_attribute,
            read_from_each_position,
            read_errors,
            // subscriptions
            subscription_lifecycle_and_defaults,
            subscription_errors,
            subscription_patterns_select_topics,
            subscription_start_positions,
            fan_out_to_every_subscription,
            shared_consumers_split_the_events,
            point_to_point_consumer_lost_mid_lease,
            // delivery
            fetch_leases_and_ack,
            lease_expiry_is_a_failed_attempt,
            nack_redelivers_after_backoff_or_delay,
            retry_schedule_then_dead_letter_and_redrive,
            extend_moves_the_deadline,
            terminate_dead_letters_at_once,
            unknown_ack_id_changes_nothing,
            ack_all_reports_each_id,
            max_ack_pending_limits_deliveries,
            // dead letters
            dead_letter_queue_list_get_purge,
            redrive_to_a_topic,
            // ordered delivery
            ordered_mode_one_pending_event_per_key,
            ordered_mode_nack_holds_back_the_key,
            // seek
            seek_replays_and_skips,
            // statistics
            stats_follow_a_small_scenario,
            // durability
            restart_keeps_topics_subscriptions_and_acks,
            restart_keeps_retries_dead_letters_and_dedup,
            // waiting and push
            fetch_waits_for_a_publish,
            push_stream_respects_credit,
        }
    };
}

/// Expands to one `#[tokio::test]` per event-store conformance case (the
/// `store_*` cases of [`cases`]), each running against `$harness`, whose
/// type must be a [`StoreHarness`]. Expand it next to
/// [`bus_conformance_tests!`], or alone.
#[macro_export]
macro_rules! store_conformance_tests {
    ($harness:expr) => {
        $crate::__bus_conformance_cases! {
            $harness;
            store_append_checks_the_expected_version,
            store_retried_append_is_a_duplicate_success,
            store_event_id_of_another_stream_is_refused,
            store_read_stream_both_ways_with_next,
            store_all_filters_and_pages,
            store_read_all_waits_for_an_append,
            store_catch_up_reads_history_then_live,
            store_settings_hide_events_and_delete_numbers_on,
            store_bad_input_is_refused,
            store_restart_keeps_streams_ids_and_settings,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __bus_conformance_cases {
    ($harness:expr; $($case:ident,)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::cases::$case(&$harness).await;
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    /// Every case in `cases` is listed in `bus_conformance_tests!`, so no
    /// case is silently left out of an implementation's tests.
    #[test]
    fn the_macro_lists_every_case() {
        let lib = include_str!("lib.rs");
        let start = lib
            .find("macro_rules! bus_conformance_tests")
            .expect("the macro");
        let end = start
            + lib[start..]
                .find("macro_rules! store_conformance_tests")
                .expect("its end");
        let listed = &lib[start..end];
        let sources = [
            include_str!("cases/topics.rs"),
            include_str!("cases/publish.rs"),
            include_str!("cases/read.rs"),
            include_str!("cases/subscriptions.rs"),
            include_str!("cases/delivery.rs"),
            include_str!("cases/dead_letters.rs"),
            include_str!("cases/ordered.rs"),
            include_str!("cases/seek.rs"),
            include_str!("cases/stats.rs"),
            include_str!("cases/durability.rs"),
            include_str!("cases/push.rs"),
        ];
        let mut count = 0;
        for source in sources {
            for line in source.lines() {
                let Some(rest) = line.strip_prefix("pub async fn ") else {
                    continue;
                };
                let name = rest.split('<').next().expect("a name");
                assert!(
                    listed.contains(&format!(" {name},")),
                    "case `{name}` is missing from bus_conformance_tests!"
                );
                count += 1;
            }
        }
        assert_eq!(
            listed.matches(",\n").count(),
            count,
            "the macro lists exactly the cases"
        );
    }

    /// Every case in `cases/store.rs` is listed in
    /// `store_conformance_tests!`, and nothing else.
    #[test]
    fn the_store_macro_lists_every_store_case() {
        let lib = include_str!("lib.rs");
        let start = lib
            .find("macro_rules! store_conformance_tests")
            .expect("the macro");
        let end = start + lib[start..].find("#[doc(hidden)]").expect("its end");
        let listed = &lib[start..end];
        let mut count = 0;
        for line in include_str!("cases/store.rs").lines() {
            let Some(rest) = line.strip_prefix("pub async fn ") else {
                continue;
            };
            let name = rest.split('<').next().expect("a name");
            assert!(
                listed.contains(&format!(" {name},")),
                "case `{name}` is missing from store_conformance_tests!"
            );
            count += 1;
        }
        assert_eq!(listed.matches(",\n").count(), count);
    }
}
