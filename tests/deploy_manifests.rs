//! Offline checks of deploy/k8s, deploy/Dockerfile and deploy/docker-compose.yaml: no API server
//! or Docker engine runs in CI, so the manifests are parsed as Kubernetes objects and checked
//! for what the deployment promises (probes, non-root, read-only root, data volume, least-
//! privilege RBAC, matching selectors and ports), the ConfigMap's config is loaded by the
//! agent's own parser, and every file the compose stack mounts exists and passes its tool.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every object in a YAML file (documents separated by `---`).
fn objects(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---")
        .filter(|doc| {
            doc.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|doc| {
            serde_saphyr::from_str::<Value>(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

fn manifests() -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    for dir in ["deploy/k8s", "deploy/k8s/sharded"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .flat_map(|p| objects(&p).into_iter().map(move |o| (p.clone(), o)))
        .collect()
}

fn strs(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn manifests_are_well_formed_kubernetes_objects() {
    let api_versions: HashMap<&str, &str> = [
        ("Namespace", "v1"),
        ("ServiceAccount", "v1"),
        ("ConfigMap", "v1"),
        ("Secret", "v1"),
        ("Service", "v1"),
        ("PersistentVolumeClaim", "v1"),
        ("Deployment", "apps/v1"),
        ("StatefulSet", "apps/v1"),
        ("ClusterRole", "rbac.authorization.k8s.io/v1"),
        ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1"),
        ("NetworkPolicy", "networking.k8s.io/v1"),
    ]
    .into();
    let all = manifests();
    let kinds: BTreeSet<&str> = all.iter().filter_map(|(_, o)| o["kind"].as_str()).collect();
    for kind in [
        "Namespace",
        "Deployment",
        "StatefulSet",
        "Service",
        "ConfigMap",
        "ClusterRole",
        "ClusterRoleBinding",
        "NetworkPolicy",
        "ServiceAccount",
        "PersistentVolumeClaim",
    ] {
        assert!(kinds.contains(kind), "no {kind} in deploy/k8s");
    }
    for (path, o) in &all {
        let kind = o["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no kind", path.display()));
        assert_eq!(
            o["apiVersion"].as_str(),
            api_versions.get(kind).copied(),
            "{}: {kind} has the wrong apiVersion",
            path.display()
        );
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        assert!(
            !name.is_empty(),
            "{}: {kind} without metadata.name",
            path.display()
        );
        let cluster_scoped = matches!(kind, "Namespace" | "ClusterRole" | "ClusterRoleBinding");
        assert_eq!(
            o["metadata"]["namespace"].as_str(),
            (!cluster_scoped).then_some("sre-agent"),
            "{}: {kind}/{name} namespace",
            path.display()
        );
    }
    // kustomization lists every single-replica manifest except the secret example.
    let k = &objects(&root().join("deploy/k8s/kustomization.yaml"))[0];
    let listed = strs(&k["resources"]);
    for entry in std::fs::read_dir(root().join("deploy/k8s")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") && name != "kustomization.yaml" && name != "secret.example.yaml"
        {
            assert!(
                listed.contains(&name),
                "kustomization.yaml does not list {name}"
            );
        }
    }
    for r in &listed {
        assert!(
            root().join("deploy/k8s").join(r).is_file(),
            "kustomization lists missing {r}"
        );
    }
}

#[test]
fn workloads_are_probed_non_root_read_only_and_keep_their_data() {
    let all = manifests();
    let config_map = all
        .iter()
        .find(|(_, o)| o["kind"] == "ConfigMap")
        .map(|(_, o)| o.clone())
        .unwrap();
    let config_text = config_map["data"]["config.yaml"].as_str().unwrap();
    // The agent's own loader accepts it (environment unset: every ${VAR:-default} default).
    let config =
        sre_agent::config::Config::parse(config_text, "deploy/k8s/configmap.yaml", |_| None)
            .unwrap_or_else(|e| panic!("{e}"));
    let service_accounts: BTreeSet<&str> = all
        .iter()
        .filter(|(_, o)| o["kind"] == "ServiceAccount")
        .filter_map(|(_, o)| o["metadata"]["name"].as_str())
        .collect();
    let workloads: Vec<&Value> = all
        .iter()
        .filter(|(_, o)| o["kind"] == "Deployment" || o["kind"] == "StatefulSet")
        .map(|(_, o)| o)
        .collect();
    assert_eq!(workloads.len(), 2);
    for w in workloads {
        let what = format!("{}/{}", w["kind"], w["metadata"]["name"]);
        let spec = &w["spec"];
        let pod = &spec["template"]["spec"];
        let labels = &spec["template"]["metadata"]["labels"];
        for (k, v) in spec["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(
                &labels[k], v,
                "{what}: selector does not match the pod labels"
            );
        }
        assert!(
            service_accounts.contains(pod["serviceAccountName"].as_str().unwrap()),
            "{what}"
        );
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
        assert!(
            pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0,
            "{what}"
        );
        let c = &pod["containers"][0];
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
        assert!(strs(&sc["capabilities"]["drop"]).contains("ALL"), "{what}");
        for key in ["requests/cpu", "requests/memory", "limits/memory"] {
            let (a, b) = key.split_once('/').unwrap();
            assert!(
                c["resources"][a][b].is_string(),
                "{what}: resources.{a}.{b}"
            );
        }
        let ports: HashMap<&str, u64> = c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap(),
                    p["containerPort"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ports.get("http"),
            Some(&u64::from(config.api.port)),
            "{what}: port"
        );
        for (probe, path) in [("readinessProbe", "/ready"), ("livenessProbe", "/live")] {
            assert_eq!(c[probe]["httpGet"]["path"], path, "{what}: {probe}");
            assert!(
                ports.contains_key(c[probe]["httpGet"]["port"].as_str().unwrap()),
                "{what}: {probe} port"
            );
        }
        // Every mount has a volume; the data dir of the config is a mounted, writable volume;
        // the config file passed in args sits in the mounted ConfigMap.
        let mut volumes: BTreeSet<String> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect();
        if let Some(templates) = spec["volumeClaimTemplates"].as_array() {
            volumes.extend(
                templates
                    .iter()
                    .map(|t| t["metadata"]["name"].as_str().unwrap().to_string()),
            );
        }
        let mounts: HashMap<String, (String, bool)> = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let name = m["name"].as_str().unwrap().to_string();
                assert!(
                    volumes.contains(&name),
                    "{what}: mount {name} has no volume"
                );
                (
                    m["mountPath"].as_str().unwrap().to_string(),
                    (name, m["readOnly"] == true),
                )
            })
            .collect();
        let data = mounts
            .get(&config.app.data_dir)
            .unwrap_or_else(|| panic!("{what}: data_dir {} not mounted", config.app.data_dir));
        assert!(!data.1, "{what}: data dir must be writable");
        let args = strs(&c["args"]);
        let config_path = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .skip_while(|a| *a != "--config")
            .nth(1)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{what}: no --config in {args:?}"));
        let config_dir = Path::new(config_path).parent().unwrap().to_str().unwrap();
        let (volume, _) = mounts
            .get(config_dir)
            .unwrap_or_else(|| panic!("{what}: {config_dir} not mounted"));
        let config_volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == volume.as_str())
            .unwrap();
        assert_eq!(
            config_volume["configMap"]["name"], config_map["metadata"]["name"],
            "{what}"
        );
    }
}

#[test]
fn services_and_network_policy_select_the_agent() {
    let all = manifests();
    let pod_labels = all
        .iter()
        .find(|(_, o)| o["kind"] == "Deployment")
        .map(|(_, o)| o["spec"]["template"]["metadata"]["labels"].clone())
        .unwrap();
    let matches = |selector: &Value| {
        selector
            .as_object()
            .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| pod_labels[k] == *v))
    };
    for (_, s) in all.iter().filter(|(_, o)| o["kind"] == "Service") {
        assert!(matches(&s["spec"]["selector"]), "{s}");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], "http");
        assert_eq!(s["spec"]["ports"][0]["port"], 8000);
    }
    let np = &all
        .iter()
        .find(|(_, o)| o["kind"] == "NetworkPolicy")
        .unwrap()
        .1;
    assert!(matches(&np["spec"]["podSelector"]["matchLabels"]));
    assert_eq!(
        strs(&np["spec"]["policyTypes"]),
        ["Egress", "Ingress"].map(String::from).into()
    );
    let ingress_ports: Vec<&Value> = np["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["ports"].as_array().unwrap())
        .collect();
    assert!(
        ingress_ports.iter().all(|p| p["port"] == 8000),
        "only the API port is open"
    );
    // Headless service of the StatefulSet is the one the sharded Prometheus example names.
    let sts = &all
        .iter()
        .find(|(_, o)| o["kind"] == "StatefulSet")
        .unwrap()
        .1;
    let headless = sts["spec"]["serviceName"].as_str().unwrap();
    let sharded =
        std::fs::read_to_string(root().join("deploy/prometheus/prometheus-sharded.yml")).unwrap();
    for i in 0..sts["spec"]["replicas"].as_u64().unwrap() {
        let host = format!("sre-agent-{i}.{headless}.sre-agent.svc:8000");
        assert!(
            sharded.contains(&host),
            "prometheus-sharded.yml does not name {host}"
        );
    }
}

