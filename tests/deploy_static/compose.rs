//! The compose file, the environment the deployments set and the Dockerfile, statically: compose
//! parses and wires collectors and query replicas behind the balancer, every `ORRERY_*` variable a
//! deployment sets is a flag of the binary, and the Dockerfile builds with the README's commands.

use super::*;

// ---- Compose -----------------------------------------------------------------------------------

pub(crate) fn compose(args: &[&str], password: Option<&str>) -> Output {
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
pub(crate) fn known_env_twins() -> BTreeSet<String> {
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

pub(crate) fn env_names(text: &str) -> BTreeSet<String> {
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
