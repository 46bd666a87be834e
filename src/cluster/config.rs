//! The `[cluster]` section. Absent: single-host mode, nothing changes.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_spanned::Spanned;

use crate::config::HumanDuration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd client URLs (`http://` or `https://`, host and port).
    pub endpoints: Spanned<Vec<Endpoint>>,
    /// Key prefix: one etcd can hold several clusters.
    #[serde(default = "default_prefix")]
    pub prefix: Prefix,
    /// This node's name; the host name by default.
    pub node: Option<NodeName>,
    /// The 32-byte key shared by every node (0600).
    pub encryption_key_file: PathBuf,
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: Spanned<HumanDuration>,
    #[serde(default = "five_seconds")]
    pub request_timeout: HumanDuration,
    #[serde(default = "five_seconds")]
    pub connect_timeout: HumanDuration,
    #[serde(default = "default_challenge_timeout")]
    pub challenge_timeout: HumanDuration,
    #[serde(default = "default_deploy_lag")]
    pub deploy_lag_alert_after: HumanDuration,
    #[serde(default = "default_unreachable")]
    pub unreachable_alert_after: HumanDuration,
    /// Client TLS to etcd.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<Spanned<PathBuf>>,
    pub key_file: Option<Spanned<PathBuf>>,
    /// etcd authentication; the password is read from a file.
    pub user: Option<Spanned<String>>,
    pub password_file: Option<Spanned<PathBuf>>,
}

fn default_prefix() -> Prefix {
    Prefix("/certkeep".into())
}
fn default_lease_ttl() -> Spanned<HumanDuration> {
    Spanned::new(0..0, HumanDuration::from_secs(15))
}
fn five_seconds() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_challenge_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_deploy_lag() -> HumanDuration {
    HumanDuration::from_secs(600)
}
fn default_unreachable() -> HumanDuration {
    HumanDuration::from_secs(300)
}

/// An etcd endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(pub String);

impl Endpoint {
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match reqwest::Url::parse(&s) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.port().is_some()
                    && matches!(u.path(), "" | "/")
                    && u.query().is_none() =>
            {
                Ok(Endpoint(s.trim_end_matches('/').to_string()))
            }
            _ => Err(serde::de::Error::custom(format!(
                "{s:?} is not an etcd endpoint; write e.g. \"https://10.0.0.1:2379\" (scheme, host and port)"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix(pub String);

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        super::keys::validate_prefix(&s).map_err(serde::de::Error::custom)?;
        Ok(Prefix(s.trim_end_matches('/').to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeName(pub String);

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        super::keys::validate_node(&s).map_err(serde::de::Error::custom)?;
        Ok(NodeName(s))
    }
}

/// The host name (for the default node name).
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // on success when the name fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0)?;
    String::from_utf8(buf[..end].to_vec()).ok()
}

impl ClusterConfig {
    /// This node's name: `node`, else the host name.
    pub fn node_name(&self) -> Result<String, String> {
        if let Some(n) = &self.node {
            return Ok(n.0.clone());
        }
        let h = host_name().ok_or("cannot read the host name; set node = \"web1\" in [cluster]")?;
        super::keys::validate_node(&h)
            .map(|_| h.clone())
            .map_err(|e| format!("the host name is not a usable node name ({e}); set node = \"web1\" in [cluster]"))
    }

    /// Cross-field checks; the error carries the byte offset to report.
    pub fn validate(&self) -> Result<(), (usize, String)> {
        let at = self.endpoints.span().start;
        let eps = self.endpoints.get_ref();
        if eps.is_empty() {
            return Err((at, "[cluster] endpoints is empty; list the etcd client URLs, e.g. [\"https://10.0.0.1:2379\"]".into()));
        }
        let https = eps.iter().filter(|e| e.is_https()).count();
        if https != 0 && https != eps.len() {
            return Err((
                at,
                "[cluster] endpoints mix http:// and https://; use one scheme for every member"
                    .into(),
            ));
        }
        let tls_files = self.ca_file.is_some() || self.cert_file.is_some();
        if tls_files && https == 0 {
            return Err((
                at,
                "[cluster] sets TLS files but the endpoints are http://; write https:// endpoints"
                    .into(),
            ));
        }
        match (&self.cert_file, &self.key_file) {
            (Some(c), None) => {
                return Err((
                    c.span().start,
                    "[cluster] cert_file needs key_file (the client certificate's private key)"
                        .into(),
                ))
            }
            (None, Some(k)) => {
                return Err((
                    k.span().start,
                    "[cluster] key_file needs cert_file (the client certificate)".into(),
                ))
            }
            _ => {}
        }
        match (&self.user, &self.password_file) {
            (Some(u), None) => return Err((
                u.span().start,
                "[cluster] user needs password_file (the password is never written in this file)"
                    .into(),
            )),
            (None, Some(p)) => {
                return Err((p.span().start, "[cluster] password_file needs user".into()))
            }
            _ => {}
        }
        let ttl = self.lease_ttl.get_ref().get();
        if ttl < Duration::from_secs(2) || ttl.subsec_nanos() != 0 {
            return Err((
                self.lease_ttl.span().start,
                "[cluster] lease_ttl must be whole seconds, at least \"2s\" (etcd leases count seconds)".into(),
            ));
        }
        if self.request_timeout.get() >= ttl {
            return Err((
                self.lease_ttl.span().start,
                format!(
                    "[cluster] lease_ttl ({}) must be longer than request_timeout ({}): a lease must survive one slow keep-alive",
                    humantime::format_duration(ttl),
                    humantime::format_duration(self.request_timeout.get())
                ),
            ));
        }
        for (name, d) in [
            ("request_timeout", self.request_timeout),
            ("connect_timeout", self.connect_timeout),
            ("challenge_timeout", self.challenge_timeout),
        ] {
            if d.get().is_zero() {
                return Err((at, format!("[cluster] {name} must be longer than 0s")));
            }
        }
        Ok(())
    }
}

/// The `[cluster]` settings that differ between two configurations, by
/// name (empty: the same cluster). A running daemon does not apply them:
/// its cluster task keeps its etcd session, lease and locks.
pub fn changed(old: Option<&ClusterConfig>, new: Option<&ClusterConfig>) -> Vec<&'static str> {
    let (o, n) = match (old, new) {
        (None, None) => return vec![],
        (Some(o), Some(n)) => (o, n),
        _ => return vec!["the [cluster] section itself"],
    };
    let mut out = Vec::new();
    macro_rules! cmp {
        ($($f:ident),*) => {
            $(if o.$f != n.$f {
                out.push(stringify!($f));
            })*
        };
    }
    cmp!(
        endpoints,
        prefix,
        node,
        encryption_key_file,
        lease_ttl,
        request_timeout,
        connect_timeout,
        challenge_timeout,
        deploy_lag_alert_after,
        unreachable_alert_after,
        ca_file,
        cert_file,
        key_file,
        user,
        password_file
    );
    out
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, Settings};
    use std::path::Path;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::parse(text, Path::new("t.toml"))
    }

