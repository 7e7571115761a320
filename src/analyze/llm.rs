//! An LLM's opinion on an incident (optional): a prompt built from the evidence (prompts in
//! `prompts.rs`), secrets redacted from it, sent to the Anthropic Messages API or an
//! OpenAI-compatible chat-completions endpoint within a timeout and a token budget, and a JSON
//! answer parsed and checked against the evidence: a hypothesis that cites nothing the agent
//! saw is dropped. On no key, an error or a timeout, the rule-based result stands.

use std::time::Duration;

use serde::Deserialize;

use super::{Hypothesis, prompts};
use crate::config::LlmConfig;
use crate::incident::Incident;
use crate::net::{ClientError, client};

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("request failed: {0}")]
    Request(String),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("unexpected answer: {0}")]
    Answer(String),
}

pub struct Llm {
    http: reqwest::Client,
    config: LlmConfig,
}

/// What the model said, after validation.
#[derive(Debug, Clone)]
pub struct Opinion {
    pub accepted: Vec<Hypothesis>,
    pub rejected: Vec<String>,
    pub summary: String,
}

impl Llm {
    pub fn new(config: &LlmConfig) -> Result<Self, ClientError> {
        Ok(Self {
            http: client(Duration::from_secs(config.timeout_seconds.max(1)))?,
            config: config.clone(),
        })
    }

    /// The prompt for `incident`, within this model's prompt budget.
    pub fn prompt_for(&self, incident: &Incident, rca: &super::Rca) -> String {
        prompt(incident, rca, self.config.max_prompt_chars)
    }

    pub fn describe(&self) -> String {
        format!("{} {}", self.config.provider, self.config.model)
    }

    /// Asks for hypotheses about `incident` given the evidence text (already redacted).
    pub async fn ask(&self, prompt: &str, known_terms: &[String]) -> Result<Opinion, LlmError> {
        let text = match self.config.provider.as_str() {
            "openai" => self.openai(prompt).await?,
            _ => self.anthropic(prompt).await?,
        };
        parse_answer(&text, known_terms)
    }

    fn base(&self, default: &str) -> String {
        if self.config.base_url.is_empty() {
            default.to_string()
        } else {
            self.config.base_url.trim_end_matches('/').to_string()
        }
    }

