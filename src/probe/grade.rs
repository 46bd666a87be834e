//! Pure grading: collected facts + policy + clock -> checks with verdicts.

use std::collections::BTreeSet;

use serde::Serialize;
use time::OffsetDateTime;

use super::config::{PolicyConfig, ProtocolName, Severity};
use super::facts::{CertInfo, Facts, Outcome};
use super::http::ONE_YEAR;
use super::reasons::{self, weak_hash, ChainProblem};
use crate::config::TimeLeft;

/// Verdict of a check or an endpoint. `Error`: the probe could not collect facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warning,
    Critical,
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Critical => "critical",
            Verdict::Error => "error",
        }
    }
}

impl From<Severity> for Verdict {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Ok => Verdict::Ok,
            Severity::Warning => Verdict::Warning,
            Severity::Critical => Verdict::Critical,
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub reason: String,
}

fn check(name: &'static str, verdict: Verdict, reason: impl Into<String>) -> Check {
    Check {
        name,
        verdict,
        reason: reason.into(),
    }
}

/// A resolved policy (every value set).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub protocols: BTreeSet<ProtocolName>,
    pub warning_before: TimeLeft,
    pub critical_before: TimeLeft,
    pub min_rsa_bits: u32,
    pub hsts_missing: Severity,
    pub hsts_min_age: u64,
    pub hsts_include_subdomains: bool,
    pub hsts_preload: bool,
    /// 0: no plain-HTTP check.
    pub http_port: u16,
}

impl Default for Policy {
    /// Mozilla "intermediate": TLS 1.2 + 1.3; HSTS >= 1 year; warning at 1/4
    /// of the lifetime left, critical at 1/6; RSA >= 2048; HTTP on port 80.
    /// The warning sits below the default renewal point (1/3, or 1/2 under
    /// 10 days), so a certificate waiting for its next renewal check (up to
    /// 12 hours away) is not reported: only one that missed its renewal.
    fn default() -> Self {
        Self {
            protocols: [ProtocolName::Tls12, ProtocolName::Tls13].into(),
            warning_before: TimeLeft::one_in(4),
            critical_before: TimeLeft::one_in(6),
            min_rsa_bits: 2048,
            hsts_missing: Severity::Critical,
            hsts_min_age: ONE_YEAR,
            hsts_include_subdomains: false,
            hsts_preload: false,
            http_port: 80,
        }
    }
}

impl Policy {
    /// This policy with the keys `c` sets replaced.
    pub fn with(&self, c: &PolicyConfig) -> Policy {
        let mut p = self.clone();
        if let Some(v) = &c.protocols {
            p.protocols = v.iter().copied().collect();
        }
        if let Some(v) = c.warning_before {
            p.warning_before = v;
        }
        if let Some(v) = c.critical_before {
            p.critical_before = v;
        }
        if let Some(v) = c.min_rsa_bits {
            p.min_rsa_bits = v;
        }
        if let Some(v) = c.hsts_missing {
            p.hsts_missing = v;
        }
        if let Some(v) = c.hsts_min_age {
            p.hsts_min_age = v.get().as_secs();
        }
        if let Some(v) = c.hsts_include_subdomains {
            p.hsts_include_subdomains = v;
        }
        if let Some(v) = c.hsts_preload {
            p.hsts_preload = v;
        }
        if let Some(v) = c.http_port {
            p.http_port = v;
        }
        p
    }
}

/// Seconds before expiry that `b` means for a certificate living `lifetime` seconds.
pub fn threshold_seconds(b: TimeLeft, lifetime: i64) -> i64 {
    b.seconds_of(lifetime)
}

/// The expiry level `b` for a certificate living `lifetime` seconds, or the
/// level's default fraction `default` when `b` is a fixed time of half the
/// lifetime or more: every certificate of that lifetime would cross it
/// before its renewal (a "14d" warning against a 6-day certificate would
/// warn from the moment it is issued). The alerts' fixed thresholds follow
/// the same rule.
pub fn level_seconds(b: TimeLeft, default: TimeLeft, lifetime: i64) -> i64 {
    let s = b.seconds_of(lifetime);
    if !b.is_fraction() && s.saturating_mul(2) >= lifetime {
        default.seconds_of(lifetime)
    } else {
        s
    }
}

