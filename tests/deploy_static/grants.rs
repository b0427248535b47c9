//! ClickHouse users and grants, statically: each Orrery role logs in as its own least-privilege
//! user, with grants checked against the tables the code really writes and parsed by the real engine.

use super::*;

/// The `<query>` grants of one user of users.xml.
pub(crate) fn grants(users: &str, user: &str) -> Vec<String> {
    let body = xml_all(users, user);
    assert_eq!(body.len(), 1, "user {user}");
    xml_all(body[0], "query")
        .iter()
        .map(|q| q.trim().to_string())
        .collect()
}

/// Tables (without database) of `GRANT <privilege> ON orrery.<table>` grants.
pub(crate) fn granted_tables(grants: &[String], privilege: &str) -> BTreeSet<String> {
    grants
        .iter()
        .filter_map(|g| g.strip_prefix(&format!("GRANT {privilege} ON orrery.")))
        .map(String::from)
        .collect()
}

/// Tables the schema creates (cluster variant: `*_local` and their Distributed fronts).
pub(crate) fn schema_tables() -> BTreeSet<String> {
    committed_cluster_ddl()
        .lines()
        .filter_map(|l| l.strip_prefix("CREATE TABLE IF NOT EXISTS orrery."))
        .map(|r| r.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// A table and its cluster twin (`x` and `x_local`).
pub(crate) fn with_local(tables: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    tables
        .into_iter()
        .flat_map(|t| {
            let base = t.strip_suffix("_local").unwrap_or(&t).to_string();
            [format!("{base}_local"), base]
        })
        .collect()
}

/// Tables a source file inserts into: `INSERT INTO <t>` and `.insert::<_>("<t>")`.
pub(crate) fn inserted_tables(src: &str) -> BTreeSet<String> {
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
pub(crate) fn user_password_vars() -> [(&'static str, &'static str); 3] {
    [
        ("orrery_collector", "CLICKHOUSE_COLLECTOR_PASSWORD"),
        ("orrery_query", "CLICKHOUSE_QUERY_PASSWORD"),
        ("orrery_migrate", "CLICKHOUSE_MIGRATE_PASSWORD"),
    ]
}

pub(crate) fn env_of<'a>(c: &'a Value, name: &str) -> &'a Value {
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
