//! Stream processing (issue 8), built in parts. So far: keyed aggregation
//! over event-time [windows](window) — tumbling and hopping — and
//! [sessions](session), with a watermark and an allowed lateness, as pure,
//! serializable state; and a [PostgreSQL sink](postgres) that writes result
//! rows and the processor's checkpoint in one transaction.

pub mod postgres;
pub mod session;
pub mod window;

pub use postgres::{PostgresSink, ResultRow, SinkError};
pub use session::Sessions;
pub use window::{Closed, Window, WindowError, WindowSpec, Windowed};
