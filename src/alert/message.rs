//! Text shared by every channel: headlines, subjects, plain-text bodies, times.

use super::state::{Kind, Notification, Severity, Ts};

/// Detail names shown first, in this order, with their labels.
pub const FIELDS: [(&str, &str); 8] = [
    ("endpoint", "Endpoint"),
    ("certificate", "Certificate"),
    ("problem", "Problem"),
    ("days_left", "Days left"),
    ("expires_first", "Expires first"),
    ("issuer", "Issuer"),
    ("serial", "Serial"),
    ("not_after", "Expires"),
];

/// RFC 3339 in UTC, e.g. `2026-01-02T03:04:05Z`.
pub fn rfc3339(ts: Ts) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(ts).unwrap_or(i64::MAX))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    crate::dates::rfc3339(t)
}

/// A stable id of the alert (not of one notification): hex of SHA-256 of the key, 16 digits.
pub fn fingerprint(key: &str) -> String {
    hex::encode(
        &aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes()).as_ref()[..8],
    )
}

/// "firing" or "resolved".
pub fn status(n: &Notification) -> &'static str {
    if n.is_resolved() {
        "resolved"
    } else {
        "firing"
    }
}

/// `CRITICAL`, `WARNING`, `RESOLVED` or `TEST`, with what changed.
pub fn label(n: &Notification) -> String {
    let sev = match n.severity {
        Severity::Critical => "CRITICAL",
        Severity::Warning => "WARNING",
    };
    match n.kind {
        Kind::Firing => sev.to_string(),
        Kind::Escalated => format!("{sev} (escalated)"),
        Kind::Threshold => format!("{sev} (threshold)"),
        Kind::Repeat | Kind::Refresh => format!("{sev} (still open)"),
        Kind::Resolved => "RESOLVED".to_string(),
        Kind::Test => "TEST".to_string(),
    }
}

/// One line: `CRITICAL: example.com:443 certificate expires in 2 days`.
pub fn headline(n: &Notification) -> String {
    format!("{}: {}", label(n), n.summary)
}

/// The subject (or header) for a batch.
pub fn subject(batch: &[Notification]) -> String {
    match batch {
        [n] => headline(n),
        _ => {
            let count = |f: &dyn Fn(&Notification) -> bool| batch.iter().filter(|n| f(n)).count();
            let crit = count(&|n| !n.is_resolved() && n.severity == Severity::Critical);
            let warn = count(&|n| !n.is_resolved() && n.severity == Severity::Warning);
            let res = count(&|n| n.is_resolved());
            let mut parts = Vec::new();
            for (c, w) in [(crit, "critical"), (warn, "warning"), (res, "resolved")] {
                if c > 0 {
                    parts.push(format!("{c} {w}"));
                }
            }
            format!("{} alerts: {}", batch.len(), parts.join(", "))
        }
    }
}

/// Details in display order: the known fields first, then the rest by name.
pub fn details(n: &Notification) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = FIELDS
        .iter()
        .filter_map(|(k, label)| n.details.get(*k).map(|v| (label.to_string(), v.clone())))
        .collect();
    for (k, v) in &n.details {
        if !FIELDS.iter().any(|(f, _)| f == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// A plain-text rendering of a batch (email body, Slack fallback).
pub fn plain_text(batch: &[Notification]) -> String {
    let mut s = String::new();
    for n in batch {
        s.push_str(&headline(n));
        s.push('\n');
        for (label, v) in details(n) {
            s.push_str(&format!("  {label}: {v}\n"));
        }
        s.push_str(&format!("  Since: {}\n", rfc3339(n.since)));
        if n.is_resolved() {
            s.push_str(&format!("  Resolved: {}\n", rfc3339(n.at)));
        }
        s.push_str(&format!("  Alert: {}\n\n", n.key));
    }
    s
}

/// The scheme and host (and port) of a URL: safe to log, unlike the whole
/// URL, whose path or query often holds a token.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}", u.scheme()),
            (Some(h), None) => format!("{}://{h}", u.scheme()),
            _ => "<invalid url>".into(),
        },
        Err(_) => "<invalid url>".into(),
    }
}

/// This machine's host name, for messages.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A test notification for `certkeep alert test`.
pub fn test_notification(channel: &str, now: Ts) -> Notification {
    let mut details = std::collections::BTreeMap::new();
    details.insert("problem".into(), "test message".into());
    details.insert("channel".into(), channel.into());
    details.insert("host".into(), hostname());
    Notification {
        id: format!("test:{channel}#{now}"),
        key: format!("test:{channel}:test"),
        kind: Kind::Test,
        severity: Severity::Critical,
        summary: format!("certkeep test message for channel {channel}"),
        details,
        since: now,
        at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_url_to_scheme_and_host() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8080/hook?token=x"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(redact_url("not a url"), "<invalid url>");
    }

    #[test]
    fn subject_counts_kinds() {
        let mut a = test_notification("x", 0);
        a.kind = Kind::Firing;
        let mut b = a.clone();
        b.severity = Severity::Warning;
        let mut c = a.clone();
        c.kind = Kind::Resolved;
        assert_eq!(
            subject(&[a.clone(), b, c]),
            "3 alerts: 1 critical, 1 warning, 1 resolved"
        );
        assert!(subject(&[a]).starts_with("CRITICAL: certkeep test message"));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
