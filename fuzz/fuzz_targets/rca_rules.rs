#![no_main]
//! RCA rules files are user input.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sre_agent::analyze::rules::RulesFile::parse(text, "fuzz");
    }
});
