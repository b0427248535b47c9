//! Static validation of `deploy/`: no Docker engine or Kubernetes cluster exists here, so the
//! compose file is checked by `docker-compose config` (PyPI docker-compose 1.29), the manifests by
//! `kubernetes-validate` against the Kubernetes schemas, the Dockerfile against the README's run
//! command, and the ClickHouse cluster DDL against the binary and — minus replication — the real
//! embedded engine. Validators come from `deploy/validate/install.sh` (run by scripts/install.sh);
//! the kustomization is built with `kubectl kustomize` (or `kustomize build`) from PATH.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    orrery_store::testing::manifest_dir(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// A validator installed by deploy/validate/install.sh.
fn validator(venv: &str, bin: &str) -> PathBuf {
    let cache = std::env::var_os("ORRERY_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/orrery"));
    let path = cache.join(venv).join("bin").join(bin);
    assert!(
        path.exists(),
        "{} missing: run scripts/install.sh (or deploy/validate/install.sh)",
        path.display()
    );
    path
}

fn orrery() -> Command {
    orrery_store::testing::process::orrery_command(env!("CARGO_BIN_EXE_orrery"))
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// All YAML documents of a file (or of YAML on stdin) as JSON, parsed by PyYAML.
fn yaml_docs(yaml: &str) -> Vec<Value> {
    let python = validator("deploy-k8s", "python");
    let mut child = Command::new(python)
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = ok(child.wait_with_output().unwrap(), "parsing YAML");
    match serde_json::from_str(&out).unwrap() {
        Value::Array(docs) => docs,
        other => panic!("not a list: {other}"),
    }
}

// ---- ClickHouse cluster schema -----------------------------------------------------------------

/// The statements of cluster-schema.sql, without its comment header.
fn committed_cluster_ddl() -> String {
    read("deploy/clickhouse/cluster-schema.sql")
        .lines()
        .skip_while(|l| l.starts_with("--") || l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

fn statements(ddl: &str) -> Vec<String> {
    ddl.split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn cluster_schema_sql_is_what_the_binary_prints() {
    let printed = ok(
        orrery()
            .args(["migrate", "--print", "--clickhouse-cluster", "orrery"])
            .output()
            .unwrap(),
        "orrery migrate --print",
    );
    assert_eq!(
        committed_cluster_ddl(),
        printed,
        "deploy/clickhouse/cluster-schema.sql is stale: run deploy/clickhouse/generate.sh"
    );
}

/// Cluster DDL → single-node DDL: drops `ON CLUSTER`, turns `ReplicatedX(path, replica, args)`
/// into `X(args)`, and a Distributed table into a Merge table over the same local table (same
/// columns, readable the same way). Returns the statements and the sharding keys found.
fn without_replication(ddl: &str) -> (Vec<String>, Vec<(String, String)>) {
    let mut out = Vec::new();
    let mut sharding = Vec::new();
    for stmt in statements(ddl) {
        // A migration's data copy (v7) writes through a Distributed table, which becomes a
        // read-only Merge table here: write its local table instead.
        if let Some(rest) = stmt.strip_prefix("INSERT INTO orrery.") {
            let (table, tail) = rest.split_once(' ').unwrap();
            assert!(
                tail.contains("insert_distributed_sync = 1"),
                "a copy through a Distributed table must be synchronous: {stmt}"
            );
            out.push(format!("INSERT INTO orrery.{table}_local {tail}"));
            continue;
        }
        assert!(
            stmt.contains(" ON CLUSTER orrery"),
            "not run on the whole cluster: {stmt}"
        );
        let mut s = stmt.replace(" ON CLUSTER orrery", "");
        if let Some(at) = s.find("ENGINE = Replicated") {
            let open = at + s[at..].find('(').unwrap();
            let close = open + s[open..].find(')').unwrap();
            let args: Vec<&str> = s[open + 1..close].split(", ").collect();
            assert!(args[0].starts_with("'/clickhouse/tables/{shard}/orrery/"));
            assert_eq!(args[1], "'{replica}'");
            let kind = &s[at + "ENGINE = Replicated".len()..open];
            s = format!(
                "{}ENGINE = {kind}({}){}",
                &s[..at],
                args[2..].join(", "),
                &s[close + 1..]
            );
        } else if let Some(at) = s.find("ENGINE = Distributed(") {
            let args = &s[at + "ENGINE = Distributed(".len()..s.len() - 1];
            let parts: Vec<&str> = args.splitn(4, ", ").collect();
            assert_eq!(parts[0], "'orrery'", "cluster name");
            assert_eq!(parts[1], "'orrery'", "database");
            let local = parts[2].trim_matches('\'').to_string();
            sharding.push((local.clone(), parts[3].to_string()));
            s = format!("{}ENGINE = Merge('orrery', '^{local}$')", &s[..at]);
        }
        out.push(s);
    }
    (out, sharding)
}

#[tokio::test]
async fn cluster_ddl_minus_replication_executes_on_the_embedded_engine() {
    let server = orrery_store::testing::TestServer::shared();
    let client = server.client();
    let (stmts, sharding) = without_replication(&committed_cluster_ddl());
    for s in &stmts {
        client
            .query(s)
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{s}"));
    }
    // Every data table has a Distributed front, spans and lookups sharded alike (by trace id,
    // so a trace and its lookup row stay on one shard).
    let fronts: BTreeMap<_, _> = sharding.iter().cloned().collect();
    assert_eq!(fronts["otel_traces_local"], "cityHash64(TraceId)");
    assert_eq!(
        fronts["otel_traces_trace_id_ts_local"],
        "cityHash64(TraceId)"
    );
    assert!(fronts.contains_key("orrery_graph_edges_1m_local"));
    assert!(fronts.contains_key("orrery_graph_nodes_1m_local"));
    // Sharding keys are valid expressions over the local tables' columns (of the tables that
    // remain: later migrations drop some, e.g. v6 the v2/v5 rollups).
    let remaining: Vec<String> = client
        .query("SELECT name FROM system.tables WHERE database = 'orrery'")
        .fetch_all()
        .await
        .unwrap();
    for old in ["orrery_edges_1m_local", "orrery_rollup_hours_local"] {
        assert!(!remaining.iter().any(|t| t == old), "{old} not dropped");
    }
    for (local, key) in sharding.iter().filter(|(l, _)| remaining.contains(l)) {
        client
            .query(&format!("SELECT {key} FROM orrery.{local} LIMIT 1"))
            .fetch_all::<u64>()
            .await
            .unwrap_or_else(|e| panic!("sharding key {key} on {local}: {e}"));
    }
    // Spans written to the local table are read through the front table, and the materialized
    // view fills the local trace-id lookup.
    client
        .query(
            "INSERT INTO orrery.otel_traces_local (Timestamp, TraceId, SpanId, ServiceName) \
             SELECT now64(9) - toIntervalSecond(number), concat('t', toString(number % 7)), \
             toString(number), 'svc' FROM numbers(100)",
        )
        .execute()
        .await
        .unwrap();
    let spans: u64 = client
        .query("SELECT count() FROM orrery.otel_traces")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(spans, 100);
    let traces: u64 = client
        .query("SELECT uniqExact(TraceId) FROM orrery.otel_traces_trace_id_ts")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(traces, 7);
}

#[tokio::test]
async fn single_node_ddl_printed_by_migrate_executes_on_the_embedded_engine() {
    let printed = ok(
        orrery()
            .args(["migrate", "--print", "--clickhouse-database", "single_node"])
            .output()
            .unwrap(),
        "orrery migrate --print",
    );
    let server = orrery_store::testing::TestServer::shared();
    let client = server.client();
    for s in statements(&printed) {
        assert!(
            !s.contains("ON CLUSTER") && !s.contains("Replicated"),
            "{s}"
        );
        client
            .query(&s)
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{s}"));
    }
    let tables: Vec<String> = client
        .query("SELECT name FROM system.tables WHERE database = 'single_node' ORDER BY name")
        .fetch_all()
        .await
        .unwrap();
    for t in [
        "orrery_graph_edges_1m",
        "orrery_graph_nodes_1m",
        "orrery_schema_migrations",
        "otel_traces",
        "otel_traces_trace_id_ts",
    ] {
        assert!(tables.iter().any(|n| n == t), "{t} missing from {tables:?}");
    }
}

/// `<tag>...</tag>` bodies in document order (enough for our own small config files).
fn xml_all<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let body = &rest[i + open.len()..];
        let j = body.find(&close).unwrap();
        out.push(&body[..j]);
        rest = &body[j + close.len()..];
    }
    out
}

#[test]
fn cluster_config_matches_the_schema_keeper_and_kubernetes_statefulsets() {
    let cluster = read("deploy/clickhouse/cluster.xml");
    let keeper = read("deploy/clickhouse/keeper.xml");
    // The schema's macros are defined per server.
    for m in ["{shard}", "{replica}"] {
        assert!(committed_cluster_ddl().contains(m));
    }
    assert!(cluster.contains(r#"<shard from_env="CLICKHOUSE_SHARD"/>"#));
    assert!(cluster.contains(r#"<replica from_env="HOSTNAME"/>"#));
    // The Distributed tables' cluster `orrery`: 2 shards x 2 replicas, internal replication.
    let servers = xml_all(&cluster, "remote_servers")[0];
    let orrery = xml_all(servers, "orrery")[0];
    let shards = xml_all(orrery, "shard");
    assert_eq!(shards.len(), 2);
    let mut hosts = Vec::new();
    for s in &shards {
        assert!(s.contains("<internal_replication>true</internal_replication>"));
        let replicas = xml_all(s, "host");
        assert_eq!(replicas.len(), 2);
        hosts.extend(replicas.iter().map(|h| (h.to_string(), 9000)));
    }
    // Keeper: the servers' client list is the Raft membership.
    let zk: Vec<&str> = xml_all(&cluster, "zookeeper")[0]
        .split("<host>")
        .skip(1)
        .map(|h| h.split("</host>").next().unwrap())
        .collect();
    let raft = xml_all(&keeper, "hostname");
    assert_eq!(zk.len(), 3);
    assert_eq!(zk, raft);

    // Every host is a pod `<statefulset>-<ordinal>.<service>` that the manifests create.
    let docs = k8s_docs();
    let sts: BTreeMap<String, &Value> = docs
        .iter()
        .filter(|d| d["kind"] == "StatefulSet")
        .map(|d| (d["metadata"]["name"].as_str().unwrap().to_string(), d))
        .collect();
    let services: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "Service")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    let all_hosts = hosts
        .iter()
        .map(|(h, _)| h.as_str())
        .chain(zk.iter().copied());
    for host in all_hosts {
        let (pod, svc) = host.split_once('.').unwrap();
        let (set, ordinal) = pod.rsplit_once('-').unwrap();
        let s = sts
            .get(set)
            .unwrap_or_else(|| panic!("no StatefulSet {set} for {host}"));
        assert_eq!(s["spec"]["serviceName"], svc, "{host}");
        assert!(services.contains(svc), "no Service {svc}");
        assert!(s["spec"]["replicas"].as_u64().unwrap() > ordinal.parse::<u64>().unwrap());
    }
    // Each shard's StatefulSet sets its shard macro to the shard it is listed as.
    for (n, s) in shards.iter().enumerate() {
        let set = xml_all(s, "host")[0]
            .split('-')
            .take(2)
            .collect::<Vec<_>>()
            .join("-");
        let env = &sts[&set]["spec"]["template"]["spec"]["containers"][0]["env"];
        let shard = env
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "CLICKHOUSE_SHARD")
            .unwrap();
        assert_eq!(shard["value"], n.to_string());
    }
    // The ConfigMaps carry these very files.
    for (cm, file) in [
        ("clickhouse-config", "cluster.xml"),
        ("clickhouse-config", "users.xml"),
        ("clickhouse-keeper-config", "keeper.xml"),
    ] {
        let doc = docs
            .iter()
            .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == cm)
            .unwrap();
        assert_eq!(
            doc["data"][file].as_str().unwrap(),
            read(&format!("deploy/clickhouse/{file}")),
            "{cm}/{file} differs from deploy/clickhouse/{file}: run deploy/clickhouse/generate.sh"
        );
    }
}

// ---- Kubernetes --------------------------------------------------------------------------------

fn k8s_files() -> Vec<String> {
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

fn k8s_docs() -> Vec<Value> {
    k8s_files()
        .iter()
        .flat_map(|f| yaml_docs(&read(&format!("deploy/kubernetes/{f}"))))
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
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

fn container(deploy: &Value) -> &Value {
    &deploy["spec"]["template"]["spec"]["containers"][0]
}

fn port_number(c: &Value, port: &Value) -> u64 {
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

// Security of the deployment (secrets, grants, NetworkPolicy) and the collector spool's volume.
#[path = "deploy_static/security.rs"]
mod security;
use security::generated_secret_keys;

// ---- Compose -----------------------------------------------------------------------------------

fn compose(args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new(validator("deploy-compose", "docker-compose"));
    cmd.current_dir(root().join("deploy/compose"))
        .args(["--project-directory", "."])
        .env_remove("CLICKHOUSE_COLLECTOR_PASSWORD")
        .env_remove("CLICKHOUSE_QUERY_PASSWORD")
        .env_remove("CLICKHOUSE_MIGRATE_PASSWORD")
        .env_remove("DOCKER_HOST");
    for (k, _) in std::env::vars() {
        if k.starts_with("ORRERY_") || k.starts_with("COMPOSE_") {
            cmd.env_remove(k);
        }
    }
    if let Some(p) = password {
        for role in ["COLLECTOR", "QUERY", "MIGRATE"] {
            cmd.env(format!("CLICKHOUSE_{role}_PASSWORD"), p);
        }
    }
    cmd.args(args).output().unwrap()
}

#[test]
fn compose_file_parses_and_wires_collectors_and_query_replicas_behind_the_balancer() {
    ok(
        compose(&["config", "--quiet"], Some("pw")),
        "docker-compose config",
    );
    let resolved = ok(
        compose(&["--profile", "demo", "config"], Some("pw")),
        "docker-compose --profile demo config",
    );
    // Without the password the file refuses to resolve (the validator really evaluates it).
    let missing = compose(&["config", "--quiet"], None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("CLICKHOUSE_COLLECTOR_PASSWORD"));

    let cfg = &yaml_docs(&resolved)[0]["services"];
    assert!(cfg["collector"]["scale"].as_u64().unwrap() >= 2);
    assert!(cfg["query"]["scale"].as_u64().unwrap() >= 2);
    assert_eq!(cfg["migrate"]["command"][0], "migrate");
    assert_eq!(cfg["collector"]["command"][0], "collector");
    assert_eq!(cfg["query"]["command"][0], "query");
    assert_eq!(cfg["demo"]["profiles"][0], "demo");
    assert_eq!(cfg["demo"]["environment"]["ORRERY_DEMO_FLEET_ONLY"], "true");
    assert_eq!(
        cfg["demo"]["environment"]["ORRERY_DEMO_OTLP_ENDPOINT"],
        "http://lb:4317"
    );
    for svc in ["collector", "query"] {
        assert_eq!(
            cfg[svc]["depends_on"]["migrate"]["condition"],
            "service_completed_successfully"
        );
        assert!(
            cfg[svc]["command"]
                .as_array()
                .unwrap()
                .contains(&"--no-migrate".into())
        );
        assert_eq!(
            cfg[svc]["environment"]["ORRERY_CLICKHOUSE_URL"],
            "http://clickhouse:8123"
        );
    }
    let published: BTreeSet<u64> = cfg["lb"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| match p.as_str() {
            // With a host address compose prints `127.0.0.1:4317:4317/tcp`.
            Some(s) => {
                assert!(
                    s.starts_with("127.0.0.1:"),
                    "published beyond loopback: {s}"
                );
                let target = s.rsplit(':').next().unwrap();
                target.trim_end_matches("/tcp").parse().unwrap()
            }
            None => p["target"].as_u64().unwrap(),
        })
        .collect();
    assert_eq!(published, BTreeSet::from([4317, 4318, 16686]));
    // nginx: gRPC (HTTP/2) and HTTP to every collector, UI/API to every query replica.
    let nginx = read("deploy/compose/nginx.conf");
    for line in [
        "server collector:4317 resolve;",
        "server collector:4318 resolve;",
        "server query:16686 resolve;",
        "http2 on;",
        "grpc_pass grpc://collectors_grpc;",
        "proxy_pass http://collectors_http;",
        "proxy_pass http://query;",
    ] {
        assert!(nginx.contains(line), "nginx.conf lacks {line}");
    }
}

// ---- Environment variables are real flags ------------------------------------------------------

/// Every `ORRERY_*` env twin the binary knows, from `--help` of every subcommand.
fn known_env_twins() -> BTreeSet<String> {
    let mut text = String::new();
    for sub in [
        vec![],
        vec!["collector"],
        vec!["query"],
        vec!["migrate"],
        vec!["all-in-one"],
        vec!["embedded-clickhouse"],
        vec!["demo"],
        vec!["mesh"],
    ] {
        let out = orrery().args(&sub).arg("--help").output().unwrap();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    env_names(&text)
}

fn env_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("ORRERY_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if end > "ORRERY_".len() {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

#[test]
fn every_orrery_variable_the_deployments_set_is_a_flag_of_the_binary() {
    let known = known_env_twins();
    let mut used: BTreeMap<String, &str> = BTreeMap::new();
    // Kubernetes: container env and the shared ConfigMap.
    for d in k8s_docs() {
        if d["kind"] == "ConfigMap" && d["metadata"]["name"] == "orrery-config" {
            for k in d["data"].as_object().unwrap().keys() {
                used.insert(k.clone(), "kubernetes ConfigMap");
            }
        }
        if let Some(cs) = d.pointer("/spec/template/spec/containers") {
            for c in cs.as_array().unwrap() {
                for e in c["env"].as_array().into_iter().flatten() {
                    used.insert(e["name"].as_str().unwrap().to_string(), "kubernetes env");
                }
            }
        }
    }
    // Compose: the environment of every service (resolved).
    let resolved = ok(
        compose(&["--profile", "demo", "config"], Some("pw")),
        "docker-compose config",
    );
    for (_, svc) in yaml_docs(&resolved)[0]["services"].as_object().unwrap() {
        for k in svc["environment"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|o| o.0)
        {
            used.insert(k.clone(), "compose environment");
        }
    }
    // Dockerfile: ENV of the runtime stages (the builder's are the scripts' own settings).
    let dockerfile = read("deploy/Dockerfile");
    let runtime = &dockerfile[dockerfile.find("AS base").unwrap()..];
    for name in env_names(runtime) {
        used.insert(name, "Dockerfile runtime ENV");
    }
    let unknown: Vec<String> = used
        .iter()
        .filter(|(k, _)| k.starts_with("ORRERY_") && !known.contains(*k))
        .map(|(k, w)| format!("{k} ({w})"))
        .collect();
    assert!(unknown.is_empty(), "not a flag of `orrery`: {unknown:?}");
}

// ---- Dockerfile --------------------------------------------------------------------------------

#[test]
fn dockerfile_builds_with_the_commands_the_readme_runs() {
    let readme = read("README.md");
    assert!(
        readme.contains("bash scripts/start.sh"),
        "README's run command"
    );
    // The build steps of the run command: every command line of start.sh before the `exec`.
    let start = read("scripts/start.sh");
    let steps: Vec<&str> = start
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("bash scripts/") || l.starts_with("cargo build"))
        .collect();
    assert!(
        steps.iter().any(|s| s.starts_with("cargo build")),
        "{steps:?}"
    );
    assert!(steps.contains(&"bash scripts/install.sh"), "{steps:?}");

    let dockerfile = read("deploy/Dockerfile");
    let builder =
        &dockerfile[dockerfile.find("AS builder").unwrap()..dockerfile.find("AS base").unwrap()];
    // The same commands, in the same order, in the builder's RUN.
    let mut at = 0;
    for step in &steps {
        let found = builder[at..]
            .find(step)
            .unwrap_or_else(|| panic!("Dockerfile builder does not run `{step}` (in order)"));
        at += found + step.len();
    }
    // What the builder copies out is what those commands produce.
    assert!(builder.contains("\"$CARGO_TARGET_DIR/release/orrery\""));
    assert!(builder.contains("cp -r web/dist /out/web"));
    if let Ok(web) = std::fs::read_to_string(root().join("scripts/build-web.sh")) {
        assert!(
            web.contains("web/dist") || web.contains("dist"),
            "build-web.sh writes web/dist"
        );
    }
    // Runtime: non-root, healthcheck, the three ports, small base, the default target last.
    let base = &dockerfile[dockerfile.find("AS base").unwrap()..];
    assert!(
        base.contains("FROM debian:${DEBIAN_RELEASE}-slim AS base")
            || dockerfile.contains("-slim AS base")
    );
    assert!(base.contains("USER orrery"));
    assert!(base.contains("HEALTHCHECK"));
    assert!(base.contains("EXPOSE 4317 4318 16686"));
    let last_from = dockerfile
        .lines()
        .rfind(|l| l.starts_with("FROM "))
        .unwrap();
    assert!(last_from.ends_with("AS runtime"), "{last_from}");
    // The build context keeps what the commands need.
    let ignore = read("deploy/Dockerfile.dockerignore");
    // …and drops the Node test clients install.sh would `npm ci` (the builder has no Node).
    let install = read("scripts/install.sh");
    for line in install.lines().filter(|l| l.contains("/package.json ]")) {
        let dir = line
            .split("[ -f ")
            .nth(1)
            .and_then(|r| r.split("/package.json").next())
            .unwrap();
        let dropped = ignore
            .lines()
            .any(|l| l.trim() == dir || dir.starts_with(&format!("{}/", l.trim())));
        assert!(dropped, "Dockerfile.dockerignore must drop {dir} (npm)");
    }
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "store",
        "scripts",
        "web",
        "benches",
    ] {
        assert!(
            !ignore.lines().any(|l| l.trim() == needed),
            "Dockerfile.dockerignore drops {needed}"
        );
    }
}
