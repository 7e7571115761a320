//! Baselines as JSON lines (`POST /api/v1/baselines/import`, the snapshot file): whatever is
//! installed must keep the detectors, upkeep and export from panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sre_agent::config::Config;
use sre_agent::ingest::encode::{TimeSeries, encode_v1};
use sre_agent::ingest::{Batch, remote_write_v1};
use sre_agent::store::matcher::Matcher;
use sre_agent::store::{Store, StoreOptions};

fuzz_target!(|data: &[u8]| {
    let config = Config::default();
    let Ok(catalog) = config.catalog() else {
        return;
    };
    let store = Store::new(StoreOptions::from_config(&config), catalog);
    let report = store.import_baselines(data);
    if report.created == 0 {
        return;
    }
    let mut exported = Vec::new();
    let _ = store.export_baselines(&Matcher::default(), &mut exported);
    // Every installed series takes a few samples and a round of upkeep.
    for line in exported.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let Some(labels) = record["labels"].as_object() else {
            continue;
        };
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
            .collect();
        for (i, v) in [0.0, 1e300, -1e300, 5.0].iter().enumerate() {
            let mut batch = Batch::default();
            encode_v1(&[TimeSeries::new(&pairs, &[(i as i64 * 15_000, *v)])], &mut batch.body);
            if remote_write_v1::decode(&mut batch).is_ok() {
                let mut events = Vec::new();
                store.apply(&mut batch, &mut events);
            }
        }
    }
    store.maintain(0.3);
});
