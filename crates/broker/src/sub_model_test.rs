//! Property test of the delivery state machine (`sub.rs`) against a simple
//! model. Written by a helper; see the module docs below once filled in.
