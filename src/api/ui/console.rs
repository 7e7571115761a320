//! A read-only console: `/ui/incidents` (open and mitigated incidents, each anomaly with a
//! sparkline of its series' ring) and `/ui/plans` (plans waiting for approval first, then the
//! latest decided ones). It shows what the JSON API shows; it never shows callback tokens, so
//! nothing here can decide a plan.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::{label_text, page, wire_name};
use crate::Pipeline;
use crate::decide::plan::PlanState;
use crate::incident::IncidentState;
use crate::model::clock::rfc3339_ms;

/// Decided plans shown under the pending ones.
const RECENT_PLANS: usize = 50;
/// Points drawn per sparkline; longer rings are thinned evenly.
const SPARK_POINTS: usize = 240;
const SPARK_WIDTH: f64 = 160.0;
const SPARK_HEIGHT: f64 = 28.0;

pub async fn incidents(State(p): State<Arc<Pipeline>>) -> Response {
    let mut open = p.incidents.list(Some(IncidentState::Open));
    open.extend(p.incidents.list(Some(IncidentState::Mitigated)));
    let body = html! {
        h1 { "Incidents (" (open.len()) " open or mitigated)" }
        @if open.is_empty() { p.muted { "No open incidents." } }
        @for i in &open {
            section.incident {
                h2 { (i.title) }
                p {
                    code { (i.id) } " · " (i.severity.as_str()) " · " (wire_name(&i.state))
                    " · opened " (i.opened_at) " · " (i.anomalies_firing) " firing"
                }
                table {
                    tr { th { "metric" } th { "labels" } th { "kind" } th { "ring" } th { "since" } }
                    @for m in &i.anomalies {
                        tr {
                            td { code { (m.metric) } }
                            td.labels { (label_text(&m.labels)) }
                            td { (m.kind) @if !m.firing { " (resolved)" } }
                            td { (spark_for(&p, &m.anomaly_id)) }
                            td { (m.started_at) }
                        }
                    }
                }
                @if let Some(h) = i.rca.as_ref().and_then(|r| r.hypotheses.first()) {
                    p { "Most likely: " strong { (h.root_cause) } " " span.muted { (format!("{:.0} %", h.confidence * 100.0)) } }
                }
            }
        }
    };
    page(StatusCode::OK, "Incidents", body)
}

pub async fn plans(State(p): State<Arc<Pipeline>>) -> Response {
    p.remediator.expire().await;
    let all = p.remediator.list();
    let (pending, decided): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|plan| plan.state == PlanState::PendingApproval);
    let body = html! {
        h1 { "Plans" }
        @if p.remediator.dry_run() { p.dry { "Dry-run: approved steps are simulated." } }
        h2 { "Waiting for approval (" (pending.len()) ")" }
        (plan_table(&pending))
        h2 { "Decided, latest first" }
        (plan_table(&decided[..decided.len().min(RECENT_PLANS)]))
    };
    page(StatusCode::OK, "Plans", body)
}

fn plan_table(plans: &[crate::decide::plan::Plan]) -> Markup {
    html! {
        @if plans.is_empty() { p.muted { "None." } } @else {
            table.plans {
                tr { th { "plan" } th { "incident" } th { "playbook" } th { "steps" } th { "risk" } th { "approvals" } th { "state" } th { "expires" } }
                @for plan in plans {
                    tr {
                        td { code { (plan.id) } }
                        td { code { (plan.incident_id) } }
                        td { (plan.playbook_id) }
                        td {
                            @for s in &plan.steps {
                                code { (s.action.as_str()) " " (s.namespace) "/" (s.target) } br;
                            }
                        }
                        td { (format!("{:.2}", plan.risk.score)) " " (wire_name(&plan.risk.level)) }
                        td {
                            (plan.approvals.len()) " of "
                            (plan.approvals_required.map_or("-".to_string(), |n| n.to_string()))
                        }
                        td { (wire_name(&plan.state)) " / " (plan.execution.status.as_str()) }
                        td { (rfc3339_ms(plan.expires_ms)) }
                    }
                }
            }
        }
    }
}

/// The sparkline of the series behind an anomaly, or nothing when the series is gone.
fn spark_for(p: &Pipeline, anomaly_id: &str) -> Markup {
    let Ok(anomaly) = p.book.get(anomaly_id) else {
        return html! {};
    };
    let Ok(hash) = u64::from_str_radix(&anomaly.series_id, 16) else {
        return html! {};
    };
    // The copy is made under the shard lock; drawing happens after it is released.
    let samples = p
        .store
        .with_series(hash, |s| s.ring.samples_since(i64::MIN))
        .unwrap_or_default();
    sparkline(&samples)
}

/// An inline SVG polyline of the finite samples, scaled to their range. Presentation
/// attributes only (no `style`), so the page's CSP needs no inline styles.
pub fn sparkline(samples: &[(i64, f64)]) -> Markup {
    let finite: Vec<(i64, f64)> = samples
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    if finite.len() < 2 {
        return html! { span.muted { "-" } };
    }
    let step = finite.len().div_ceil(SPARK_POINTS);
    let picked: Vec<(i64, f64)> = finite.iter().copied().step_by(step).collect();
    let (t0, t1) = (picked[0].0, picked[picked.len() - 1].0);
    let (lo, hi) = picked
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, v)| {
            (lo.min(v), hi.max(v))
        });
    let span_t = (t1 - t0).max(1) as f64;
    let span_v = if hi > lo { hi - lo } else { 1.0 };
    let points: Vec<String> = picked
        .iter()
        .map(|&(t, v)| {
            let x = (t - t0) as f64 / span_t * SPARK_WIDTH;
            let y = SPARK_HEIGHT - 1.0 - (v - lo) / span_v * (SPARK_HEIGHT - 2.0);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    html! {
        svg.spark xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {SPARK_WIDTH} {SPARK_HEIGHT}"))
            role="img" aria-label=(format!("{} samples from {lo} to {hi}", finite.len())) {
            polyline fill="none" stroke="#2563eb" stroke-width="1.2" points=(points.join(" ")) {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sparkline;

    #[test]
    fn a_sparkline_spans_its_box_and_skips_what_is_not_finite() {
        let samples: Vec<(i64, f64)> = (0..1000)
            .map(|i| (i * 1000, if i == 500 { f64::NAN } else { i as f64 }))
            .collect();
        let svg = sparkline(&samples).into_string();
        assert!(svg.starts_with("<svg"));
        let points = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let coords: Vec<&str> = points.split(' ').collect();
        assert!(coords.len() <= 240 && coords.len() > 100);
        assert_eq!(coords[0], "0.0,27.0");
        let last: Vec<f64> = coords[coords.len() - 1]
            .split(',')
            .map(|c| c.parse().unwrap())
            .collect();
        assert!((last[0] - 160.0).abs() < 0.01 && (last[1] - 1.0).abs() < 0.01);
        assert!(!svg.contains("NaN"));
        assert!(sparkline(&[(0, 1.0)]).into_string().contains('-'));
    }
}
