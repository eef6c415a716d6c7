//! eddy-auth (being built).
