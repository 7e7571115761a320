//! Cluster events as RCA evidence: rollouts, OOM kills, crash loops, failed scheduling, config
//! changes in the incident's namespace. A source is anything that can list them for a time
//! range: the Kubernetes API (`kubernetes` module), or the simulator's cluster in the demo.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

pub use crate::model::rca::ClusterEvent;

pub type EventsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<ClusterEvent>, String>> + Send + 'a>>;

pub trait EventSource: Send + Sync {
    /// Events in `namespace` that happened within `[since_ms, until_ms]`.
    fn events<'a>(&'a self, namespace: &'a str, since_ms: i64, until_ms: i64) -> EventsFuture<'a>;

    /// For the RCA's notes.
    fn name(&self) -> &'static str;
}

/// Events recorded in memory: the simulator's cluster publishes its rollouts and OOM kills here.
#[derive(Default)]
pub struct RecordedEvents(Mutex<Vec<ClusterEvent>>);

impl RecordedEvents {
    pub fn push(&self, e: ClusterEvent) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }
}

impl EventSource for RecordedEvents {
    fn events<'a>(&'a self, namespace: &'a str, since_ms: i64, until_ms: i64) -> EventsFuture<'a> {
        let found: Vec<ClusterEvent> = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|e| e.namespace == namespace && (since_ms..=until_ms).contains(&e.ts_ms))
            .cloned()
            .collect();
        Box::pin(async move { Ok(found) })
    }

    fn name(&self) -> &'static str {
        "recorded events"
    }
}
