#![no_main]
//! Playbook files are user input.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sre_agent::decide::playbooks::parse_all(&[("fuzz.yaml".into(), text.into())]);
        let _ = sre_agent::decide::playbooks::parse_trigger(text);
    }
});
