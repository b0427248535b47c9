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

// Kubernetes manifests (their helpers are shared with the security checks).
#[path = "deploy_static/kubernetes.rs"]
mod kubernetes;
use kubernetes::*;

// Security of the deployment (secrets, grants, NetworkPolicy) and the collector spool's volume.
#[path = "deploy_static/security.rs"]
mod security;
use security::*;
#[path = "deploy_static/grants.rs"]
mod grants;
use grants::*;
#[path = "deploy_static/network.rs"]
mod network;
#[path = "deploy_static/spool.rs"]
mod spool;
use spool::*;

// Compose, environment variables and the Dockerfile.
#[path = "deploy_static/compose.rs"]
mod compose;
