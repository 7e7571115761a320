//! Config files: YAML with ${VAR:-default} substitution, typed parsing and validation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sre_agent::Config::parse(text, "fuzz", |k| (k.len() % 2 == 0).then(|| k.to_string()));
    }
});
