//! Output: a table (one line per endpoint, details on request) and JSON.

use std::fmt::Write as _;

use super::grade::Verdict;
use super::ProbeReport;

/// How many endpoints got each verdict: all a run keeps of its reports
/// for the exit code and the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub ok: usize,
    pub warning: usize,
    pub critical: usize,
    pub error: usize,
}

impl Tally {
    pub fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Ok => self.ok += 1,
            Verdict::Warning => self.warning += 1,
            Verdict::Critical => self.critical += 1,
            Verdict::Error => self.error += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.ok + self.warning + self.critical + self.error
    }

    /// Exit codes (Nagios style): 0 all ok, 1 any warning, 2 any critical,
    /// 3 probe errors only (no warning or critical).
    pub fn exit_code(&self) -> u8 {
        if self.critical > 0 {
            2
        } else if self.warning > 0 {
            1
        } else if self.error > 0 {
            3
        } else {
            0
        }
    }
}

/// See [`Tally::exit_code`].
pub fn exit_code(reports: &[ProbeReport]) -> u8 {
    let mut t = Tally::default();
    for r in reports {
        t.add(r.verdict);
    }
    t.exit_code()
}

/// The stable JSON interface: an array with one object per endpoint.
pub fn json(reports: &[ProbeReport]) -> String {
    let mut out = Vec::new();
    let mut a = JsonArray::new(&mut out);
    for r in reports {
        if let Err(e) = a.push(r) {
            return format!("{{\"error\": \"{e}\"}}");
        }
    }
    if let Err(e) = a.close() {
        return format!("{{\"error\": \"{e}\"}}");
    }
    String::from_utf8_lossy(&out).trim_end().to_string()
}

/// The JSON array of [`json`] written one report at a time, so a run holds
/// no report: the same bytes `serde_json` writes for the whole array
/// (pretty, two spaces), followed by a newline. Each element is written
/// whole; the output is valid JSON once [`JsonArray::close`] has run.
pub struct JsonArray<W: std::io::Write> {
    out: W,
    count: usize,
}

impl<W: std::io::Write> JsonArray<W> {
    pub fn new(out: W) -> Self {
        JsonArray { out, count: 0 }
    }

    /// Writes one report as the next element.
    pub fn push(&mut self, r: &ProbeReport) -> std::io::Result<()> {
        let body = serde_json::to_string_pretty(r).map_err(std::io::Error::other)?;
        let mut text = String::with_capacity(body.len() + body.len() / 8 + 8);
        text.push_str(if self.count == 0 { "[\n" } else { ",\n" });
        // JSON strings hold no raw newline, so every line break is layout.
        for (i, line) in body.split('\n').enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str("  ");
            text.push_str(line);
        }
        self.count += 1;
        self.out.write_all(text.as_bytes())
    }

    /// Ends the array (`[]` when nothing was pushed) and flushes.
    pub fn close(mut self) -> std::io::Result<()> {
        let end: &[u8] = if self.count == 0 { b"[]\n" } else { b"\n]\n" };
        self.out.write_all(end)?;
        self.out.flush()
    }

    /// Flushes what was written so far (one element at a time).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
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

/// The width of the TARGET column for these targets.
pub fn target_width<'a>(targets: impl Iterator<Item = &'a str>) -> usize {
    targets.map(str::len).max().unwrap_or(6).clamp(6, 60)
}

/// The table's heading line, for a TARGET column `width` wide.
pub fn table_header(width: usize) -> String {
    format!(
        "{:<8}  {:<width$}  {:>5}  {:<15}  {:<8}  NOTE\n",
        "VERDICT", "TARGET", "DAYS", "PROTOCOLS", "HSTS"
    )
}

/// One line per endpoint; with `details`, every check below it.
pub fn table(reports: &[ProbeReport], details: bool, colour: bool) -> String {
    let width = target_width(reports.iter().map(|r| r.target.as_str()));
    let mut out = table_header(width);
    for r in reports {
        out.push_str(&table_row(r, width, details, colour));
    }
    out
}

/// One endpoint's line of [`table`] (with `details`, its checks below it).
pub fn table_row(r: &ProbeReport, width: usize, details: bool, colour: bool) -> String {
    let mut out = String::new();
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::grade::Check;

    fn report(target: &str, verdict: Verdict) -> ProbeReport {
        ProbeReport {
            target: target.into(),
            host: "a.example".into(),
            port: 443,
            address: Some("127.0.0.1:443".into()),
            policy: "default".into(),
            verdict,
            checks: vec![Check {
                name: "hsts",
                verdict,
                reason: "say \"why\"\non two lines".into(),
            }],
            protocols: Default::default(),
            protocol_details: [("TLS 1.3", "accepted".to_string())].into(),
            hsts: None,
            http: None,
            certificate: None,
            stored: None,
            error: None,
            duration_ms: 3,
        }
    }

    #[test]
    fn the_streamed_array_is_the_array_serde_writes() {
        let reports = vec![
            report("https://a.example", Verdict::Ok),
            report("https://b.example", Verdict::Critical),
        ];
        let mut out = Vec::new();
        let mut a = JsonArray::new(&mut out);
        for r in &reports {
            a.push(r).unwrap();
        }
        a.close().unwrap();
        let whole = serde_json::to_string_pretty(&reports).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("{whole}\n"));
        let parsed: serde_json::Value = serde_json::from_str(&json(&reports)).unwrap();
        assert_eq!(parsed[1]["target"], "https://b.example");
        assert_eq!(
            parsed[1]["checks"][0]["reason"],
            "say \"why\"\non two lines"
        );
    }

    #[test]
    fn an_empty_streamed_array_is_valid_json() {
        let mut out = Vec::new();
        JsonArray::new(&mut out).close().unwrap();
        assert_eq!(out, b"[]\n");
        assert_eq!(json(&[]), "[]");
    }

    #[test]
    fn the_tally_keeps_the_exit_code_of_the_reports() {
        let mut t = Tally::default();
        assert_eq!(t.exit_code(), 0);
        t.add(Verdict::Error);
        assert_eq!(t.exit_code(), 3);
        t.add(Verdict::Warning);
        assert_eq!(t.exit_code(), 1);
        t.add(Verdict::Critical);
        t.add(Verdict::Ok);
        assert_eq!((t.exit_code(), t.total()), (2, 4));
        let reports = [
            report("https://a.example", Verdict::Ok),
            report("https://b.example", Verdict::Warning),
        ];
        assert_eq!(exit_code(&reports), 1);
    }

    #[test]
    fn rows_streamed_one_by_one_make_the_table() {
        let reports = [
            report("https://a.example", Verdict::Ok),
            report("https://longer-name.example", Verdict::Critical),
        ];
        let width = target_width(reports.iter().map(|r| r.target.as_str()));
        assert_eq!(width, "https://longer-name.example".len());
        let mut streamed = table_header(width);
        for r in &reports {
            streamed.push_str(&table_row(r, width, true, false));
        }
        assert_eq!(streamed, table(&reports, true, false));
        assert!(streamed.starts_with("VERDICT   TARGET"));
        assert!(streamed.contains("critical  https://longer-name.example"));
    }
}
