//! Minimal HTTP/1.1 over the probe's own connections: the HSTS header over
//! HTTPS, and on plain HTTP the redirect to HTTPS and the ACME challenge path.
//! The parsers are pure and bounded.

use std::net::SocketAddr;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::tls::{connect, Timeouts};
use super::{ErrorKind, ProbeError};

/// Largest response head read (status line and headers).
pub const MAX_HEAD: usize = 32 * 1024;

/// One year, the HSTS preload minimum.
pub const ONE_YEAR: u64 = 31_536_000;

/// Status line and headers of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (lowercase), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Parses a response head. `Ok(None)`: incomplete (read more). Bounded by [`MAX_HEAD`].
pub fn parse_head(bytes: &[u8]) -> Result<Option<Head>, String> {
    let end = match bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) if i <= MAX_HEAD => i,
        Some(_) => return Err(format!("the response head is larger than {MAX_HEAD} bytes")),
        None if bytes.len() > MAX_HEAD => {
            return Err(format!("the response head is larger than {MAX_HEAD} bytes"))
        }
        None if !bytes.is_empty() && !b"HTTP/".starts_with(&bytes[..bytes.len().min(5)]) => {
            return Err("the reply is not HTTP".into())
        }
        None => return Ok(None),
    };
    let text = std::str::from_utf8(&bytes[..end]).map_err(|_| "the response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x status line: {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| format!("bad status in {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed header line {line:?}"))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Some(Head { status, headers }))
}

/// Sends `GET path` and reads the response head, with the read timeout for
/// the first byte and again for the rest.
pub async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    path: &str,
    t: &Timeouts,
) -> Result<Head, ProbeError> {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: certkeep-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    let timed = |what: &str| {
        ProbeError::new(
            ErrorKind::ReadTimeout,
            format!("no HTTP {what} within {:?}", t.read),
        )
    };
    match tokio::time::timeout(t.read, stream.write_all(req.as_bytes())).await {
        Err(_) => return Err(timed("request sent")),
        Ok(Err(e)) => return Err(ProbeError::io("send the HTTP request", &e)),
        Ok(Ok(())) => {}
    }
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    // First byte within `read`; the rest of the head within another `read`.
    let mut deadline = tokio::time::Instant::now() + t.read;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) if buf.is_empty() => return Err(timed("response")),
            Err(_) => return Err(timed("response head (the server trickles bytes)")),
            Ok(Ok(n)) => n,
            // A TLS close without close_notify after the head is common.
            Ok(Err(e)) if !buf.is_empty() && super::tls::is_closed(&e) => 0,
            Ok(Err(e)) if super::tls::is_closed(&e) => {
                return Err(ProbeError::new(
                    ErrorKind::Closed,
                    format!("the server closed the connection instead of answering HTTP ({e})"),
                ))
            }
            Ok(Err(e)) => return Err(ProbeError::io("read the HTTP response", &e)),
        };
        if n == 0 {
            return match parse_head(&buf) {
                Ok(Some(h)) => Ok(h),
                _ => Err(ProbeError::new(
                    ErrorKind::Closed,
                    "the server closed the connection before a complete HTTP response".into(),
                )),
            };
        }
        if buf.is_empty() {
            deadline = tokio::time::Instant::now() + t.read;
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse_head(&buf) {
            Ok(Some(h)) => return Ok(h),
            Ok(None) => continue,
            Err(e) => return Err(ProbeError::new(ErrorKind::Garbage, e)),
        }
    }
}

/// The Strict-Transport-Security facts (RFC 6797; first header only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hsts {
    pub present: bool,
    pub max_age: Option<u64>,
    pub include_subdomains: bool,
    /// The `preload` directive is present.
    pub preload: bool,
    /// How many Strict-Transport-Security headers the response has.
    pub headers: usize,
    /// Meets hstspreload's rules: exactly one header with max-age >= 1 year,
    /// includeSubDomains and preload, and plain HTTP redirecting to HTTPS on
    /// the same host first.
    pub preload_eligible: bool,
    /// Each preload rule that failed, in words, with hstspreload's issue code.
    pub preload_issues: Vec<String>,
    /// The raw header value.
    pub header: Option<String>,
    /// Why the header is invalid (a browser ignores it), when it is.
    pub invalid: Option<String>,
}

