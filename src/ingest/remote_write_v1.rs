//! Remote write 1.0: `prometheus.WriteRequest` (see `proto/remote_write_v1.proto`).

use super::wire::{Reader, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT};
use super::{Batch, DecodeError, MAX_SAMPLES_PER_REQUEST, MAX_SERIES_PER_REQUEST};
use crate::model::batch::{LabelSpan, MetadataEntry, MetricType, Span};

pub fn decode(batch: &mut Batch) -> Result<(), DecodeError> {
    batch.decode_with(decode_body)
}

fn decode_body(body: &[u8], batch: &mut Batch) -> Result<(), DecodeError> {
    let mut r = Reader::new(body);
    while !r.done() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                r.expect("WriteRequest.timeseries", wt, WIRE_LEN)?;
                let (s, e) = r.len_delimited()?;
                decode_series(&mut r.sub(s, e), body, batch)?;
            }
            3 => {
                r.expect("WriteRequest.metadata", wt, WIRE_LEN)?;
                let (s, e) = r.len_delimited()?;
                decode_metadata(&mut r.sub(s, e), batch)?;
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(())
}

fn decode_series(r: &mut Reader<'_>, body: &[u8], batch: &mut Batch) -> Result<(), DecodeError> {
    if batch.series.len() >= MAX_SERIES_PER_REQUEST {
        return Err(DecodeError::TooMany {
            what: "series",
            limit: MAX_SERIES_PER_REQUEST,
        });
    }
    let label_start = batch.labels.len();
    let sample_start = batch.samples.len();
    while !r.done() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                r.expect("TimeSeries.labels", wt, WIRE_LEN)?;
                let (s, e) = r.len_delimited()?;
                batch.labels.push(decode_label(&mut r.sub(s, e))?);
            }
            2 => {
                r.expect("TimeSeries.samples", wt, WIRE_LEN)?;
                let (s, e) = r.len_delimited()?;
                if batch.samples.len() >= MAX_SAMPLES_PER_REQUEST {
                    return Err(DecodeError::TooMany {
                        what: "samples",
                        limit: MAX_SAMPLES_PER_REQUEST,
                    });
                }
                batch.samples.push(decode_sample(&mut r.sub(s, e))?);
            }
            3 => {
                r.skip(wt)?;
                batch.exemplars += 1;
            }
            4 => {
                r.skip(wt)?;
                batch.histograms += 1;
            }
            _ => r.skip(wt)?,
        }
    }
    batch.finish_series(body, label_start, sample_start, MetricType::Unknown, 0);
    Ok(())
}

fn decode_label(r: &mut Reader<'_>) -> Result<LabelSpan, DecodeError> {
    // Fast path for the canonical encoding every sender uses: name (field 1) then value
    // (field 2), each shorter than 128 bytes and so with a one-byte length.
    let b = r.window();
    if b.len() >= 4 && b[0] == 0x0a {
        let name_len = b[1] as usize;
        if name_len < 0x80 && name_len + 4 <= b.len() && b[2 + name_len] == 0x12 {
            let value_len = b[3 + name_len] as usize;
            if value_len < 0x80 && name_len + value_len + 4 == b.len() {
                let base = r.pos();
                return Ok(LabelSpan {
                    name: Span::new(base + 2, base + 2 + name_len),
                    value: Span::new(base + 4 + name_len, base + 4 + name_len + value_len),
                });
            }
        }
    }
    let mut label = LabelSpan::default();
    while !r.done() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                r.expect("Label.name", wt, WIRE_LEN)?;
                let (s, e) = r.len_delimited()?;
                label.name = Span::new(s, e);
            }
            2 => {
                r.expect("Label.value", wt, WIRE_LEN)?;
                let (s, e) = r.len_delimited()?;
                label.value = Span::new(s, e);
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(label)
}

/// Decodes `Sample { double value = 1; int64 timestamp = 2; }`; shared with RW 2.0, whose
/// `Sample` adds `start_timestamp = 3`, returned as the third element (0 when absent).
pub(super) fn decode_sample_with_start(r: &mut Reader<'_>) -> Result<(i64, f64, i64), DecodeError> {
    let (mut ts, mut value, mut start) = (0i64, 0f64, 0i64);
    while !r.done() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                r.expect("Sample.value", wt, WIRE_FIXED64)?;
                value = f64::from_bits(r.fixed64()?);
            }
            2 => {
                r.expect("Sample.timestamp", wt, WIRE_VARINT)?;
                ts = r.varint()? as i64;
            }
            3 => {
                r.expect("Sample.start_timestamp", wt, WIRE_VARINT)?;
                start = r.varint()? as i64;
            }
            _ => r.skip(wt)?,
        }
    }
    Ok((ts, value, start))
}

fn decode_sample(r: &mut Reader<'_>) -> Result<(i64, f64), DecodeError> {
    decode_sample_with_start(r).map(|(ts, v, _)| (ts, v))
}

fn decode_metadata(r: &mut Reader<'_>, batch: &mut Batch) -> Result<(), DecodeError> {
    let mut entry = MetadataEntry::default();
    while !r.done() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                r.expect("MetricMetadata.type", wt, WIRE_VARINT)?;
                entry.metric_type = MetricType::from_wire(r.varint()?);
            }
            2 => {
                r.expect("MetricMetadata.metric_family_name", wt, WIRE_LEN)?;
                let (s, e) = r.len_delimited()?;
                entry.family = Span::new(s, e);
            }
            _ => r.skip(wt)?,
        }
    }
    if batch.metadata.len() < MAX_SERIES_PER_REQUEST {
        batch.metadata.push(entry);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::encode::{TimeSeries, encode_v1};

    #[test]
    fn decodes_what_the_encoder_writes() {
        let series = vec![
            TimeSeries::new(
                &[("__name__", "up"), ("job", "node")],
                &[(1000, 1.0), (2000, 0.0)],
            ),
            TimeSeries::new(&[("__name__", "x_total")], &[(1000, f64::NAN)]),
        ];
        let mut batch = Batch::default();
        encode_v1(&series, &mut batch.body);
        decode(&mut batch).unwrap();
        assert_eq!(batch.series.len(), 2);
        assert_eq!(batch.samples.len(), 3);
        let s0 = batch.series[0].clone();
        let pairs: Vec<_> = batch.label_pairs(&s0).collect();
        assert_eq!(
            pairs,
            vec![(&b"__name__"[..], &b"up"[..]), (&b"job"[..], &b"node"[..])]
        );
        assert_eq!(batch.series_samples(&s0), &[(1000, 1.0), (2000, 0.0)]);
        assert!(batch.samples[2].1.is_nan());
    }

    #[test]
    fn empty_body_is_an_empty_request() {
        let mut batch = Batch::default();
        decode(&mut batch).unwrap();
        assert!(batch.series.is_empty());
    }

    #[test]
    fn wrong_wire_type_is_rejected() {
        // Field 1 sent as a varint.
        let mut batch = Batch {
            body: vec![0x08, 0x01],
            ..Default::default()
        };
        assert!(matches!(
            decode(&mut batch),
            Err(DecodeError::UnexpectedWireType { .. })
        ));
    }
}
