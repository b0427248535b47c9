//! The map's "group" menu. Every grouping is made by the graph API (`group=` of
//! `/orrery/api/graph`), which merges its members' latency histograms, so a group node's
//! quantiles are exact: namespaces (`auto`, `namespace`), regions and name prefixes
//! (`region`, `prefix`: `orrery_api::collapse::NodeGroup`) and kept resource attributes
//! (`attr:<key>`). A group node is `group:<value>` (kind `group`) or `namespace:<name>`;
//! edges are merged between groups and calls inside one group are not drawn (they are the
//! group's own traffic). Groups named in the expanded set stay as services.

pub const PREFIX: &str = "group:";

/// The choices of the grouping control: (URL value of `group=`, label). "" is the automatic
/// namespace zoom, `namespace`/`none` the namespace module's, the others passed to the graph
/// API as they are (`server_param`).
pub const CHOICES: &[(&str, &str)] = &[
    ("", "auto"),
    ("namespace", "namespaces"),
    ("none", "services"),
    ("region", "regions"),
    ("prefix", "name prefix"),
    ("attr:k8s.cluster.name", "cluster"),
    ("attr:deployment.environment.name", "environment"),
    ("attr:cloud.availability_zone", "zone"),
    ("attr:host.name", "host"),
];

/// The `group=` value to pass to the graph API for the `attr:<key>`, `region` and `prefix`
/// choices (the namespace ones: `namespaces::server_group`). Not in diff mode for `region` and
/// `prefix`: a diff compares services.
pub fn server_param(group: &str, diff: bool) -> Option<&str> {
    let by_node = crate::api::collapse::NodeGroup::parse(group).is_some();
    (group.starts_with("attr:") || (by_node && !diff)).then_some(group)
}

/// The group a group node id names.
pub fn of_id(id: &str) -> Option<&str> {
    id.strip_prefix(PREFIX)
}

/// The map's "group" menu: every choice of [`CHOICES`]; `on_change` gets the new `group=`
/// value (the caller stores it in the URL state and clears the expanded set). `grouping` is
/// the last answer's: when the server collapsed namespaces on its own (`group=auto`), a button
/// beside the menu says so and shows the services instead (`group=none`).
#[cfg(target_arch = "wasm32")]
#[leptos::component]
pub fn GroupingControl(
    #[prop(into)] value: leptos::prelude::Signal<String>,
    #[prop(into)] on_change: leptos::prelude::Callback<String>,
    #[prop(optional, into)] grouping: Option<leptos::prelude::Signal<Option<crate::api::Grouping>>>,
) -> impl leptos::IntoView {
    use leptos::prelude::*;
    let note = move || {
        let g = grouping?.get()?;
        let text = crate::namespaces::auto_note(&g)?;
        Some(view! {
            <button data-testid="group-note" class="group-note" title=text
                on:click=move |_| on_change.run("none".into())>
                {format!("{} namespaces collapsed · show services", g.collapsed.len())}</button>
        })
    };
    view! {
        <label title="collapse services into one node per namespace, region, name prefix or attribute">"group "
            <select data-testid="group" aria-label="group services" prop:value=move || value.get()
                on:change=move |ev| on_change.run(event_target_value(&ev))>
                {CHOICES.iter().map(|(v, label)| view! { <option value=*v>{*label}</option> }).collect_view()}
            </select>
        </label>
        {note}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_choice_but_the_namespace_ones_goes_to_the_server_as_it_is() {
        assert_eq!(
            server_param("attr:host.name", false),
            Some("attr:host.name")
        );
        assert_eq!(server_param("attr:host.name", true), Some("attr:host.name"));
        assert_eq!(server_param("region", false), Some("region"));
        assert_eq!(server_param("prefix", false), Some("prefix"));
        assert_eq!(
            server_param("prefix", true),
            None,
            "a diff compares services"
        );
        assert_eq!(server_param("namespace", false), None);
        assert_eq!(server_param("", false), None);
        assert_eq!(of_id("group:eu"), Some("eu"));
        // Every choice is distinct, and each is one the server or the namespace zoom takes.
        let values: BTreeSet<&str> = CHOICES.iter().map(|c| c.0).collect();
        assert_eq!(values.len(), CHOICES.len());
        for (v, _) in CHOICES {
            assert!(
                server_param(v, false).is_some()
                    || crate::namespaces::server_group(v, false).is_some()
                    || *v == "none",
                "{v}"
            );
        }
    }
}
