//! eddy-metrics (being built).
