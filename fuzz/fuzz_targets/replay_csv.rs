//! Rows of the CSV files that `sre-agent replay` reads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            let _ = sre_agent::ingest::replay::parse_row(line);
        }
    }
});