/// The Strict-Transport-Security facts of a response: the first header
/// counts for browsers (RFC 6797 8.1); the preload rules see all of them.
/// The redirect rules are added by [`add_redirect_rules`].
pub fn hsts_from(values: &[&str]) -> Hsts {
    let mut h = parse_hsts(values.first().copied());
    h.headers = values.len();
    h.preload_issues = preload_header_issues(values);
    h.preload_eligible = h.preload_issues.is_empty();
    h
}

/// Parses the first Strict-Transport-Security header value, if any.
pub fn parse_hsts(value: Option<&str>) -> Hsts {
    let Some(v) = value else {
        return Hsts {
            preload_issues: preload_header_issues(&[]),
            ..Hsts::default()
        };
    };
    let mut h = Hsts {
        present: true,
        headers: 1,
        header: Some(v.to_string()),
        ..Hsts::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    for d in v.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        let (name, val) = match d.split_once('=') {
            Some((n, v)) => (
                n.trim().to_ascii_lowercase(),
                Some(v.trim().trim_matches('"')),
            ),
            None => (d.to_ascii_lowercase(), None),
        };
        if !seen.insert(name.clone()) {
            h.invalid = Some(format!("directive {name} appears twice"));
            continue;
        }
        match (name.as_str(), val) {
            ("max-age", Some(n)) => match n.parse::<u64>() {
                Ok(n) => h.max_age = Some(n),
                Err(_) => h.invalid = Some(format!("max-age {n:?} is not a number")),
            },
            ("max-age", None) => h.invalid = Some("max-age has no value".into()),
            ("includesubdomains", _) => h.include_subdomains = true,
            ("preload", _) => h.preload = true,
            _ => {}
        }
    }
    if h.max_age.is_none() && h.invalid.is_none() {
        h.invalid = Some("max-age is missing".into());
    }
    if h.invalid.is_some() {
        h.max_age = None;
    }
    h.preload_issues = preload_header_issues(&[v]);
    h.preload_eligible = h.preload_issues.is_empty();
    h
}

/// hstspreload's header rules (its PreloadableResponse): exactly one
/// header; max-age plain digits, at least one year; includeSubDomains;
/// preload. Repeated or unknown directives are only warnings there.
pub fn preload_header_issues(values: &[&str]) -> Vec<String> {
    let v = match values {
        [] => return vec!["no Strict-Transport-Security header (response.no_header)".into()],
        [v] => *v,
        more => {
            return vec![format!(
                "{} Strict-Transport-Security headers where exactly one is allowed (response.multiple_headers)",
                more.len()
            )]
        }
    };
    let mut out = Vec::new();
    let mut max_age: Option<u64> = None;
    let (mut subdomains, mut preload) = (false, false);
    for d in v.split(';').map(str::trim) {
        let lower = d.to_ascii_lowercase();
        if lower == "preload" {
            preload = true;
        } else if lower == "includesubdomains" {
            subdomains = true;
        } else if let Some(n) = lower.strip_prefix("max-age=") {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                out.push(format!(
                    "max-age value {n:?} is not plain digits (header.parse.max_age.non_digit_characters)"
                ));
            } else if max_age.is_none() {
                max_age = n.parse().ok();
                if max_age.is_none() {
                    out.push(format!(
                        "max-age value {n} is too large (header.parse.max_age.parse_int_error)"
                    ));
                }
            }
        } else if lower.starts_with("max-age") {
            out.push("max-age has no value (header.parse.invalid.max_age.no_value)".into());
        }
    }
    if !subdomains {
        out.push(
            "no includeSubDomains directive (header.preloadable.include_sub_domains.missing)"
                .into(),
        );
    }
    if !preload {
        out.push("no preload directive (header.preloadable.preload.missing)".into());
    }
    match max_age {
        None if out.iter().any(|i| i.contains("max_age")) => {}
        None => out.push("no max-age directive (header.preloadable.max_age.missing)".into()),
        Some(0) => out.push("max-age is 0 (header.preloadable.max_age.zero)".into()),
        Some(n) if n < ONE_YEAR => out.push(format!(
            "max-age={n} is below {ONE_YEAR} seconds, one year (header.preloadable.max_age.below_1_year)"
        )),
        Some(_) => {}
    }
    out
}

/// The host of an absolute http(s) URL, lowercase, without port or userinfo.
fn url_host(url: &str) -> Option<(bool, String)> {
    let lower = url.trim().to_ascii_lowercase();
    let (https, rest) = if let Some(r) = lower.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = lower.strip_prefix("http://") {
        (false, r)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let hostport = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        hostport.split(':').next().unwrap_or_default()
    };
    Some((https, host.trim_end_matches('.').to_string()))
}

