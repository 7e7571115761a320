//! The Kubernetes executor (feature `kube`): pod restart (delete with a grace period; its
//! controller recreates it), scale a deployment, raise an HPA's bounds, and roll a deployment
//! back to its previous ReplicaSet's pod template (what `kubectl rollout undo` does). Each
//! action returns the state it replaced, and the undo restores it. Reads the live object first
//! so the safety rails see its real labels.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;

use super::executor::{ActError, ActFuture, Applied, Executor, LiveObject, int_parameter};
use super::safety::Cleared;
use crate::decide::plan::PlannedStep;
use crate::model::action::Action;

pub struct KubeExecutor {
    client: kube::Client,
}

const REVISION: &str = "deployment.kubernetes.io/revision";

impl KubeExecutor {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The HPA a step acts on: `parameters.hpa`, else the target's name.
    fn hpa_name(step: &PlannedStep) -> String {
        step.parameters
            .get("hpa")
            .and_then(|v| v.as_str())
            .unwrap_or(&step.target)
            .to_string()
    }

    async fn restart_pod(
        &self,
        step: &PlannedStep,
        version: Option<&str>,
    ) -> Result<Applied, ActError> {
        let api: Api<Pod> = self.api(&step.namespace);
        let pod = api.get(&step.target).await.map_err(|e| err(step, e))?;
        unchanged(step, version, &pod.metadata)?;
        let grace = int_parameter(step, "grace_period", 30)?;
        let owner = pod
            .metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.first())
            .map(|o| format!("{}/{}", o.kind, o.name));
        if owner.is_none() {
            // A bare pod is not recreated: deleting it is not a restart.
            return Err(ActError::Invalid(format!(
                "pod {}/{} has no controller; deleting it would not restart it",
                step.namespace, step.target
            )));
        }
        let dp = DeleteParams {
            grace_period_seconds: Some(grace.clamp(0, 3600) as u32),
            preconditions: version.map(|v| Preconditions {
                resource_version: Some(v.to_string()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        api.delete(&step.target, &dp)
            .await
            .map_err(|e| err(step, e))?;
        Ok(Applied {
            before: json!({"pod": step.target, "uid": pod.metadata.uid, "owner": owner, "grace_period": grace}),
            reversible: false,
        })
    }

    async fn scale(&self, step: &PlannedStep, version: Option<&str>) -> Result<Applied, ActError> {
        let api: Api<Deployment> = self.api(&step.namespace);
        let d = api.get(&step.target).await.map_err(|e| err(step, e))?;
        let current = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let wanted = match step.parameters.get("replicas") {
            Some(_) => int_parameter(step, "replicas", current as i64)?,
            None => current as i64 + int_parameter(step, "replicas_increase", 1)?,
        };
        let max = int_parameter(step, "max_replicas", 100)?;
        let wanted = wanted.clamp(0, max) as i32;
        patch_replicas(&api, step, wanted, version).await?;
        Ok(Applied {
            before: json!({"replicas": current, "after": wanted}),
            reversible: true,
        })
    }

    async fn scale_hpa(
        &self,
        step: &PlannedStep,
        version: Option<&str>,
    ) -> Result<Applied, ActError> {
        let api: Api<HorizontalPodAutoscaler> = self.api(&step.namespace);
        let name = Self::hpa_name(step);
        let h = api.get(&name).await.map_err(|e| err(step, e))?;
        let spec = h
            .spec
            .ok_or_else(|| ActError::Invalid(format!("HPA {name} has no spec")))?;
        let min = spec.min_replicas.unwrap_or(1);
        let max = spec.max_replicas;
        let new_min = (min as i64 + int_parameter(step, "min_replicas_increase", 1)?).max(1);
        let new_max = (max as i64 + int_parameter(step, "max_replicas_increase", 2)?).max(new_min);
        let mut patch = json!({"spec": {"minReplicas": new_min, "maxReplicas": new_max}});
        if let Some(v) = version {
            patch["metadata"] = json!({"resourceVersion": v});
        }
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| err(step, e))?;
        Ok(Applied {
            before: json!({"hpa": name, "minReplicas": min, "maxReplicas": max, "after": {"minReplicas": new_min, "maxReplicas": new_max}}),
            reversible: true,
        })
    }

    async fn rollback(
        &self,
        step: &PlannedStep,
        version: Option<&str>,
    ) -> Result<Applied, ActError> {
        let api: Api<Deployment> = self.api(&step.namespace);
        let mut d = api.get(&step.target).await.map_err(|e| err(step, e))?;
        unchanged(step, version, &d.metadata)?;
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let revision_of = |annotations: &Option<BTreeMap<String, String>>| {
            annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .and_then(|r| r.parse::<i64>().ok())
        };
        let current = revision_of(&d.metadata.annotations).ok_or_else(|| {
            ActError::Invalid(format!(
                "deployment {} has no {REVISION} annotation",
                step.target
            ))
        })?;
        let selector = d
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.as_ref())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let sets: Api<ReplicaSet> = self.api(&step.namespace);
        let list = sets
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| err(step, e))?;
        let previous = list
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|o| o.uid == uid))
            })
            .filter_map(|rs| revision_of(&rs.metadata.annotations).map(|r| (r, rs)))
            .filter(|(r, _)| *r < current)
            .max_by_key(|(r, _)| *r)
            .ok_or_else(|| {
                ActError::Invalid(format!(
                    "deployment {} has no earlier revision to roll back to",
                    step.target
                ))
            })?;
        let (to_revision, rs) = previous;
        let mut template = rs
            .spec
            .and_then(|s| s.template)
            .ok_or_else(|| ActError::Invalid("previous ReplicaSet has no template".into()))?;
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove("pod-template-hash");
        }
        let spec = d
            .spec
            .as_mut()
            .ok_or_else(|| ActError::Invalid(format!("deployment {} has no spec", step.target)))?;
        // Without the old template there is nothing to roll back to: refuse before changing.
        let before = serde_json::to_value(&spec.template).map_err(|e| {
            ActError::Invalid(format!(
                "the template of {} cannot be saved for the undo: {e}",
                step.target
            ))
        })?;
        spec.template = template;
        api.replace(&step.target, &PostParams::default(), &d)
            .await
            .map_err(|e| err(step, e))?;
        Ok(Applied {
            before: json!({"template": before, "revision": current, "rolled_back_to": to_revision}),
            reversible: true,
        })
    }
}

