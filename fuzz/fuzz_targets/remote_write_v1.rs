//! Remote write 1.0 bodies: snappy-compressed and raw, through the same entry point as HTTP,
//! then into a store (label validation, series creation, detectors).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sre_agent::ingest::{decode_decompressed, decode_request, Batch, Protocol};

fuzz_target!(|data: &[u8]| {
    let mut batch = Batch::default();
    let _ = decode_request(Protocol::V1, data, 1 << 22, &mut batch);
    let mut batch = Batch { body: data.to_vec(), ..Default::default() };
    if decode_decompressed(Protocol::V1, &mut batch).is_ok() {
        let store = sre_agent::store::Store::new(Default::default(), sre_agent::Config::default().catalog().unwrap());
        store.record_metadata(&batch);
        store.apply(&mut batch, &mut Vec::new());
    }
});
