//! Ingest: turns a remote-write request body into a [`Batch`] of series and samples.
//!
//! Decoding is a zero-copy walk: a batch holds byte offsets into the decompressed body, and its
//! vectors are reused between requests, so steady-state decoding allocates nothing. This layer
//! only parses and checks the wire format; label rules that apply once per new series are the
//! store's job, and nothing here touches shared state.

pub mod backfill;
pub mod encode;
pub mod exposition;
pub mod remote_write_v1;
pub mod remote_write_v2;
pub mod replay;
pub mod scrape;
pub mod snappy;
pub mod wire;

pub use crate::model::batch::{Batch, LabelSpan, MetricType, SeriesEntry, Span};

use thiserror::Error;

/// Which remote-write message a request carries, chosen by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V1,
    V2,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V1 => "prometheus.WriteRequest",
            Protocol::V2 => "io.prometheus.write.v2.Request",
        }
    }
}

/// Why a request body could not be decoded. Every variant is a client error (HTTP 400): the
/// same bytes will never decode, so the sender must not retry them.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("snappy: {0}")]
    Snappy(String),
    #[error("protobuf: message truncated at byte {offset}")]
    Truncated { offset: usize },
    #[error("protobuf: varint longer than 64 bits at byte {offset}")]
    VarintOverflow { offset: usize },
    #[error("protobuf: invalid field key at byte {offset}")]
    BadField { offset: usize },
    #[error("protobuf: unknown wire type {wire_type} at byte {offset}")]
    BadWireType { offset: usize, wire_type: u8 },
    #[error("protobuf: field {field} has wire type {wire_type}, which does not match the schema")]
    UnexpectedWireType { field: &'static str, wire_type: u8 },
    #[error("request too large: more than {limit} {what}")]
    TooMany { what: &'static str, limit: usize },
    #[error("remote write 2.0: symbols[0] must be the empty string")]
    FirstSymbolNotEmpty,
    #[error("remote write 2.0: request has timeseries but no symbols table")]
    NoSymbols,
    #[error(
        "remote write 2.0: symbol reference {reference} out of range (table has {len} symbols)"
    )]
    SymbolOutOfRange { reference: u64, len: usize },
    #[error("remote write 2.0: labels_refs has odd length {len} in series {series}")]
    OddLabelRefs { len: usize, series: usize },
    #[error("remote write 2.0: series {series} has both samples and histograms")]
    SamplesAndHistograms { series: usize },
    #[error("remote write 2.0: series {series} has neither samples nor histograms")]
    EmptySeries { series: usize },
}

/// Hard caps that keep a hostile body from making a batch allocate without bound. They are far
/// above what Prometheus sends (its default `max_samples_per_send` is 2000, vmagent's ~10k).
pub const MAX_SERIES_PER_REQUEST: usize = 1 << 20;
pub const MAX_SAMPLES_PER_REQUEST: usize = 1 << 22;

/// Decompresses `body` (snappy block format) into the batch buffer and decodes it.
pub fn decode_request(
    protocol: Protocol,
    body: &[u8],
    max_decompressed: usize,
    batch: &mut Batch,
) -> Result<(), DecodeError> {
    batch.clear();
    snappy::decompress_into(body, max_decompressed, &mut batch.body)?;
    decode_decompressed(protocol, batch)
}

/// Decodes an already decompressed message held in `batch.body`.
pub fn decode_decompressed(protocol: Protocol, batch: &mut Batch) -> Result<(), DecodeError> {
    match protocol {
        Protocol::V1 => remote_write_v1::decode(batch),
        Protocol::V2 => remote_write_v2::decode(batch),
    }
}
