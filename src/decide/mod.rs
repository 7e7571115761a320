//! Deciding what to do about an incident: its risk (the seed's four-dimension model), the
//! playbooks that fit it, and the plan with the approvals it needs.

pub mod plan;
pub mod playbooks;
pub mod risk;

#[cfg(test)]
pub(crate) mod test_support {
    use crate::incident::Incident;

    pub(crate) fn analyzed_incident(cause: &str, namespace: &str, category: &str) -> Incident {
        let (book, id) = analyzed_book(cause, namespace, category);
        book.get(&id).unwrap()
    }

    /// An incident book holding one open, analyzed incident; returns the book and its id.
    pub(crate) fn analyzed_book(
        cause: &str,
        namespace: &str,
        category: &str,
    ) -> (crate::incident::IncidentBook, String) {
        use crate::detect::event::{AnomalyEvent, AnomalyKind, EventKind};
        let labels = crate::model::labels::SeriesLabels::from_pairs(
            [
                ("__name__", "memory_usage"),
                ("deployment", "risk-service"),
                ("namespace", namespace),
                ("pod", "risk-service-0"),
                ("service", "risk-service"),
            ]
            .iter()
            .map(|(a, b)| (a.as_bytes(), b.as_bytes())),
        )
        .unwrap();
        let e = AnomalyEvent {
            kind: EventKind::Fired,
            anomaly_kind: AnomalyKind::Anomaly,
            breach: None,
            shift: None,
            peer: None,
            service: None,
            anomaly_id: 1,
            series_id: 1,
            labels,
            category: category.into(),
            started_ts: 1000,
            ts: 1000,
            score: Default::default(),
            severity: crate::detect::Severity::High,
            reason: None,
            produced_at: std::time::SystemTime::now(),
        };
        let book = crate::incident::IncidentBook::new(crate::incident::IncidentParams {
            group_by: vec!["namespace".into(), "service".into()],
            window: std::time::Duration::from_secs(600),
            max_resolved: 10,
        });
        let (id, _, _) = book.observe(&e, &crate::detect::book::Anomaly::from_event(&e));
        let fact = crate::analyze::facts::SeriesFact {
            metric: "memory_usage".into(),
            labels: [("pod".to_string(), "risk-service-0".to_string())].into(),
            anomalous: true,
            kinds: vec!["anomaly"],
            cumulative: false,
            onset_ms: Some(900),
            peak: if cause == "memory_leak" { 0.95 } else { 0.55 },
            trough: 0.5,
            increase: 0.4,
            before: Some(0.52),
        };
        book.set_rca(
            &id,
            crate::analyze::Rca {
                analyzed_at: String::new(),
                duration_ms: 0,
                hypotheses: vec![crate::analyze::Hypothesis {
                    cause: cause.into(),
                    root_cause: String::new(),
                    confidence: 0.9,
                    source: "rule:memory_leak_oom".into(),
                    evidence: vec![],
                    remediation: vec![],
                }],
                moved: vec![fact],
                events: vec![],
                logs: None,
                similar: vec![],
                llm_summary: None,
                notes: vec![],
            },
        );
        (book, id)
    }
}
