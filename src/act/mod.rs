//! Acting on incidents, safely: the audit log every decision and action is written to before
//! it happens, callback tokens for approvals by link, the safety rails, the executors
//! (Kubernetes, HTTP) and the remediation loop that ties plans to them.

pub mod audit;
pub mod executor;
pub mod http;
#[cfg(feature = "kube")]
pub mod kubernetes;
pub mod remediator;
pub mod safety;
pub mod token;
