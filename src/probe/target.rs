//! What to probe: a name (SNI and hostname check), a port, and optionally the
//! address to connect to instead of resolving the name.

use std::net::IpAddr;

use serde::Serialize;

/// One endpoint to probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The target as the user wrote it (or as built from the config).
    pub target: String,
    /// Name sent as SNI and checked against the certificate (or an IP address).
    pub host: String,
    pub port: u16,
    /// Path requested over HTTPS for the HSTS header.
    pub path: String,
    /// `addr:port` (or `addr`, then `port` is used) to connect to instead of `host`.
    pub connect: Option<String>,
    /// Policy name (`default` unless set).
    pub policy: String,
    /// Lineage whose newest stored version should be served.
    pub certificate: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid probe target {input:?}: {reason}; write https://host[:port][/path], host:port or [::1]:port")]
pub struct TargetError {
    pub input: String,
    pub reason: String,
}

impl Target {
    /// Parses `https://host[:port][/path]`, `host[:port]` or `[v6]:port`
    /// (port 443 by default).
    pub fn parse(input: &str) -> Result<Target, TargetError> {
        let err = |reason: &str| TargetError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let s = input.trim();
        let rest = if let Some(r) = strip_prefix_ci(s, "https://") {
            r
        } else if s.contains("://") {
            return Err(err("only https:// URLs can be probed"));
        } else {
            s
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], &rest[i..]),
            Some(i) => (&rest[..i], "/"),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(err("user names in URLs are not supported"));
        }
        let (host, port) = split_host_port(authority).map_err(|r| err(&r))?;
        let mut host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err(err("the host is empty"));
        }
        match host.parse::<IpAddr>() {
            // One spelling per address ("0:0::1" is "::1"), as certificates
            // and the config write it.
            Ok(ip) => host = ip.to_string(),
            Err(_) if crate::config::parse_domain(&host).is_err() => {
                return Err(err("the host is neither a DNS name nor an IP address"))
            }
            Err(_) => {}
        }
        let path = path.split('#').next().unwrap_or("/");
        if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(err("the path contains spaces or control characters"));
        }
        Ok(Target {
            target: s.to_string(),
            host,
            port: port.unwrap_or(443),
            path: path.to_string(),
            connect: None,
            policy: "default".into(),
            certificate: None,
        })
    }

    /// `host:port` as written in messages (`[::1]:443` for IPv6).
    pub fn authority(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// Whether the host is an IP address (then no SNI is sent and the
    /// certificate must carry it as an IP address SAN).
    pub fn host_is_ip(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }

    /// The HTTP `Host` header for `port`: the host (IPv6 in brackets), with
    /// the port unless it is `default_port`.
    pub fn host_header(&self, port: u16, default_port: u16) -> String {
        if port == default_port {
            crate::config::url_host(&self.host)
        } else {
            join_host_port(&self.host, port)
        }
    }

    /// Where to connect: `connect` when set (port defaults to the target's), else host:port.
    pub fn connect_address(&self) -> Result<(String, u16), TargetError> {
        match &self.connect {
            None => Ok((self.host.clone(), self.port)),
            Some(c) => {
                let (h, p) = split_host_port(c).map_err(|reason| TargetError {
                    input: c.clone(),
                    reason,
                })?;
                Ok((h.to_string(), p.unwrap_or(self.port)))
            }
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` (IPv6 always in brackets).
pub fn split_host_port(s: &str) -> Result<(&str, Option<u16>), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("port {p:?} is not a number from 1 to 65535"))
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| "missing ']' after the IPv6 address".to_string())?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{h:?} is not an IPv6 address"));
        }
        return match after {
            "" => Ok((h, None)),
            a => match a.strip_prefix(':') {
                Some(p) => Ok((h, Some(port(p)?))),
                None => Err("unexpected text after ']'".into()),
            },
        };
    }
    if s.matches(':').count() > 1 {
        return Err("write IPv6 addresses in brackets, e.g. [::1]:443".into());
    }
    match s.split_once(':') {
        Some((h, p)) => Ok((h, Some(port(p)?))),
        None => Ok((s, None)),
    }
}

pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        let t = Target::parse("https://Example.COM").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("example.com", 443, "/")
        );
        let t = Target::parse("HTTPS://a.test:8443/x/y?q=1#f").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("a.test", 8443, "/x/y?q=1")
        );
        let t = Target::parse("a.test:444").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("a.test", 444));
        let t = Target::parse("a.test").unwrap();
        assert_eq!(t.port, 443);
        let t = Target::parse("[::1]:8443").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8443));
        assert_eq!(t.authority(), "[::1]:8443");
        let t = Target::parse("https://[::1]").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        let t = Target::parse("127.0.0.1:1").unwrap();
        assert_eq!(t.host, "127.0.0.1");
        let t = Target::parse("a.test?x").unwrap();
        assert_eq!(t.path, "/");
    }

    #[test]
    fn ip_literals_are_kept_in_one_spelling() {
        let t = Target::parse("https://[0:0:0:0:0:0:0:1]:8443/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8443));
        assert!(t.host_is_ip());
        assert_eq!(t.host_header(8443, 443), "[::1]:8443");
        assert_eq!(t.host_header(443, 443), "[::1]");
        assert_eq!(t.host_header(80, 80), "[::1]");
        let t = Target::parse("https://127.0.0.1:8443").unwrap();
        assert!(t.host_is_ip());
        assert_eq!(t.host_header(8443, 443), "127.0.0.1:8443");
        assert_eq!(t.host_header(80, 80), "127.0.0.1");
        let t = Target::parse("a.test").unwrap();
        assert!(!t.host_is_ip());
        assert_eq!(t.host_header(443, 443), "a.test");
        assert!(Target::parse("https://256.1.1.1/").is_err());
    }

    #[test]
    fn rejects_bad_targets() {
        for bad in [
            "http://a.test",
            "ftp://a.test",
            "",
            "https://",
            "a.test:0",
            "a.test:99999",
            "a.test:x",
            "::1:443",
            "[::1",
            "[nope]:1",
            "[::1]x",
            "https://u@a.test",
            "a b.test",
            "-a.test",
            "https://a.test/a b",
        ] {
            let e = Target::parse(bad).unwrap_err();
            assert!(e.to_string().contains("https://host"), "{bad}: {e}");
        }
    }

    #[test]
    fn connect_address() {
        let mut t = Target::parse("a.test:8443").unwrap();
        assert_eq!(t.connect_address().unwrap(), ("a.test".into(), 8443));
        t.connect = Some("127.0.0.1".into());
        assert_eq!(t.connect_address().unwrap(), ("127.0.0.1".into(), 8443));
        t.connect = Some("[::1]:9".into());
        assert_eq!(t.connect_address().unwrap(), ("::1".into(), 9));
        t.connect = Some("x:y".into());
        assert!(t.connect_address().is_err());
    }
}
