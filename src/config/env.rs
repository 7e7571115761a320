//! `${VAR}` and `${VAR:-default}` in config and playbook files, as in the seed's config.yaml.
//!
//! The YAML is parsed first and the variables are substituted into the parsed scalars (by
//! serde-saphyr's `properties` feature, Docker Compose rules), so a value holding ` #`, quotes,
//! `: ` or a line break stays one string and cannot change the document; a plain `${PORT}`
//! still becomes a number where one is expected. Error messages show the `${...}` text, never
//! the value behind it.

use std::collections::HashMap;

/// Parses `text` with every `${NAME}` it names resolved through `lookup` (injected, so tests do
/// not depend on the process environment). Unset names become empty strings, or their default.
pub fn from_str<T: serde::de::DeserializeOwned>(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<T, serde_saphyr::Error> {
    let mut options = serde_saphyr::Options::default().with_properties(properties(text, lookup));
    options.property_syntax = serde_saphyr::PropertySyntax::DockerCompose;
    serde_saphyr::from_str_with_options(text, options)
}

/// The value of every variable `text` names, as far as `lookup` knows it.
fn properties(text: &str, lookup: impl Fn(&str) -> Option<String>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        if !name.is_empty()
            && !out.contains_key(name)
            && let Some(value) = lookup(name)
        {
            out.insert(name.to_string(), value);
        }
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const PASSWORD: &str = "p4ss #not-a-comment: \"quoted\" 'single'\nsecond line";

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("9091".into()),
            "PASSWORD" => Some(PASSWORD.into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> BTreeMap<String, serde_json::Value> {
        from_str(text, env).expect("parses")
    }

    #[test]
    fn substitutes_values_defaults_and_missing() {
        assert_eq!(parse("a: ${SET}")["a"], "value");
        assert_eq!(parse("a: ${UNSET:-http://x:9090}")["a"], "http://x:9090");
        assert_eq!(parse("a: ${SET:-d}")["a"], "value");
        assert_eq!(parse("a: ${EMPTY:-d}")["a"], "d");
        assert_eq!(parse("a: '${UNSET}'")["a"], "");
        assert_eq!(parse("a: x-${SET}-y")["a"], "x-value-y");
    }

    #[test]
    fn a_plain_variable_keeps_its_type() {
        #[derive(serde::Deserialize)]
        struct Port {
            port: u16,
        }
        let p: Port = from_str("port: ${PORT:-8080}", env).expect("a number");
        assert_eq!(p.port, 9091);
        let p: Port = from_str("port: ${UNSET:-8080}", env).expect("the default");
        assert_eq!(p.port, 8080);
    }

    #[test]
    fn a_secret_with_a_hash_quotes_and_a_line_break_stays_one_value() {
        for text in [
            "password: ${PASSWORD}\nafter: 1\n",
            "password: \"${PASSWORD}\"\nafter: 1\n",
            "password: '${PASSWORD}'\nafter: 1\n",
        ] {
            let m = parse(text);
            assert_eq!(m["password"], PASSWORD, "{text}");
            assert_eq!(
                m["after"], 1,
                "the rest of the document is untouched: {text}"
            );
            assert_eq!(m.len(), 2, "{text}");
        }
    }

    #[test]
    fn an_error_shows_the_variable_not_its_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Port {
            port: u16,
        }
        let e = from_str::<Port>("port: ${PASSWORD}\n", env).expect_err("not a number");
        let text = e.to_string();
        assert!(!text.contains("p4ss"), "{text}");
    }
}
