//! Prometheus text exposition format (version 0.0.4) into a [`Batch`], for pull mode.
//!
//! Strict by design: a malformed line fails the whole scrape with its line number and reason,
//! as Prometheus fails a scrape, rather than storing a mangled series. Label values are
//! unescaped (`\\`, `\"`, `\n`) and may hold any UTF-8, commas, `=` and braces included.
//! `prometheus-parse` 0.2.5 (DESIGN.md's pick) was tried and rejected: it splits label values
//! at commas and `=`, keeps escapes, drops samples whose values contain `}`, and merges every
//! label set of a histogram into one sample.
//!
//! The target's labels (`job`, `instance`, configured extras) are added to every series; a
//! scraped label of the same name is kept as `exported_<name>`, as Prometheus does with
//! `honor_labels: false`. Types come from `# TYPE`: counters, histogram buckets/sums/counts and
//! summary sums/counts are cumulative; gauges and summary quantiles are not.

use thiserror::Error;

use super::{MAX_SAMPLES_PER_REQUEST, MAX_SERIES_PER_REQUEST};
use crate::model::batch::{Batch, LabelSpan, MetricType, Span};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct ExpositionError {
    pub line: usize,
    pub reason: String,
}

/// A family's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// Parses `text` into `batch` (which should be clear), one series per sample line.
/// `default_ts_ms` stamps samples that carry no timestamp; `target` labels (sorted or not) are
/// added to each series. Returns the number of samples parsed.
pub fn parse(
    text: &[u8],
    default_ts_ms: i64,
    target: &[(&str, &str)],
    batch: &mut Batch,
) -> Result<usize, ExpositionError> {
    let mut body = std::mem::take(&mut batch.body);
    let result = parse_into(text, default_ts_ms, target, batch, &mut body);
    batch.body = body;
    result
}

fn parse_into(
    text: &[u8],
    default_ts_ms: i64,
    target: &[(&str, &str)],
    batch: &mut Batch,
    body: &mut Vec<u8>,
) -> Result<usize, ExpositionError> {
    // Names used by every series are written to the body once and their spans reused.
    let name_label = push(body, b"__name__");
    let target_spans: Vec<LabelSpan> = target
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(n, v)| LabelSpan {
            name: push(body, n.as_bytes()),
            value: push(body, v.as_bytes()),
        })
        .collect();
    let mut families: Vec<(Vec<u8>, Family)> = Vec::new();
    let mut samples = 0usize;
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let err = |reason: String| ExpositionError {
            line: line_no,
            reason,
        };
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = trim_start(line);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix(b"#") {
            if let Some((name, family)) = type_line(comment).map_err(err)? {
                if families.iter().any(|(n, _)| *n == name) {
                    return Err(err(format!(
                        "second TYPE line for {}",
                        String::from_utf8_lossy(&name)
                    )));
                }
                families.push((name, family));
            }
            continue;
        }
        if batch.series.len() >= MAX_SERIES_PER_REQUEST || samples >= MAX_SAMPLES_PER_REQUEST {
            return Err(err(format!(
                "more than {MAX_SERIES_PER_REQUEST} series in one scrape"
            )));
        }
        let label_start = batch.labels.len();
        let sample_start = batch.samples.len();
        let mut cur = Cursor { line, at: 0 };
        let name = cur.metric_name().map_err(err)?;
        batch.labels.push(LabelSpan {
            name: name_label,
            value: push(body, name),
        });
        cur.skip_blanks();
        if cur.peek() == Some(b'{') {
            cur.at += 1;
            cur.labels(body, &mut batch.labels, target).map_err(err)?;
        }
        batch.labels.extend_from_slice(&target_spans);
        let value = cur.value().map_err(err)?;
        let ts = cur.timestamp().map_err(err)?.unwrap_or(default_ts_ms);
        cur.skip_blanks();
        if cur.at != line.len() {
            return Err(err(format!(
                "unexpected {:?} after the sample",
                String::from_utf8_lossy(&line[cur.at..])
            )));
        }
        let labels = &mut batch.labels[label_start..];
        labels.sort_unstable_by(|a, b| span(body, a.name).cmp(span(body, b.name)));
        if let Some(pair) = labels
            .windows(2)
            .find(|w| span(body, w[0].name) == span(body, w[1].name))
        {
            return Err(err(format!(
                "label {} appears twice",
                String::from_utf8_lossy(span(body, pair[0].name))
            )));
        }
        batch.samples.push((ts, value));
        let metric_type = type_of(&families, name);
        batch.finish_series(body, label_start, sample_start, metric_type, 0);
        samples += 1;
    }
    Ok(samples)
}

