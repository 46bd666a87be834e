//! The key layout in etcd (pure). Everything lives under `PREFIX/v1/`; see
//! docs/cluster.md, "Keys in etcd".

/// The layout version in every key, so a future format can live beside this one.
pub const LAYOUT: &str = "v1";

/// Builds and parses the keys of one cluster (one prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `PREFIX/v1/`, always ending in '/'.
    root: String,
}

/// What a key under the root names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Meta,
    Account(String),
    Current(String),
    Previous(String),
    Ari(String),
    Deploy { lineage: String, node: String },
    Challenge(String),
    Ack { token: String, node: String },
    Node(String),
    Alerts,
}

/// A prefix is an absolute etcd path: starts with '/', no empty segment,
/// printable ASCII without spaces.
pub fn validate_prefix(p: &str) -> Result<(), String> {
    let trimmed = p.trim_end_matches('/');
    let ok = p.starts_with('/')
        && trimmed.len() > 1
        && trimmed[1..].split('/').all(|s| !s.is_empty())
        && trimmed.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "prefix {p:?} is not an etcd path; write e.g. \"/certkeep/prod\" (starts with '/', no empty or blank segments)"
        ))
    }
}

/// A node name becomes one key segment: letters, digits, '.', '-', '_'.
pub fn validate_node(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= 253
        && !n.starts_with('.')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "node name {n:?} is not usable: use letters, digits, '.', '-' and '_' only, not starting with '.'"
        ))
    }
}

/// A segment that can be placed in a key without creating a new level.
fn segment_ok(s: &str) -> bool {
    !s.is_empty() && !s.contains('/') && s != "." && s != ".."
}

