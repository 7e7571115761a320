#![no_main]
//! Callback tokens arrive in URLs from anyone who can reach the agent.

use libfuzzer_sys::fuzz_target;
use sre_agent::act::token::{CallbackAction, TokenSigner};

fuzz_target!(|data: &[u8]| {
    let signer = TokenSigner::new(b"fuzzing-key-0123456789");
    if let Ok(text) = std::str::from_utf8(data) {
        // Nothing but a token this signer made may pass.
        assert!(signer.check(text, 0).is_err());
    }
    let good = signer.sign("PLAN-1", CallbackAction::Approve, i64::MAX);
    let mut tampered = good.into_bytes();
    if let (Some(&b), false) = (data.first(), tampered.is_empty()) {
        let i = b as usize % tampered.len();
        tampered[i] ^= data.get(1).copied().unwrap_or(1) | 1;
        if let Ok(t) = std::str::from_utf8(&tampered) {
            // Base64 has spare bits: a flip there decodes to the same bytes, which is fine.
            if let Ok(g) = signer.check(t, 0) {
                assert_eq!(g.plan_id, "PLAN-1");
            }
        }
    }
});
