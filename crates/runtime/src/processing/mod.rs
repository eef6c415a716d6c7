//! Stream processing: a [processor](processor) reads topics continuously,
//! transforms each event (map, filter, flat-map, re-key, a join with a
//! table built from another topic), aggregates by key over event-time
//! [windows](window) — tumbling and hopping — or [sessions](session), with
//! a watermark and an allowed lateness, and writes its results to a
//! [PostgreSQL table](postgres), its own [embedded store](store) or a
//! topic. Operator state and input positions are checkpointed together
//! (in the embedded store, and, with PostgreSQL, in the same transaction
//! as the result rows), so a restarted processor resumes where its results
//! say it was.

pub mod postgres;
pub mod processor;
pub mod session;
pub mod store;
pub mod window;

pub use postgres::{PostgresSink, ResultRow, SinkError};
pub use processor::{
    Aggregate, Checkpointed, Counts, Emit, Processor, ProcessorBuilder, ProcessorError,
    ProcessorMetrics, Record, RunningProcessor, Sink, embedded_results,
};
pub use session::Sessions;
pub use store::{StateStore, StoreError};
pub use window::{Closed, Window, WindowError, WindowSpec, Windowed};

/// Serde for a map whose keys are not strings (JSON objects want string
/// keys): as a sequence of `[key, value]` pairs.
pub(crate) mod entries {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}
