//! The event router: turns one batch's anomaly transitions into what must happen next — the
//! anomaly book and incident book updated, the notices to send, the incident steps to announce
//! (coalesced per batch), the incidents to analyze and the resolved ones to learn from. Pure
//! bookkeeping: no channel, no task, no I/O, so it is tested without a runtime. Sending what it
//! returns is the pipeline's job.

use std::sync::Arc;

use crate::detect::Severity;
use crate::detect::book::{Anomaly, AnomalyBook, anomaly_id};
use crate::detect::event::{AnomalyEvent, EventKind};
use crate::incident::{Change, Incident, IncidentBook, IncidentState};

/// What one batch of events asks for, in the order it must be sent.
#[derive(Default)]
pub struct Routed {
    /// Each event with its anomaly as recorded and, for an escalation, the severity before.
    pub notices: Vec<(AnomalyEvent, Anomaly, Option<Severity>)>,
    /// Incident lifecycle steps (`incident.opened`, …) with the incident as it is now.
    pub incident_steps: Vec<(&'static str, Incident)>,
    /// Incidents that opened, grew or reopened: their RCA is due (after their steps are sent,
    /// so `incident.analyzed` never precedes `incident.opened`).
    pub analyze: Vec<String>,
    /// Incidents that resolved since the last call: announced, then written to the knowledge base.
    pub resolved: Vec<Incident>,
}

#[derive(Clone)]
pub struct EventRouter {
    pub book: Arc<AnomalyBook>,
    pub incidents: Arc<IncidentBook>,
}

impl EventRouter {
    pub fn route(&self, events: Vec<AnomalyEvent>) -> Routed {
        let mut out = Routed::default();
        // Incident steps of one batch are coalesced: a level shift fires and resolves at once,
        // and an incident's page must not flap open/mitigated within one request.
        // (incident, state before the batch (None: opened in it), state now)
        let mut touched: Vec<(String, Option<IncidentState>, IncidentState)> = Vec::new();
        for e in events {
            let previous = (e.kind == EventKind::Escalated)
                .then(|| self.book.get(&anomaly_id(e.anomaly_id)).ok())
                .flatten()
                .map(|a| a.severity);
            let mut anomaly = self.book.record(&e);
            let (incident_id, change, state) = self.incidents.observe(&e, &anomaly);
            self.book.set_incident(e.anomaly_id, &incident_id);
            // The state before this batch follows from the first change seen in it.
            match touched.iter_mut().find(|t| t.0 == incident_id) {
                Some(t) => t.2 = state,
                None => {
                    let initial = match change {
                        Change::Opened => None,
                        Change::Reopened => Some(IncidentState::Mitigated),
                        Change::Mitigated | Change::Joined => Some(IncidentState::Open),
                        Change::Updated => Some(state),
                    };
                    touched.push((incident_id.clone(), initial, state));
                }
            }
            if change == Change::Opened {
                tracing::info!(incident = %incident_id, first = %anomaly.id, metric = %anomaly.metric, series = %e.labels.display(), "incident opened");
            }
            if matches!(change, Change::Opened | Change::Joined | Change::Reopened)
                && !out.analyze.contains(&incident_id)
            {
                out.analyze.push(incident_id.clone());
            }
            anomaly.incident_id = Some(incident_id);
            log_transition(&e, &anomaly);
            out.notices.push((e, anomaly, previous));
        }
        use IncidentState::{Mitigated, Open};
        for (id, initial, now) in touched {
            let steps: &[&'static str] = match (initial, now) {
                (None, Mitigated) => &["incident.opened", "incident.mitigated"],
                (None, _) => &["incident.opened"],
                (Some(Open), Mitigated) => &["incident.mitigated"],
                (Some(Mitigated), Open) => &["incident.reopened"],
                _ => &[],
            };
            if steps.is_empty() {
                continue;
            }
            let Some(snapshot) = self.incidents.get(&id) else {
                continue;
            };
            for step in steps {
                out.incident_steps.push((step, snapshot.clone()));
            }
        }
        out.resolved = self.take_resolved();
        out
    }

