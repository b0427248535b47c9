//! The deployment's secrets, statically: no example secret is ever applied (kustomize itself
//! refuses to build without the operator's files) and no deploy file carries a placeholder or a
//! literal secret. (Grants: grants.rs; NetworkPolicies: network.rs; the spool's volume: spool.rs.)

use super::*;

pub(crate) const SECRETS_DIR: &str = "deploy/kubernetes/secrets";

pub(crate) fn kustomization() -> Value {
    yaml_docs(&read("deploy/kubernetes/kustomization.yaml")).remove(0)
}

/// (secret name, key, file) of every entry of the kustomization's secretGenerator.
pub(crate) fn generator_entries() -> Vec<(String, String, String)> {
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
pub(crate) fn generated_secret_keys(name: &str) -> BTreeSet<String> {
    generator_entries()
        .into_iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, k, _)| k)
        .collect()
}

/// `kubectl kustomize` (or a standalone `kustomize build`) of a directory.
pub(crate) fn kustomize_build(dir: &std::path::Path) -> Output {
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

pub(crate) fn decode_base64(s: &str) -> Vec<u8> {
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
