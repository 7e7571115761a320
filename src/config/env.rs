//! `${VAR}` and `${VAR:-default}` substitution in config text, as in the seed's config.yaml.

/// Replaces every `${NAME}` / `${NAME:-default}` with the variable's value (or the default, or
/// nothing). `lookup` is injected so tests do not depend on the process environment.
pub fn substitute(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        let value = lookup(name).filter(|v| !v.is_empty() || default.is_none());
        out.push_str(&value.unwrap_or_else(|| default.unwrap_or("").to_string()));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_values_defaults_and_missing() {
        assert_eq!(substitute("a: ${SET}", env), "a: value");
        assert_eq!(
            substitute("a: ${UNSET:-http://x:9090}", env),
            "a: http://x:9090"
        );
        assert_eq!(substitute("a: ${SET:-d}", env), "a: value");
        assert_eq!(substitute("a: ${EMPTY:-d}", env), "a: d");
        assert_eq!(substitute("a: '${UNSET}'", env), "a: ''");
        assert_eq!(substitute("a: ${open", env), "a: ${open");
    }
}
