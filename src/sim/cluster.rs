//! The simulated cluster's Kubernetes API server: an in-process HTTP server speaking the API's
//! real JSON (objects, lists with label selectors, `Status` errors, merge patches, replace with
//! resourceVersion conflicts, deletes), for the demo's executor and the tests. No real cluster
//! runs here; this is what the Kubernetes executor is exercised against (the README says so).
//!
//! It stores whatever objects it is given, keyed by their API path, and records every request.
//! It is not a controller: deleting a pod does not recreate it; the demo reads
//! [`FakeCluster::changes`] to let the simulator react (a restarted pod sheds its leaked memory).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request the fake API server answered.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    objects: BTreeMap<String, Value>,
    requests: Vec<ApiRequest>,
    version: u64,
}

#[derive(Clone, Default)]
pub struct FakeCluster {
    inner: Arc<Mutex<Inner>>,
}

/// API path of a namespaced object.
pub fn object_path(kind: &str, namespace: &str, name: &str) -> String {
    let (prefix, plural) = match kind {
        "Pod" => ("/api/v1", "pods"),
        "Event" => ("/api/v1", "events"),
        "Deployment" => ("/apis/apps/v1", "deployments"),
        "ReplicaSet" => ("/apis/apps/v1", "replicasets"),
        "HorizontalPodAutoscaler" => ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
        other => ("/apis/unknown", other),
    };
    format!("{prefix}/namespaces/{namespace}/{plural}/{name}")
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code.as_u16()})
        .to_string(),
    )
        .into_response()
}

fn ok(v: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn selector_matches(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        object["metadata"]["labels"][k.trim()].as_str() == Some(v.trim())
    })
}

