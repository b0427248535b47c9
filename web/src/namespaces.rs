//! The namespace zoom level of the region view, as the URL holds it: which namespaces are
//! expanded into their services (`ns=`). The collapsing is the graph API's (`group=namespace`,
//! or `group=auto`, where the server decides from the ungrouped map's size —
//! `orrery_api::collapse::auto_collapses` — and says what it did in the answer's `grouping`):
//! its namespace nodes' quantiles come from merged histograms, and the browser never needs the
//! ungrouped map first. Expanding a namespace puts its services back (zoom, not hiding).

use std::collections::BTreeSet;

pub use crate::api::collapse::LEGIBLE_NODES;

pub const PREFIX: &str = "namespace:";

/// The namespaces named in the URL's `ns=` (comma-separated), as a set.
pub fn parse_expanded(s: &str) -> BTreeSet<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// The URL form of a set of expanded namespaces (sorted, so links are stable).
pub fn format_expanded(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(",")
}

/// The namespace a namespace node id names.
pub fn of_id(id: &str) -> Option<&str> {
    id.strip_prefix(PREFIX)
}

/// The `group=` value the graph API is asked for: the user's namespace level, else (the
/// default, `group=` absent in the page's URL) the automatic zoom — except in diff mode,
/// which compares services and shows them all. `None`: ask for no grouping here.
pub fn server_group(group: &str, diff: bool) -> Option<&'static str> {
    match group {
        "namespace" => Some("namespace"),
        "" if !diff => Some("auto"),
        _ => None,
    }
}

/// What the map says about an automatic collapse (`None` when there was none): how many
/// namespaces and services, and how to see them.
pub fn auto_note(g: &crate::api::Grouping) -> Option<String> {
    (g.auto && !g.collapsed.is_empty()).then(|| {
        format!(
            "{} nodes in {} namespaces: collapsed (more than {} nodes). Double-click one to \
             expand it, or group by services.",
            g.nodes,
            g.collapsed.len(),
            crate::api::collapse::LEGIBLE_NODES
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_form_round_trips() {
        let set = parse_expanded("pay,shop,");
        assert_eq!(format_expanded(&set), "pay,shop");
        assert_eq!(parse_expanded(""), BTreeSet::new());
        assert_eq!(of_id("namespace:pay"), Some("pay"));
    }

    #[test]
    fn the_server_groups_automatically_unless_the_user_chose() {
        assert_eq!(server_group("", false), Some("auto"));
        assert_eq!(server_group("", true), None, "diff compares services");
        assert_eq!(server_group("namespace", false), Some("namespace"));
        assert_eq!(server_group("namespace", true), Some("namespace"));
        assert_eq!(server_group("none", false), None);
        assert_eq!(
            server_group("region", false),
            None,
            "the browser groups that"
        );
        let mut g = crate::api::Grouping {
            by: "namespace".into(),
            auto: true,
            collapsed: vec!["pay".into(), "shop".into()],
            nodes: 312,
        };
        let note = auto_note(&g).unwrap();
        assert!(note.starts_with("312 nodes in 2 namespaces"), "{note}");
        g.collapsed.clear();
        assert_eq!(auto_note(&g), None, "nothing collapsed: nothing to say");
        g.collapsed.push("x".into());
        g.auto = false;
        assert_eq!(auto_note(&g), None, "the user asked for it");
    }
}
