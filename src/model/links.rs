//! The approve and reject links of an approval request: made by `act`, sent by `notify`.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct CallbackLinks {
    /// One link per approver still needed: each works once.
    pub approve: Vec<String>,
    pub reject: String,
    pub expires_at: String,
}
