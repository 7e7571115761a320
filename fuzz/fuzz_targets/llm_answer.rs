#![no_main]
//! RCA: an LLM's answer text is outside input.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let known = ["api_error_rate".to_string(), "timeout".to_string()];
        let _ = sre_agent::analyze::llm::parse_answer(text, &known);
        let _ = sre_agent::analyze::llm::redact(text);
    }
});