    /// Incidents resolved since the last call (by a batch or by the clock).
    pub fn take_resolved(&self) -> Vec<Incident> {
        let resolved = self.incidents.take_resolved();
        for incident in &resolved {
            tracing::info!(incident = %incident.id, anomalies = incident.anomalies.len(), "incident resolved");
        }
        resolved
    }
}

fn log_transition(e: &AnomalyEvent, anomaly: &Anomaly) {
    match e.kind {
        EventKind::Fired | EventKind::Escalated => tracing::info!(
            id = %anomaly.id, event = ?e.kind, metric = %anomaly.metric, series = %e.labels.display(),
            category = %anomaly.category, severity = anomaly.severity.as_str(),
            current = anomaly.value, expected = anomaly.expected, sigma = format!("{:.1}", anomaly.sigma),
            "anomaly detected"
        ),
        EventKind::Resolved => tracing::info!(
            id = %anomaly.id, metric = %anomaly.metric, series = %e.labels.display(), reason = ?e.reason, "anomaly resolved"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::incident::IncidentParams;

    fn event(id: u64, kind: EventKind, service: &str, ts: i64, severity: Severity) -> AnomalyEvent {
        let labels = [
            ("__name__", "latency"),
            ("namespace", "trading"),
            ("service", service),
        ];
        crate::detect::event::test_event(id, kind, &labels, ts, severity)
    }

    fn router() -> EventRouter {
        EventRouter {
            book: Arc::new(AnomalyBook::new(100)),
            incidents: Arc::new(IncidentBook::new(IncidentParams {
                group_by: vec!["namespace".into(), "service".into()],
                window: Duration::from_secs(600),
                max_resolved: 10,
            })),
        }
    }

    fn steps(r: &Routed) -> Vec<&'static str> {
        r.incident_steps.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn a_fire_and_resolve_in_one_batch_open_and_mitigate_once() {
        let r = router();
        let out = r.route(vec![
            event(1, EventKind::Fired, "matching", 1_000, Severity::High),
            event(1, EventKind::Resolved, "matching", 1_000, Severity::High),
        ]);
        assert_eq!(steps(&out), ["incident.opened", "incident.mitigated"]);
        assert_eq!(out.notices.len(), 2);
        assert_eq!(out.analyze.len(), 1);
        let incident = out.notices[0].1.incident_id.clone().expect("grouped");
        assert_eq!(out.analyze[0], incident);
    }

    #[test]
    fn a_second_anomaly_of_the_group_joins_without_a_new_page_but_asks_for_analysis() {
        let r = router();
        let first = r.route(vec![event(
            1,
            EventKind::Fired,
            "matching",
            1_000,
            Severity::High,
        )]);
        assert_eq!(steps(&first), ["incident.opened"]);
        let second = r.route(vec![event(
            2,
            EventKind::Fired,
            "matching",
            2_000,
            Severity::High,
        )]);
        assert!(steps(&second).is_empty(), "{:?}", steps(&second));
        assert_eq!(second.analyze, first.analyze);
        let other = r.route(vec![event(
            3,
            EventKind::Fired,
            "wallet",
            2_000,
            Severity::High,
        )]);
        assert_eq!(steps(&other), ["incident.opened"]);
        assert_ne!(other.analyze, first.analyze);
    }

    #[test]
    fn mitigation_then_a_new_anomaly_reopens() {
        let r = router();
        r.route(vec![event(
            1,
            EventKind::Fired,
            "matching",
            1_000,
            Severity::High,
        )]);
        let calm = r.route(vec![event(
            1,
            EventKind::Resolved,
            "matching",
            2_000,
            Severity::High,
        )]);
        assert_eq!(steps(&calm), ["incident.mitigated"]);
        let again = r.route(vec![event(
            2,
            EventKind::Fired,
            "matching",
            3_000,
            Severity::High,
        )]);
        assert_eq!(steps(&again), ["incident.reopened"]);
        assert_eq!(again.analyze.len(), 1);
    }

    #[test]
    fn an_escalation_carries_the_severity_it_replaced() {
        let r = router();
        r.route(vec![event(
            1,
            EventKind::Fired,
            "matching",
            1_000,
            Severity::Low,
        )]);
        let up = r.route(vec![event(
            1,
            EventKind::Escalated,
            "matching",
            2_000,
            Severity::Critical,
        )]);
        assert_eq!(up.notices[0].2, Some(Severity::Low));
        assert_eq!(up.notices[0].1.severity, Severity::Critical);
        assert!(steps(&up).is_empty());
    }

    #[test]
    fn a_quiet_window_resolves_the_incident_once() {
        let r = router();
        r.route(vec![
            event(1, EventKind::Fired, "matching", 1_000, Severity::High),
            event(1, EventKind::Resolved, "matching", 1_000, Severity::High),
        ]);
        r.incidents.tick(1_000 + 601_000);
        let resolved = r.take_resolved();
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].state, IncidentState::Resolved);
        assert!(r.take_resolved().is_empty());
    }
}