#[test]
fn rbac_grants_exactly_what_the_executor_needs() {
    let all = manifests();
    let role = &all
        .iter()
        .find(|(_, o)| o["kind"] == "ClusterRole")
        .unwrap()
        .1;
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in strs(&rule["apiGroups"]) {
            for resource in strs(&rule["resources"]) {
                for verb in strs(&rule["verbs"]) {
                    assert!(
                        ![&group, &resource, &verb].iter().any(|s| s.contains('*')),
                        "wildcard in {rule}"
                    );
                    granted.insert(format!("{group}/{resource}:{verb}"));
                }
            }
        }
        assert!(rule.get("resourceNames").is_none() || rule["resourceNames"].is_array());
    }
    let wanted: BTreeSet<String> = [
        "/pods:get",
        "/pods:list",
        "/pods:delete",
        "apps/deployments:get",
        "apps/deployments:patch",
        "apps/deployments/scale:get",
        "apps/deployments/scale:patch",
        "apps/replicasets:list",
        "autoscaling/horizontalpodautoscalers:get",
        "autoscaling/horizontalpodautoscalers:patch",
        "/events:list",
        "/events:watch",
        "events.k8s.io/events:list",
        "events.k8s.io/events:watch",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(granted, wanted);
    let binding = &all
        .iter()
        .find(|(_, o)| o["kind"] == "ClusterRoleBinding")
        .unwrap()
        .1;
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
    assert_eq!(binding["subjects"][0]["namespace"], "sre-agent");
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_copies_what_exists() {
    let text = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage build");
    assert!(
        froms
            .iter()
            .all(|f| !f.contains(":latest") && f.contains(':')),
        "pinned base images"
    );
    let last_stage = &text[text.rfind("\nFROM ").unwrap()..];
    let user = last_stage
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("final stage sets USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "USER {user}"
    );
    assert!(last_stage.contains("ENTRYPOINT [\"/usr/local/bin/sre-agent\"]"));
    for l in lines
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = l.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(root().join(src).exists(), "Dockerfile copies missing {src}");
        }
    }
    assert!(text.contains("--locked"), "builds with the lock file");
}

