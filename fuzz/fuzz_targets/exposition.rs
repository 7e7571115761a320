#![no_main]
//! Pull mode: a scraped target's body is outside input.

use libfuzzer_sys::fuzz_target;
use sre_agent::ingest::Batch;

fuzz_target!(|data: &[u8]| {
    let mut batch = Batch::default();
    let _ = sre_agent::ingest::exposition::parse(data, 0, &[("job", "j"), ("instance", "i")], &mut batch);
});
