//! Acting on incidents, safely: for now the audit log every action, approval and refusal is
//! written to before it happens. Planning, approvals and executors build on it.

pub mod audit;
