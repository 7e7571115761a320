//! The `match` query parameter of /api/v1/series and /api/v1/baselines.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(m) = sre_agent::store::matcher::Matcher::parse(text) {
            let labels = sre_agent::model::labels::SeriesLabels::from_strs(&[("__name__", "up"), ("job", "x")]).unwrap();
            let _ = m.matches(&labels);
        }
    }
});