    async fn post(&self, request: reqwest::RequestBuilder) -> Result<serde_json::Value, LlmError> {
        let response = request
            .send()
            .await
            .map_err(|e| LlmError::Request(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| LlmError::Request(e.without_url().to_string()))?;
        if !status.is_success() {
            return Err(LlmError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).chars().take(300).collect(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| LlmError::Answer(format!("not JSON ({e})")))
    }

    async fn anthropic(&self, prompt: &str) -> Result<String, LlmError> {
        let url = format!("{}/v1/messages", self.base("https://api.anthropic.com"));
        let body = serde_json::json!({
            "model": self.config.model,
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
            "system": prompts::SYSTEM,
            "messages": [{"role": "user", "content": prompt}],
        });
        let answer = self
            .post(
                self.http
                    .post(url)
                    .header("x-api-key", self.config.api_key.expose())
                    .header("anthropic-version", "2023-06-01")
                    .json(&body),
            )
            .await?;
        answer["content"]
            .as_array()
            .and_then(|parts| {
                parts
                    .iter()
                    .filter(|p| p["type"] == "text")
                    .find_map(|p| p["text"].as_str())
            })
            .map(String::from)
            .ok_or_else(|| LlmError::Answer("no text content in the Messages answer".into()))
    }

    async fn openai(&self, prompt: &str) -> Result<String, LlmError> {
        let url = format!(
            "{}/v1/chat/completions",
            self.base("https://api.openai.com")
        );
        let body = serde_json::json!({
            "model": self.config.model,
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": prompts::SYSTEM},
                {"role": "user", "content": prompt},
            ],
        });
        let mut request = self.http.post(url).json(&body);
        if !self.config.api_key.is_empty() {
            request = request.bearer_auth(self.config.api_key.expose());
        }
        let answer = self.post(request).await?;
        answer["choices"][0]["message"]["content"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| LlmError::Answer("no message content in the chat completion".into()))
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    hypotheses: Vec<RawHypothesis>,
    #[serde(default)]
    summary: String,
}

#[derive(Deserialize)]
struct RawHypothesis {
    #[serde(default)]
    cause: String,
    #[serde(default)]
    root_cause: String,
    #[serde(default)]
    confidence: f64,
    #[serde(default)]
    evidence: Vec<String>,
}

/// The highest confidence an LLM hypothesis may carry: an opinion, never above a rule whose
/// every condition held.
pub const MAX_CONFIDENCE: f64 = 0.8;

/// Parses the model's text (a JSON object, possibly fenced or wrapped in prose) and keeps the
/// hypotheses whose evidence names something the agent saw (`known_terms`).
pub fn parse_answer(text: &str, known_terms: &[String]) -> Result<Opinion, LlmError> {
    let start = text.find('{');
    let end = text.rfind('}');
    let json = match (start, end) {
        (Some(s), Some(e)) if e > s => &text[s..=e],
        _ => return Err(LlmError::Answer("no JSON object in the answer".into())),
    };
    let answer: Answer =
        serde_json::from_str(json).map_err(|e| LlmError::Answer(format!("invalid JSON ({e})")))?;
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for h in answer.hypotheses.into_iter().take(5) {
        let cause = h.cause.trim().to_lowercase().replace([' ', '-'], "_");
        let valid_id = !cause.is_empty()
            && cause.len() <= 64
            && cause
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !valid_id {
            rejected.push(format!("cause {:?} is not a short id", h.cause));
            continue;
        }
        if !(h.confidence.is_finite() && (0.0..=1.0).contains(&h.confidence)) {
            rejected.push(format!(
                "{cause}: confidence {} not in [0, 1]",
                h.confidence
            ));
            continue;
        }
        let grounded: Vec<String> = h
            .evidence
            .iter()
            .filter(|e| {
                let lower = e.to_lowercase();
                known_terms
                    .iter()
                    .any(|t| lower.contains(&t.to_lowercase()))
            })
            .map(|e| e.chars().take(300).collect())
            .collect();
        if grounded.is_empty() {
            rejected.push(format!("{cause}: cites nothing in the evidence"));
            continue;
        }
        accepted.push(Hypothesis {
            cause,
            root_cause: h.root_cause.chars().take(300).collect(),
            confidence: h.confidence.min(MAX_CONFIDENCE),
            source: "llm".into(),
            evidence: grounded,
            remediation: Vec::new(),
        });
    }
    Ok(Opinion {
        accepted,
        rejected,
        summary: answer.summary.chars().take(500).collect(),
    })
}

/// Masks credentials in text bound for a third party: values of password/token/secret/key
/// fields, bearer tokens, and long opaque strings (keys, JWTs).
pub fn redact(text: &str) -> String {
    const KEYS: [&str; 9] = [
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "access_key",
        "authorization",
    ];
    let mut out = String::with_capacity(text.len());
    let mut mask_next = false;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        // scheme://user:password@host first: the rest of the word may hold `token=…` too.
        let unmasked = word;
        let masked_userinfo;
        let word = match unmasked.find("://") {
            Some(scheme_end)
                if unmasked[scheme_end + 3..]
                    .split(['/', '?', '#'])
                    .next()
                    .is_some_and(|authority| authority.contains('@')) =>
            {
                let rest = &unmasked[scheme_end + 3..];
                let at = rest.find('@').unwrap_or(0);
                masked_userinfo = format!("{}***{}", &unmasked[..scheme_end + 3], &rest[at..]);
                masked_userinfo.as_str()
            }
            _ => unmasked,
        };
        let lower = word.to_lowercase();
        if mask_next && lower != "bearer" && lower != "basic" {
            out.push_str("***");
            mask_next = false;
            continue;
        }
        if lower == "bearer" || lower == "basic" {
            out.push_str(word);
            mask_next = true;
            continue;
        }
        // key=value / key: value / "key":"value"
        let key_at = KEYS
            .iter()
            .filter_map(|k| lower.find(k).map(|i| (i, k.len())))
            .min();
        if let Some((at, len)) = key_at {
            let rest = &word[at + len..];
            let sep = rest.find(['=', ':']);
            match sep {
                Some(s) if rest[..s].chars().all(|c| c == '"' || c == '\'' || c == '_') => {
                    let value = &rest[s + 1..];
                    out.push_str(&word[..at + len + s + 1]);
                    if value.trim_matches(|c| c == '"' || c == '\'').is_empty() {
                        mask_next = true;
                    } else {
                        out.push_str("***");
                    }
                    continue;
                }
                _ => {}
            }
        }
        let opaque = word.len() >= 32
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=_-.".contains(c))
            && word.chars().any(|c| c.is_ascii_digit())
            && word.chars().any(|c| c.is_ascii_alphabetic());
        if opaque {
            out.push_str("***");
        } else {
            out.push_str(word);
        }
    }
    out
}

/// The prompt for an incident: its evidence in sections, redacted, cut to `max_chars`.
pub fn prompt(incident: &Incident, rca: &super::Rca, max_chars: usize) -> String {
    use std::fmt::Write;
    let mut p = String::new();
    let _ = writeln!(
        p,
        "{}\n{} ({}), severity {:?}, group {:?}, opened {}",
        prompts::INCIDENT,
        incident.title,
        incident.id,
        incident.severity,
        incident.group,
        incident.opened_at
    );
    let _ = writeln!(p, "\n{}", prompts::MOVED);
    for f in rca.moved.iter().take(30) {
        let _ = writeln!(
            p,
            "- {} on {}: before {}, peak {}, trough {}, onset {}{}",
            f.metric,
            super::rules::place(f),
            f.before.map_or("?".into(), |b| format!("{b:.4}")),
            f.peak,
            f.trough,
            f.onset_ms
                .map_or("?".into(), crate::model::clock::rfc3339_ms),
            if f.anomalous { " (anomalous)" } else { "" }
        );
    }
    let _ = writeln!(p, "\n{}", prompts::EVENTS);
    if rca.events.is_empty() {
        let _ = writeln!(p, "- none seen");
    }
    for e in rca.events.iter().take(20) {
        let _ = writeln!(
            p,
            "- {} {} {} at {}: {}",
            e.event_type,
            e.reason,
            e.object,
            crate::model::clock::rfc3339_ms(e.ts_ms),
            e.message
        );
    }
    let _ = writeln!(p, "\n{}", prompts::LOGS);
    match &rca.logs {
        Some(l) => {
            let _ = writeln!(p, "- {} lines; pattern counts {:?}", l.lines, l.counts);
            for s in &l.samples {
                let _ = writeln!(p, "- sample: {s}");
            }
        }
        None => {
            let _ = writeln!(p, "- not available");
        }
    }
    let _ = writeln!(p, "\n{}", prompts::RULES);
    for h in rca.hypotheses.iter().take(6) {
        let _ = writeln!(
            p,
            "- {} ({:.2}, {}): {}; {}",
            h.cause,
            h.confidence,
            h.source,
            h.root_cause,
            h.evidence.join("; ")
        );
    }
    let _ = writeln!(p, "\n{}", prompts::SIMILAR);
    if rca.similar.is_empty() {
        let _ = writeln!(p, "- none");
    }
    for m in &rca.similar {
        let _ = writeln!(
            p,
            "- {} ({:.0} % similar): cause {}, {}",
            m.entry.title,
            m.similarity * 100.0,
            m.entry.cause,
            m.entry.outcome
        );
    }
    let mut p = redact(&p);
    if p.len() > max_chars {
        let mut cut = max_chars;
        while !p.is_char_boundary(cut) {
            cut -= 1;
        }
        p.truncate(cut);
        p.push_str("\n[evidence truncated]\n");
    }
    format!("{p}\n{}", prompts::ANSWER_FORMAT)
}

/// The words an LLM's evidence may cite: metrics, event reasons, log patterns, pods.
pub fn known_terms(rca: &super::Rca) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for f in &rca.moved {
        terms.push(f.metric.clone());
    }
    for e in &rca.events {
        terms.push(e.reason.clone());
    }
    if let Some(l) = &rca.logs {
        terms.extend(
            l.counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, _)| k.replace('_', " ")),
        );
        terms.extend(
            l.counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, _)| k.clone()),
        );
    }
    terms.sort();
    terms.dedup();
    terms.retain(|t| t.len() >= 3);
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        let text = "dsn postgres://risk:pg-pass@db:5432/risk login failed password=hunter2 user=bob Authorization: Bearer abc.def token: \"s3cr3t\" key AKIAIOSFODNN7EXAMPLEKEY1234567890ABCD ok";
        let r = redact(text);
        for secret in [
            "hunter2",
            "abc.def",
            "s3cr3t",
            "AKIAIOSFODNN7EXAMPLEKEY1234567890ABCD",
            "pg-pass",
        ] {
            assert!(!r.contains(secret), "{secret} in {r}");
        }
        assert!(
            r.contains("user=bob") && r.contains("login failed") && r.ends_with(" ok"),
            "{r}"
        );
    }

    #[test]
    fn answers_are_parsed_and_checked_against_the_evidence() {
        let known = vec![
            "api_error_rate".to_string(),
            "ScalingReplicaSet".to_string(),
        ];
        let text = "Here you go:\n```json\n{\"hypotheses\": [\
            {\"cause\": \"Bad Deploy\", \"root_cause\": \"the rollout\", \"confidence\": 0.95, \"evidence\": [\"ScalingReplicaSet on Deployment/api-gateway 2 min before\"]},\
            {\"cause\": \"aliens\", \"root_cause\": \"?\", \"confidence\": 0.5, \"evidence\": [\"cosmic rays\"]},\
            {\"cause\": \"x\", \"confidence\": 7, \"evidence\": [\"api_error_rate\"]}\
            ], \"summary\": \"deploy\"}\n```";
        let o = parse_answer(text, &known).unwrap();
        assert_eq!(o.accepted.len(), 1);
        assert_eq!(o.accepted[0].cause, "bad_deploy");
        assert_eq!(o.accepted[0].confidence, MAX_CONFIDENCE);
        assert_eq!(o.rejected.len(), 2, "{:?}", o.rejected);
        assert!(parse_answer("no json here", &known).is_err());
        assert!(parse_answer("{\"hypotheses\": 3}", &known).is_err());
    }
}
