//! Output: a table (one line per endpoint, details on request) and JSON.

use std::fmt::Write as _;

use super::grade::Verdict;
use super::ProbeReport;

/// Exit codes (Nagios style): 0 all ok, 1 any warning, 2 any critical,
/// 3 probe errors only (no warning or critical).
pub fn exit_code(reports: &[ProbeReport]) -> u8 {
    let worst = |v| reports.iter().any(|r| r.verdict == v);
    if worst(Verdict::Critical) {
        2
    } else if worst(Verdict::Warning) {
        1
    } else if worst(Verdict::Error) {
        3
    } else {
        0
    }
}

/// The stable JSON interface: an array with one object per endpoint.
pub fn json(reports: &[ProbeReport]) -> String {
    serde_json::to_string_pretty(reports).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn paint(v: Verdict, text: &str, colour: bool) -> String {
    if !colour {
        return text.to_string();
    }
    let code = match v {
        Verdict::Ok => "32",
        Verdict::Warning => "33",
        Verdict::Critical => "31",
        Verdict::Error => "35",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// The most telling failed check for the NOTE column: the worst verdict,
/// and among equals the first in check order (expiry before chain, so an
/// expired certificate is named as expired rather than as a broken chain).
pub fn note(r: &ProbeReport) -> Option<&super::grade::Check> {
    let worst = r.checks.iter().map(|c| c.verdict).max()?;
    if worst == Verdict::Ok {
        return None;
    }
    r.checks.iter().find(|c| c.verdict == worst)
}

/// One line per endpoint; with `details`, every check below it.
pub fn table(reports: &[ProbeReport], details: bool, colour: bool) -> String {
    let width = reports
        .iter()
        .map(|r| r.target.len())
        .max()
        .unwrap_or(6)
        .clamp(6, 60);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8}  {:<width$}  {:>5}  {:<15}  {:<8}  NOTE",
        "VERDICT", "TARGET", "DAYS", "PROTOCOLS", "HSTS"
    );
    for r in reports {
        let days = r
            .certificate
            .as_ref()
            // An expired certificate reads "EXP", never a negative count.
            .map(|c| {
                if c.days_left < 0 {
                    "EXP".to_string()
                } else {
                    c.days_left.to_string()
                }
            })
            .unwrap_or_else(|| "-".into());
        let protocols: Vec<&str> = super::config::ProtocolName::ALL
            .iter()
            .zip(&r.protocols.0)
            .filter(|(_, o)| o.accepted() == Some(true))
            .map(|(p, _)| &p.as_str()[3..])
            .collect();
        let protocols = if r.error.is_some() {
            "-".to_string()
        } else if protocols.is_empty() {
            "none".to_string()
        } else {
            protocols.join(" ")
        };
        let hsts = match &r.hsts {
            None => "-".to_string(),
            Some(h) if !h.present => "none".into(),
            Some(h) => match h.max_age {
                Some(a) if a >= 86_400 => format!("{}d", a / 86_400),
                Some(a) => format!("{a}s"),
                None => "invalid".into(),
            },
        };
        let note = note(r)
            .map(|c| format!("{}: {}", c.name, c.reason))
            .unwrap_or_default();
        let verdict = format!("{:<8}", r.verdict.as_str());
        let _ = writeln!(
            out,
            "{}  {:<width$}  {:>5}  {:<15}  {:<8}  {}",
            paint(r.verdict, &verdict, colour),
            r.target,
            days,
            protocols,
            hsts,
            note
        );
        if details {
            for c in &r.checks {
                let v = format!("{:<8}", c.verdict.as_str());
                let _ = writeln!(
                    out,
                    "    {} {:<13} {}",
                    paint(c.verdict, &v, colour),
                    c.name,
                    c.reason
                );
            }
            if let Some(c) = &r.certificate {
                let _ = writeln!(
                    out,
                    "    certificate: subject \"{}\", names {}, issuer \"{}\", serial {}, not after {}",
                    c.subject,
                    c.sans.join(", "),
                    c.issuer,
                    c.serial,
                    crate::dates::rfc3339(c.not_after)
                );
                if c.expires_first != "leaf" {
                    let _ = writeln!(
                        out,
                        "    expires first: intermediate \"{}\" on {} ({})",
                        c.earliest_expiry_subject,
                        crate::dates::rfc3339(c.earliest_expiry),
                        if c.days_left < 0 {
                            format!("expired {} days ago", -c.days_left)
                        } else {
                            format!("{} days left", c.days_left)
                        }
                    );
                }
            }
            for (p, d) in &r.protocol_details {
                let _ = writeln!(out, "    {p}: {d}");
            }
            if let Some(a) = &r.address {
                let _ = writeln!(out, "    address {a}, {} ms", r.duration_ms);
            }
        }
    }
    out
}