/// hstspreload's redirect rules for `http://host` (its
/// preloadableHTTPRedirects): plain HTTP must redirect, and the first
/// redirect must go to HTTPS on the same host (not to www first). An
/// unreachable port 80 is only a warning there. `None`: not checked.
pub fn preload_redirect_issues(plain: Option<&PlainHttp>, host: &str) -> Vec<String> {
    let Some(p) = plain else {
        return vec![
            "the redirect from plain HTTP was not checked (the plain-HTTP check is off)".into(),
        ];
    };
    let Some(status) = p.status else {
        return Vec::new();
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let location = p
        .location
        .as_deref()
        .filter(|_| (300..400).contains(&status));
    let Some(location) = location else {
        return vec![format!(
            "http://{host} answers {status} without redirecting (redirects.http.no_redirect)"
        )];
    };
    match url_host(location) {
        Some((true, h)) if h == host => Vec::new(),
        Some((_, h)) if h == format!("www.{host}") => vec![format!(
            "http://{host} redirects to {location} first; it must go to https://{host} before adding www (redirects.http.www_first)"
        )],
        _ => vec![format!(
            "http://{host} redirects to {location}; the first redirect must go to https://{host} on the same host (redirects.http.first_redirect.insecure)"
        )],
    }
}

/// Adds the redirect rules to `h`'s preload verdict.
pub fn add_redirect_rules(h: &mut Hsts, plain: Option<&PlainHttp>, host: &str) {
    h.preload_issues
        .extend(preload_redirect_issues(plain, host));
    h.preload_eligible = h.preload_issues.is_empty();
}

/// Plain-HTTP facts on the HTTP port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlainHttp {
    pub port: u16,
    /// Status of `GET /`.
    pub status: Option<u16>,
    pub location: Option<String>,
    pub redirects_to_https: bool,
    /// Status of a request for a missing challenge token.
    pub acme_status: Option<u16>,
    pub acme_location: Option<String>,
    /// The error when port 80 could not be checked.
    pub error: Option<String>,
}

