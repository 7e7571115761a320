//! Property tests for the remote-write decoders: whatever an independent encoder (prost, from the
//! protobuf schemas in proto/) writes decodes to the same labels and samples, and no input of
//! any kind makes a decoder panic.

use proptest::prelude::*;
use prost::Message;
use sre_agent::ingest::{Batch, Protocol, decode_decompressed, decode_request};

mod v1 {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        #[prost(string, tag = "4")]
        pub help: String,
    }
}

mod v2 {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(string, repeated, tag = "4")]
        pub symbols: Vec<String>,
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<TimeSeries>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        #[prost(message, optional, tag = "5")]
        pub metadata: Option<Metadata>,
        #[prost(int64, tag = "6")]
        pub created_timestamp: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
        #[prost(int64, tag = "3")]
        pub start_timestamp: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metadata {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(uint32, tag = "3")]
        pub help_ref: u32,
        #[prost(uint32, tag = "4")]
        pub unit_ref: u32,
    }
}

type Series = (Vec<(String, String)>, Vec<(i64, u64)>);

/// Series with `min_samples..5` samples each (RW 2.0 requires at least one per series).
fn series_with(min_samples: usize) -> impl Strategy<Value = Vec<Series>> {
    let label = ("[a-z_][a-z0-9_]{0,12}", "\\PC{0,16}");
    let sample = (any::<i64>(), any::<u64>());
    proptest::collection::vec(
        (
            proptest::collection::btree_map(label.0, label.1, 0..6),
            proptest::collection::vec(sample, min_samples..5),
        )
            .prop_map(|(labels, samples)| (labels.into_iter().collect::<Vec<_>>(), samples)),
        0..12,
    )
}

fn decoded(batch: &Batch) -> Vec<Series> {
    batch
        .series
        .iter()
        .map(|s| {
            let labels = batch
                .label_pairs(s)
                .map(|(n, v)| {
                    (
                        String::from_utf8(n.to_vec()).unwrap(),
                        String::from_utf8(v.to_vec()).unwrap(),
                    )
                })
                .collect();
            let samples = batch
                .series_samples(s)
                .iter()
                .map(|&(t, v)| (t, v.to_bits()))
                .collect();
            (labels, samples)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn v1_decodes_what_prost_encodes(input in series_with(0)) {
        let req = v1::WriteRequest {
            timeseries: input.iter().map(|(labels, samples)| v1::TimeSeries {
                labels: labels.iter().map(|(n, v)| v1::Label { name: n.clone(), value: v.clone() }).collect(),
                samples: samples.iter().map(|&(t, v)| v1::Sample { value: f64::from_bits(v), timestamp: t }).collect(),
            }).collect(),
            metadata: vec![v1::MetricMetadata { r#type: 1, metric_family_name: "m".into(), help: "h".into() }],
        };
        let mut batch = Batch { body: req.encode_to_vec(), ..Default::default() };
        decode_decompressed(Protocol::V1, &mut batch).unwrap();
        prop_assert_eq!(decoded(&batch), input);
        prop_assert_eq!(batch.metadata.len(), 1);
    }

    #[test]
    fn v2_decodes_what_prost_encodes(input in series_with(1)) {
        let mut symbols = vec![String::new()];
        let mut index = std::collections::HashMap::new();
        let mut sym = |s: &str, symbols: &mut Vec<String>| -> u32 {
            *index.entry(s.to_string()).or_insert_with(|| { symbols.push(s.to_string()); (symbols.len() - 1) as u32 })
        };
        let timeseries = input.iter().map(|(labels, samples)| v2::TimeSeries {
            labels_refs: labels.iter().flat_map(|(n, v)| [sym(n, &mut symbols), sym(v, &mut symbols)]).collect(),
            samples: samples.iter().map(|&(t, v)| v2::Sample { value: f64::from_bits(v), timestamp: t, start_timestamp: 0 }).collect(),
            metadata: Some(v2::Metadata { r#type: 2, help_ref: 0, unit_ref: 0 }),
            created_timestamp: 0,
        }).collect();
        let req = v2::Request { symbols, timeseries };
        let mut batch = Batch { body: req.encode_to_vec(), ..Default::default() };
        decode_decompressed(Protocol::V2, &mut batch).unwrap();
        prop_assert_eq!(decoded(&batch), input);
    }

    #[test]
    fn v1_and_v2_agree_on_series_identity(input in series_with(1)) {
        let series: Vec<sre_agent::ingest::encode::TimeSeries> = input.iter().map(|(l, s)| sre_agent::ingest::encode::TimeSeries {
            labels: l.clone(), samples: s.iter().map(|&(t, v)| (t, f64::from_bits(v))).collect(),
        }).collect();
        let (mut a, mut b) = (Batch::default(), Batch::default());
        sre_agent::ingest::encode::encode_v1(&series, &mut a.body);
        sre_agent::ingest::encode::encode_v2(&series, &mut b.body);
        decode_decompressed(Protocol::V1, &mut a).unwrap();
        decode_decompressed(Protocol::V2, &mut b).unwrap();
        let ha: Vec<u64> = a.series.iter().map(|s| s.hash).collect();
        let hb: Vec<u64> = b.series.iter().map(|s| s.hash).collect();
        prop_assert_eq!(ha, hb);
    }

    #[test]
    fn v2_series_without_samples_is_rejected(mut input in series_with(1), victim in any::<prop::sample::Index>()) {
        let i = victim.index(input.len().max(1));
        if let Some(s) = input.get_mut(i) { s.1.clear(); }
        let series: Vec<sre_agent::ingest::encode::TimeSeries> = input.iter().map(|(l, s)| sre_agent::ingest::encode::TimeSeries {
            labels: l.clone(), samples: s.iter().map(|&(t, v)| (t, f64::from_bits(v))).collect(),
        }).collect();
        let mut batch = Batch::default();
        sre_agent::ingest::encode::encode_v2(&series, &mut batch.body);
        let result = decode_decompressed(Protocol::V2, &mut batch);
        if input.is_empty() {
            prop_assert!(result.is_ok());
        } else {
            prop_assert_eq!(result, Err(sre_agent::ingest::DecodeError::EmptySeries { series: i }));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), v2 in any::<bool>(), compressed in any::<bool>()) {
        let protocol = if v2 { Protocol::V2 } else { Protocol::V1 };
        let mut batch = Batch::default();
        if compressed {
            let body = sre_agent::ingest::encode::compress(&bytes).unwrap();
            let _ = decode_request(protocol, &body, 1 << 20, &mut batch);
        } else {
            let _ = decode_request(protocol, &bytes, 1 << 20, &mut batch);
        }
    }

    #[test]
    fn mutated_valid_requests_never_panic(input in series_with(0), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), v2 in any::<bool>()) {
        let series: Vec<sre_agent::ingest::encode::TimeSeries> = input.iter().map(|(l, s)| sre_agent::ingest::encode::TimeSeries {
            labels: l.clone(), samples: s.iter().map(|&(t, v)| (t, f64::from_bits(v))).collect(),
        }).collect();
        let mut raw = Vec::new();
        if v2 { sre_agent::ingest::encode::encode_v2(&series, &mut raw) } else { sre_agent::ingest::encode::encode_v1(&series, &mut raw) }
        if !raw.is_empty() {
            for (i, b) in flips { let i = i.index(raw.len()); raw[i] ^= b; }
        }
        let mut batch = Batch { body: raw, ..Default::default() };
        let _ = decode_decompressed(if v2 { Protocol::V2 } else { Protocol::V1 }, &mut batch);
    }
}
