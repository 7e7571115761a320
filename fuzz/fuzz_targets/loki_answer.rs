#![no_main]
//! RCA: a Loki query_range answer is outside input.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sre_agent::analyze::logs::summarize_answer(data, String::new());
});
