//! Stream processing (issue 8), built in parts. So far: keyed aggregation
//! over event-time [windows](window) — tumbling and hopping — and
//! [sessions](session), with a watermark and an allowed lateness, as pure,
//! serializable state.

pub mod session;
pub mod window;

pub use session::Sessions;
pub use window::{Closed, Window, WindowError, WindowSpec, Windowed};
