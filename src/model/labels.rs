//! A series' label set, validated once when the series is created and stored in one
//! allocation: each name and value is a 2-byte id into the shared string table
//! ([`super::symbols`]) or, when the table does not take it (a high-cardinality value, a long
//! string), the marker `FF FF`, the string and a NUL. Eleven labels of which three are
//! per-series take ~90 bytes instead of ~300.

use thiserror::Error;

use super::symbols;

/// Marks a string stored in the label set itself rather than by id.
const INLINE: [u8; 2] = [0xff, 0xff];

fn push_string(bytes: &mut Vec<u8>, id: Option<u16>, s: &[u8]) {
    match id {
        Some(id) => bytes.extend_from_slice(&id.to_be_bytes()),
        None => {
            bytes.extend_from_slice(&INLINE);
            bytes.extend_from_slice(s);
            bytes.push(0);
        }
    }
}

/// The string at `pos` and the position after it.
fn read_string(bytes: &[u8], pos: usize) -> Option<(&str, usize)> {
    let token = bytes.get(pos..pos + 2)?;
    if token == INLINE {
        let rest = bytes.get(pos + 2..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        // Validated as UTF-8 at construction.
        Some((
            std::str::from_utf8(&rest[..end]).unwrap_or(""),
            pos + 3 + end,
        ))
    } else {
        let id = u16::from_be_bytes([token[0], token[1]]);
        Some((symbols::resolve(id).unwrap_or(""), pos + 2))
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LabelError {
    #[error("series has no labels")]
    Empty,
    #[error("series has no __name__ label")]
    NoName,
    #[error("empty label name")]
    EmptyName,
    #[error("invalid label name {0:?}")]
    InvalidName(String),
    #[error("label names not sorted or duplicated: {0:?} after {1:?}")]
    Unsorted(String, String),
    #[error("label {0:?} has a value that is not UTF-8")]
    NotUtf8(String),
    #[error("label {0:?} contains a NUL byte")]
    Nul(String),
}

#[derive(Clone)]
pub struct SeriesLabels {
    bytes: Box<[u8]>,
}

/// Equal when the labels are: the same set may be encoded with an id in one series and inline
/// in another (the table filled up between them).
impl PartialEq for SeriesLabels {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes || self.iter().eq(other.iter())
    }
}

impl Eq for SeriesLabels {}

impl std::fmt::Debug for SeriesLabels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

fn valid_name(name: &[u8]) -> bool {
    let mut chars = name.iter();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || *c == b'_')
        && chars.all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

impl SeriesLabels {
    /// Validates a label set as the remote-write specs require: non-empty valid names, sorted
    /// and unique, UTF-8 values, and a metric name.
    pub fn from_pairs<'a>(
        pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Self, LabelError> {
        let mut strings: Vec<(&str, &str)> = Vec::new();
        let mut prev: Option<&[u8]> = None;
        let mut has_name = false;
        for (name, value) in pairs {
            if name.is_empty() {
                return Err(LabelError::EmptyName);
            }
            if !valid_name(name) {
                return Err(LabelError::InvalidName(
                    String::from_utf8_lossy(name).into_owned(),
                ));
            }
            if let Some(p) = prev
                && p >= name
            {
                return Err(LabelError::Unsorted(
                    String::from_utf8_lossy(name).into_owned(),
                    String::from_utf8_lossy(p).into_owned(),
                ));
            }
            if std::str::from_utf8(value).is_err() {
                return Err(LabelError::NotUtf8(
                    String::from_utf8_lossy(name).into_owned(),
                ));
            }
            if value.contains(&0) {
                return Err(LabelError::Nul(String::from_utf8_lossy(name).into_owned()));
            }
            has_name |= name == b"__name__" && !value.is_empty();
            prev = Some(name);
            // Both were checked to be UTF-8 (a valid name is ASCII).
            strings.push((
                std::str::from_utf8(name).unwrap_or(""),
                std::str::from_utf8(value).unwrap_or(""),
            ));
        }
        if strings.is_empty() {
            return Err(LabelError::Empty);
        }
        if !has_name {
            return Err(LabelError::NoName);
        }
        let mut ids = vec![(None, None); strings.len()];
        symbols::intern_label_set(&strings, &mut ids, true);
        let mut bytes = Vec::new();
        for (&(name, value), &(name_id, value_id)) in strings.iter().zip(&ids) {
            push_string(&mut bytes, name_id, name.as_bytes());
            push_string(&mut bytes, value_id, value.as_bytes());
        }
        Ok(Self {
            bytes: bytes.into_boxed_slice(),
        })
    }

    pub fn from_strs(pairs: &[(&str, &str)]) -> Result<Self, LabelError> {
        let mut sorted: Vec<_> = pairs.to_vec();
        sorted.sort();
        Self::from_pairs(sorted.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        let bytes = &self.bytes[..];
        let mut pos = 0;
        std::iter::from_fn(move || {
            let (name, after_name) = read_string(bytes, pos)?;
            let (value, after_value) = read_string(bytes, after_name)?;
            pos = after_value;
            Some((name, value))
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn metric_name(&self) -> &str {
        self.get("__name__").unwrap_or("")
    }

    pub fn heap_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub fn to_map(&self) -> std::collections::BTreeMap<String, String> {
        self.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// `name{a="b",…}` in PromQL notation, for logs and summaries.
    pub fn display(&self) -> String {
        let mut out = self.metric_name().to_string();
        let rest: Vec<String> = self
            .iter()
            .filter(|(n, _)| *n != "__name__")
            .map(|(n, v)| format!("{n}={v:?}"))
            .collect();
        if !rest.is_empty() {
            out.push('{');
            out.push_str(&rest.join(","));
            out.push('}');
        }
        out
    }
}

/// Escapes a label value for text exposition.
pub fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(
        p: &[(&'static str, &'static str)],
    ) -> impl Iterator<Item = (&'static [u8], &'static [u8])> {
        p.iter()
            .copied()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn valid_set_roundtrips() {
        let l = SeriesLabels::from_pairs(pairs(&[("__name__", "up"), ("job", "node")])).unwrap();
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            vec![("__name__", "up"), ("job", "node")]
        );
        assert_eq!(l.display(), "up{job=\"node\"}");
    }

    #[test]
    fn rejects_what_the_spec_forbids() {
        assert_eq!(
            SeriesLabels::from_pairs(pairs(&[("job", "a"), ("__name__", "x")])).unwrap_err(),
            LabelError::Unsorted("__name__".into(), "job".into())
        );
        assert_eq!(
            SeriesLabels::from_pairs(pairs(&[("__name__", "x"), ("a", "1"), ("a", "2")]))
                .unwrap_err(),
            LabelError::Unsorted("a".into(), "a".into())
        );
        assert_eq!(
            SeriesLabels::from_pairs(pairs(&[("", "x")])).unwrap_err(),
            LabelError::EmptyName
        );
        assert_eq!(
            SeriesLabels::from_pairs(pairs(&[("job", "x")])).unwrap_err(),
            LabelError::NoName
        );
        assert!(matches!(
            SeriesLabels::from_pairs(pairs(&[("__name__", "x"), ("9a", "x")])),
            Err(LabelError::InvalidName(_))
        ));
        assert!(matches!(
            SeriesLabels::from_pairs(std::iter::once((&b"__name__"[..], &[0xff, 0xfe][..]))),
            Err(LabelError::NotUtf8(_))
        ));
    }

    #[test]
    fn shared_and_inline_strings_read_back_alike() {
        let long = "v".repeat(symbols::MAX_LEN + 1);
        let l = SeriesLabels::from_strs(&[
            ("__name__", "up"),
            ("cluster", "prod-eu-central-1"),
            ("trace", &long),
        ])
        .unwrap();
        assert_eq!(l.get("trace"), Some(long.as_str()));
        assert_eq!(l.get("cluster"), Some("prod-eu-central-1"));
        // Two shared strings of 2 bytes each and one inline string with its marker and NUL.
        assert_eq!(l.heap_bytes(), 2 * 2 * 2 + 2 + 2 + long.len() + 1);
        let mut inline = Vec::new();
        for (n, v) in l.iter() {
            push_string(&mut inline, None, n.as_bytes());
            push_string(&mut inline, None, v.as_bytes());
        }
        let inline = SeriesLabels {
            bytes: inline.into_boxed_slice(),
        };
        assert_eq!(inline, l);
        assert_eq!(
            inline.iter().collect::<Vec<_>>(),
            l.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn empty_values_are_kept_distinct() {
        let l =
            SeriesLabels::from_pairs(pairs(&[("__name__", "x"), ("a", ""), ("b", "1")])).unwrap();
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            vec![("__name__", "x"), ("a", ""), ("b", "1")]
        );
    }
}
