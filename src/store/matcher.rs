//! A small series selector: `name{label="value",other!="x"}` (equality matchers only).

use thiserror::Error;

use crate::model::labels::SeriesLabels;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid series selector {selector:?}: {reason}")]
pub struct MatcherError {
    pub selector: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    terms: Vec<(String, String, bool)>,
}

impl Matcher {
    /// Series whose labels equal all of `pairs` (any value allowed, quotes included).
    pub fn equal<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            terms: pairs
                .into_iter()
                .map(|(n, v)| (n.to_string(), v.to_string(), true))
                .collect(),
        }
    }

    pub fn parse(selector: &str) -> Result<Self, MatcherError> {
        let err = |reason| MatcherError {
            selector: selector.to_string(),
            reason,
        };
        let s = selector.trim();
        let (name, rest) = match s.find('{') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let mut terms = Vec::new();
        if !name.trim().is_empty() {
            terms.push(("__name__".to_string(), name.trim().to_string(), true));
        }
        if let Some(rest) = rest {
            let body = rest
                .strip_suffix('}')
                .ok_or_else(|| err("missing closing brace"))?;
            let mut chars = body;
            loop {
                chars = chars.trim_start_matches([' ', ',']);
                if chars.is_empty() {
                    break;
                }
                let op_at = chars
                    .find(['=', '!'])
                    .ok_or_else(|| err("expected = or != after a label name"))?;
                let label = chars[..op_at].trim().to_string();
                let (eq, after) = if chars[op_at..].starts_with("!=") {
                    (false, &chars[op_at + 2..])
                } else if chars[op_at..].starts_with('=') {
                    (true, &chars[op_at + 1..])
                } else {
                    return Err(err("only = and != are supported"));
                };
                let after = after.trim_start();
                let quoted = after
                    .strip_prefix('"')
                    .ok_or_else(|| err("label values must be double-quoted"))?;
                let end = quoted
                    .find('"')
                    .ok_or_else(|| err("unterminated label value"))?;
                if label.is_empty() {
                    return Err(err("empty label name"));
                }
                terms.push((label, quoted[..end].to_string(), eq));
                chars = &quoted[end + 1..];
            }
        }
        Ok(Self { terms })
    }

    pub fn matches(&self, labels: &SeriesLabels) -> bool {
        self.terms
            .iter()
            .all(|(name, value, eq)| (labels.get(name).unwrap_or("") == value) == *eq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let l = SeriesLabels::from_strs(&[
            ("__name__", "cpu_usage"),
            ("pod", "a-1"),
            ("ns", "trading"),
        ])
        .unwrap();
        assert!(Matcher::parse("cpu_usage").unwrap().matches(&l));
        assert!(
            Matcher::parse("cpu_usage{pod=\"a-1\"}")
                .unwrap()
                .matches(&l)
        );
        assert!(
            Matcher::parse("{ns=\"trading\", pod!=\"b\"}")
                .unwrap()
                .matches(&l)
        );
        assert!(!Matcher::parse("cpu_usage{pod=\"b\"}").unwrap().matches(&l));
        assert!(Matcher::parse("").unwrap().matches(&l));
        assert!(Matcher::parse("x{pod=a}").is_err());
        assert!(Matcher::parse("x{pod=\"a\"").is_err());
    }
}
