//! The Kubernetes manifests, statically: they validate against the Kubernetes schemas, the
//! collectors scale on CPU, probe health and flush before stopping, and every Secret and config
//! reference resolves with pods running unprivileged.

use super::*;

pub(crate) fn k8s_files() -> Vec<String> {
    let kustomization = yaml_docs(&read("deploy/kubernetes/kustomization.yaml"));
    let listed: Vec<String> = kustomization[0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let mut present: Vec<String> = std::fs::read_dir(root().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    present.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        sorted, present,
        "kustomization.yaml must list every manifest"
    );
    listed
}

pub(crate) fn k8s_docs() -> Vec<Value> {
    k8s_files()
        .iter()
        .flat_map(|f| yaml_docs(&read(&format!("deploy/kubernetes/{f}"))))
        .collect()
}

pub(crate) fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn kubernetes_manifests_validate_against_their_schemas() {
    let dir = root().join("deploy/kubernetes");
    let out = Command::new(validator("deploy-k8s", "kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .args(k8s_files().iter().map(|f| dir.join(f)))
        .output()
        .unwrap();
    ok(out, "kubernetes-validate --strict");

    // The validator rejects what is wrong (so passing means something).
    let bad = read("deploy/kubernetes/collector.yaml").replace("containerPort:", "containerPorts:");
    let tmp = tempfile::tempdir().unwrap();
    let bad_path = tmp.path().join("bad.yaml");
    std::fs::write(&bad_path, bad).unwrap();
    let out = Command::new(validator("deploy-k8s", "kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(&bad_path)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a misspelt field must fail validation"
    );
}

pub(crate) fn container(deploy: &Value) -> &Value {
    &deploy["spec"]["template"]["spec"]["containers"][0]
}

pub(crate) fn port_number(c: &Value, port: &Value) -> u64 {
    match port {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(name) => c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == *name)
            .unwrap()["containerPort"]
            .as_u64()
            .unwrap(),
        _ => panic!("bad port {port}"),
    }
}

#[test]
fn kubernetes_collectors_scale_on_cpu_probe_health_and_flush_before_stopping() {
    let docs = k8s_docs();
    let collector = find(&docs, "StatefulSet", "orrery-collector");
    let c = container(collector);
    assert_eq!(c["args"][0], "collector");
    let ready = &c["readinessProbe"]["httpGet"];
    let live = &c["livenessProbe"]["httpGet"];
    assert_eq!(ready["path"], "/readyz");
    assert_eq!(live["path"], "/healthz");
    assert_eq!(port_number(c, &ready["port"]), 4318);
    assert_eq!(port_number(c, &live["port"]), 4318);
    let grace = collector["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(grace >= 60, "collectors need time to flush, got {grace}s");
    // The flush deadline fits inside the grace period after the preStop delay.
    let env = c["env"].as_array().unwrap();
    let flush = env
        .iter()
        .find(|e| e["name"] == "ORRERY_COLLECTOR_SHUTDOWN_TIMEOUT")
        .and_then(|e| e["value"].as_str()?.strip_suffix('s')?.parse::<u64>().ok())
        .expect("ORRERY_COLLECTOR_SHUTDOWN_TIMEOUT in seconds");
    let pre_stop = c["lifecycle"]["preStop"]["exec"]["command"][1]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(
        pre_stop + flush < grace,
        "preStop {pre_stop}s + flush {flush}s must end before the {grace}s grace period"
    );
    // HPA on CPU, aimed at this StatefulSet.
    let hpa = find(&docs, "HorizontalPodAutoscaler", "orrery-collector");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "StatefulSet");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "orrery-collector");
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu");
    assert!(
        c["resources"]["requests"]["cpu"].is_string(),
        "CPU utilisation needs a CPU request"
    );
    // PDBs and Services select the pods they are meant for.
    let labels = &collector["spec"]["template"]["metadata"]["labels"];
    for (kind, name, path) in [
        (
            "PodDisruptionBudget",
            "orrery-collector",
            "/spec/selector/matchLabels",
        ),
        ("Service", "orrery-collector", "/spec/selector"),
    ] {
        let sel = find(&docs, kind, name).pointer(path).unwrap();
        for (k, v) in sel.as_object().unwrap() {
            assert_eq!(&labels[k], v, "{kind} {name} selects {k}={v}");
        }
    }
    // Query replicas behind a Service and the Ingress.
    let query = find(&docs, "Deployment", "orrery-query");
    assert_eq!(container(query)["args"][0], "query");
    assert!(query["spec"]["replicas"].as_u64().unwrap() >= 2);
    let ingress = find(&docs, "Ingress", "orrery");
    let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    find(&docs, "Service", backend["name"].as_str().unwrap());
    // Stateless roles do not migrate; the Job does, with the cluster variant.
    let config = find(&docs, "ConfigMap", "orrery-config");
    assert_eq!(config["data"]["ORRERY_CLICKHOUSE_CLUSTER"], "orrery");
    let job = find(&docs, "Job", "orrery-migrate");
    assert_eq!(container(job)["args"][0], "migrate");
    for d in [collector, query] {
        let env = container(d)["env"].as_array().unwrap();
        assert!(
            env.iter()
                .any(|e| e["name"] == "ORRERY_NO_MIGRATE" && e["value"] == "true")
        );
    }
}

#[test]
fn kubernetes_secrets_and_config_references_resolve_and_pods_run_unprivileged() {
    let docs = k8s_docs();
    let mut refs = 0;
    for d in docs.iter().filter(|d| {
        matches!(
            d["kind"].as_str(),
            Some("Deployment" | "StatefulSet" | "Job")
        )
    }) {
        let pod = &d["spec"]["template"]["spec"];
        for c in pod["containers"].as_array().unwrap() {
            for e in c["env"].as_array().into_iter().flatten() {
                if let Some(s) = e.pointer("/valueFrom/secretKeyRef") {
                    let name = s["name"].as_str().unwrap();
                    let key = s["key"].as_str().unwrap().to_string();
                    assert!(
                        generated_secret_keys(name).contains(&key),
                        "{name}/{key} is not made by the kustomization's secretGenerator"
                    );
                    refs += 1;
                }
            }
            for e in c["envFrom"].as_array().into_iter().flatten() {
                find(
                    &docs,
                    "ConfigMap",
                    e["configMapRef"]["name"].as_str().unwrap(),
                );
            }
            if d["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("orrery-")
            {
                assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
                assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
            }
        }
        for v in pod["volumes"].as_array().into_iter().flatten() {
            if let Some(cm) = v.pointer("/configMap/name") {
                find(&docs, "ConfigMap", cm.as_str().unwrap());
            }
        }
    }
    assert!(refs >= 6, "credentials and tokens come from Secrets");
}
