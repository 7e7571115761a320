//! Answers of Prometheus' `query_range` that the warm start (`sre-agent backfill`) parses.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sre_agent::ingest::backfill::parse_query_range(data);
});
