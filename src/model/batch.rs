//! The decoded form of one request: offsets into the decompressed body, reused across requests.

use xxhash_rust::xxh3::xxh3_128;

/// A byte range in [`Batch::body`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        // Bodies are capped far below 4 GiB by the decompressed-size limit.
        Self {
            start: start as u32,
            len: (end - start) as u32,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LabelSpan {
    pub name: Span,
    pub value: Span,
}

/// Prometheus metric types as both remote-write versions number them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    #[default]
    Unknown,
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
}

impl MetricType {
    pub fn from_wire(v: u64) -> Self {
        match v {
            1 => Self::Counter,
            2 => Self::Gauge,
            3 => Self::Histogram,
            4 => Self::GaugeHistogram,
            5 => Self::Summary,
            6 => Self::Info,
            7 => Self::StateSet,
            _ => Self::Unknown,
        }
    }

    /// Whether samples of this type are cumulative and must become rates before detection.
    pub fn is_cumulative(self) -> bool {
        matches!(self, Self::Counter | Self::Histogram | Self::Summary)
    }
}

#[derive(Debug, Clone, Default)]
pub struct SeriesEntry {
    /// Index range into [`Batch::labels`].
    pub labels: (u32, u32),
    /// Index range into [`Batch::samples`].
    pub samples: (u32, u32),
    /// Low 64 bits of the label set's xxh3-128: the store's key and the series id.
    pub hash: u64,
    /// High 64 bits: confirms a key hit without comparing labels (a false match needs a 128-bit
    /// collision).
    pub hash_check: u64,
    pub metric_type: MetricType,
    /// RW 2.0 created/start timestamp (0 when absent); a change means a counter reset.
    pub start_timestamp: i64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct MetadataEntry {
    pub family: Span,
    pub metric_type: MetricType,
}

/// One decoded request. All vectors keep their capacity between requests.
#[derive(Debug, Default)]
pub struct Batch {
    pub body: Vec<u8>,
    pub symbols: Vec<Span>,
    pub labels: Vec<LabelSpan>,
    pub series: Vec<SeriesEntry>,
    /// (timestamp ms, value) pairs.
    pub samples: Vec<(i64, f64)>,
    pub metadata: Vec<MetadataEntry>,
    pub histograms: u64,
    pub exemplars: u64,
    /// Scratch for the store: series indices grouped by shard.
    pub order: Vec<u32>,
    pub shard_offsets: Vec<u32>,
    pub shard_cursor: Vec<u32>,
    /// Scratch for hashing label sets.
    pub hash_scratch: Vec<u8>,
}

impl Batch {
    pub fn clear(&mut self) {
        self.body.clear();
        self.symbols.clear();
        self.labels.clear();
        self.series.clear();
        self.samples.clear();
        self.metadata.clear();
        self.histograms = 0;
        self.exemplars = 0;
    }

    pub fn bytes(&self, span: Span) -> &[u8] {
        let start = span.start as usize;
        &self.body[start..start + span.len as usize]
    }

    pub fn series_labels(&self, s: &SeriesEntry) -> &[LabelSpan] {
        &self.labels[s.labels.0 as usize..s.labels.1 as usize]
    }

    pub fn series_samples(&self, s: &SeriesEntry) -> &[(i64, f64)] {
        &self.samples[s.samples.0 as usize..s.samples.1 as usize]
    }

    /// Label pairs of a series as byte slices.
    pub fn label_pairs<'a>(
        &'a self,
        s: &SeriesEntry,
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.series_labels(s)
            .iter()
            .map(|l| (self.bytes(l.name), self.bytes(l.value)))
    }

    /// The value of `__name__`, if present.
    pub fn metric_name<'a>(&'a self, s: &SeriesEntry) -> Option<&'a [u8]> {
        self.label_pairs(s)
            .find(|(n, _)| *n == b"__name__")
            .map(|(_, v)| v)
    }

    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// Appends a series with one sample, copying its labels into the body (sorted here).
    pub fn push_series(&mut self, labels: &[(&str, &str)], sample: (i64, f64), t: MetricType) {
        let pairs: Vec<(&[u8], &[u8])> = labels
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        self.push_series_bytes(&pairs, sample, t);
    }

    /// [`Batch::push_series`] for labels as bytes.
    pub fn push_series_bytes(
        &mut self,
        labels: &[(&[u8], &[u8])],
        sample: (i64, f64),
        metric_type: MetricType,
    ) {
        let mut body = std::mem::take(&mut self.body);
        let label_start = self.labels.len();
        let sample_start = self.samples.len();
        let mut sorted: Vec<&(&[u8], &[u8])> = labels.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (name, value) in sorted {
            let n = body.len();
            body.extend_from_slice(name);
            let v = body.len();
            body.extend_from_slice(value);
            self.labels.push(LabelSpan {
                name: Span::new(n, v),
                value: Span::new(v, body.len()),
            });
        }
        self.samples.push(sample);
        self.finish_series(&body, label_start, sample_start, metric_type, 0);
        self.body = body;
    }

    /// Closes the series whose labels and samples were pushed since `label_start` and
    /// `sample_start`: hashes its label set (spans into `body`) and records it.
    pub(crate) fn finish_series(
        &mut self,
        body: &[u8],
        label_start: usize,
        sample_start: usize,
        metric_type: MetricType,
        start_timestamp: i64,
    ) {
        let span = |s: Span| &body[s.start as usize..(s.start + s.len) as usize];
        let labels = &self.labels[label_start..];
        let (hash, hash_check) = hash_labels(
            labels.iter().map(|l| (span(l.name), span(l.value))),
            &mut self.hash_scratch,
        );
        self.series.push(SeriesEntry {
            labels: (label_start as u32, self.labels.len() as u32),
            samples: (sample_start as u32, self.samples.len() as u32),
            hash,
            hash_check,
            metric_type,
            start_timestamp,
        });
    }

    /// Runs a decoder over `self.body` while it fills the other vectors (the body is moved out
    /// for the duration so the spans can borrow it).
    pub(crate) fn decode_with<E>(
        &mut self,
        decode: fn(&[u8], &mut Batch) -> Result<(), E>,
    ) -> Result<(), E> {
        let body = std::mem::take(&mut self.body);
        let result = decode(&body, self);
        self.body = body;
        result
    }
}

/// Hash of a label set: the identity of a series, as (low, high) 64-bit halves of xxh3-128.
/// Name and value are separated by bytes that cannot occur in UTF-8, so `a="bc"` and `ab="c"`
/// differ. The pairs are laid out in `scratch` and hashed in one call: xxh3's streaming state
/// costs more than the copy on inputs this small.
pub fn hash_labels<'a>(
    pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    scratch: &mut Vec<u8>,
) -> (u64, u64) {
    scratch.clear();
    for (name, value) in pairs {
        scratch.extend_from_slice(name);
        scratch.push(0xff);
        scratch.extend_from_slice(value);
        scratch.push(0xfe);
    }
    let h = xxh3_128(scratch);
    (h as u64, (h >> 64) as u64)
}
