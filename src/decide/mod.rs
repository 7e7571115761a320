//! Deciding what to do about an incident: for now its risk (the seed's four-dimension model).
//! Playbooks and plans build on it.

pub mod risk;
