//! Remote write 2.0 (rc.4): `io.prometheus.write.v2.Request` (see `proto/remote_write_v2.proto`).
//!
//! Labels arrive as pairs of references into a per-request symbols table; they are resolved to
//! spans of the body, so a v2 series hashes to the same id as the same series sent over v1.
//! Native histograms are counted and skipped (see README).

use super::wire::{Reader, WIRE_LEN, WIRE_VARINT};
use super::{Batch, DecodeError, MAX_SAMPLES_PER_REQUEST, MAX_SERIES_PER_REQUEST};
use crate::model::batch::{LabelSpan, MetricType, Span};

pub fn decode(batch: &mut Batch) -> Result<(), DecodeError> {
    batch.decode_with(decode_body)
}

fn decode_body(body: &[u8], batch: &mut Batch) -> Result<(), DecodeError> {
    // Pass 1: the symbols table. Protobuf allows any field order, so series that precede the
    // table are decoded in pass 2.
    let mut r = Reader::new(body);
    let mut has_series = false;
    while !r.done() {
        let (field, wt) = r.key()?;
        match field {
            4 => {
                r.expect("Request.symbols", wt, WIRE_LEN)?;
                let (s, e) = r.len_delimited()?;
                if batch.symbols.len() >= MAX_SAMPLES_PER_REQUEST {
                    return Err(DecodeError::TooMany {
                        what: "symbols",
                        limit: MAX_SAMPLES_PER_REQUEST,
                    });
                }
                batch.symbols.push(Span::new(s, e));
            }
            5 => {
                has_series = true;
                r.skip(wt)?;
            }
            _ => r.skip(wt)?,
        }
    }
    if let Some(first) = batch.symbols.first() {
        if first.len != 0 {
            return Err(DecodeError::FirstSymbolNotEmpty);
        }
    } else if has_series {
        return Err(DecodeError::NoSymbols);
    }

    let mut r = Reader::new(body);
    while !r.done() {
        let (field, wt) = r.key()?;
        if field == 5 {
            r.expect("Request.timeseries", wt, WIRE_LEN)?;
            let (s, e) = r.len_delimited()?;
            decode_series(&mut r.sub(s, e), body, batch)?;
        } else {
            r.skip(wt)?;
        }
    }
    Ok(())
}

fn symbol(batch: &Batch, reference: u64) -> Result<Span, DecodeError> {
    usize::try_from(reference)
        .ok()
        .and_then(|i| batch.symbols.get(i).copied())
        .ok_or(DecodeError::SymbolOutOfRange {
            reference,
            len: batch.symbols.len(),
        })
}

