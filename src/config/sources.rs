//! `loki` and `llm`: the RCA's log source and language model.

use serde::{Deserialize, Serialize};

use super::{Secret, duration};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LokiConfig {
    #[serde(deserialize_with = "duration::nullable_string")]
    pub url: String,
    pub timeout_seconds: u64,
}

impl Default for LokiConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout_seconds: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// `anthropic` (Messages API) or `openai` (chat completions; any compatible server, such
    /// as a local model, via `base_url`).
    #[serde(deserialize_with = "duration::nullable_string")]
    pub provider: String,
    #[serde(deserialize_with = "duration::nullable_string")]
    pub model: String,
    pub api_key: Secret,
    /// Empty means the provider's public API.
    #[serde(deserialize_with = "duration::nullable_string")]
    pub base_url: String,
    /// Answer tokens at most.
    pub max_tokens: u32,
    pub temperature: f64,
    pub timeout_seconds: u64,
    /// The prompt is cut to this many characters (the token budget's input side).
    pub max_prompt_chars: usize,
}

impl LlmConfig {
    /// Asked only when there is a key, or a self-hosted OpenAI-compatible endpoint.
    pub fn enabled(&self) -> bool {
        !self.api_key.is_empty() || (self.provider == "openai" && !self.base_url.is_empty())
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            provider: "anthropic".into(),
            model: "claude-sonnet-4-20250514".into(),
            api_key: Secret::default(),
            base_url: String::new(),
            max_tokens: 1024,
            temperature: 0.1,
            timeout_seconds: 25,
            max_prompt_chars: 24_000,
        }
    }
}
