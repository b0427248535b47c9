//! Selectors of graph nodes in rules: `*` globs over node ids, `region:<glob>`,
//! `namespace:<glob>`.

/// A `*` glob (any run of characters; everything else literal).
#[derive(Debug, Clone, PartialEq)]
pub struct Glob(pub String);

impl Glob {
    pub fn matches(&self, s: &str) -> bool {
        glob_match(self.0.as_bytes(), s.as_bytes())
    }
}

/// Iterative `*` matching (no backtracking blow-up: the last star is the only one retried).
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Which nodes a rule names: `region:<glob>` (nodes whose region matches), `namespace:<glob>`,
/// or a glob over node ids (`checkout`, `database:*`, `INTERNET`).
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    Id(Glob),
    Region(Glob),
    Namespace(Glob),
}

impl Selector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty selector".into());
        }
        Ok(if let Some(r) = s.strip_prefix("region:") {
            Selector::Region(Glob(non_empty(r, "region:")?))
        } else if let Some(n) = s.strip_prefix("namespace:") {
            Selector::Namespace(Glob(non_empty(n, "namespace:")?))
        } else {
            Selector::Id(Glob(s.to_string()))
        })
    }

    pub fn matches(&self, node: &orrery_api::Node) -> bool {
        match self {
            Selector::Id(g) => g.matches(&node.id),
            Selector::Region(g) => g.matches(&node.region),
            Selector::Namespace(g) => node.namespace.as_deref().is_some_and(|n| g.matches(n)),
        }
    }

    /// Matches a node id when the node itself is not in the graph (only id selectors can).
    pub fn matches_id(&self, id: &str) -> bool {
        matches!(self, Selector::Id(g) if g.matches(id))
    }
}

fn non_empty(s: &str, prefix: &str) -> Result<String, String> {
    if s.is_empty() {
        Err(format!("{prefix} needs a name or glob after it"))
    } else {
        Ok(s.to_string())
    }
}