    fn err(text: &str) -> (usize, usize, String) {
        match parse(text) {
            Err(ConfigError::Invalid {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn absent_section_means_single_host() {
        assert!(parse("").unwrap().cluster.is_none());
    }

    #[test]
    fn minimal_section_gets_documented_defaults() {
        let c = parse(
            "[cluster]\nendpoints = [\"http://127.0.0.1:2379\"]\nnode = \"web1\"\nencryption_key_file = \"/etc/certkeep/cluster.key\"\n",
        )
        .unwrap()
        .cluster
        .unwrap();
        assert_eq!(c.prefix.0, "/certkeep");
        assert_eq!(c.node_name().unwrap(), "web1");
        assert_eq!(c.lease_ttl.get_ref().get(), Duration::from_secs(15));
        assert_eq!(c.request_timeout.get(), Duration::from_secs(5));
        assert_eq!(c.connect_timeout.get(), Duration::from_secs(5));
        assert_eq!(c.challenge_timeout.get(), Duration::from_secs(60));
        assert_eq!(c.deploy_lag_alert_after.get(), Duration::from_secs(600));
        assert_eq!(c.unreachable_alert_after.get(), Duration::from_secs(300));
        assert!(c.ca_file.is_none() && c.user.is_none());
    }

    #[test]
    fn full_section_from_the_docs_parses() {
        let c = parse(
            r#"[cluster]
endpoints = ["https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379"]
prefix = "/certkeep/prod/"
node = "web1"
encryption_key_file = "/etc/certkeep/cluster.key"
lease_ttl = "15s"
request_timeout = "5s"
connect_timeout = "5s"
challenge_timeout = "60s"
deploy_lag_alert_after = "10m"
unreachable_alert_after = "5m"
ca_file = "/etc/certkeep/etcd-ca.pem"
cert_file = "/etc/certkeep/etcd-client.pem"
key_file = "/etc/certkeep/etcd-client.key"
user = "certkeep"
password_file = "/etc/certkeep/etcd-password"
"#,
        )
        .unwrap()
        .cluster
        .unwrap();
        assert_eq!(c.endpoints.get_ref().len(), 3);
        assert_eq!(c.prefix.0, "/certkeep/prod");
        assert_eq!(c.deploy_lag_alert_after.get(), Duration::from_secs(600));
        assert_eq!(c.user.unwrap().into_inner(), "certkeep");
    }

    #[test]
    fn node_defaults_to_the_host_name() {
        let c = parse(
            "[cluster]\nendpoints = [\"http://127.0.0.1:2379\"]\nencryption_key_file = \"/k\"\n",
        )
        .unwrap()
        .cluster
        .unwrap();
        let host = super::host_name().unwrap();
        assert_eq!(c.node_name().unwrap(), host);
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let head = "[cluster]\nencryption_key_file = \"/k\"\n";
        let cases = [
            (
                "endpoints = [\"10.0.0.1:2379\"]",
                3,
                13,
                "not an etcd endpoint",
            ),
            (
                "endpoints = [\"https://10.0.0.1\"]",
                3,
                13,
                "scheme, host and port",
            ),
            (
                "endpoints = [\"http://a:1\"]\nprefix = \"certkeep\"",
                4,
                10,
                "not an etcd path",
            ),
            (
                "endpoints = [\"http://a:1\"]\nnode = \"web 1\"",
                4,
                8,
                "node name",
            ),
            (
                "endpoints = [\"http://a:1\"]\nlease_ttl = \"soon\"",
                4,
                13,
                "not a duration",
            ),
            (
                "endpoints = [\"http://a:1\"]\nbogus = 1",
                4,
                1,
                "unknown field",
            ),
        ];
        for (body, line, col, msg) in cases {
            let (l, c, m) = err(&format!("{head}{body}\n"));
            assert_eq!((l, c), (line, col), "{body}: {m}");
            assert!(m.contains(msg), "{body}: {m}");
        }
        let (l, _, m) = err("[cluster]\nendpoints = [\"http://a:1\"]\n");
        assert_eq!(l, 1);
        assert!(m.contains("encryption_key_file"), "{m}");
    }

    #[test]
    fn cross_field_errors_point_at_the_field() {
        let head = "[cluster]\nencryption_key_file = \"/k\"\n";
        let cases = [
            ("endpoints = []", 3, "endpoints is empty"),
            (
                "endpoints = [\"http://a:1\", \"https://b:1\"]",
                3,
                "mix http:// and https://",
            ),
            (
                "endpoints = [\"http://a:1\"]\nca_file = \"/ca.pem\"",
                3,
                "TLS files but the endpoints are http://",
            ),
            (
                "endpoints = [\"https://a:1\"]\ncert_file = \"/c.pem\"",
                4,
                "cert_file needs key_file",
            ),
            (
                "endpoints = [\"https://a:1\"]\nkey_file = \"/c.key\"",
                4,
                "key_file needs cert_file",
            ),
            (
                "endpoints = [\"https://a:1\"]\nuser = \"u\"",
                4,
                "user needs password_file",
            ),
            (
                "endpoints = [\"https://a:1\"]\npassword_file = \"/p\"",
                4,
                "password_file needs user",
            ),
            (
                "endpoints = [\"http://a:1\"]\nlease_ttl = \"1s\"",
                4,
                "at least \"2s\"",
            ),
            (
                "endpoints = [\"http://a:1\"]\nlease_ttl = \"2500ms\"",
                4,
                "whole seconds",
            ),
            (
                "endpoints = [\"http://a:1\"]\nlease_ttl = \"5s\"\nrequest_timeout = \"5s\"",
                4,
                "longer than request_timeout",
            ),
            (
                "endpoints = [\"http://a:1\"]\nchallenge_timeout = \"0s\"",
                3,
                "challenge_timeout must be longer than 0s",
            ),
        ];
        for (body, line, msg) in cases {
            let (l, _, m) = err(&format!("{head}{body}\n"));
            assert_eq!(l, line, "{body}: {m}");
            assert!(m.contains(msg), "{body}: {m}");
        }
    }

    #[test]
    fn changed_names_the_cluster_settings_that_differ() {
        use super::{changed, ClusterConfig};
        let base = "endpoints = [\"http://127.0.0.1:2379\"]\nencryption_key_file = \"/k\"\n";
        let parse = |t: &str| -> ClusterConfig { toml::from_str(t).unwrap() };
        let a = parse(base);
        // The same values elsewhere in the file are the same cluster.
        let moved = parse(&format!("\n\n{base}"));
        assert!(changed(Some(&a), Some(&moved)).is_empty());
        assert!(changed(None, None).is_empty());
        let b = parse(&format!("{base}prefix = \"/other\"\nlease_ttl = \"3s\"\n"));
        assert_eq!(changed(Some(&a), Some(&b)), ["prefix", "lease_ttl"]);
        assert_eq!(changed(Some(&a), None), ["the [cluster] section itself"]);
    }
}
