//! What every browser test asserts about a page, and where the docs' screenshots go.

use super::root;

pub fn strs(x: &serde_json::Value) -> Vec<String> {
    x.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts the page logged no error, panic or CSP violation.
pub fn assert_clean_log(v: &serde_json::Value) {
    let log = strs(&v["log"]);
    assert!(
        log.iter().all(|l| !l.contains("pageerror")
            && !l.contains("panicked")
            && !l.contains("Content Security Policy")),
        "{log:?}"
    );
}

/// Asserts an axe-core report (web/tests/a11y.mjs) has no serious or critical violation.
pub fn assert_accessible(what: &str, report: &serde_json::Value) {
    assert!(
        report.as_array().is_some_and(|a| a.is_empty()),
        "{what}: serious/critical accessibility violations: {report:#}"
    );
}

/// Where the browser tests write the screenshots docs/web.md shows.
pub fn docs_images() -> String {
    root().join("docs/images").display().to_string()
}
