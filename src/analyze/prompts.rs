//! Every text the RCA sends to a language model, in one place.

/// The system prompt: what the model is and what it must answer.
pub const SYSTEM: &str = "You are a site reliability engineer at a cryptocurrency exchange \
(order, matching, risk, wallet and API services on Kubernetes). You are given the evidence an \
automated detector collected about one incident: the series that moved (in order of onset), \
Kubernetes events, log error counts, the hypotheses its rules produced, and similar past \
incidents. Find the most likely root causes. Use only the evidence given; quote the facts you \
rely on. Answer with one JSON object and nothing else.";

/// The answer's shape, appended to every prompt.
pub const ANSWER_FORMAT: &str = r#"Answer with JSON only, in this shape:
{"hypotheses": [{"cause": "short_snake_case_id", "root_cause": "one sentence", "confidence": 0.0, "evidence": ["a fact quoted from above"]}], "summary": "one or two sentences"}
At most 3 hypotheses, best first. confidence is between 0 and 1. Every evidence item must quote a metric, event or log pattern named above. Prefer a cause id the rules used when you agree with them."#;

/// Section headings of the prompt.
pub const INCIDENT: &str = "## Incident";
pub const MOVED: &str = "## Series that moved (earliest onset first)";
pub const EVENTS: &str = "## Kubernetes events";
pub const LOGS: &str = "## Logs";
pub const RULES: &str = "## Hypotheses from the rules";
pub const SIMILAR: &str = "## Similar past incidents and runbooks";
