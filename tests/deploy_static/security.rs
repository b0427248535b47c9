//! The deployment's security and the collector spool's durability, statically: no example secret
//! is ever applied (kustomize itself refuses to build without the operator's files), each Orrery
//! role logs in to ClickHouse as its own least-privilege user (grants checked against the tables
//! the code really writes, and parsed by the real engine), NetworkPolicies let only Orrery's roles
//! reach ClickHouse and only ClickHouse reach Keeper, and the collector's spool lives on a
//! persistent volume that outlives its pod.

use super::*;

const SECRETS_DIR: &str = "deploy/kubernetes/secrets";

fn kustomization() -> Value {
    yaml_docs(&read("deploy/kubernetes/kustomization.yaml")).remove(0)
}

/// (secret name, key, file) of every entry of the kustomization's secretGenerator.
fn generator_entries() -> Vec<(String, String, String)> {
    let k = kustomization();
    let mut out = Vec::new();
    for g in k["secretGenerator"].as_array().expect("a secretGenerator") {
        let name = g["name"].as_str().unwrap();
        assert!(
            g.get("literals").is_none() && g.get("envs").is_none(),
            "{name}: secrets come from the operator's files, never from literals in the repo"
        );
        for f in g["files"].as_array().unwrap() {
            let (key, file) = f.as_str().unwrap().split_once('=').unwrap();
            out.push((name.to_string(), key.to_string(), file.to_string()));
        }
    }
    out
}

/// Keys of a Secret the kustomization's secretGenerator makes.
pub fn generated_secret_keys(name: &str) -> BTreeSet<String> {
    generator_entries()
        .into_iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, k, _)| k)
        .collect()
}

/// `kubectl kustomize` (or a standalone `kustomize build`) of a directory.
fn kustomize_build(dir: &std::path::Path) -> Output {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = |bin: &str| std::env::split_paths(&path).any(|p| p.join(bin).is_file());
    let mut cmd = if on_path("kubectl") {
        let mut c = Command::new("kubectl");
        c.arg("kustomize");
        c
    } else if on_path("kustomize") {
        let mut c = Command::new("kustomize");
        c.arg("build");
        c
    } else {
        panic!("neither kubectl nor kustomize on PATH: install one to check the kustomization");
    };
    cmd.arg(dir).output().unwrap()
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(val)
        .collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | (u32::from(*d) << (18 - 6 * i)));
        out.extend(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[test]
fn the_kustomization_applies_no_example_secret_and_builds_only_with_the_operators_own() {
    // No Secret object among the resources: the only Secrets are generated from files.
    for d in k8s_docs() {
        assert_ne!(d["kind"], "Secret", "a Secret in the manifests: {d}");
    }
    let entries = generator_entries();
    assert!(entries.len() >= 6, "{entries:?}");
    // The files live in secrets/, which git ignores and holds none of.
    let tracked = Command::new("git")
        .current_dir(root())
        .args(["ls-files", SECRETS_DIR])
        .output()
        .unwrap();
    let tracked = ok(tracked, "git ls-files");
    assert_eq!(tracked.trim(), format!("{SECRETS_DIR}/.gitignore"));
    for (_, _, file) in &entries {
        assert!(file.starts_with("secrets/"), "{file}");
        let ignored = Command::new("git")
            .current_dir(root())
            .args(["check-ignore", "-q", &format!("deploy/kubernetes/{file}")])
            .status()
            .unwrap();
        assert!(ignored.success(), "{file} is not git-ignored");
    }

    // kustomize refuses to build without them, naming the missing file.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("kubernetes");
    std::fs::create_dir_all(copy.join("secrets")).unwrap();
    for f in k8s_files()
        .iter()
        .map(String::as_str)
        .chain(["kustomization.yaml", "generate-secrets.sh"])
    {
        std::fs::copy(root().join("deploy/kubernetes").join(f), copy.join(f)).unwrap();
    }
    let refused = kustomize_build(&copy);
    assert!(!refused.status.success(), "built without secrets");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("secrets/"), "{err}");

    // generate-secrets.sh fills them: random, 0600, no newline, and kept on a second run.
    let generate = || {
        ok(
            Command::new("bash")
                .arg(copy.join("generate-secrets.sh"))
                .output()
                .unwrap(),
            "generate-secrets.sh",
        )
    };
    generate();
    let mut values = BTreeMap::new();
    for (name, key, file) in &entries {
        let path = copy.join(file);
        let v = std::fs::read_to_string(&path).unwrap();
        assert!(
            v.len() >= 32 && v.bytes().all(|b| b.is_ascii_hexdigit()),
            "{file}: {v:?}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
        values.insert((name.clone(), key.clone()), v);
    }
    let distinct: BTreeSet<&String> = values.values().collect();
    assert_eq!(distinct.len(), values.len(), "every secret differs");
    generate();
    for (name, key, file) in &entries {
        assert_eq!(
            std::fs::read_to_string(copy.join(file)).unwrap(),
            values[&(name.clone(), key.clone())],
            "a second run rotated {file}"
        );
    }

    // Built: the Secrets hold exactly those values, and every reference resolves to them.
    let built = kustomize_build(&copy);
    let docs = yaml_docs(&ok(built, "kustomize build"));
    let secrets: BTreeMap<String, &Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Secret")
        .map(|d| (d["metadata"]["name"].as_str().unwrap().to_string(), d))
        .collect();
    assert_eq!(secrets.len(), 2, "{:?}", secrets.keys());
    for ((name, key), v) in &values {
        let s = secrets
            .get(name)
            .unwrap_or_else(|| panic!("no generated Secret {name}"));
        let data = s["data"][key].as_str().unwrap();
        assert_eq!(decode_base64(data), v.as_bytes(), "{name}/{key}");
    }
    let mut refs = 0;
    for d in &docs {
        let Some(containers) = d.pointer("/spec/template/spec/containers") else {
            continue;
        };
        for e in containers
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["env"].as_array().into_iter().flatten())
        {
            if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
                let s = secrets
                    .get(r["name"].as_str().unwrap())
                    .unwrap_or_else(|| panic!("{r} does not name a generated Secret"));
                assert!(s["data"][r["key"].as_str().unwrap()].is_string(), "{r}");
                refs += 1;
            }
        }
    }
    assert!(refs >= 10, "{refs} secret references");
}

