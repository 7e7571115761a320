//! Kubernetes events for the RCA, read through the kube crate (feature `kube`): the events of
//! the incident's namespace in the analysis window, as `ClusterEvent`s (rollouts, OOM kills,
//! crash loops, failed scheduling, config changes).
//!
//! The client comes from the environment (in-cluster service account or `KUBECONFIG`), or from
//! `kubernetes.api_url` (tests point it at an in-process fake API server speaking the real JSON).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};

use super::events::{ClusterEvent, EventSource, EventsFuture};
use crate::config::KubernetesConfig;

pub struct KubeEvents {
    client: kube::Client,
}

/// The event source the config asks for: `None` when events are off or no cluster is
/// reachable from this environment (logged; the RCA then says it had no events).
pub async fn event_source(config: &KubernetesConfig) -> Option<Arc<dyn EventSource>> {
    if !config.events {
        return None;
    }
    let client = crate::net::kube::client(&config.api_url).await;
    match client {
        Ok(client) => {
            tracing::info!("Kubernetes events: reading through the API server");
            Some(Arc::new(KubeEvents { client }))
        }
        Err(e) => {
            tracing::info!(reason = %e, "Kubernetes events: no cluster reachable; RCA goes without them");
            None
        }
    }
}

fn to_cluster_event(namespace: &str, e: Event) -> Option<ClusterEvent> {
    let ts_ms = e
        .last_timestamp
        .as_ref()
        .map(|t| t.0.as_millisecond())
        .or_else(|| e.event_time.as_ref().map(|t| t.0.as_millisecond()))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0.as_millisecond()))
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_millisecond())
        })?;
    let object = format!(
        "{}/{}",
        e.involved_object.kind.unwrap_or_default(),
        e.involved_object.name.unwrap_or_default()
    );
    Some(ClusterEvent {
        namespace: namespace.to_string(),
        reason: e.reason.unwrap_or_default(),
        event_type: e.type_.unwrap_or_else(|| "Normal".into()),
        object,
        message: e.message.unwrap_or_default().chars().take(500).collect(),
        ts_ms,
        count: e.count.unwrap_or(1).max(1) as u32,
    })
}

impl EventSource for KubeEvents {
    fn events<'a>(&'a self, namespace: &'a str, since_ms: i64, until_ms: i64) -> EventsFuture<'a> {
        Box::pin(async move {
            let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
            let list = api
                .list(&ListParams::default().limit(500))
                .await
                .map_err(|e| format!("listing events in {namespace}: {e}"))?;
            let mut out: Vec<ClusterEvent> = list
                .items
                .into_iter()
                .filter_map(|e| to_cluster_event(namespace, e))
                .filter(|e| (since_ms..=until_ms).contains(&e.ts_ms))
                .collect();
            out.sort_by_key(|e| e.ts_ms);
            Ok(out)
        })
    }

    fn name(&self) -> &'static str {
        "Kubernetes API"
    }
}
