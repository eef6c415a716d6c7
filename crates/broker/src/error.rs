//! Mapping the log's errors onto the `Bus` interface's.

use eddy_bus::BusError;
use eddy_log::LogError;

/// The `Bus` error for a log error.
pub(crate) fn from_log(e: LogError) -> BusError {
    match e {
        LogError::Poisoned { cause } => BusError::Poisoned(cause),
        LogError::LimitExceeded {
            what,
            setting,
            limit,
            actual,
        } => BusError::LimitExceeded {
            what,
            setting,
            limit,
            actual,
        },
        LogError::Corrupt { .. } => BusError::Corrupt(e.to_string()),
        LogError::OffsetBeforeStart { requested, first } => BusError::OffsetOutOfRange {
            requested: eddy_bus::Offset(requested.0),
            first: eddy_bus::Offset(first.0),
            next: eddy_bus::Offset(first.0),
        },
        other => BusError::Storage(other.to_string()),
    }
}
