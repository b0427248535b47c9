//! NetworkPolicies, statically: only Orrery's roles reach ClickHouse and only ClickHouse reaches Keeper.

use super::*;

/// (peer workload name, port) pairs a policy's ingress allows into the pods it selects;
/// `None` as the peer for a rule open to any source.
pub(crate) fn allowed(policy: &Value) -> BTreeSet<(Option<String>, u64)> {
    let mut out = BTreeSet::new();
    for rule in policy["spec"]["ingress"].as_array().into_iter().flatten() {
        let peers: Vec<Option<String>> = match rule["from"].as_array() {
            None => vec![None],
            Some(from) => from
                .iter()
                .map(|p| {
                    assert!(p.get("namespaceSelector").is_none() && p.get("ipBlock").is_none());
                    let labels = p["podSelector"]["matchLabels"].as_object().unwrap();
                    assert_eq!(labels.len(), 1, "{p}");
                    Some(
                        labels["app.kubernetes.io/name"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    )
                })
                .collect(),
        };
        for port in rule["ports"].as_array().expect("ports on every rule") {
            assert_eq!(port["protocol"], "TCP");
            for p in &peers {
                out.insert((p.clone(), port["port"].as_u64().unwrap()));
            }
        }
    }
    out
}

#[test]
fn network_policies_let_only_orrery_reach_clickhouse_and_only_clickhouse_reach_keeper() {
    let docs = k8s_docs();
    let policies: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "NetworkPolicy")
        .collect();
    // Ingress to every pod of the namespace is denied unless a policy opens it.
    let deny = find(&docs, "NetworkPolicy", "default-deny-ingress");
    assert_eq!(deny["spec"]["podSelector"], serde_json::json!({}));
    assert_eq!(deny["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
    assert!(deny["spec"].get("ingress").is_none());

    // Pod labels of every workload (and of the drain Job), by its app.kubernetes.io/name.
    let drain = drain_job();
    let mut pods: BTreeMap<String, &Value> = BTreeMap::new();
    for d in docs.iter().chain([&drain]).filter(|d| {
        matches!(
            d["kind"].as_str(),
            Some("Deployment" | "StatefulSet" | "Job")
        )
    }) {
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        pods.insert(
            labels["app.kubernetes.io/name"]
                .as_str()
                .unwrap()
                .to_string(),
            d,
        );
    }
    let policy_for = |app: &str| -> BTreeSet<(Option<String>, u64)> {
        let mut out = BTreeSet::new();
        for p in policies
            .iter()
            .filter(|p| p["metadata"]["name"] != "default-deny-ingress")
        {
            let sel = p["spec"]["podSelector"]["matchLabels"].as_object().unwrap();
            if sel
                .iter()
                .all(|(k, v)| pods[app]["spec"]["template"]["metadata"]["labels"][k] == *v)
            {
                out.extend(allowed(p));
            }
        }
        out
    };
    let some = |peer: &str, port: u64| (Some(peer.to_string()), port);
    assert_eq!(
        policy_for("clickhouse"),
        BTreeSet::from([
            some("orrery-collector", 8123),
            some("orrery-query", 8123),
            some("orrery-migrate", 8123),
            some("orrery-spool-drain", 8123),
            some("clickhouse", 9000),
            some("clickhouse", 9009),
        ])
    );
    assert_eq!(
        policy_for("clickhouse-keeper"),
        BTreeSet::from([some("clickhouse", 9181), some("clickhouse-keeper", 9234)])
    );
    assert_eq!(
        policy_for("orrery-collector"),
        BTreeSet::from([(None, 4317), (None, 4318)])
    );
    assert_eq!(policy_for("orrery-query"), BTreeSet::from([(None, 16686)]));
    assert!(policy_for("orrery-migrate").is_empty());
    // Every peer named is a real workload, and the ports are the ones really used: the
    // servers' container ports, cluster.xml's shard port, keeper.xml's client and Raft ports,
    // and the URL Orrery connects to.
    for (peer, _) in ["clickhouse", "clickhouse-keeper"]
        .iter()
        .flat_map(|a| policy_for(a))
    {
        assert!(pods.contains_key(peer.as_deref().unwrap()), "{peer:?}");
    }
    let ch_ports: BTreeSet<u64> = container(pods["clickhouse"])["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap())
        .collect();
    assert_eq!(ch_ports, BTreeSet::from([8123, 9000, 9009]));
    assert!(read("deploy/clickhouse/cluster.xml").contains("<port>9000</port>"));
    let keeper = read("deploy/clickhouse/keeper.xml");
    assert!(keeper.contains("<tcp_port>9181</tcp_port>") && keeper.contains("<port>9234</port>"));
    let config = find(&docs, "ConfigMap", "orrery-config");
    assert!(
        config["data"]["ORRERY_CLICKHOUSE_URL"]
            .as_str()
            .unwrap()
            .ends_with(":8123")
    );
}
