//! Credentials on requests: basic or bearer auth on the write endpoint, a bearer token on the
//! mutating API routes. Comparisons are constant-time.

use axum::http::{HeaderMap, header};
use base64::Engine;

use crate::config::{AuthConfig, Secret};

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()
}

fn bearer_ok(headers: &HeaderMap, token: &Secret) -> bool {
    authorization(headers)
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), token.expose().as_bytes()))
}

/// Whether a write request is allowed. With no credentials configured, everything is.
pub fn write_allowed(headers: &HeaderMap, auth: &AuthConfig) -> bool {
    if !auth.enabled() {
        return true;
    }
    if !auth.bearer_token.is_empty() && bearer_ok(headers, &auth.bearer_token) {
        return true;
    }
    if auth.username.is_empty() {
        return false;
    }
    let Some(encoded) = authorization(headers).and_then(|v| v.strip_prefix("Basic ")) else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (user, pass) = (&decoded[..colon], &decoded[colon + 1..]);
    // Evaluate both so timing does not reveal which one was wrong.
    let user_ok = constant_time_eq(user, auth.username.as_bytes());
    let pass_ok = constant_time_eq(pass, auth.password.expose().as_bytes());
    user_ok & pass_ok
}

/// Whether a mutating API request is allowed (`api.auth_token`; open when unset).
pub fn api_allowed(headers: &HeaderMap, token: &Secret) -> bool {
    token.is_empty() || bearer_ok(headers, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn basic_and_bearer() {
        let auth = AuthConfig {
            username: "prom".into(),
            password: Secret::new("pw"),
            bearer_token: Secret::new("tok"),
        };
        let basic = base64::engine::general_purpose::STANDARD.encode("prom:pw");
        assert!(write_allowed(&headers(&format!("Basic {basic}")), &auth));
        let wrong = base64::engine::general_purpose::STANDARD.encode("prom:px");
        assert!(!write_allowed(&headers(&format!("Basic {wrong}")), &auth));
        assert!(write_allowed(&headers("Bearer tok"), &auth));
        assert!(!write_allowed(&headers("Bearer nope"), &auth));
        assert!(!write_allowed(&HeaderMap::new(), &auth));
        assert!(write_allowed(&HeaderMap::new(), &AuthConfig::default()));
        assert!(!write_allowed(&headers("Basic !!!"), &auth));
    }
}
