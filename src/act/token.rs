//! Callback tokens: the approve and reject links of an approval request carry an HMAC-SHA256
//! over plan id, action, expiry and a nonce, so a chat button can decide a plan without API
//! credentials. A token is valid for one plan, one action, until its expiry, and once: used
//! nonces are remembered (and rebuilt from the audit log at start).

use std::collections::HashMap;
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

/// The operating system's random generator failed: no key for approval links can be made.
#[derive(Debug, thiserror::Error)]
#[error(
    "the operating system's random generator failed, so no signing key for approval links can be made: set auto_remediation.callback_secret, or fix the system's RNG"
)]
pub struct NoRandomKey;

pub struct TokenSigner {
    key: hmac::Key,
    rng: ring::rand::SystemRandom,
    /// Used nonces and their tokens' expiry: a nonce is kept only while its token could still
    /// pass the expiry check, so the set is bounded by the links alive at once.
    used: Mutex<HashMap<String, i64>>,
}

impl TokenSigner {
    /// `secret` empty: a random key, so links die with the process. Refuses to start without
    /// the OS random generator rather than sign with a guessable key.
    pub fn new(secret: &[u8]) -> Result<Self, NoRandomKey> {
        let rng = ring::rand::SystemRandom::new();
        let key = if secret.is_empty() {
            hmac::Key::generate(hmac::HMAC_SHA256, &rng).map_err(|_| NoRandomKey)?
        } else {
            hmac::Key::new(hmac::HMAC_SHA256, secret)
        };
        Ok(Self {
            key,
            rng,
            used: Mutex::new(HashMap::new()),
        })
    }

    /// A signed link token; `None` only if the OS random generator fails for the nonce.
    pub fn sign(&self, plan_id: &str, action: CallbackAction, expires_ms: i64) -> Option<String> {
        let mut bytes = [0u8; 12];
        ring::rand::SecureRandom::fill(&self.rng, &mut bytes).ok()?;
        let nonce = URL_SAFE_NO_PAD.encode(bytes);
        let payload = format!("{plan_id}|{}|{expires_ms}|{nonce}", action.as_str());
        let tag = hmac::sign(&self.key, payload.as_bytes());
        Some(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        ))
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
            .contains_key(nonce)
    }

    /// Marks a token's nonce used until `expires_ms`, forgetting those expired by `now_ms`;
    /// false when it already was used (a concurrent replay).
    pub fn consume(&self, nonce: &str, expires_ms: i64, now_ms: i64) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.retain(|_, until| *until > now_ms);
        match used.entry(nonce.to_string()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(expires_ms);
                true
            }
        }
    }

    /// How many used nonces are remembered.
    pub fn remembered(&self) -> usize {
        self.used.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_once_for_its_plan_and_action_until_it_expires() {
        let s = TokenSigner::new(b"0123456789abcdef0123").unwrap();
        let t = s.sign("PLAN-1", CallbackAction::Approve, 1000).unwrap();
        let g = s.check(&t, 999).unwrap();
        assert_eq!(g.plan_id, "PLAN-1");
        assert_eq!(g.action, CallbackAction::Approve);
        assert!(s.consume(&g.nonce, g.expires_ms, 999));
        assert_eq!(s.check(&t, 999), Err(TokenError::Replayed));
        assert!(!s.consume(&g.nonce, g.expires_ms, 999));
        let t2 = s.sign("PLAN-1", CallbackAction::Approve, 1000).unwrap();
        assert_eq!(s.check(&t2, 1000), Err(TokenError::Expired));
    }

    #[test]
    fn forged_and_altered_tokens_are_refused() {
        let s = TokenSigner::new(b"0123456789abcdef0123").unwrap();
        let other = TokenSigner::new(b"another-key-entirely").unwrap();
        let t = other
            .sign("PLAN-1", CallbackAction::Approve, i64::MAX)
            .unwrap();
        assert_eq!(s.check(&t, 0), Err(TokenError::Forged));
        // Same signature, payload switched to reject: the tag no longer matches.
        let good = s.sign("PLAN-1", CallbackAction::Approve, i64::MAX).unwrap();
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
        let a = TokenSigner::new(b"").unwrap();
        let b = TokenSigner::new(b"").unwrap();
        let t = a.sign("PLAN-1", CallbackAction::Reject, i64::MAX).unwrap();
        assert!(a.check(&t, 0).is_ok());
        assert_eq!(b.check(&t, 0), Err(TokenError::Forged));
    }

    #[test]
    fn used_nonces_are_forgotten_once_their_tokens_expire() {
        let s = TokenSigner::new(b"0123456789abcdef0123").unwrap();
        for i in 0..1000 {
            assert!(s.consume(&format!("n{i}"), 1_000 + i, 0));
        }
        assert_eq!(s.remembered(), 1000);
        // A consume at 1500 forgets the 501 whose expiry (1000..=1500) has passed.
        assert!(s.consume("late", 10_000, 1_500));
        assert_eq!(s.remembered(), 500);
        assert!(
            !s.consume("late", 10_000, 1_600),
            "still a replay while alive"
        );
    }

    #[test]
    fn nonces_do_not_repeat() {
        let s = TokenSigner::new(b"").unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let t = s.sign("PLAN-1", CallbackAction::Approve, i64::MAX).unwrap();
            assert!(seen.insert(s.check(&t, 0).unwrap().nonce));
        }
    }
}