fn decode_series(r: &mut Reader<'_>, body: &[u8], batch: &mut Batch) -> Result<(), DecodeError> {
    let index = batch.series.len();
    if index >= MAX_SERIES_PER_REQUEST {
        return Err(DecodeError::TooMany {
            what: "series",
            limit: MAX_SERIES_PER_REQUEST,
        });
    }
    let label_start = batch.labels.len();
    let sample_start = batch.samples.len();
    let mut refs_seen = 0usize;
    let mut pending_name: Option<Span> = None;
    let mut histograms = 0u64;
    let mut metric_type = MetricType::Unknown;
    let mut start_timestamp = 0i64;

    let mut push_ref = |batch: &mut Batch, reference: u64| -> Result<(), DecodeError> {
        let span = symbol(batch, reference)?;
        refs_seen += 1;
        match pending_name.take() {
            None => pending_name = Some(span),
            Some(name) => batch.labels.push(LabelSpan { name, value: span }),
        }
        Ok(())
    };

    while !r.done() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, WIRE_LEN) => {
                let (s, e) = r.len_delimited()?;
                let mut packed = r.sub(s, e);
                while !packed.done() {
                    let reference = packed.varint()?;
                    push_ref(batch, reference)?;
                }
            }
            (1, WIRE_VARINT) => {
                let reference = r.varint()?;
                push_ref(batch, reference)?;
            }
            (1, other) => {
                return Err(DecodeError::UnexpectedWireType {
                    field: "TimeSeries.labels_refs",
                    wire_type: other,
                });
            }
            (2, _) => {
                r.expect("TimeSeries.samples", wt, WIRE_LEN)?;
                let (s, e) = r.len_delimited()?;
                if batch.samples.len() >= MAX_SAMPLES_PER_REQUEST {
                    return Err(DecodeError::TooMany {
                        what: "samples",
                        limit: MAX_SAMPLES_PER_REQUEST,
                    });
                }
                let (ts, value, start) =
                    super::remote_write_v1::decode_sample_with_start(&mut r.sub(s, e))?;
                if start != 0 {
                    start_timestamp = start;
                }
                batch.samples.push((ts, value));
            }
            (3, _) => {
                r.skip(wt)?;
                histograms += 1;
            }
            (4, _) => {
                r.skip(wt)?;
                batch.exemplars += 1;
            }
            (5, _) => {
                r.expect("TimeSeries.metadata", wt, WIRE_LEN)?;
                let (s, e) = r.len_delimited()?;
                metric_type = decode_metadata(&mut r.sub(s, e), batch)?;
            }
            (6, _) => {
                r.expect("TimeSeries.created_timestamp", wt, WIRE_VARINT)?;
                start_timestamp = r.varint()? as i64;
            }
            _ => r.skip(wt)?,
        }
    }
    if pending_name.is_some() {
        return Err(DecodeError::OddLabelRefs {
            len: refs_seen,
            series: index,
        });
    }
    let samples = batch.samples.len() - sample_start;
    if histograms > 0 && samples > 0 {
        return Err(DecodeError::SamplesAndHistograms { series: index });
    }
    if histograms == 0 && samples == 0 {
        return Err(DecodeError::EmptySeries { series: index });
    }
    batch.histograms += histograms;
    batch.finish_series(
        body,
        label_start,
        sample_start,
        metric_type,
        start_timestamp,
    );
    Ok(())
}

fn decode_metadata(r: &mut Reader<'_>, batch: &Batch) -> Result<MetricType, DecodeError> {
    let mut metric_type = MetricType::Unknown;
    while !r.done() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                r.expect("Metadata.type", wt, WIRE_VARINT)?;
                metric_type = MetricType::from_wire(r.varint()?);
            }
            3 | 4 => {
                r.expect("Metadata.help_ref/unit_ref", wt, WIRE_VARINT)?;
                symbol(batch, r.varint()?)?;
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(metric_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::encode::{TimeSeries, encode_v2};

    fn encoded(series: &[TimeSeries]) -> Batch {
        let mut batch = Batch::default();
        encode_v2(series, &mut batch.body);
        batch
    }

    #[test]
    fn v1_and_v2_hash_alike() {
        let ts = vec![TimeSeries::new(
            &[("__name__", "up"), ("job", "a")],
            &[(5, 1.0)],
        )];
        let mut b2 = encoded(&ts);
        decode(&mut b2).unwrap();
        let mut b1 = Batch::default();
        crate::ingest::encode::encode_v1(&ts, &mut b1.body);
        crate::ingest::remote_write_v1::decode(&mut b1).unwrap();
        assert_eq!(b1.series[0].hash, b2.series[0].hash);
        assert_eq!(b2.samples, vec![(5, 1.0)]);
    }

    #[test]
    fn first_symbol_must_be_empty() {
        // symbols = ["x"], no series.
        let mut batch = Batch {
            body: vec![0x22, 0x01, b'x'],
            ..Default::default()
        };
        assert_eq!(decode(&mut batch), Err(DecodeError::FirstSymbolNotEmpty));
    }

    #[test]
    fn odd_refs_and_out_of_range_refs() {
        // symbols ["", "a"]; series labels_refs packed [1]
        let mut batch = Batch {
            body: vec![0x22, 0x00, 0x22, 0x01, b'a', 0x2a, 0x03, 0x0a, 0x01, 0x01],
            ..Default::default()
        };
        assert!(matches!(
            decode(&mut batch),
            Err(DecodeError::OddLabelRefs { .. })
        ));
        let mut batch = Batch {
            body: vec![0x22, 0x00, 0x2a, 0x04, 0x0a, 0x02, 0x01, 0x07],
            ..Default::default()
        };
        assert!(matches!(
            decode(&mut batch),
            Err(DecodeError::SymbolOutOfRange { .. })
        ));
    }
}
