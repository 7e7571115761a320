//! A series' label set, validated once when the series is created and stored in one
//! allocation (`name\0value\0name\0value\0…`).

use thiserror::Error;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesLabels {
    bytes: Box<[u8]>,
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
        let mut bytes = Vec::new();
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
            bytes.extend_from_slice(name);
            bytes.push(0);
            bytes.extend_from_slice(value);
            bytes.push(0);
        }
        if bytes.is_empty() {
            return Err(LabelError::Empty);
        }
        if !has_name {
            return Err(LabelError::NoName);
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
        let mut parts = self.bytes.split(|&b| b == 0);
        std::iter::from_fn(move || {
            let name = parts.next().filter(|n| !n.is_empty())?;
            let value = parts.next()?;
            // Validated as UTF-8 at construction.
            Some((
                std::str::from_utf8(name).unwrap_or(""),
                std::str::from_utf8(value).unwrap_or(""),
            ))
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
    fn empty_values_are_kept_distinct() {
        let l =
            SeriesLabels::from_pairs(pairs(&[("__name__", "x"), ("a", ""), ("b", "1")])).unwrap();
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            vec![("__name__", "x"), ("a", ""), ("b", "1")]
        );
    }
}