#[test]
fn compose_stack_mounts_existing_files_that_pass_their_tools() {
    let deploy = root().join("deploy");
    let compose = &objects(&deploy.join("docker-compose.yaml"))[0];
    let services = compose["services"].as_object().unwrap();
    for name in [
        "sre-agent",
        "prometheus",
        "node-exporter",
        "alertmanager",
        "grafana",
    ] {
        assert!(services.contains_key(name), "compose has no {name}");
    }
    for (name, s) in services {
        for v in s["volumes"].as_array().into_iter().flatten() {
            let host = v.as_str().unwrap().split(':').next().unwrap();
            if host.starts_with("./") {
                assert!(deploy.join(host).exists(), "{name} mounts missing {host}");
            }
        }
        for dep in s["depends_on"].as_array().into_iter().flatten() {
            assert!(
                services.contains_key(dep.as_str().unwrap()),
                "{name} depends on unknown {dep}"
            );
        }
    }
    let agent = &services["sre-agent"];
    let dockerfile = agent["build"]["dockerfile"].as_str().unwrap();
    assert!(
        deploy
            .join(agent["build"]["context"].as_str().unwrap())
            .join(dockerfile)
            .is_file()
    );
    let env = &agent["environment"];
    for (key, service) in [
        ("PROMETHEUS_URL", "prometheus"),
        ("ALERTMANAGER_URL", "alertmanager"),
        ("REMOTE_WRITE_URL", "prometheus"),
    ] {
        let url = env[key].as_str().unwrap();
        assert!(
            url.starts_with(&format!("http://{service}:")),
            "{key}={url}"
        );
    }
    assert!(
        strs(&services["prometheus"]["command"]).contains("--web.enable-remote-write-receiver"),
        "write-back needs the receiver"
    );
    // Prometheus sends the password the agent expects.
    let password =
        std::fs::read_to_string(deploy.join("compose/sre-agent-write-password")).unwrap();
    assert_eq!(
        password.trim(),
        env["SRE_AGENT_WRITE_PASSWORD"].as_str().unwrap()
    );

    // promtool on the compose Prometheus config, with its container paths mapped to the files.
    let Some(promtool) = common::real_binary(&["promtool"]) else {
        return;
    };
    let dir = common::scratch_dir("compose-promtool");
    let mut config = std::fs::read_to_string(deploy.join("compose/prometheus.yml")).unwrap();
    for v in services["prometheus"]["volumes"].as_array().unwrap() {
        let spec = v.as_str().unwrap();
        let mut parts = spec.split(':');
        let (host, container) = (parts.next().unwrap(), parts.next().unwrap());
        if host.starts_with("./") && container != "/etc/prometheus/prometheus.yml" {
            config = config.replace(container, deploy.join(host).to_str().unwrap());
        }
    }
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let out = std::process::Command::new(&promtool)
        .args(["check", "config"])
        .arg(dir.join("prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
