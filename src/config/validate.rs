//! Validation of a parsed config, all keys at once: every problem names its dotted key (the
//! loader adds the line), so one run of `check-config` lists everything to fix.

use std::time::Duration;

use super::Config;

impl Config {
    /// Every invalid value, as (dotted key, reason); all reported at once.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut check = |ok: bool, key: &str, msg: &str| {
            if !ok {
                p.push((key.to_string(), msg.to_string()));
            }
        };
        let d = &self.anomaly_detection;
        check(
            d.zscore_threshold.is_finite() && d.zscore_threshold > 0.0,
            "anomaly_detection.zscore_threshold",
            "must be a positive number",
        );
        check(
            d.mad_threshold.is_finite() && d.mad_threshold > 0.0,
            "anomaly_detection.mad_threshold",
            "must be a positive number",
        );
        check(
            (1..=3).contains(&d.ensemble_min_votes),
            "anomaly_detection.ensemble_min_votes",
            "must be 1, 2 or 3 (there are three detectors)",
        );
        check(
            d.ewma_alpha > 0.0 && d.ewma_alpha < 1.0,
            "anomaly_detection.ewma_alpha",
            "must be in (0, 1)",
        );
        check(
            d.alert_threshold > 0.0 && d.alert_threshold < 1.0,
            "anomaly_detection.alert_threshold",
            "must be in (0, 1)",
        );
        check(
            d.pending_samples >= 1,
            "anomaly_detection.pending_samples",
            "must be at least 1",
        );
        check(
            d.resolve_samples >= 1,
            "anomaly_detection.resolve_samples",
            "must be at least 1",
        );
        check(
            d.resolve_ratio > 0.0 && d.resolve_ratio <= 1.0,
            "anomaly_detection.resolve_ratio",
            "must be in (0, 1]",
        );
        check(
            d.check_interval_seconds >= 1,
            "anomaly_detection.check_interval_seconds",
            "must be at least 1",
        );
        check(
            d.refit_budget >= Duration::from_millis(10),
            "anomaly_detection.refit_budget",
            "must be at least 10ms",
        );
        check(
            (2..=1440).contains(&d.seasonality.bins),
            "anomaly_detection.seasonality.bins",
            "must be between 2 and 1440",
        );
        check(
            d.seasonality.period >= Duration::from_secs(60),
            "anomaly_detection.seasonality.period",
            "must be at least 1m",
        );
        check(
            (0.0..=1.0).contains(&d.seasonality.min_strength),
            "anomaly_detection.seasonality.min_strength",
            "must be in [0, 1]",
        );
        check(
            d.seasonality.discover_min_strength > 0.0 && d.seasonality.discover_min_strength <= 1.0,
            "anomaly_detection.seasonality.discover_min_strength",
            "must be in (0, 1]",
        );
        let n = &d.novelty;
        check(
            n.range_unit.is_finite() && n.range_unit > 0.0,
            "anomaly_detection.novelty.range_unit",
            "must be a positive number",
        );
        check(
            n.rest_escalation >= 1.0,
            "anomaly_detection.novelty.rest_escalation",
            "must be at least 1",
        );
        check(
            n.density_unit.is_finite() && n.density_unit > 0.0,
            "anomaly_detection.novelty.density_unit",
            "must be a positive number",
        );
        check(
            n.memory >= Duration::from_secs(60),
            "anomaly_detection.novelty.memory",
            "must be at least 1m",
        );
        check(
            n.context_learning_rate > 0.0 && n.context_learning_rate <= 1.0,
            "anomaly_detection.novelty.context_learning_rate",
            "must be in (0, 1]",
        );
        check(
            n.stuck_factor.is_finite() && n.stuck_factor >= 1.0,
            "anomaly_detection.novelty.stuck_factor",
            "must be at least 1",
        );
        check(
            n.stuck_min_samples >= 2,
            "anomaly_detection.novelty.stuck_min_samples",
            "must be at least 2",
        );
        check(
            n.drift_alpha >= 0.001 && n.drift_alpha <= 1.0,
            "anomaly_detection.novelty.drift_alpha",
            "must be in [0.001, 1]",
        );
        check(
            n.drift_unit.is_finite() && n.drift_unit > 0.0,
            "anomaly_detection.novelty.drift_unit",
            "must be a positive number",
        );
        check(
            n.drift_travel_unit.is_finite() && n.drift_travel_unit > 0.0,
            "anomaly_detection.novelty.drift_travel_unit",
            "must be a positive number",
        );
        let b = &self.prometheus.backfill;
        check(
            b.step >= Duration::from_secs(1),
            "prometheus.backfill.step",
            "must be at least 1s",
        );
        check(
            b.chunk >= b.step && b.chunk.as_secs_f64() / b.step.as_secs_f64().max(1.0) <= 11_000.0,
            "prometheus.backfill.chunk",
            "must be at least one step and at most 11000 steps (Prometheus' limit per query)",
        );
        check(
            b.lookback >= b.step,
            "prometheus.backfill.lookback",
            "must be at least one step",
        );
        check(
            d.peers.min_group >= 3,
            "anomaly_detection.peers.min_group",
            "must be at least 3 (two series have no majority)",
        );
        check(
            d.services.bucket >= Duration::from_secs(1),
            "anomaly_detection.services.bucket",
            "must be at least 1s",
        );
        check(
            d.services.min_history >= 10,
            "anomaly_detection.services.min_history",
            "must be at least 10",
        );
        check(
            d.services.threshold_sigmas.is_finite() && d.services.threshold_sigmas > 0.0,
            "anomaly_detection.services.threshold_sigmas",
            "must be a positive number",
        );
        check(
            d.peers.threshold_sigmas.is_finite() && d.peers.threshold_sigmas > 0.0,
            "anomaly_detection.peers.threshold_sigmas",
            "must be a positive number",
        );
        let f = &d.forecast;
        check(
            !f.horizons.is_empty()
                && f.horizons.len() <= 8
                && f.horizons.iter().all(|h| *h >= Duration::from_secs(60)),
            "anomaly_detection.forecast.horizons",
            "must list 1 to 8 durations of at least 1m",
        );
        check(
            f.refit_interval >= Duration::from_secs(10),
            "anomaly_detection.forecast.refit_interval",
            "must be at least 10s",
        );
        let s = &self.store;
        check(
            s.shards.is_power_of_two() && s.shards <= 4096,
            "store.shards",
            "must be a power of two up to 4096",
        );
        check(s.max_series >= 1, "store.max_series", "must be at least 1");
        check(
            s.retention >= Duration::from_secs(60),
            "store.retention",
            "must be at least 1m",
        );
        check(
            s.snapshot_interval.is_zero() || s.snapshot_interval >= Duration::from_secs(10),
            "store.snapshot_interval",
            "must be 0s (off) or at least 10s",
        );
        check(
            s.series_idle_timeout >= Duration::from_secs(10),
            "store.series_idle_timeout",
            "must be at least 10s",
        );
        let i = &self.ingest;
        check(
            i.max_body_bytes >= 1024,
            "ingest.max_body_bytes",
            "must be at least 1024",
        );
        check(
            i.max_decompressed_bytes >= i.max_body_bytes,
            "ingest.max_decompressed_bytes",
            "must be at least ingest.max_body_bytes",
        );
        check(
            i.max_decompressed_bytes < u32::MAX as usize,
            "ingest.max_decompressed_bytes",
            "must be below 4 GiB",
        );
        check(
            i.max_inflight_requests >= 1,
            "ingest.max_inflight_requests",
            "must be at least 1",
        );
        check(
            i.body_read_timeout >= Duration::from_millis(100),
            "ingest.body_read_timeout",
            "must be at least 100ms",
        );
        check(
            i.auth.username.is_empty() || !i.auth.password.is_empty(),
            "ingest.auth.password",
            "is required when ingest.auth.username is set",
        );
        check(
            matches!(self.app.log_format.as_str(), "text" | "json"),
            "app.log_format",
            "must be text or json",
        );
        for (key, url) in [
            ("notification.webhook.url", &self.notification.webhook.url),
            (
                "notification.alertmanager.url",
                &self.notification.alertmanager.url,
            ),
            ("writeback.url", &self.writeback.url),
            ("prometheus.url", &self.prometheus.url),
            ("loki.url", &self.loki.url),
            ("llm.base_url", &self.llm.base_url),
            ("kubernetes.api_url", &self.kubernetes.api_url),
        ] {
            check(
                url.is_empty() || url.starts_with("http://") || url.starts_with("https://"),
                key,
                "must be an http:// or https:// URL",
            );
        }
        check(
            self.writeback.interval >= Duration::from_secs(1),
            "writeback.interval",
            "must be at least 1s",
        );
        check(
            self.notification.alertmanager.resend_interval >= Duration::from_secs(1),
            "notification.alertmanager.resend_interval",
            "must be at least 1s",
        );
        check(
            self.notification.webhook.queue_size >= 1,
            "notification.webhook.queue_size",
            "must be at least 1",
        );
        check(
            self.writeback.queue_size >= 1,
            "writeback.queue_size",
            "must be at least 1",
        );
        let l = &self.llm;
        check(
            matches!(l.provider.as_str(), "anthropic" | "openai"),
            "llm.provider",
            "must be anthropic or openai (any OpenAI-compatible server)",
        );
        check(
            (0.0..=2.0).contains(&l.temperature),
            "llm.temperature",
            "must be in [0, 2]",
        );
        check(l.max_tokens >= 64, "llm.max_tokens", "must be at least 64");
        check(
            l.max_prompt_chars >= 1000,
            "llm.max_prompt_chars",
            "must be at least 1000",
        );
        p.extend(self.scrape.problems());
        p.extend(self.incidents.problems());
        p.extend(self.risk_assessment.problems());
        p.extend(
            self.auto_remediation
                .problems(!self.api.auth_token.is_empty()),
        );
        p.extend(self.rca.problems());

        p
    }
}