/// Checks `GET /` redirects to HTTPS and a missing challenge token is a 404.
pub async fn check_plain(addr: SocketAddr, host: &str, t: &Timeouts) -> PlainHttp {
    let mut out = PlainHttp {
        port: addr.port(),
        status: None,
        location: None,
        redirects_to_https: false,
        acme_status: None,
        acme_location: None,
        error: None,
    };
    let token = format!(
        "/.well-known/acme-challenge/certkeep-probe-{}",
        hex::encode(rand::random::<[u8; 8]>())
    );
    let one = |path: String| async move {
        let mut tcp = connect(addr, t).await?;
        get(&mut tcp, host, &path, t).await
    };
    let (root, acme) = tokio::join!(one("/".into()), one(token));
    match root {
        Ok(h) => {
            out.location = h.header("location").map(str::to_string);
            out.redirects_to_https = (300..400).contains(&h.status)
                && out
                    .location
                    .as_deref()
                    .is_some_and(|l| l.len() >= 8 && l[..8].eq_ignore_ascii_case("https://"));
            out.status = Some(h.status);
        }
        Err(e) => out.error = Some(e.to_string()),
    }
    match acme {
        Ok(h) => {
            out.acme_location = h.header("location").map(str::to_string);
            out.acme_status = Some(h.status);
        }
        Err(e) => {
            out.error.get_or_insert(e.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parsing() {
        let h = parse_head(b"HTTP/1.1 301 Moved\r\nLocation: https://a/\r\nX: y\r\n\r\nbody")
            .unwrap()
            .unwrap();
        assert_eq!(h.status, 301);
        assert_eq!(h.header("location"), Some("https://a/"));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n").unwrap(), None);
        assert_eq!(parse_head(b"HTT").unwrap(), None);
        assert_eq!(parse_head(b"").unwrap(), None);
        assert!(parse_head(b"\x16\x03\x01").is_err());
        assert!(parse_head(b"HTTP/2 200\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nbad\r\n\r\n").is_err());
        let big = vec![b'H'; MAX_HEAD + 1];
        assert!(parse_head(&big).is_err());
        let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        big.extend(vec![b'a'; MAX_HEAD]);
        big.extend(b"\r\n\r\n");
        assert!(parse_head(&big).is_err());
    }

    #[test]
    fn hsts_parsing() {
        let none = parse_hsts(None);
        assert!(!none.present && !none.preload_eligible && none.headers == 0);
        let h = parse_hsts(Some("max-age=31536000; includeSubDomains; preload"));
        assert!(h.present && h.include_subdomains && h.preload && h.preload_eligible);
        assert_eq!(h.max_age, Some(31_536_000));
        let h = parse_hsts(Some("MAX-AGE=\"63072000\";INCLUDESUBDOMAINS"));
        assert_eq!(h.max_age, Some(63_072_000));
        assert!(h.include_subdomains && !h.preload && !h.preload_eligible);
        let h = parse_hsts(Some("max-age=300; includeSubDomains; preload"));
        assert!(!h.preload_eligible);
        for bad in [
            "includeSubDomains",
            "max-age=abc",
            "max-age=1; max-age=2",
            "max-age",
        ] {
            let h = parse_hsts(Some(bad));
            assert!(
                h.present && h.invalid.is_some() && h.max_age.is_none(),
                "{bad}"
            );
        }
        let h = parse_hsts(Some("max-age=0"));
        assert_eq!(h.max_age, Some(0));
    }

    #[test]
    fn preload_header_rules_follow_hstspreload() {
        let good = "max-age=63072000; includeSubDomains; preload";
        assert_eq!(preload_header_issues(&[good]), Vec::<String>::new());
        assert!(hsts_from(&[good]).preload_eligible);
        let two = hsts_from(&[good, good]);
        assert!(!two.preload_eligible);
        assert_eq!(two.headers, 2);
        assert_eq!(
            two.preload_issues,
            ["2 Strict-Transport-Security headers where exactly one is allowed (response.multiple_headers)"]
        );
        // Browsers still use the first header.
        assert_eq!(two.max_age, Some(63_072_000));
        assert_eq!(
            preload_header_issues(&["max-age=\"31536000\"; includeSubDomains; preload"]),
            ["max-age value \"\\\"31536000\\\"\" is not plain digits (header.parse.max_age.non_digit_characters)"]
        );
        assert_eq!(
            preload_header_issues(&["max-age=300"]),
            [
                "no includeSubDomains directive (header.preloadable.include_sub_domains.missing)",
                "no preload directive (header.preloadable.preload.missing)",
                "max-age=300 is below 31536000 seconds, one year (header.preloadable.max_age.below_1_year)"
            ]
        );
        assert!(
            preload_header_issues(&["max-age=0; includeSubDomains; preload"])[0]
                .contains("(header.preloadable.max_age.zero)")
        );
        // A repeated directive is only a warning for hstspreload.
        assert!(preload_header_issues(&[
            "max-age=31536000; max-age=31536000; includeSubDomains; preload"
        ])
        .is_empty());
        assert_eq!(
            preload_header_issues(&[]),
            ["no Strict-Transport-Security header (response.no_header)"]
        );
    }

    #[test]
    fn preload_redirect_rules_follow_hstspreload() {
        let plain = |status, location: Option<&str>| PlainHttp {
            port: 80,
            status,
            location: location.map(str::to_string),
            redirects_to_https: false,
            acme_status: None,
            acme_location: None,
            error: None,
        };
        let ok = plain(Some(301), Some("https://a.test/"));
        assert!(preload_redirect_issues(Some(&ok), "a.test").is_empty());
        let ok = plain(Some(308), Some("HTTPS://A.test:8443/x?y"));
        assert!(preload_redirect_issues(Some(&ok), "a.test").is_empty());
        let www = plain(Some(301), Some("https://www.a.test/"));
        assert!(preload_redirect_issues(Some(&www), "a.test")[0]
            .ends_with("(redirects.http.www_first)"));
        let other = plain(Some(302), Some("https://b.test/"));
        assert_eq!(
            preload_redirect_issues(Some(&other), "a.test"),
            ["http://a.test redirects to https://b.test/; the first redirect must go to https://a.test on the same host (redirects.http.first_redirect.insecure)"]
        );
        let insecure = plain(Some(301), Some("http://a.test/x"));
        assert!(preload_redirect_issues(Some(&insecure), "a.test")[0]
            .ends_with("(redirects.http.first_redirect.insecure)"));
        let none = plain(Some(200), None);
        assert!(preload_redirect_issues(Some(&none), "a.test")[0]
            .ends_with("(redirects.http.no_redirect)"));
        // Unreachable over HTTP: a warning for hstspreload, not a failed rule.
        assert!(preload_redirect_issues(Some(&plain(None, None)), "a.test").is_empty());
        assert_eq!(preload_redirect_issues(None, "a.test").len(), 1);
    }
}
