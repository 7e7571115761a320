//! Remote-write encoders (1.0 and 2.0) for what we send: write-back, the simulator, the load
//! bench and tests. Encoding is the mirror of the decoders and shares their field numbers.

/// An owned series to encode. Labels must already be sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSeries {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

impl TimeSeries {
    pub fn new(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> Self {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        labels.sort();
        Self {
            labels,
            samples: samples.to_vec(),
        }
    }
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn sample_len(ts: i64, value: f64) -> usize {
    let mut n = 0;
    if value.to_bits() != 0 {
        n += 1 + 8;
    }
    if ts != 0 {
        n += 1 + varint_len(ts as u64);
    }
    n
}

fn put_sample(out: &mut Vec<u8>, field: u32, ts: i64, value: f64) {
    put_key(out, field, 2);
    put_varint(out, sample_len(ts, value) as u64);
    if value.to_bits() != 0 {
        put_key(out, 1, 1);
        out.extend_from_slice(&value.to_bits().to_le_bytes());
    }
    if ts != 0 {
        put_key(out, 2, 0);
        put_varint(out, ts as u64);
    }
}

fn label_len(name: &str, value: &str) -> usize {
    1 + varint_len(name.len() as u64)
        + name.len()
        + 1
        + varint_len(value.len() as u64)
        + value.len()
}

/// Encodes a `prometheus.WriteRequest` (uncompressed) into `out`, replacing its contents.
pub fn encode_v1(series: &[TimeSeries], out: &mut Vec<u8>) {
    out.clear();
    for ts in series {
        let mut len = 0;
        for (n, v) in &ts.labels {
            let l = label_len(n, v);
            len += 1 + varint_len(l as u64) + l;
        }
        for &(t, v) in &ts.samples {
            let l = sample_len(t, v);
            len += 1 + varint_len(l as u64) + l;
        }
        put_key(out, 1, 2);
        put_varint(out, len as u64);
        for (n, v) in &ts.labels {
            put_key(out, 1, 2);
            put_varint(out, label_len(n, v) as u64);
            put_bytes(out, 1, n.as_bytes());
            put_bytes(out, 2, v.as_bytes());
        }
        for &(t, v) in &ts.samples {
            put_sample(out, 2, t, v);
        }
    }
}

/// Encodes an `io.prometheus.write.v2.Request` (uncompressed) into `out`.
pub fn encode_v2(series: &[TimeSeries], out: &mut Vec<u8>) {
    out.clear();
    let mut symbols: Vec<&str> = vec![""];
    let mut index = std::collections::HashMap::new();
    index.insert("", 0u64);
    let mut refs: Vec<Vec<u64>> = Vec::with_capacity(series.len());
    for ts in series {
        let mut r = Vec::with_capacity(ts.labels.len() * 2);
        for (n, v) in &ts.labels {
            for s in [n.as_str(), v.as_str()] {
                let next = symbols.len() as u64;
                let id = *index.entry(s).or_insert_with(|| {
                    symbols.push(s);
                    next
                });
                r.push(id);
            }
        }
        refs.push(r);
    }
    for s in &symbols {
        put_bytes(out, 4, s.as_bytes());
    }
    let mut body = Vec::new();
    for (ts, r) in series.iter().zip(&refs) {
        body.clear();
        let mut packed = Vec::new();
        for &id in r {
            put_varint(&mut packed, id);
        }
        if !packed.is_empty() {
            put_bytes(&mut body, 1, &packed);
        }
        for &(t, v) in &ts.samples {
            put_sample(&mut body, 2, t, v);
        }
        put_bytes(out, 5, &body);
    }
}

/// Snappy block-compresses a message, as remote write sends it.
pub fn compress(raw: &[u8]) -> Result<Vec<u8>, snap::Error> {
    snap::raw::Encoder::new().compress_vec(raw)
}