impl FakeCluster {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or replaces an object (its kind, namespace and name come from the object).
    pub fn put(&self, object: Value) {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut inner = self.lock();
        inner.version += 1;
        let mut object = object;
        object["metadata"]["resourceVersion"] = json!(inner.version.to_string());
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{kind}-{ns}-{name}"));
        }
        inner.objects.insert(object_path(&kind, &ns, &name), object);
    }

    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&object_path(kind, namespace, name))
            .cloned()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.lock().requests.clone()
    }

    /// Mutating requests (anything but GET) so far.
    pub fn changes(&self) -> Vec<ApiRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    /// A deployment with its ReplicaSets (revisions 1..=`revision`, each with its own image)
    /// and an HPA, as `kubectl create deployment` plus a few rollouts leave them.
    pub fn add_deployment(
        &self,
        namespace: &str,
        name: &str,
        replicas: i32,
        revision: i64,
        labels: Value,
    ) {
        let mut meta_labels = json!({"app": name});
        merge_patch(&mut meta_labels, &labels);
        let template = |rev: i64| {
            json!({"metadata": {"labels": {"app": name}},
                   "spec": {"containers": [{"name": name, "image": format!("registry.example/{name}:v{rev}")}]}})
        };
        let uid = format!("uid-Deployment-{namespace}-{name}");
        self.put(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "uid": uid, "labels": meta_labels,
                         "annotations": {"deployment.kubernetes.io/revision": revision.to_string()}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template(revision)},
        }));
        for rev in 1..=revision {
            let hash = format!("{:x}", 0x5f7c9d00 + rev);
            let mut t = template(rev);
            t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            self.put(json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": format!("{name}-{hash}"), "namespace": namespace,
                             "labels": {"app": name, "pod-template-hash": hash},
                             "annotations": {"deployment.kubernetes.io/revision": rev.to_string()},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid, "controller": true}]},
                "spec": {"replicas": if rev == revision { replicas } else { 0 },
                         "selector": {"matchLabels": {"app": name, "pod-template-hash": hash}}, "template": t},
            }));
        }
        self.put(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": namespace, "labels": meta_labels},
            "spec": {"minReplicas": replicas, "maxReplicas": replicas * 3,
                     "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}},
        }));
    }

    /// A pod of a deployment's current ReplicaSet.
    pub fn add_pod(&self, namespace: &str, deployment: &str, name: &str, labels: Value) {
        let mut meta_labels = json!({"app": deployment});
        merge_patch(&mut meta_labels, &labels);
        self.put(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": meta_labels,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{deployment}-rs"), "uid": format!("uid-rs-{deployment}"), "controller": true}]},
            "spec": {"containers": [{"name": deployment, "image": format!("registry.example/{deployment}")}]},
            "status": {"phase": "Running"},
        }));
    }

    /// Serves the API on 127.0.0.1 (random port); returns its base URL.
    pub async fn serve(&self) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(handle).with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(format!("http://{addr}"))
    }

    fn answer(&self, method: &Method, path: &str, query: &str, body: &[u8]) -> Response {
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => {
                    return status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        format!("invalid JSON: {e}"),
                    );
                }
            }
        };
        let mut inner = self.lock();
        inner.requests.push(ApiRequest {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            body: body.clone(),
        });
        let selector = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("labelSelector="))
            .map(|s| s.replace("%3D", "=").replace("%2C", ","))
            .unwrap_or_default();
        let not_found = || {
            let name = path.rsplit('/').next().unwrap_or_default();
            status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("\"{name}\" not found"),
            )
        };
        match *method {
            Method::GET if inner.objects.contains_key(path) => ok(&inner.objects[path]),
            Method::GET => {
                // A collection: objects directly below the path.
                let prefix = format!("{path}/");
                let items: Vec<Value> = inner
                    .objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                    .map(|(_, v)| v.clone())
                    .filter(|v| selector_matches(v, &selector))
                    .collect();
                if items.is_empty() && !path.contains("/namespaces/") {
                    return not_found();
                }
                let kind = items
                    .first()
                    .and_then(|i| i["kind"].as_str())
                    .map(|k| format!("{k}List"))
                    .unwrap_or_else(|| "List".into());
                ok(
                    &json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": inner.version.to_string()}, "items": items}),
                )
            }
            Method::DELETE => {
                let Some(current) = inner.objects.get(path) else {
                    return not_found();
                };
                let wanted = body["preconditions"]["resourceVersion"].as_str();
                if wanted.is_some() && wanted != current["metadata"]["resourceVersion"].as_str() {
                    return conflict();
                }
                match inner.objects.remove(path) {
                    Some(obj) => ok(&obj),
                    None => not_found(),
                }
            }
            Method::PATCH => {
                // A merge patch carrying metadata.resourceVersion is a precondition.
                let wanted = body["metadata"]["resourceVersion"].as_str();
                if let Some(current) = inner.objects.get(path)
                    && wanted.is_some()
                    && wanted != current["metadata"]["resourceVersion"].as_str()
                {
                    return conflict();
                }
                inner.version += 1;
                let version = inner.version.to_string();
                match inner.objects.get_mut(path) {
                    Some(obj) => {
                        merge_patch(obj, &body);
                        obj["metadata"]["resourceVersion"] = json!(version);
                        ok(obj)
                    }
                    None => not_found(),
                }
            }
            Method::PUT => {
                let Some(current) = inner.objects.get(path) else {
                    return not_found();
                };
                let sent = body["metadata"]["resourceVersion"].as_str();
                if sent.is_some() && sent != current["metadata"]["resourceVersion"].as_str() {
                    return conflict();
                }
                let mut obj = body;
                if obj["kind"] == "Deployment" {
                    let rev =
                        current["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                            .as_str()
                            .and_then(|r| r.parse::<i64>().ok())
                            .unwrap_or(0);
                    // A new pod template is a new revision, as the deployment controller counts.
                    if obj["spec"]["template"] != current["spec"]["template"] {
                        obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                            json!((rev + 1).to_string());
                    }
                }
                inner.version += 1;
                obj["metadata"]["resourceVersion"] = json!(inner.version.to_string());
                inner.objects.insert(path.to_string(), obj.clone());
                ok(&obj)
            }
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} not supported"),
            ),
        }
    }
}

fn conflict() -> Response {
    status(
        StatusCode::CONFLICT,
        "Conflict",
        "the object has been modified; please apply your changes to the latest version and try again".into(),
    )
}

async fn handle(
    State(cluster): State<FakeCluster>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    cluster.answer(&method, uri.path(), uri.query().unwrap_or(""), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "d": [1, 2]});
        merge_patch(&mut t, &json!({"a": {"b": null, "e": 3}, "d": [3]}));
        assert_eq!(t, json!({"a": {"c": 2, "e": 3}, "d": [3]}));
    }
}