#[test]
fn no_deploy_file_carries_a_placeholder_or_literal_secret() {
    // No well-known placeholder anywhere in deploy/ (the README may explain, not ship, them).
    let mut files = Vec::new();
    let mut stack = vec![root().join("deploy")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() != "README.md" {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 15);
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let lower = text.to_lowercase();
        for bad in [
            "change-me",
            "changeme",
            "change_me",
            "password123",
            "secret123",
        ] {
            assert!(!lower.contains(bad), "{} contains {bad:?}", f.display());
        }
    }
    // Kubernetes: a credential variable never has a literal value.
    for d in k8s_docs() {
        let Some(containers) = d.pointer("/spec/template/spec/containers") else {
            continue;
        };
        for e in containers
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["env"].as_array().into_iter().flatten())
        {
            let name = e["name"].as_str().unwrap();
            if ["PASSWORD", "TOKEN", "SECRET"]
                .iter()
                .any(|w| name.contains(w))
            {
                assert!(e.get("value").is_none(), "{name} has a literal value");
                assert!(e.pointer("/valueFrom/secretKeyRef").is_some(), "{name}");
            }
        }
    }
    // Compose: passwords are required (`:?`), and the example leaves them empty, so copying
    // example.env as it is does not start anything.
    let compose_file = read("deploy/compose/docker-compose.yml");
    for line in compose_file.lines().filter(|l| l.contains("PASSWORD:")) {
        assert!(line.contains("${") && line.contains(":?"), "{line}");
    }
    let example = read("deploy/compose/example.env");
    let mut passwords = 0;
    for line in example.lines().filter(|l| !l.starts_with('#')) {
        if let Some((k, v)) = line.split_once('=')
            && k.contains("PASSWORD")
        {
            assert_eq!(v, "", "example.env ships a value for {k}");
            passwords += 1;
        }
    }
    assert_eq!(passwords, 3);
    let mut cmd = Command::new(validator("deploy-compose", "docker-compose"));
    cmd.current_dir(root().join("deploy/compose"))
        .args(["--project-directory", ".", "--env-file", "example.env"])
        .args(["config", "--quiet"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("ORRERY_") || k.starts_with("CLICKHOUSE_") || k.starts_with("COMPOSE_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "example.env as it is must not start");
    assert!(String::from_utf8_lossy(&out.stderr).contains("PASSWORD"));
    // Published ports listen on the loopback unless the operator opens them.
    for line in compose_file
        .lines()
        .filter(|l| l.trim_start().starts_with("- \"${"))
    {
        assert!(line.contains("${ORRERY_BIND:-127.0.0.1}:"), "{line}");
    }
}

// ---- ClickHouse users and grants ---------------------------------------------------------------

/// The `<query>` grants of one user of users.xml.
fn grants(users: &str, user: &str) -> Vec<String> {
    let body = xml_all(users, user);
    assert_eq!(body.len(), 1, "user {user}");
    xml_all(body[0], "query")
        .iter()
        .map(|q| q.trim().to_string())
        .collect()
}

/// Tables (without database) of `GRANT <privilege> ON orrery.<table>` grants.
fn granted_tables(grants: &[String], privilege: &str) -> BTreeSet<String> {
    grants
        .iter()
        .filter_map(|g| g.strip_prefix(&format!("GRANT {privilege} ON orrery.")))
        .map(String::from)
        .collect()
}

/// Tables the schema creates (cluster variant: `*_local` and their Distributed fronts).
fn schema_tables() -> BTreeSet<String> {
    committed_cluster_ddl()
        .lines()
        .filter_map(|l| l.strip_prefix("CREATE TABLE IF NOT EXISTS orrery."))
        .map(|r| r.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// A table and its cluster twin (`x` and `x_local`).
fn with_local(tables: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    tables
        .into_iter()
        .flat_map(|t| {
            let base = t.strip_suffix("_local").unwrap_or(&t).to_string();
            [format!("{base}_local"), base]
        })
        .collect()
}

/// Tables a source file inserts into: `INSERT INTO <t>` and `.insert::<_>("<t>")`.
fn inserted_tables(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in src.match_indices("INSERT INTO ") {
        let t = src[i + 12..]
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap();
        out.insert(t.to_string());
    }
    for (i, _) in src.match_indices(".insert::<") {
        let rest = &src[i..];
        let name = rest.split('"').nth(1).unwrap();
        out.insert(name.to_string());
    }
    out
}

#[tokio::test]
async fn each_orrery_role_has_its_own_least_privilege_clickhouse_user() {
    let users = read("deploy/clickhouse/users.xml");
    let users_body = xml_all(&users, "users")[0];
    let tables = schema_tables();

    // `default` answers only on the loopback address.
    let default = xml_all(users_body, "default")[0];
    let nets: Vec<&str> = xml_all(default, "ip");
    assert_eq!(nets, ["::1", "127.0.0.1"]);
    assert!(default.contains(r#"<networks replace="replace">"#));
    assert!(!users.contains("<access_management>1"));

    // Collector: INSERT only, on the spans table and the tables its materialized views fill.
    let collector = grants(users_body, "orrery_collector");
    assert_eq!(
        granted_tables(&collector, "INSERT").len(),
        collector.len(),
        "the collector may only INSERT: {collector:?}"
    );
    // The collector's one insert statement as its code builds it (collector/src/row.rs, from
    // SPANS_TABLE), plus any literal INSERT anywhere in its sources.
    let mut writes = inserted_tables(orrery_collector::row::insert_sql());
    assert_eq!(writes, BTreeSet::from(["otel_traces".to_string()]));
    let mut dirs = vec![root().join("collector/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let src = std::fs::read_to_string(&path).unwrap();
                // Not the unit tests' statements; `INSERT INTO {TABLE}` placeholders are the
                // statement above.
                let code = src.split("#[cfg(test)]").next().unwrap();
                writes.extend(inserted_tables(code).into_iter().filter(|t| !t.is_empty()));
            }
        }
    }
    let ddl = committed_cluster_ddl();
    for stmt in statements(&ddl) {
        if stmt.starts_with("CREATE MATERIALIZED VIEW")
            && stmt.contains("FROM orrery.otel_traces_local")
        {
            let to = stmt.split(" TO orrery.").nth(1).unwrap();
            writes.insert(to.split_whitespace().next().unwrap().to_string());
        }
    }
    let writes = with_local(writes);
    assert_eq!(granted_tables(&collector, "INSERT"), writes);

    // Query: reads the database; writes exactly the rollup tables query/src/rollup.rs fills
    // and the check history query/src/checks/history.rs records.
    let query = grants(users_body, "orrery_query");
    assert!(query.contains(&"GRANT SELECT ON orrery.*".to_string()));
    let mut rollups = inserted_tables(&read("query/src/rollup.rs"));
    for entry in std::fs::read_dir(root().join("query/src/rollup")).unwrap() {
        let src = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let code = src.split("#[cfg(test)]").next().unwrap();
        // `INSERT INTO {table}` placeholders: the tables are a `Grain`'s `edges:`/`nodes:`
        // fields (rollup/rows.rs) or a `Merge`'s `edges:`/`services:`/`nodes:` (rollup/merge.rs),
        // so those count as inserted too.
        rollups.extend(inserted_tables(code).into_iter().filter(|t| !t.is_empty()));
        for field in ["edges: \"", "services: \"", "nodes: \""] {
            for (i, _) in code.match_indices(field) {
                let name = code[i + field.len()..].split('"').next().unwrap();
                rollups.insert(name.to_string());
            }
        }
    }
    assert!(rollups.len() >= 5, "{rollups:?}");
    assert!(rollups.iter().all(|t| t.starts_with("orrery_graph_")));
    let checks = inserted_tables(&read("query/src/checks/history.rs"));
    assert_eq!(checks, BTreeSet::from(["orrery_check_events".to_string()]));
    rollups.extend(checks);
    let rollups = with_local(rollups);
    assert_eq!(granted_tables(&query, "INSERT"), rollups);
    assert_eq!(query.len(), 1 + rollups.len(), "nothing else: {query:?}");

    // Every table granted exists in the schema (no stale names).
    for t in granted_tables(&collector, "INSERT")
        .iter()
        .chain(&granted_tables(&query, "INSERT"))
    {
        assert!(tables.contains(t), "{t} is not a table of the schema");
    }

    // Migrate: DDL on the database (ON CLUSTER needs the CLUSTER grant), nothing beyond it.
    let migrate = grants(users_body, "orrery_migrate");
    assert_eq!(
        migrate,
        ["GRANT ALL ON orrery.*", "GRANT CLUSTER ON *.*"].map(String::from)
    );

    // No other user; each one's password from its own variable.
    let names: Vec<&str> = users_body
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            (l.starts_with('<') && !l.starts_with("</") && l.ends_with('>') && !l.contains(' '))
                .then(|| &l[1..l.len() - 1])
        })
        .filter(|n| n.starts_with("orrery") || *n == "default")
        .collect();
    assert_eq!(
        names,
        [
            "default",
            "orrery_collector",
            "orrery_query",
            "orrery_migrate"
        ]
    );
    for (user, var) in user_password_vars() {
        assert!(
            xml_all(users_body, user)[0].contains(&format!(r#"<password from_env="{var}"/>"#)),
            "{user}"
        );
    }

    // The real engine parses every grant (a misspelt privilege would stop ClickHouse starting).
    let server = orrery_store::testing::TestServer::shared();
    let client = server.client();
    for g in collector.iter().chain(&query).chain(&migrate) {
        client
            .query(&format!("EXPLAIN AST {g} TO orrery_check"))
            .fetch_all::<String>()
            .await
            .unwrap_or_else(|e| panic!("{g}: {e}"));
    }
    let bad = client
        .query("EXPLAIN AST GRANT INSRT ON orrery.otel_traces TO orrery_check")
        .fetch_all::<String>()
        .await;
    assert!(bad.is_err(), "the parser check can fail");
}

/// users.xml user → the environment variable holding its password on the ClickHouse servers.
fn user_password_vars() -> [(&'static str, &'static str); 3] {
    [
        ("orrery_collector", "CLICKHOUSE_COLLECTOR_PASSWORD"),
        ("orrery_query", "CLICKHOUSE_QUERY_PASSWORD"),
        ("orrery_migrate", "CLICKHOUSE_MIGRATE_PASSWORD"),
    ]
}

fn env_of<'a>(c: &'a Value, name: &str) -> &'a Value {
    c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn kubernetes_and_compose_log_each_role_in_as_its_own_user_with_its_own_password() {
    let docs = k8s_docs();
    let roles = [
        ("StatefulSet", "orrery-collector", "orrery_collector"),
        ("Deployment", "orrery-query", "orrery_query"),
        ("Job", "orrery-migrate", "orrery_migrate"),
    ];
    let config = find(&docs, "ConfigMap", "orrery-config");
    assert!(
        config["data"].get("ORRERY_CLICKHOUSE_USER").is_none(),
        "the user is per role, not shared"
    );
    let servers: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "StatefulSet" && d["metadata"]["name"] != "orrery-collector")
        .filter(|d| container(d)["name"] == "clickhouse")
        .collect();
    assert_eq!(servers.len(), 2);
    for ((kind, workload, user), (u, var)) in roles.iter().zip(user_password_vars()) {
        assert_eq!(*user, u);
        let c = container(find(&docs, kind, workload));
        assert_eq!(
            env_of(c, "ORRERY_CLICKHOUSE_USER")["value"],
            *user,
            "{workload}"
        );
        let pw = env_of(c, "ORRERY_CLICKHOUSE_PASSWORD")
            .pointer("/valueFrom/secretKeyRef")
            .unwrap();
        // The servers read the same Secret key for this user's password.
        for s in &servers {
            let server_pw = env_of(container(s), var)
                .pointer("/valueFrom/secretKeyRef")
                .unwrap();
            assert_eq!(pw, server_pw, "{workload} and {var}");
        }
    }

    // Compose, with a different password per role: each role gets its own user's.
    let mut cmd = Command::new(validator("deploy-compose", "docker-compose"));
    cmd.current_dir(root().join("deploy/compose"))
        .args(["--project-directory", ".", "config"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("ORRERY_") || k.starts_with("CLICKHOUSE_") || k.starts_with("COMPOSE_") {
            cmd.env_remove(k);
        }
    }
    for (_, var) in user_password_vars() {
        cmd.env(var, format!("pw-{var}"));
    }
    let cfg = &yaml_docs(&ok(cmd.output().unwrap(), "docker-compose config"))[0]["services"];
    let ch = &cfg["clickhouse"]["environment"];
    for ((_, _, user), (service, (_, var))) in roles.iter().zip(
        ["collector", "query", "migrate"]
            .into_iter()
            .zip(user_password_vars()),
    ) {
        let env = &cfg[service]["environment"];
        assert_eq!(env["ORRERY_CLICKHOUSE_USER"], *user, "{service}");
        assert_eq!(env["ORRERY_CLICKHOUSE_PASSWORD"], format!("pw-{var}"));
        assert_eq!(ch[var], format!("pw-{var}"));
    }
    assert_eq!(ch["CLICKHOUSE_SKIP_USER_SETUP"], "1");
    let mounts = cfg["clickhouse"]["volumes"].to_string();
    assert!(
        mounts.contains("deploy/clickhouse/users.xml:/etc/clickhouse-server/users.d/"),
        "{mounts}"
    );
}

// ---- NetworkPolicy -----------------------------------------------------------------------------

/// (peer workload name, port) pairs a policy's ingress allows into the pods it selects;
/// `None` as the peer for a rule open to any source.
fn allowed(policy: &Value) -> BTreeSet<(Option<String>, u64)> {
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

// ---- The collector's spool -----------------------------------------------------------------------

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

fn drain_job() -> Value {
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
