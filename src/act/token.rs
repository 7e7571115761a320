//! Callback tokens: the approve and reject links of an approval request carry an HMAC-SHA256
//! over plan id, action, expiry and a nonce, so a chat button can decide a plan without API
//! credentials. A token is valid for one plan, one action, until its expiry, and once: used
//! nonces are remembered (and rebuilt from the audit log at start).

use std::collections::HashSet;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackAction {
    Approve,
    Reject,
}

impl CallbackAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }
}

/// What a valid token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub plan_id: String,
    pub action: CallbackAction,
    pub expires_ms: i64,
    pub nonce: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature (forged or signed with another key)")]
    Forged,
    #[error("token expired")]
    Expired,
    #[error("token already used")]
    Replayed,
}

pub struct TokenSigner {
    key: hmac::Key,
    used: Mutex<HashSet<String>>,
}

impl TokenSigner {
    /// `secret` empty: a random key, so links die with the process.
    pub fn new(secret: &[u8]) -> Self {
        let key = if secret.is_empty() {
            let rng = ring::rand::SystemRandom::new();
            hmac::Key::generate(hmac::HMAC_SHA256, &rng)
                .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, &fallback_key()))
        } else {
            hmac::Key::new(hmac::HMAC_SHA256, secret)
        };
        Self {
            key,
            used: Mutex::new(HashSet::new()),
        }
    }

    pub fn sign(&self, plan_id: &str, action: CallbackAction, expires_ms: i64) -> String {
        let nonce = format!("{:016x}", fastrand::u64(..));
        let payload = format!("{plan_id}|{}|{expires_ms}|{nonce}", action.as_str());
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// Checks signature and expiry without consuming the token.
    pub fn check(&self, token: &str, now_ms: i64) -> Result<Grant, TokenError> {
        let (payload, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        hmac::verify(&self.key, &payload, &tag).map_err(|_| TokenError::Forged)?;
        let text = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
        let mut parts = text.split('|');
        let (Some(plan_id), Some(action), Some(expires), Some(nonce), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        let action = match action {
            "approve" => CallbackAction::Approve,
            "reject" => CallbackAction::Reject,
            _ => return Err(TokenError::Malformed),
        };
        let expires_ms: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        if now_ms >= expires_ms {
            return Err(TokenError::Expired);
        }
        if self.is_used(nonce) {
            return Err(TokenError::Replayed);
        }
        Ok(Grant {
            plan_id: plan_id.into(),
            action,
            expires_ms,
            nonce: nonce.into(),
        })
    }

    fn is_used(&self, nonce: &str) -> bool {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(nonce)
    }

    /// Marks a token's nonce used; false when it already was (a concurrent replay).
    pub fn consume(&self, nonce: &str) -> bool {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(nonce.to_string())
    }
}

/// Only if the system RNG fails: still unpredictable enough to outlive no restart.
fn fallback_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    for b in &mut k {
        *b = fastrand::u8(..);
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_once_for_its_plan_and_action_until_it_expires() {
        let s = TokenSigner::new(b"0123456789abcdef0123");
        let t = s.sign("PLAN-1", CallbackAction::Approve, 1000);
        let g = s.check(&t, 999).unwrap();
        assert_eq!(g.plan_id, "PLAN-1");
        assert_eq!(g.action, CallbackAction::Approve);
        assert!(s.consume(&g.nonce));
        assert_eq!(s.check(&t, 999), Err(TokenError::Replayed));
        assert!(!s.consume(&g.nonce));
        let t2 = s.sign("PLAN-1", CallbackAction::Approve, 1000);
        assert_eq!(s.check(&t2, 1000), Err(TokenError::Expired));
    }

    #[test]
    fn forged_and_altered_tokens_are_refused() {
        let s = TokenSigner::new(b"0123456789abcdef0123");
        let other = TokenSigner::new(b"another-key-entirely");
        let t = other.sign("PLAN-1", CallbackAction::Approve, i64::MAX);
        assert_eq!(s.check(&t, 0), Err(TokenError::Forged));
        // Same signature, payload switched to reject: the tag no longer matches.
        let good = s.sign("PLAN-1", CallbackAction::Approve, i64::MAX);
        let (_, tag) = good.split_once('.').unwrap();
        let altered = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(format!("PLAN-1|reject|{}|0", i64::MAX))
        );
        assert_eq!(s.check(&altered, 0), Err(TokenError::Forged));
        for junk in ["", ".", "abc", "a.b.c", "!!!.???"] {
            assert!(s.check(junk, 0).is_err(), "{junk}");
        }
    }

    #[test]
    fn random_keys_differ_between_processes() {
        let a = TokenSigner::new(b"");
        let b = TokenSigner::new(b"");
        let t = a.sign("PLAN-1", CallbackAction::Reject, i64::MAX);
        assert!(a.check(&t, 0).is_ok());
        assert_eq!(b.check(&t, 0), Err(TokenError::Forged));
    }
}