fn push(body: &mut Vec<u8>, bytes: &[u8]) -> Span {
    let start = body.len();
    body.extend_from_slice(bytes);
    Span::new(start, body.len())
}

fn span(body: &[u8], s: Span) -> &[u8] {
    &body[s.start as usize..(s.start + s.len) as usize]
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

/// `# TYPE name type` → the family; other comments (HELP, free text, `# EOF`) → `None`.
fn type_line(comment: &[u8]) -> Result<Option<(Vec<u8>, Family)>, String> {
    let words: Vec<&[u8]> = comment
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty())
        .collect();
    if words.first() != Some(&&b"TYPE"[..]) {
        return Ok(None);
    }
    let [_, name, kind] = words[..] else {
        return Err("TYPE line needs a metric name and a type".into());
    };
    if !is_metric_name(name) {
        return Err(format!(
            "invalid metric name {:?} in TYPE line",
            String::from_utf8_lossy(name)
        ));
    }
    let family = match kind {
        b"counter" => Family::Counter,
        b"gauge" => Family::Gauge,
        b"histogram" => Family::Histogram,
        b"summary" => Family::Summary,
        b"untyped" => Family::Untyped,
        other => {
            return Err(format!(
                "unknown metric type {:?}",
                String::from_utf8_lossy(other)
            ));
        }
    };
    Ok(Some((name.to_vec(), family)))
}

fn type_of(families: &[(Vec<u8>, Family)], name: &[u8]) -> MetricType {
    let family = |n: &[u8]| families.iter().find(|(f, _)| f == n).map(|(_, t)| *t);
    match family(name) {
        Some(Family::Counter) => return MetricType::Counter,
        Some(Family::Gauge) | Some(Family::Summary) => return MetricType::Gauge,
        Some(Family::Histogram) | Some(Family::Untyped) => return MetricType::Unknown,
        None => {}
    }
    for (suffix, histogram_too) in [(&b"_bucket"[..], false), (b"_sum", true), (b"_count", true)] {
        if let Some(base) = name.strip_suffix(suffix) {
            match family(base) {
                Some(Family::Histogram) => return MetricType::Counter,
                Some(Family::Summary) if histogram_too => return MetricType::Counter,
                _ => {}
            }
        }
    }
    MetricType::Unknown
}