impl Keys {
    /// `prefix` must pass [`validate_prefix`] (the configuration checks it).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            root: format!("{}/{LAYOUT}/", prefix.trim_end_matches('/')),
        }
    }

    /// `PREFIX/v1/`: every key of this cluster starts with it.
    pub fn root(&self) -> &str {
        &self.root
    }

    fn k(&self, rest: &str) -> String {
        format!("{}{rest}", self.root)
    }

    pub fn meta(&self) -> String {
        self.k("meta")
    }
    /// `ca_host` is the CA's host (and port), as in the store's accounts/ tree.
    pub fn account(&self, ca_host: &str) -> String {
        self.k(&format!("account/{ca_host}"))
    }
    pub fn lineages(&self) -> String {
        self.k("lineage/")
    }
    pub fn current(&self, lineage: &str) -> String {
        self.k(&format!("lineage/{lineage}/current"))
    }
    pub fn previous(&self, lineage: &str) -> String {
        self.k(&format!("lineage/{lineage}/previous"))
    }
    /// Every lineage's ARI window. Outside `lineage/`, so refreshing a
    /// window does not reach the nodes' lineage watches, and one range read
    /// returns every window without the certificates.
    pub fn aris(&self) -> String {
        self.k("ari/")
    }
    pub fn ari(&self, lineage: &str) -> String {
        self.k(&format!("ari/{lineage}"))
    }
    /// Every node's deploy reports. They live outside `lineage/`, so a
    /// watch on the lineages sees new versions only, not every report.
    pub fn deploys(&self) -> String {
        self.k("deploy/")
    }
    /// One node's deploy reports (read once at its start).
    pub fn deploys_of(&self, node: &str) -> String {
        self.k(&format!("deploy/{node}/"))
    }
    pub fn deploy(&self, lineage: &str, node: &str) -> String {
        self.k(&format!("deploy/{node}/{lineage}"))
    }
    pub fn lock_lineage(&self, lineage: &str) -> String {
        self.k(&format!("lock/lineage/{lineage}"))
    }
    pub fn lock_account(&self) -> String {
        self.k("lock/account")
    }
    pub fn lock_alerts(&self) -> String {
        self.k("lock/alerts")
    }
    pub fn challenges(&self) -> String {
        self.k("challenge/")
    }
    pub fn challenge(&self, token: &str) -> String {
        self.k(&format!("challenge/{token}"))
    }
    pub fn acks(&self, token: &str) -> String {
        self.k(&format!("challenge/{token}/ack/"))
    }
    pub fn ack(&self, token: &str, node: &str) -> String {
        self.k(&format!("challenge/{token}/ack/{node}"))
    }
    pub fn nodes(&self) -> String {
        self.k("node/")
    }
    pub fn node(&self, node: &str) -> String {
        self.k(&format!("node/{node}"))
    }
    pub fn alerts(&self) -> String {
        self.k("alerts")
    }

    /// What `key` names, or None for a key outside this layout.
    pub fn parse(&self, key: &str) -> Option<Parsed> {
        let rest = key.strip_prefix(&self.root)?;
        let parts: Vec<&str> = rest.split('/').collect();
        if !parts.iter().all(|s| segment_ok(s)) {
            return None;
        }
        let own = |s: &str| s.to_string();
        Some(match parts.as_slice() {
            ["meta"] => Parsed::Meta,
            ["alerts"] => Parsed::Alerts,
            ["account", host] => Parsed::Account(own(host)),
            ["lineage", l, "current"] => Parsed::Current(own(l)),
            ["lineage", l, "previous"] => Parsed::Previous(own(l)),
            ["ari", l] => Parsed::Ari(own(l)),
            ["deploy", n, l] => Parsed::Deploy {
                lineage: own(l),
                node: own(n),
            },
            ["challenge", t] => Parsed::Challenge(own(t)),
            ["challenge", t, "ack", n] => Parsed::Ack {
                token: own(t),
                node: own(n),
            },
            ["node", n] => Parsed::Node(own(n)),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_under_prefix_v1() {
        let k = Keys::new("/certkeep/prod");
        assert_eq!(k.root(), "/certkeep/prod/v1/");
        assert_eq!(Keys::new("/certkeep/prod/").root(), "/certkeep/prod/v1/");
        assert_eq!(k.meta(), "/certkeep/prod/v1/meta");
        assert_eq!(
            k.account("acme-v02.api.letsencrypt.org"),
            "/certkeep/prod/v1/account/acme-v02.api.letsencrypt.org"
        );
        assert_eq!(k.current("web"), "/certkeep/prod/v1/lineage/web/current");
        assert_eq!(k.previous("web"), "/certkeep/prod/v1/lineage/web/previous");
        assert_eq!(k.ari("web"), "/certkeep/prod/v1/ari/web");
        assert_eq!(k.aris(), "/certkeep/prod/v1/ari/");
        assert!(!k.ari("web").starts_with(&k.lineages()));
        assert_eq!(k.deploys(), "/certkeep/prod/v1/deploy/");
        assert_eq!(k.deploys_of("n1"), "/certkeep/prod/v1/deploy/n1/");
        assert_eq!(k.deploy("web", "n1"), "/certkeep/prod/v1/deploy/n1/web");
        // Reports are not under the watched lineage prefix.
        assert!(!k.deploy("web", "n1").starts_with(&k.lineages()));
        assert_eq!(k.lock_lineage("web"), "/certkeep/prod/v1/lock/lineage/web");
        assert_eq!(k.lock_account(), "/certkeep/prod/v1/lock/account");
        assert_eq!(k.lock_alerts(), "/certkeep/prod/v1/lock/alerts");
        assert_eq!(k.challenge("tok"), "/certkeep/prod/v1/challenge/tok");
        assert_eq!(k.ack("tok", "n2"), "/certkeep/prod/v1/challenge/tok/ack/n2");
        assert_eq!(k.node("n3"), "/certkeep/prod/v1/node/n3");
        assert_eq!(k.alerts(), "/certkeep/prod/v1/alerts");
    }

    #[test]
    fn parse_round_trips_every_key() {
        let k = Keys::new("/p");
        let cases = [
            (k.meta(), Parsed::Meta),
            (k.alerts(), Parsed::Alerts),
            (k.account("ca:14000"), Parsed::Account("ca:14000".into())),
            (k.current("a.b"), Parsed::Current("a.b".into())),
            (k.previous("a"), Parsed::Previous("a".into())),
            (k.ari("a"), Parsed::Ari("a".into())),
            (
                k.deploy("a", "n"),
                Parsed::Deploy {
                    lineage: "a".into(),
                    node: "n".into(),
                },
            ),
            (k.challenge("T-_x"), Parsed::Challenge("T-_x".into())),
            (
                k.ack("T", "n"),
                Parsed::Ack {
                    token: "T".into(),
                    node: "n".into(),
                },
            ),
            (k.node("n"), Parsed::Node("n".into())),
        ];
        for (key, want) in cases {
            assert_eq!(k.parse(&key), Some(want), "{key}");
        }
    }

    #[test]
    fn parse_rejects_foreign_and_malformed_keys() {
        let k = Keys::new("/p");
        for key in [
            "/q/v1/meta",
            "/p/v2/meta",
            "/p/v1/",
            "/p/v1/lineage/a",
            "/p/v1/lineage//current",
            "/p/v1/lineage/a/current/x",
            "/p/v1/lineage/a/deploy/n",
            "/p/v1/deploy/n",
            "/p/v1/lineage/../current",
            "/p/v1/challenge/t/ack/",
            "/p/v1/lock/lineage/a",
            "/p/v1/unknown",
        ] {
            assert_eq!(k.parse(key), None, "{key}");
        }
        // Another cluster whose prefix starts with this one's is not ours.
        assert_eq!(Keys::new("/p").parse("/pp/v1/meta"), None);
    }

    #[test]
    fn prefixes_and_node_names() {
        for ok in ["/certkeep", "/certkeep/prod", "/a/b/"] {
            assert!(validate_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/", "certkeep", "/a//b", "/a b", "//"] {
            let e = validate_prefix(bad).unwrap_err();
            assert!(e.contains("/certkeep/prod"), "{e}");
        }
        for ok in ["web1", "web-1.example", "n_2"] {
            assert!(validate_node(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", ".hidden", "web 1", "é"] {
            assert!(validate_node(bad).is_err(), "{bad}");
        }
    }
}
