//! eddy-http (being built).