fn is_metric_name(s: &[u8]) -> bool {
    matches!(s.first(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && s.iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b':')
}

struct Cursor<'a> {
    line: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.line.get(self.at).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn take_while(&mut self, ok: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.at;
        while self.peek().is_some_and(&ok) {
            self.at += 1;
        }
        &self.line[start..self.at]
    }

    fn metric_name(&mut self) -> Result<&'a [u8], String> {
        let name = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
        if is_metric_name(name) {
            Ok(name)
        } else {
            Err(format!(
                "expected a metric name, found {:?}",
                String::from_utf8_lossy(&self.line[self.at - name.len()..])
            ))
        }
    }

    /// `name="value", …}` after the opening brace; a trailing comma is allowed.
    fn labels(
        &mut self,
        body: &mut Vec<u8>,
        out: &mut Vec<LabelSpan>,
        target: &[(&str, &str)],
    ) -> Result<(), String> {
        loop {
            self.skip_blanks();
            if self.peek() == Some(b'}') {
                self.at += 1;
                return Ok(());
            }
            let name = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'_');
            if name.is_empty() || name[0].is_ascii_digit() {
                return Err(format!(
                    "expected a label name or '}}' at column {}",
                    self.at + 1
                ));
            }
            if name == b"__name__" {
                return Err("label __name__ inside braces".into());
            }
            self.skip_blanks();
            if self.peek() != Some(b'=') {
                return Err(format!("expected '=' after label {}", lossy(name)));
            }
            self.at += 1;
            self.skip_blanks();
            if self.peek() != Some(b'"') {
                return Err(format!("value of label {} must be quoted", lossy(name)));
            }
            self.at += 1;
            let value_start = body.len();
            loop {
                match self.peek() {
                    None => return Err(format!("unterminated value of label {}", lossy(name))),
                    Some(b'"') => {
                        self.at += 1;
                        break;
                    }
                    Some(b'\\') => match self.line.get(self.at + 1) {
                        Some(&c @ (b'n' | b'\\' | b'"')) => {
                            body.push(if c == b'n' { b'\n' } else { c });
                            self.at += 2;
                        }
                        // Unknown escapes are kept as written.
                        Some(_) => {
                            body.push(b'\\');
                            self.at += 1;
                        }
                        None => {
                            return Err(format!("unterminated value of label {}", lossy(name)));
                        }
                    },
                    Some(b) => {
                        body.push(b);
                        self.at += 1;
                    }
                }
            }
            if std::str::from_utf8(&body[value_start..]).is_err() {
                return Err(format!("value of label {} is not UTF-8", lossy(name)));
            }
            let value = Span::new(value_start, body.len());
            // Empty values mean "no such label" in Prometheus' data model.
            if value.len > 0 {
                let renamed = target.iter().any(|(t, _)| t.as_bytes() == name);
                let name_span = if renamed {
                    let start = body.len();
                    body.extend_from_slice(b"exported_");
                    body.extend_from_slice(name);
                    Span::new(start, body.len())
                } else {
                    push(body, name)
                };
                out.push(LabelSpan {
                    name: name_span,
                    value,
                });
            }
            self.skip_blanks();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {}
                _ => {
                    return Err(format!(
                        "expected ',' or '}}' after label {} at column {}",
                        lossy(name),
                        self.at + 1
                    ));
                }
            }
        }
    }

    fn word(&mut self) -> &'a [u8] {
        self.skip_blanks();
        self.take_while(|b| b != b' ' && b != b'\t')
    }

    fn value(&mut self) -> Result<f64, String> {
        let word = self.word();
        if word.is_empty() {
            return Err("missing sample value".into());
        }
        // Go's float syntax: NaN, +Inf, -Inf and decimals; Rust's parser accepts those (case
        // insensitive) and nothing else that Go would refuse matters here.
        std::str::from_utf8(word)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| format!("invalid sample value {:?}", lossy(word)))
    }

    fn timestamp(&mut self) -> Result<Option<i64>, String> {
        let word = self.word();
        if word.is_empty() {
            return Ok(None);
        }
        std::str::from_utf8(word)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .map(Some)
            .ok_or_else(|| format!("invalid timestamp {:?}", lossy(word)))
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Series = (Vec<(String, String)>, i64, f64, MetricType);

    fn parsed(text: &str, target: &[(&str, &str)]) -> Result<Vec<Series>, ExpositionError> {
        let mut batch = Batch::default();
        parse(text.as_bytes(), 1000, target, &mut batch)?;
        Ok(batch
            .series
            .iter()
            .map(|s| {
                let labels = batch
                    .label_pairs(s)
                    .map(|(n, v)| (lossy(n), lossy(v)))
                    .collect();
                let (ts, v) = batch.series_samples(s)[0];
                (labels, ts, v, s.metric_type)
            })
            .collect())
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn values_with_commas_escapes_and_braces_survive() {
        let got = parsed(
            "m{a=\"x,y=z\",b=\"q\\\"r\\\\s\\nt\",c=\"}\"} 4\n",
            &[("job", "node")],
        )
        .unwrap();
        assert_eq!(
            got[0].0,
            pairs(&[
                ("__name__", "m"),
                ("a", "x,y=z"),
                ("b", "q\"r\\s\nt"),
                ("c", "}"),
                ("job", "node")
            ])
        );
    }

    #[test]
    fn histogram_label_sets_stay_apart_and_types_follow_type_lines() {
        let text = "# HELP h help text with {braces}\n# TYPE h histogram\n\
            h_bucket{path=\"/a\",le=\"1\"} 1\nh_bucket{path=\"/b\",le=\"1\"} 5\nh_sum{path=\"/a\"} 3\n\
            # TYPE s summary\ns{quantile=\"0.5\"} 0.2\ns_count 9\n# TYPE g gauge\ng 1\n\
            # TYPE c counter\nc_total 2\nuntyped_thing 3 42\n";
        let got = parsed(text, &[]).unwrap();
        let types: Vec<MetricType> = got.iter().map(|s| s.3).collect();
        use MetricType::*;
        assert_eq!(
            types,
            [
                Counter, Counter, Counter, Gauge, Counter, Gauge, Unknown, Unknown
            ]
        );
        assert_eq!(got[0].0[2], ("path".into(), "/a".into()));
        assert_eq!(got[1].0[2], ("path".into(), "/b".into()));
        // c_total has no TYPE of its own (its family is c): the store's suffix rule decides.
        assert_eq!(got[7].1, 42, "explicit timestamp kept");
        assert_eq!(got[6].1, 1000, "default timestamp");
    }

    #[test]
    fn special_values_blanks_trailing_comma_and_crlf() {
        let got = parsed(
            "a NaN\r\nb +Inf\n  c -Inf\nd{x=\"1\",} 1e-3\ne{} 2\nf{x=\"\"} 3\n",
            &[],
        )
        .unwrap();
        assert!(got[0].2.is_nan());
        assert_eq!(got[1].2, f64::INFINITY);
        assert_eq!(got[2].2, f64::NEG_INFINITY);
        assert_eq!(got[3].0.len(), 2);
        assert_eq!(got[4].0, pairs(&[("__name__", "e")]));
        assert_eq!(
            got[5].0,
            pairs(&[("__name__", "f")]),
            "empty value = no label"
        );
    }

    #[test]
    fn target_labels_win_and_scraped_ones_become_exported() {
        let got = parsed(
            "m{job=\"app\",instance=\"pod-1\"} 1\n",
            &[("job", "node"), ("instance", "10.0.0.1:9100")],
        )
        .unwrap();
        assert_eq!(
            got[0].0,
            pairs(&[
                ("__name__", "m"),
                ("exported_instance", "pod-1"),
                ("exported_job", "app"),
                ("instance", "10.0.0.1:9100"),
                ("job", "node")
            ])
        );
    }

    #[test]
    fn malformed_lines_name_their_line_and_reason() {
        for (text, line, needle) in [
            ("ok 1\n9bad 1\n", 2, "metric name"),
            ("m{a=b} 1\n", 1, "quoted"),
            ("m{a=\"b} 1\n", 1, "unterminated"),
            ("m{a=\"b\" c=\"d\"} 1\n", 1, "expected ','"),
            ("m 1 2 3\n", 1, "unexpected"),
            ("m one\n", 1, "invalid sample value"),
            ("m 1 soon\n", 1, "invalid timestamp"),
            ("m\n", 1, "missing sample value"),
            ("m{a=\"1\",a=\"2\"} 1\n", 1, "appears twice"),
            ("\n# TYPE m widget\n", 2, "unknown metric type"),
            ("# TYPE m gauge\n# TYPE m counter\n", 2, "second TYPE"),
            ("m{__name__=\"x\"} 1\n", 1, "__name__"),
        ] {
            let e = parsed(text, &[]).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.reason.contains(needle), "{text:?}: {e}");
        }
        let mut batch = Batch::default();
        let e = parse(b"m{a=\"\xff\"} 1\n", 0, &[], &mut batch).unwrap_err();
        assert!(e.reason.contains("UTF-8"), "{e}");
    }

    #[test]
    fn the_same_series_hashes_the_same_as_remote_write() {
        // A series scraped and the same series remote-written must be one series in the store.
        let got = {
            let mut b = Batch::default();
            parse(b"m{b=\"2\",a=\"1\"} 5\n", 0, &[("job", "j")], &mut b).unwrap();
            b.series[0].hash
        };
        let mut raw = Vec::new();
        crate::ingest::encode::encode_v1(
            &[crate::ingest::encode::TimeSeries::new(
                &[("__name__", "m"), ("a", "1"), ("b", "2"), ("job", "j")],
                &[(0, 5.0)],
            )],
            &mut raw,
        );
        let mut b = Batch {
            body: raw,
            ..Batch::default()
        };
        crate::ingest::remote_write_v1::decode(&mut b).unwrap();
        assert_eq!(b.series[0].hash, got);
    }
}