/// How long a newly switched live certificate may differ from the one served
/// before the `served` check reports it: a deploy switches the live link
/// first, then tests and reloads nginx and confirms the new serial (each
/// bounded, the confirmation by `confirm_timeout`, 10 s by default), so a
/// probe in between sees the old certificate served. A deploy that does
/// not complete is reported by the renewal itself (and rolled back).
pub const DEPLOY_GRACE: time::Duration = time::Duration::minutes(5);

/// Whether a served certificate that is not the newest stored version counts
/// as "renewed but not deployed" at `now`: only once the newest version has
/// been live longer than `grace` (`live_since`: when its live link was
/// made). An unknown time counts at once, and so does a time more than
/// `grace` in the future (not a deploy in progress but a wrong clock or
/// file time).
pub fn undeployed_counts(
    live_since: Option<OffsetDateTime>,
    now: OffsetDateTime,
    grace: time::Duration,
) -> bool {
    match live_since {
        None => true,
        Some(t) => {
            let age = now - t;
            age >= grace || age <= -grace
        }
    }
}

/// Whole days from `now` to `t`, rounded down (negative once past): the one
/// computation behind `days_left` and every "in N days" / "N days ago".
pub fn days_left(t: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (t - now).whole_seconds().div_euclid(86_400)
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// A span for reasons: hours under two days, else whole days rounded down,
/// as `days_left` counts them (so `days_left: -28` reads "28 days ago").
fn span(secs: i64) -> String {
    if secs.abs() < 2 * 86_400 {
        plural(secs.abs() / 3600, "hour")
    } else if secs < 0 {
        plural(-secs.div_euclid(86_400), "day")
    } else {
        plural(secs.div_euclid(86_400), "day")
    }
}

/// The overall verdict: the worst check, or `Error` when facts are missing.
pub fn overall(facts: &Facts, checks: &[Check]) -> Verdict {
    if facts.error.is_some() {
        return Verdict::Error;
    }
    checks
        .iter()
        .map(|c| c.verdict)
        .max()
        .unwrap_or(Verdict::Ok)
}

/// Grades `facts` for `host` under `policy` at `now`.
pub fn grade(facts: &Facts, host: &str, policy: &Policy, now: OffsetDateTime) -> Vec<Check> {
    if let Some(e) = &facts.error {
        return vec![check("probe", Verdict::Error, e.to_string())];
    }
    let mut out = Vec::new();
    certificate(facts, host, policy, now, &mut out);
    protocols(facts, policy, &mut out);
    hsts(facts, policy, &mut out);
    http(facts, &mut out);
    out
}

fn certificate(
    facts: &Facts,
    host: &str,
    policy: &Policy,
    now: OffsetDateTime,
    out: &mut Vec<Check>,
) {
    let Some(c) = &facts.certificate else {
        out.push(check(
            "certificate",
            Verdict::Critical,
            "no TLS 1.2 or 1.3 handshake succeeded, so no certificate could be checked",
        ));
        return;
    };
    out.push(expiry(c, policy, now));
    out.push(match (&c.chain_problem, c.chain_valid) {
        (_, true) => check("chain", Verdict::Ok, "the chain verifies to a trusted root"),
        (Some(ChainProblem::WeakSignature { hash, .. }), _) => check(
            "chain",
            Verdict::Critical,
            format!("clients reject it for the {hash} signature (see the signature check)"),
        ),
        (Some(p), _) => check(
            "chain",
            Verdict::Critical,
            match p.advice() {
                Some(a) => format!("{}; {a}", p.words()),
                None => p.words(),
            },
        ),
        (None, false) => check(
            "chain",
            Verdict::Critical,
            c.chain_error
                .clone()
                .unwrap_or_else(|| "the chain does not verify".into()),
        ),
    });
    out.push(if c.hostname_valid {
        check("hostname", Verdict::Ok, format!("the certificate covers {host}"))
    } else if c.sans.is_empty() {
        check(
            "hostname",
            Verdict::Critical,
            format!("the certificate names no host (no subjectAltName), so not {host}; serve the certificate for this name"),
        )
    } else {
        check(
            "hostname",
            Verdict::Critical,
            format!(
                "the certificate is for {}, not {host}; serve the certificate for this name",
                c.sans.join(", ")
            ),
        )
    });
    out.push(key(&c.key_type, policy.min_rsa_bits));
    let weak: Vec<String> = c
        .chain
        .iter()
        .enumerate()
        .filter(|(_, x)| !x.is_root)
        .filter_map(|(i, x)| {
            weak_hash(&x.signature_algorithm).map(|h| {
                format!(
                    "{} is signed with {h} ({})",
                    reasons::which(&c.chain, i),
                    x.signature_algorithm
                )
            })
        })
        .collect();
    out.push(if weak.is_empty() {
        check("signature", Verdict::Ok, c.signature_algorithm.clone())
    } else {
        check(
            "signature",
            Verdict::Critical,
            format!(
                "{}, which browsers reject; reissue with SHA-256",
                weak.join("; ")
            ),
        )
    });
    if let Some(s) = &facts.stored {
        out.push(if let Some(e) = &s.error {
            check("served", Verdict::Warning, format!("cannot read lineage {:?}: {e}", s.certificate))
        } else if s.version.is_none() {
            check(
                "served",
                Verdict::Warning,
                format!("lineage {:?} is not in the store; issue it or fix `certificate`", s.certificate),
            )
        } else if s.matches {
            check(
                "served",
                Verdict::Ok,
                format!("serves the newest stored version {} of {:?}", s.version.unwrap_or(0), s.certificate),
            )
        } else if !undeployed_counts(s.live_since, now, DEPLOY_GRACE) {
            check(
                "served",
                Verdict::Ok,
                format!(
                    "serves serial {}; the newest stored version {} of {:?} (serial {}) went live {} s ago, under the {}-minute deploy grace, so it is not judged yet",
                    c.serial,
                    s.version.unwrap_or(0),
                    s.certificate,
                    s.serial.as_deref().unwrap_or("?"),
                    s.live_since.map(|t| (now - t).whole_seconds()).unwrap_or(0),
                    DEPLOY_GRACE.whole_minutes()
                ),
            )
        } else {
            check(
                "served",
                Verdict::Warning,
                format!(
                    "serves serial {} but the newest stored version {} of {:?} has serial {}: renewed but not deployed; reload the server",
                    c.serial,
                    s.version.unwrap_or(0),
                    s.certificate,
                    s.serial.as_deref().unwrap_or("?")
                ),
            )
        });
    }
}

/// The expiry check: validity dates of the certificate that expires first
/// (leaf or intermediate), and whether every certificate has started.
fn expiry(c: &CertInfo, policy: &Policy, now: OffsetDateTime) -> Check {
    let which = |i: usize| {
        if i == 0 {
            String::new()
        } else {
            format!("{} ", reasons::which(&c.chain, i))
        }
    };
    let date = crate::dates::rfc3339;
    // Not yet valid: the certificate that starts last.
    let starts = c
        .chain
        .iter()
        .enumerate()
        .filter(|(_, x)| !x.is_root)
        .max_by_key(|(i, x)| (x.not_before, usize::MAX - i))
        .map(|(i, x)| (i, x.not_before))
        .unwrap_or((0, c.not_before));
    if now < starts.1 {
        let secs = (starts.1 - now).whole_seconds();
        return check(
            "expiry",
            Verdict::Critical,
            format!(
                "{}not valid yet: valid from {} (in {}); check this host's clock, or serve a certificate valid now",
                which(starts.0),
                date(starts.1),
                span(secs)
            ),
        );
    }
    let first = if c.expires_first == "intermediate" {
        c.chain
            .iter()
            .position(|x| !x.is_root && x.not_after == c.earliest_expiry)
            .unwrap_or(0)
    } else {
        0
    };
    let who = which(first);
    // Thresholds are fractions of the leaf's lifetime, applied to the first expiry.
    let lifetime = (c.not_after - c.not_before).whole_seconds();
    let left = (c.earliest_expiry - now).whole_seconds();
    let when = date(c.earliest_expiry);
    let fix = if first == 0 {
        "renew and reload"
    } else {
        "serve the CA's current intermediate (a fresh fullchain.pem)"
    };
    let defaults = Policy::default();
    let crit = level_seconds(policy.critical_before, defaults.critical_before, lifetime);
    let warn = level_seconds(policy.warning_before, defaults.warning_before, lifetime);
    let leaf_note = if first == 0 {
        String::new()
    } else {
        format!(
            ", before the certificate itself ({} left)",
            plural(c.leaf_days_left, "day")
        )
    };
    if left < 0 {
        check(
            "expiry",
            Verdict::Critical,
            format!("{who}expired {} ago ({when}); {fix} now", span(left)),
        )
    } else if left <= crit {
        check(
            "expiry",
            Verdict::Critical,
            format!(
                "{who}expires in {} ({when}){leaf_note}, under the critical threshold of {}; {fix} now",
                span(left),
                span(crit)
            ),
        )
    } else if left <= warn {
        check(
            "expiry",
            Verdict::Warning,
            format!(
                "{who}expires in {} ({when}){leaf_note}, under the warning threshold of {}; {fix} soon",
                span(left),
                span(warn)
            ),
        )
    } else {
        check(
            "expiry",
            Verdict::Ok,
            format!("{who}expires in {} ({when}){leaf_note}", span(left)),
        )
    }
}

fn key(key_type: &str, min_rsa: u32) -> Check {
    if let Some(bits) = key_type
        .strip_prefix("rsa")
        .and_then(|b| b.parse::<u32>().ok())
    {
        return if bits < min_rsa {
            check(
                "key",
                Verdict::Critical,
                format!("{bits}-bit RSA key, below the minimum of {min_rsa} bits; reissue with a larger key"),
            )
        } else {
            check("key", Verdict::Ok, key_type.to_string())
        };
    }
    if matches!(key_type, "ecdsa-p192" | "ecdsa-p224") {
        return check(
            "key",
            Verdict::Critical,
            format!("{key_type} is an elliptic curve under 256 bits, which clients reject"),
        );
    }
    if matches!(
        key_type,
        "ecdsa-p256" | "ecdsa-p384" | "ecdsa-p521" | "ed25519" | "ed448"
    ) {
        check("key", Verdict::Ok, key_type.to_string())
    } else {
        check(
            "key",
            Verdict::Warning,
            format!("{key_type} is a key type most clients do not support"),
        )
    }
}

fn protocols(facts: &Facts, policy: &Policy, out: &mut Vec<Check>) {
    let mut extra = Vec::new();
    let mut missing = Vec::new();
    let mut failed = Vec::new();
    for (p, o) in ProtocolName::ALL.iter().zip(&facts.protocols.0) {
        let wanted = policy.protocols.contains(p);
        match o {
            Outcome::Accepted if !wanted => extra.push(p.label()),
            Outcome::NotAccepted(_) if wanted => missing.push(p.label()),
            Outcome::Failed(e) => failed.push(format!("{}: {e}", p.label())),
            Outcome::Untested => failed.push(format!("{}: not tested", p.label())),
            _ => {}
        }
    }
    let accepted: Vec<&str> = ProtocolName::ALL
        .iter()
        .zip(&facts.protocols.0)
        .filter(|(_, o)| matches!(o, Outcome::Accepted))
        .map(|(p, _)| p.label())
        .collect();
    let modern = matches!(facts.protocols.0[2], Outcome::Accepted)
        || matches!(facts.protocols.0[3], Outcome::Accepted);
    let mut reasons = Vec::new();
    if !extra.is_empty() {
        reasons.push(format!(
            "{} accepted but not allowed by the policy; turn off in the server (nginx: ssl_protocols)",
            extra.join(" and ")
        ));
    }
    if !missing.is_empty() {
        reasons.push(format!("{} not accepted", missing.join(" and ")));
    }
    if !failed.is_empty() {
        reasons.push(format!("could not test {}", failed.join("; ")));
    }
    let verdict = if !modern && failed.is_empty() {
        reasons.insert(0, "neither TLS 1.2 nor TLS 1.3 is accepted".into());
        Verdict::Critical
    } else if reasons.is_empty() {
        Verdict::Ok
    } else {
        Verdict::Warning
    };
    let summary = if accepted.is_empty() {
        "none accepted".to_string()
    } else {
        format!("accepts {}", accepted.join(", "))
    };
    reasons.insert(0, summary);
    out.push(check("protocols", verdict, reasons.join("; ")));
}

fn hsts(facts: &Facts, policy: &Policy, out: &mut Vec<Check>) {
    let h = match &facts.hsts {
        None => return,
        Some(Err(e)) => {
            out.push(check(
                "hsts",
                Verdict::Warning,
                format!("could not fetch an HTTPS response to read HSTS: {e}"),
            ));
            return;
        }
        Some(Ok(h)) => h,
    };
    let missing = Verdict::from(policy.hsts_missing);
    if !h.present {
        out.push(check(
            "hsts",
            missing,
            "no Strict-Transport-Security header; add `add_header Strict-Transport-Security \"max-age=31536000\" always;`",
        ));
        return;
    }
    if let Some(why) = &h.invalid {
        out.push(check(
            "hsts",
            missing,
            format!("invalid Strict-Transport-Security header (browsers ignore it): {why}"),
        ));
        return;
    }
    let age = h.max_age.unwrap_or(0);
    if age == 0 {
        out.push(check("hsts", missing, "max-age=0 turns HSTS off"));
        return;
    }
    let mut warnings = Vec::new();
    if age < policy.hsts_min_age {
        warnings.push(format!(
            "below the minimum of {} seconds; raise max-age",
            policy.hsts_min_age
        ));
    }
    if policy.hsts_include_subdomains && !h.include_subdomains {
        warnings.push("includeSubDomains is missing".into());
    }
    if policy.hsts_preload && !h.preload_eligible {
        warnings.push(format!(
            "not eligible for the preload list: {}",
            h.preload_issues.join("; ")
        ));
    }
    let mut desc = format!("max-age={age}");
    if h.include_subdomains {
        desc.push_str("; includeSubDomains");
    }
    if h.preload {
        desc.push_str("; preload");
    }
    out.push(if warnings.is_empty() {
        check("hsts", Verdict::Ok, desc)
    } else {
        check(
            "hsts",
            Verdict::Warning,
            format!("{desc}: {}", warnings.join("; ")),
        )
    });
}

fn http(facts: &Facts, out: &mut Vec<Check>) {
    let Some(h) = &facts.http else {
        return;
    };
    let port = h.port;
    out.push(match (h.status, &h.error) {
        (Some(_), _) if h.redirects_to_https => check(
            "http-redirect",
            Verdict::Ok,
            format!("port {port} redirects to {}", h.location.as_deref().unwrap_or("https")),
        ),
        (Some(s), _) => check(
            "http-redirect",
            Verdict::Warning,
            format!("port {port} answers {s} without redirecting to HTTPS; add `return 301 https://$host$request_uri;`"),
        ),
        (None, e) => check(
            "http-redirect",
            Verdict::Warning,
            format!("cannot check plain HTTP on port {port}: {}", e.as_deref().unwrap_or("no answer")),
        ),
    });
    out.push(match h.acme_status {
        Some(404) => check(
            "acme-path",
            Verdict::Ok,
            format!("/.well-known/acme-challenge/ is served on port {port} (404 for a missing token)"),
        ),
        Some(s) if (300..400).contains(&s) => check(
            "acme-path",
            Verdict::Warning,
            format!(
                "/.well-known/acme-challenge/ on port {port} is redirected ({s} to {}) instead of served from the webroot; add the location from config/nginx-acme-challenge.conf",
                h.acme_location.as_deref().unwrap_or("?")
            ),
        ),
        Some(s) => check(
            "acme-path",
            Verdict::Warning,
            format!("a missing challenge token on port {port} gives {s}, expected 404 from the webroot"),
        ),
        None => check(
            "acme-path",
            Verdict::Warning,
            format!("cannot check /.well-known/acme-challenge/ on port {port}: {}", h.error.as_deref().unwrap_or("no answer")),
        ),
    });
}

#[cfg(test)]
#[path = "grade_tests.rs"]
mod tests;
