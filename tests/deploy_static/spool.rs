//! The collector's spool, statically: it lives on a persistent volume that outlives its pod, and the
//! drain job replays an orphaned claim with the binary's own command.

use super::*;

#[test]
fn kubernetes_collector_spool_is_a_persistent_volume_that_outlives_the_pod() {
    let docs = k8s_docs();
    let sts = find(&docs, "StatefulSet", "orrery-collector");
    let pod = &sts["spec"]["template"]["spec"];
    let c = container(sts);
    let spool_dir = env_of(c, "ORRERY_SPOOL_DIR")["value"].as_str().unwrap();
    // The mount holding the spool directory (the deepest mount at or above it)...
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            let at = m["mountPath"].as_str().unwrap().trim_end_matches('/');
            spool_dir == at || spool_dir.starts_with(&format!("{at}/"))
        })
        .max_by_key(|m| m["mountPath"].as_str().unwrap().len())
        .expect("the spool directory is on a mounted volume");
    let volume = mount["name"].as_str().unwrap();
    // ...is a claim of the StatefulSet's template, not a pod volume (emptyDir goes with the pod).
    let templates = sts["spec"]["volumeClaimTemplates"].as_array().unwrap();
    let claim = templates
        .iter()
        .find(|t| t["metadata"]["name"] == volume)
        .unwrap_or_else(|| panic!("{volume} is not a volumeClaimTemplate"));
    assert!(
        pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|v| v["name"] != volume && v.get("emptyDir").is_none()),
        "no emptyDir in the collector pod"
    );
    assert_eq!(
        claim["spec"]["accessModes"],
        serde_json::json!(["ReadWriteOnce"])
    );
    let size = claim["spec"]["resources"]["requests"]["storage"]
        .as_str()
        .unwrap();
    let size_bytes = size.strip_suffix("Gi").unwrap().parse::<u64>().unwrap() << 30;
    // The spool's own bound leaves room on the volume (it pushes back before the disk fills).
    let max: u64 = env_of(c, "ORRERY_SPOOL_MAX_BYTES")["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(max < size_bytes, "spool max {max} ≥ volume {size_bytes}");
    // Scaling down or deleting the set keeps the volumes (an un-drained spool holds spans).
    let retention = &sts["spec"]["persistentVolumeClaimRetentionPolicy"];
    assert_eq!(retention["whenScaled"], "Retain");
    assert_eq!(retention["whenDeleted"], "Retain");
    // A headless Service governs the set; the PDB keeps most collectors up through drains.
    let svc = find(
        &docs,
        "Service",
        sts["spec"]["serviceName"].as_str().unwrap(),
    );
    assert_eq!(svc["spec"]["clusterIP"], "None");
    let pdb = find(&docs, "PodDisruptionBudget", "orrery-collector");
    assert!(
        pdb["spec"]["minAvailable"].as_u64().unwrap() < sts["spec"]["replicas"].as_u64().unwrap()
    );
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= 60);
}

pub(crate) fn drain_job() -> Value {
    yaml_docs(&read("deploy/kubernetes/drain/spool-drain-job.yaml")).remove(0)
}

#[test]
fn the_drain_job_replays_an_orphaned_collector_claim_with_the_binarys_own_command() {
    let docs = k8s_docs();
    let sts = find(&docs, "StatefulSet", "orrery-collector");
    let collector = container(sts);
    let job = drain_job();
    assert_eq!(job["kind"], "Job");
    let out = Command::new(validator("deploy-k8s", "kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(root().join("deploy/kubernetes/drain/spool-drain-job.yaml"))
        .output()
        .unwrap();
    ok(out, "kubernetes-validate --strict drain job");
    // It mounts a claim of the set's template (`<template>-<set>-<ordinal>`) where the
    // collector mounts it, and points the replay at the collector's spool directory.
    let template = sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
        .as_str()
        .unwrap();
    let pod = &job["spec"]["template"]["spec"];
    let claim = pod["volumes"][0]["persistentVolumeClaim"]["claimName"]
        .as_str()
        .unwrap();
    assert_eq!(claim, format!("{template}-orrery-collector-0"));
    let c = container(&job);
    assert_eq!(
        c["volumeMounts"][0]["mountPath"],
        collector["volumeMounts"][0]["mountPath"]
    );
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        &args[..3],
        ["spool", "replay", "--all"],
        "the whole spool, not only dead letters"
    );
    let dir = args
        .windows(2)
        .find(|w| w[0] == "--spool-dir")
        .map(|w| w[1])
        .expect("--spool-dir");
    assert_eq!(dir, env_of(collector, "ORRERY_SPOOL_DIR")["value"]);
    // As the collectors' user, with their password; the ClickHouse URL from the shared config.
    assert_eq!(
        env_of(c, "ORRERY_CLICKHOUSE_USER")["value"],
        "orrery_collector"
    );
    assert_eq!(
        env_of(c, "ORRERY_CLICKHOUSE_PASSWORD").pointer("/valueFrom/secretKeyRef"),
        env_of(collector, "ORRERY_CLICKHOUSE_PASSWORD").pointer("/valueFrom/secretKeyRef")
    );
    assert_eq!(c["envFrom"][0]["configMapRef"]["name"], "orrery-config");
    // Its own pod label: the collectors' Services and PDB must not select it.
    assert_ne!(
        job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
        "orrery-collector"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    // The binary has this command and these flags.
    let help = orrery()
        .args(["spool", "replay", "--help"])
        .output()
        .unwrap();
    let help = ok(help, "orrery spool replay --help");
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(flag),
            "`orrery spool replay` has no {flag}: {help}"
        );
    }
    assert!(
        help.contains("ORRERY_CLICKHOUSE_URL") || help.contains("--clickhouse-url"),
        "{help}"
    );
}
