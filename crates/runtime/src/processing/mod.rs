//! Stream processing (issue 8), built in parts. So far: keyed aggregation
//! over event-time [windows](window) — tumbling and hopping — with a
//! watermark and an allowed lateness, as pure state.

pub mod window;

pub use window::{Closed, Window, WindowError, WindowSpec, Windowed};
