//! The URL-held state: everything a link should reproduce, read from and written to the query
//! string, and the API queries derived from it. Its own module (not app.rs) so the views that
//! read it (trace page, search, comparison) do not import the app that routes to them.

use crate::net::enc;
use crate::replay::Replay;

/// Everything a link should reproduce.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct UrlState {
    pub view: String,
    pub level: String,
    pub region: String,
    pub focus: String,
    pub since: String,
    pub trace: String,
    pub service: String,
    pub errors_only: bool,
    pub hide_virtual: bool,
    pub min_rate: f64,
    pub diff: bool,
    /// Fixed window (Unix ms); empty = live `since`.
    pub start: String,
    pub end: String,
    /// Replay position (Unix ms of the shown minute) inside the fixed window; empty = off.
    pub replay: String,
    /// Selected edge `source->target` (its panel is open).
    pub edge: String,
    /// Namespaces expanded into their services at the region level (`ns=a,b`); the others
    /// are drawn as one node each.
    pub ns: String,
    /// How the region map groups services (`group=namespace|none|…`; absent = automatic: the
    /// graph API's `group=auto`, see `namespaces::server_group`).
    pub group: String,
    /// The second trace of a comparison (`view=compare&trace=A&compare=B`).
    pub compare: String,
    /// The trace page's view (`tab=stats|spans|flame|graph`; empty = the timeline).
    pub tab: String,
}

impl UrlState {
    pub(crate) fn read() -> Self {
        let search = web_sys::window()
            .unwrap()
            .location()
            .search()
            .unwrap_or_default();
        let p = web_sys::UrlSearchParams::new_with_str(&search).unwrap();
        let g = |k: &str, d: &str| p.get(k).unwrap_or_else(|| d.to_string());
        UrlState {
            view: g("view", "map"),
            level: g("level", "region"),
            region: g("region", ""),
            focus: g("focus", ""),
            since: g("since", "5m"),
            trace: g("trace", ""),
            service: g("service", ""),
            errors_only: p.get("errors").as_deref() == Some("1"),
            hide_virtual: p.get("virtual").as_deref() == Some("0"),
            min_rate: g("min_rate", "0").parse().unwrap_or(0.0),
            diff: p.get("diff").as_deref() == Some("1"),
            start: g("start", ""),
            end: g("end", ""),
            replay: g("replay", ""),
            edge: g("edge", ""),
            ns: g("ns", ""),
            group: g("group", ""),
            compare: g("compare", ""),
            tab: g("tab", ""),
        }
    }

    pub(crate) fn query(&self) -> String {
        let mut q = vec![format!("view={}", enc(&self.view))];
        if self.view == "map" {
            q.push(format!("level={}", enc(&self.level)));
            if !self.region.is_empty() {
                q.push(format!("region={}", enc(&self.region)));
            }
            if !self.focus.is_empty() {
                q.push(format!("focus={}", enc(&self.focus)));
            }
        }
        q.push(self.window_query());
        if !self.trace.is_empty() && (self.view == "trace" || self.view == "compare") {
            q.push(format!("trace={}", enc(&self.trace)));
        }
        if !self.tab.is_empty() && self.tab != "timeline" && self.view == "trace" {
            q.push(format!("tab={}", enc(&self.tab)));
        }
        if !self.compare.is_empty() && self.view == "compare" {
            q.push(format!("compare={}", enc(&self.compare)));
        }
        if !self.service.is_empty() && self.view == "traces" {
            q.push(format!("service={}", enc(&self.service)));
        }
        if self.errors_only {
            q.push("errors=1".into());
        }
        if self.hide_virtual {
            q.push("virtual=0".into());
        }
        if self.min_rate > 0.0 {
            q.push(format!("min_rate={}", self.min_rate));
        }
        if self.diff && self.view == "map" {
            q.push("diff=1".into());
        }
        if self.view == "map" && self.replaying().is_some() {
            q.push(format!("replay={}", enc(&self.replay)));
        }
        if self.view == "map" && self.level == "region" && !self.ns.is_empty() {
            q.push(format!("ns={}", enc(&self.ns)));
        }
        if self.view == "map" && !self.group.is_empty() {
            q.push(format!("group={}", enc(&self.group)));
        }
        if self.view == "map" && !self.edge.is_empty() {
            q.push(format!("edge={}", enc(&self.edge)));
        }
        let search = web_sys::window()
            .unwrap()
            .location()
            .search()
            .unwrap_or_default();
        for flag in ["kiosk", "reduced-motion", "renderer"] {
            if let Some(v) = web_sys::UrlSearchParams::new_with_str(&search)
                .unwrap()
                .get(flag)
            {
                q.push(format!("{flag}={}", enc(&v)));
            }
        }
        format!("?{}", q.join("&"))
    }

    /// `since=…` when live, else `start=…&end=…`.
    pub(crate) fn window_query(&self) -> String {
        if self.start.is_empty() {
            format!("since={}", enc(&self.since))
        } else {
            format!("start={}&end={}", enc(&self.start), enc(&self.end))
        }
    }

    pub(crate) fn live(&self) -> bool {
        self.start.is_empty()
    }

    /// The replayed range and position, when replaying a fixed window.
    pub(crate) fn replaying(&self) -> Option<(Replay, i64)> {
        let (start, end) = (self.start.parse().ok()?, self.end.parse().ok()?);
        let pos: i64 = self.replay.parse().ok()?;
        let r = Replay::new(start, end);
        Some((r, r.clamp(pos)))
    }

    /// The window the data is for: the replayed minute, else the URL's window.
    pub(crate) fn data_window_query(&self) -> String {
        match self.replaying() {
            Some((r, pos)) => {
                let (a, b) = r.window(pos);
                format!("start={a}&end={b}")
            }
            None => self.window_query(),
        }
    }

    pub(crate) fn graph_query(&self) -> String {
        let mut q = format!("level={}&{}", enc(&self.level), self.data_window_query());
        if self.level == "region" && !self.region.is_empty() {
            q += &format!("&region={}", enc(&self.region));
        }
        if self.level == "focused" {
            q += &format!("&service={}", enc(&self.focus));
        }
        // Groupings the graph API does (merged histograms, so exact quantiles): the automatic
        // namespace zoom (the default; not in diff mode, which compares services), the chosen
        // namespace level, regions, name prefixes and attributes; `expand=` the groups opened
        // into services.
        let server = crate::namespaces::server_group(&self.group, self.diff)
            .or_else(|| crate::grouping::server_param(&self.group, self.diff));
        if let Some(by) = server.filter(|_| self.level == "region") {
            q += &format!("&group={}", enc(by));
            if !self.ns.is_empty() {
                q += &format!("&expand={}", enc(&self.ns));
            }
        }
        q
    }
}

/// Seconds since the page loaded (the clock of the map's animations).
pub(crate) fn now_s() -> f64 {
    web_sys::window().unwrap().performance().unwrap().now() / 1000.0
}