/// The object is still the one the rails read (when they read one).
fn unchanged(
    step: &PlannedStep,
    version: Option<&str>,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Result<(), ActError> {
    match version {
        Some(v) if meta.resource_version.as_deref() != Some(v) => Err(ActError::Conflict(format!(
            "{}/{} changed since the safety rails read it",
            step.namespace, step.target
        ))),
        _ => Ok(()),
    }
}

/// Sets the replica count; with `version`, only if the deployment is still at it (a merge
/// patch carrying `metadata.resourceVersion` is refused with 409 otherwise).
async fn patch_replicas(
    api: &Api<Deployment>,
    step: &PlannedStep,
    replicas: i32,
    version: Option<&str>,
) -> Result<(), ActError> {
    let mut patch = json!({"spec": {"replicas": replicas}});
    if let Some(v) = version {
        patch["metadata"] = json!({"resourceVersion": v});
    }
    api.patch(&step.target, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| err(step, e))
}

fn err(step: &PlannedStep, e: kube::Error) -> ActError {
    match e {
        kube::Error::Api(s) if s.code == 409 => ActError::Conflict(format!(
            "{}/{} changed since the safety rails read it: {}",
            step.namespace, step.target, s.message
        )),
        kube::Error::Api(s) if s.is_not_found() => ActError::NotFound(format!(
            "{} {}/{}",
            step.action, step.namespace, step.target
        )),
        kube::Error::Api(s) => ActError::Failed(format!(
            "Kubernetes API refused {} on {}/{}: {} ({})",
            step.action, step.namespace, step.target, s.message, s.code
        )),
        other => ActError::Failed(format!(
            "Kubernetes API unreachable for {} on {}/{}: {other}",
            step.action, step.namespace, step.target
        )),
    }
}

fn live(
    kind: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> LiveObject {
    LiveObject {
        kind: kind.into(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        labels: meta.labels.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone(),
    }
}

impl Executor for KubeExecutor {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn handles(&self, action: Action) -> bool {
        matches!(
            action,
            Action::PodRestart
                | Action::ScaleDeployment
                | Action::HpaScale
                | Action::DeploymentRollback
        )
    }

    fn inspect<'a>(&'a self, step: &'a PlannedStep) -> ActFuture<'a, Option<LiveObject>> {
        Box::pin(async move {
            let object = match step.action {
                Action::PodRestart => {
                    let p: Pod = self
                        .api(&step.namespace)
                        .get(&step.target)
                        .await
                        .map_err(|e| err(step, e))?;
                    live("Pod", &p.metadata)
                }
                Action::HpaScale => {
                    let h: HorizontalPodAutoscaler = self
                        .api(&step.namespace)
                        .get(&Self::hpa_name(step))
                        .await
                        .map_err(|e| err(step, e))?;
                    live("HorizontalPodAutoscaler", &h.metadata)
                }
                _ => {
                    let d: Deployment = self
                        .api(&step.namespace)
                        .get(&step.target)
                        .await
                        .map_err(|e| err(step, e))?;
                    live("Deployment", &d.metadata)
                }
            };
            Ok(Some(object))
        })
    }

    fn apply<'a>(&'a self, cleared: &'a Cleared<'_>) -> ActFuture<'a, Applied> {
        Box::pin(async move {
            let version = cleared.live().and_then(|l| l.resource_version.as_deref());
            let step = cleared.step();
            match step.action {
                Action::PodRestart => self.restart_pod(step, version).await,
                Action::ScaleDeployment => self.scale(step, version).await,
                Action::HpaScale => self.scale_hpa(step, version).await,
                Action::DeploymentRollback => self.rollback(step, version).await,
                other => Err(ActError::Invalid(format!(
                    "the Kubernetes executor does not run {other}"
                ))),
            }
        })
    }

    fn undo<'a>(
        &'a self,
        step: &'a PlannedStep,
        before: &'a serde_json::Value,
    ) -> ActFuture<'a, ()> {
        Box::pin(async move {
            match step.action {
                Action::ScaleDeployment => {
                    let replicas = before["replicas"]
                        .as_i64()
                        .ok_or_else(|| ActError::Invalid("no replicas to restore".into()))?;
                    patch_replicas(&self.api(&step.namespace), step, replicas as i32, None).await
                }
                Action::HpaScale => {
                    let name = before["hpa"].as_str().unwrap_or(&step.target);
                    let patch = json!({"spec": {"minReplicas": before["minReplicas"], "maxReplicas": before["maxReplicas"]}});
                    let api: Api<HorizontalPodAutoscaler> = self.api(&step.namespace);
                    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| ())
                        .map_err(|e| err(step, e))
                }
                Action::DeploymentRollback => {
                    let api: Api<Deployment> = self.api(&step.namespace);
                    let mut d = api.get(&step.target).await.map_err(|e| err(step, e))?;
                    let template = serde_json::from_value(before["template"].clone())
                        .map_err(|e| ActError::Invalid(format!("saved template unusable: {e}")))?;
                    if let Some(spec) = d.spec.as_mut() {
                        spec.template = template;
                    }
                    api.replace(&step.target, &PostParams::default(), &d)
                        .await
                        .map(|_| ())
                        .map_err(|e| err(step, e))
                }
                other => Err(ActError::Invalid(format!("{other} cannot be undone"))),
            }
        })
    }
}

/// The client the config asks for: `kubernetes.api_url`, else in-cluster or `KUBECONFIG`.
pub async fn client(config: &crate::config::KubernetesConfig) -> Result<kube::Client, String> {
    crate::net::kube::client(&config.api_url).await
}
