//! The callback links of an approval request: signing them, and a click on one. A forged,
//! expired or replayed token changes nothing and is audited; a valid one decides once.

use std::sync::Arc;

use serde_json::json;

use super::{RemediationError, Remediator, now_ms};
use crate::act::token::{CallbackAction, TokenError};
use crate::decide::plan::Plan;
use crate::model::links::CallbackLinks;

impl Remediator {
    pub(super) fn links(&self, plan: &Plan) -> Option<CallbackLinks> {
        let base = self.config.public_url.trim_end_matches('/');
        let url = |action| {
            self.tokens
                .sign(&plan.id, action, plan.expires_ms)
                .map(|token| format!("{base}/api/v1/callbacks/{token}"))
        };
        let needed = plan
            .approvals_required
            .unwrap_or(0)
            .saturating_sub(plan.approvals.len())
            .max(1);
        Some(CallbackLinks {
            approve: (0..needed)
                .map(|_| url(CallbackAction::Approve))
                .collect::<Option<_>>()?,
            reject: url(CallbackAction::Reject)?,
            expires_at: crate::model::clock::rfc3339_ms(plan.expires_ms),
        })
    }

    /// A click on a callback link. Forged, expired or replayed tokens change nothing and are
    /// audited; a valid one is used up whatever the decision's outcome.
    pub async fn callback(
        self: &Arc<Self>,
        token: &str,
        who: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Plan, RemediationError> {
        let grant = match self.tokens.check(token, now_ms()) {
            Ok(g) if self.tokens.consume(&g.nonce, g.expires_ms, now_ms()) => g,
            Ok(_) => return self.refuse_token(TokenError::Replayed).await,
            Err(e) => return self.refuse_token(e).await,
        };
        let who = who
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(String::from)
            .unwrap_or_else(|| format!("callback-{}", &grant.nonce[..8.min(grant.nonce.len())]));
        let extra = json!({"nonce": grant.nonce, "expires_ms": grant.expires_ms});
        match grant.action {
            CallbackAction::Approve => self.approve(&grant.plan_id, &who, "callback", extra).await,
            CallbackAction::Reject => {
                self.reject(
                    &grant.plan_id,
                    &who,
                    reason.unwrap_or("rejected by callback"),
                    "callback",
                    extra,
                )
                .await
            }
        }
    }

    /// What a callback token would do (plan, action), without using it.
    pub fn preview(&self, token: &str) -> Result<(String, &'static str), TokenError> {
        self.tokens
            .check(token, now_ms())
            .map(|g| (g.plan_id, g.action.as_str()))
    }

    async fn refuse_token(&self, e: TokenError) -> Result<Plan, RemediationError> {
        tracing::warn!(reason = %e, "callback token refused");
        self.record(
            "token_refused",
            "callback",
            "-",
            json!({"reason": e.to_string()}),
        )
        .await?;
        Err(RemediationError::Token(e))
    }
}
