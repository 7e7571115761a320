//! Deciding what to do about an incident: its risk (the seed's four-dimension model) and the
//! playbooks that fit it. Plans and approvals build on them.

pub mod playbooks;
pub mod risk;
