//! `certkeep probe`: what clients really see on live endpoints.
//!
//! IO modules only collect [`facts::Facts`] (tls.rs, legacy.rs, http.rs);
//! [`grade::grade`] turns them into verdicts; report.rs prints them.
//! Other modules call [`probe_each`] (streaming) or [`probe_all`] with targets from [`targets_from_config`]
//! or [`Target::parse`].

pub mod alerts;
pub mod config;
pub mod facts;
pub mod grade;
pub mod http;
pub mod legacy;
pub mod reasons;
pub mod report;
pub mod target;
pub mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use time::OffsetDateTime;

use crate::config::Settings;
use crate::store::Store;
use config::ProbeConfig;
pub use facts::{CertInfo, Facts, Outcome, Protocols, Stored};
pub use grade::{Check, Policy, Verdict};
pub use http::{Hsts, PlainHttp};
pub use target::{Target, TargetError};
pub use tls::Timeouts;

/// How a probe failed, for tests, alerts and the JSON `error.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Bad target, policy or CA file.
    Config,
    /// The name does not resolve.
    Resolve,
    Refused,
    ConnectTimeout,
    /// Connected, but the handshake (or legacy reply) did not finish in time.
    HandshakeTimeout,
    /// No (complete) HTTP response in time.
    ReadTimeout,
    /// The whole probe took longer than the total limit.
    TotalTimeout,
    /// Reset or closed by the server before anything useful.
    Closed,
    /// The server answered every version with a TLS alert.
    Alert,
    /// The server's bytes are not valid TLS (or HTTP).
    Garbage,
    /// The server sent more than TLS allows (e.g. a huge certificate chain).
    TooLarge,
    /// Any other TLS failure.
    Tls,
    /// Any other IO failure.
    Io,
}

/// A classified probe failure with a message naming what failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct ProbeError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ProbeError {
    pub fn new(kind: ErrorKind, message: String) -> Self {
        Self { kind, message }
    }

    pub fn io(what: &str, e: &std::io::Error) -> Self {
        let kind = if tls::is_closed(e) {
            ErrorKind::Closed
        } else {
            ErrorKind::Io
        };
        Self::new(kind, format!("{what}: {e}"))
    }
}

/// Everything a probe run needs besides the targets.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub timeouts: Timeouts,
    /// Endpoints probed at once (at least 1).
    pub concurrency: usize,
    /// Resolved policies by name; always holds "default".
    pub policies: BTreeMap<String, Policy>,
    /// Store to compare served certificates with (targets with `certificate`).
    pub store: Option<Store>,
    /// Replaces every policy's `http_port` (0 turns the plain-HTTP check off).
    pub http_port: Option<u16>,
    tls: tls::Tls,
}

impl ProbeOptions {
    /// Built-in defaults, the Mozilla roots plus the certificates in `ca_files`.
    pub fn new(ca_files: &[PathBuf]) -> Result<ProbeOptions, ProbeError> {
        let mut extra = Vec::new();
        for f in ca_files {
            let pem = std::fs::read(f).map_err(|e| {
                ProbeError::new(
                    ErrorKind::Config,
                    format!("cannot read CA file {}: {e}", f.display()),
                )
            })?;
            let certs = crate::cert::parse_pem_chain(&pem, &f.display().to_string())
                .map_err(|e| ProbeError::new(ErrorKind::Config, e.to_string()))?;
            extra.extend(certs);
        }
        Ok(ProbeOptions {
            timeouts: Timeouts::default(),
            concurrency: config::DEFAULT_CONCURRENCY,
            policies: [("default".to_string(), Policy::default())].into(),
            store: None,
            http_port: None,
            tls: tls::Tls::new(&extra)?,
        })
    }

    /// Options from `[probe]` (timeouts, policies, CA file) and the store
    /// (for the `served` check), plus `ca_files`.
    pub fn from_config(
        p: &ProbeConfig,
        store: &Path,
        ca_files: &[PathBuf],
    ) -> Result<ProbeOptions, ProbeError> {
        let mut files: Vec<PathBuf> = p.ca_file.iter().cloned().collect();
        files.extend(ca_files.iter().cloned());
        let mut o = ProbeOptions::new(&files)?;
        let d = Timeouts::default();
        let get = |v: &Option<crate::config::HumanDuration>, def| v.map(|h| h.get()).unwrap_or(def);
        o.timeouts = Timeouts {
            connect: get(&p.connect_timeout, d.connect),
            handshake: get(&p.handshake_timeout, d.handshake),
            read: get(&p.read_timeout, d.read),
            total: get(&p.total_timeout, d.total),
        };
        o.concurrency = p.concurrency.max(1);
        let base = match p.policy.get("default") {
            Some(c) => Policy::default().with(c),
            None => Policy::default(),
        };
        o.policies = p
            .policy
            .iter()
            .map(|(name, c)| (name.clone(), base.with(c)))
            .collect();
        o.policies.insert("default".into(), base);
        o.store = Some(Store::new(store));
        Ok(o)
    }

    fn policy(&self, name: &str) -> Policy {
        let mut p = self
            .policies
            .get(name)
            .or_else(|| self.policies.get("default"))
            .cloned()
            .unwrap_or_default();
        if let Some(port) = self.http_port {
            p.http_port = port;
        }
        p
    }
}

/// The result for one endpoint. Field names are a stable interface (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub target: String,
    pub host: String,
    pub port: u16,
    /// The address connected to.
    pub address: Option<String>,
    pub policy: String,
    pub verdict: Verdict,
    pub checks: Vec<Check>,
    pub protocols: Protocols,
    /// Per version: "accepted", "not accepted: <why>" or "error: <why>".
    pub protocol_details: BTreeMap<&'static str, String>,
    pub hsts: Option<Hsts>,
    pub http: Option<PlainHttp>,
    pub certificate: Option<CertInfo>,
    pub stored: Option<Stored>,
    pub error: Option<ProbeError>,
    pub duration_ms: u64,
}

/// Targets from `[[endpoint]]`, then (with `[probe] managed_certificates`,
/// the default) the first domain of every `[[certificate]]` not already
/// named by an endpoint's `certificate`. Resolved when the config is
/// loaded, so a probe round never fails on its targets.
pub fn targets_from_config(cfg: &Settings) -> Vec<Target> {
    cfg.probe_targets.clone()
}

/// Probes every target, at most `opts.concurrency` at a time; reports come
/// back in the order of `targets`. Holds every report: a caller with many
/// targets uses [`probe_each`].
pub async fn probe_all(targets: Vec<Target>, opts: &ProbeOptions) -> Vec<ProbeReport> {
    let mut results: Vec<Option<ProbeReport>> = vec![None; targets.len()];
    probe_each(targets, opts, |i, r| {
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(r);
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

/// Probes every target, at most `opts.concurrency` at a time, and hands
/// each report to `each` (with the target's index in `targets`) as soon as
/// it completes, so in completion order. Holds no report: memory stays
/// bounded by the concurrency, whatever the number of targets.
pub async fn probe_each<F>(targets: Vec<Target>, opts: &ProbeOptions, mut each: F)
where
    F: FnMut(usize, ProbeReport),
{
    let opts = Arc::new(opts.clone());
    let limit = opts.concurrency.max(1);
    let mut set = tokio::task::JoinSet::new();
    let mut pending = targets.into_iter().enumerate();
    // The targets in flight, to name the endpoint of a probe that panicked.
    let mut spare: BTreeMap<tokio::task::Id, (usize, Target)> = BTreeMap::new();
    loop {
        while set.len() < limit {
            let Some((i, t)) = pending.next() else { break };
            let o = opts.clone();
            let t2 = t.clone();
            let h = set.spawn(async move { (i, probe_one(&t2, &o).await) });
            spare.insert(h.id(), (i, t));
        }
        let Some(joined) = set.join_next_with_id().await else {
            break;
        };
        match joined {
            Ok((id, (i, r))) => {
                spare.remove(&id);
                each(i, r);
            }
            Err(e) => {
                // A panic in one probe is reported for that endpoint only.
                if let Some((i, t)) = spare.remove(&e.id()) {
                    let err = ProbeError::new(ErrorKind::Io, format!("the probe task failed: {e}"));
                    each(i, error_report(&t, &opts.policy(&t.policy), err, 0));
                }
            }
        }
    }
}

fn error_report(t: &Target, policy: &Policy, e: ProbeError, ms: u64) -> ProbeReport {
    let facts = Facts {
        error: Some(e),
        ..Facts::default()
    };
    report_from(t, None, policy, facts, ms, OffsetDateTime::now_utc())
}

fn report_from(
    t: &Target,
    addr: Option<SocketAddr>,
    policy: &Policy,
    facts: Facts,
    ms: u64,
    now: OffsetDateTime,
) -> ProbeReport {
    let checks = grade::grade(&facts, &t.host, policy, now);
    let verdict = grade::overall(&facts, &checks);
    let protocol_details = config::ProtocolName::ALL
        .iter()
        .zip(&facts.protocols.0)
        .map(|(p, o)| {
            let d = match o {
                Outcome::Accepted => "accepted".to_string(),
                Outcome::NotAccepted(why) => format!("not accepted: {}", why.message),
                Outcome::Failed(e) => format!("error: {e}"),
                Outcome::Untested => "not tested".to_string(),
            };
            (p.as_str(), d)
        })
        .collect();
    ProbeReport {
        target: t.target.clone(),
        host: t.host.clone(),
        port: t.port,
        address: addr.map(|a| a.to_string()),
        policy: t.policy.clone(),
        verdict,
        checks,
        protocols: facts.protocols,
        protocol_details,
        hsts: facts.hsts.and_then(Result::ok),
        http: facts.http,
        certificate: facts.certificate,
        stored: facts.stored,
        error: facts.error,
        duration_ms: ms,
    }
}

/// Probes one endpoint within the total timeout.
pub async fn probe_one(t: &Target, opts: &ProbeOptions) -> ProbeReport {
    let start = Instant::now();
    // One clock reading for the facts and the grades, so the numbers agree.
    let now = OffsetDateTime::now_utc();
    let policy = opts.policy(&t.policy);
    let total = opts.timeouts.total;
    let mut addr = None;
    let facts = match tokio::time::timeout(total, collect(t, opts, &policy, &mut addr, now)).await {
        Ok(f) => f,
        Err(_) => Facts {
            error: Some(ProbeError::new(
                ErrorKind::TotalTimeout,
                format!("probing {} took longer than {total:?}", t.authority()),
            )),
            ..Facts::default()
        },
    };
    let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let r = report_from(t, addr, &policy, facts, ms, now);
    match &r.error {
        Some(e) => tracing::info!(
            target = %r.target,
            address = %r.address.as_deref().unwrap_or("-"),
            ms,
            "cannot probe ({:?}): {}",
            e.kind,
            e.message
        ),
        None => tracing::info!(
            target = %r.target,
            address = %r.address.as_deref().unwrap_or("-"),
            ms,
            verdict = %r.verdict.as_str(),
            "probed: {}",
            report::note(&r)
                .map(|c| format!("{}: {}", c.name, c.reason))
                .unwrap_or_else(|| "every check passed".into())
        ),
    }
    for c in &r.checks {
        tracing::debug!(target = %r.target, check = %c.name, verdict = %c.verdict.as_str(), "{}", c.reason);
    }
    r
}

async fn resolve(t: &Target, opts: &ProbeOptions) -> Result<SocketAddr, ProbeError> {
    let (host, port) = t
        .connect_address()
        .map_err(|e| ProbeError::new(ErrorKind::Config, e.to_string()))?;
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let lookup = tokio::net::lookup_host((host.clone(), port));
    match tokio::time::timeout(opts.timeouts.connect, lookup).await {
        Err(_) => Err(ProbeError::new(
            ErrorKind::Resolve,
            format!(
                "resolving {host} took longer than {:?}",
                opts.timeouts.connect
            ),
        )),
        Ok(Err(e)) => Err(ProbeError::new(
            ErrorKind::Resolve,
            format!("cannot resolve {host}: {e}; check the name or pass --connect ADDR:PORT"),
        )),
        Ok(Ok(mut it)) => it
            .next()
            .ok_or_else(|| ProbeError::new(ErrorKind::Resolve, format!("{host} has no addresses"))),
    }
}

async fn collect(
    t: &Target,
    opts: &ProbeOptions,
    policy: &Policy,
    addr_out: &mut Option<SocketAddr>,
    now: OffsetDateTime,
) -> Facts {
    let mut facts = Facts::default();
    let addr = match resolve(t, opts).await {
        Ok(a) => a,
        Err(e) => {
            facts.error = Some(e);
            return facts;
        }
    };
    *addr_out = Some(addr);
    let to = &opts.timeouts;
    // No SNI for an IP address (RFC 6066); rustls leaves it out as well.
    let sni = (!t.host_is_ip()).then_some(t.host.as_str());
    let host_header = t.host_header(t.port, 443);
    let tls13 = async {
        let hs = tls::handshake(&opts.tls, addr, &t.host, true, to).await;
        match hs {
            Ok(tls::Handshake::Accepted(mut s, chain)) => {
                let head = http::get(&mut s, &host_header, &t.path, to).await;
                Ok((head, chain))
            }
            Ok(tls::Handshake::NotAccepted(why)) => Err(Outcome::NotAccepted(why)),
            Err(e) => Err(Outcome::Failed(e)),
        }
    };
    let tls12 = async {
        match tls::handshake(&opts.tls, addr, &t.host, false, to).await {
            Ok(tls::Handshake::Accepted(s, chain)) => Ok((s, chain)),
            Ok(tls::Handshake::NotAccepted(why)) => Err(Outcome::NotAccepted(why)),
            Err(e) => Err(Outcome::Failed(e)),
        }
    };
    let legacy = |v| async move {
        match legacy::probe(addr, sni, v, to).await {
            Ok(Ok(())) => Outcome::Accepted,
            Ok(Err(why)) => Outcome::NotAccepted(why),
            Err(e) => Outcome::Failed(e),
        }
    };
    let plain = async {
        if policy.http_port == 0 {
            return None;
        }
        let a = SocketAddr::new(addr.ip(), policy.http_port);
        Some(http::check_plain(a, &crate::config::url_host(&t.host), to).await)
    };
    let ((r13, t13), (r12, t12), (o10, t10), (o11, t11), (plain, tp)) = tokio::join!(
        timed(tls13),
        timed(tls12),
        timed(legacy(legacy::TLS10)),
        timed(legacy(legacy::TLS11)),
        timed(plain)
    );
    let target = t.target.as_str();
    for (version, took, what) in [
        (
            "TLS 1.3",
            t13,
            r13.as_ref().err().map_or("accepted".into(), describe),
        ),
        (
            "TLS 1.2",
            t12,
            r12.as_ref().err().map_or("accepted".into(), describe),
        ),
        ("TLS 1.1", t11, describe(&o11)),
        ("TLS 1.0", t10, describe(&o10)),
    ] {
        tracing::debug!(target = %target, address = %addr, ms = took.as_millis() as u64, "{version}: {what}");
    }
    if let Some(p) = &plain {
        tracing::debug!(
            target = %target,
            port = p.port,
            ms = tp.as_millis() as u64,
            "plain HTTP: {}",
            match (p.status, &p.error) {
                (Some(s), _) => format!(
                    "GET / answers {s}{}; a missing challenge token answers {}",
                    p.location
                        .as_deref()
                        .map(|l| format!(" to {l}"))
                        .unwrap_or_default(),
                    p.acme_status.map_or("nothing".into(), |s| s.to_string())
                ),
                (None, e) => format!("no answer: {}", e.as_deref().unwrap_or("unknown")),
            }
        );
    }

    let mut chain = None;
    let mut head = None;
    let o13 = match r13 {
        Ok((h, c)) => {
            head = Some(h);
            chain = Some(c);
            Outcome::Accepted
        }
        Err(o) => o,
    };
    let o12 = match r12 {
        Ok((mut s, c)) => {
            if chain.is_none() {
                head = Some(http::get(&mut s, &host_header, &t.path, to).await);
                chain = Some(c);
            }
            Outcome::Accepted
        }
        Err(o) => o,
    };
    facts.protocols = Protocols([o10, o11, o12, o13]);
    let accepted = facts
        .protocols
        .0
        .iter()
        .any(|o| matches!(o, Outcome::Accepted));
    if !accepted {
        // No version works: nothing to judge. Report the most telling cause,
        // a failure (timeout, garbage, oversized) before a refusal, newest first.
        let ordered = || facts.protocols.0.iter().rev();
        let cause = ordered()
            .find_map(|o| match o {
                Outcome::Failed(e) => Some(e.clone()),
                _ => None,
            })
            .or_else(|| {
                ordered().find_map(|o| match o {
                    Outcome::NotAccepted(e) => Some(e.clone()),
                    _ => None,
                })
            });
        // A failure (refused, timeout, garbage) speaks for itself; a refusal
        // of every version says so.
        let all_refused = facts
            .protocols
            .0
            .iter()
            .all(|o| matches!(o, Outcome::NotAccepted(_)));
        facts.error = cause.map(|e| {
            if all_refused {
                ProbeError::new(
                    e.kind,
                    format!(
                        "no TLS version accepted by {}: {}",
                        t.authority(),
                        e.message
                    ),
                )
            } else {
                e
            }
        });
        return facts;
    }
    facts.http = plain;
    if let Some(chain) = chain {
        match cert_info(&opts.tls, &chain, &t.host, now) {
            Ok(c) => facts.certificate = Some(c),
            Err(e) => {
                facts.error = Some(e);
                return facts;
            }
        }
        facts.hsts = head.map(|h| {
            h.map(|h| {
                let mut hsts = http::hsts_from(&h.all("strict-transport-security"));
                let plain = facts.http.as_ref().filter(|_| policy.http_port != 0);
                http::add_redirect_rules(&mut hsts, plain, &t.host);
                hsts
            })
        });
    }
    if let (Some(name), Some(store), Some(c)) = (&t.certificate, &opts.store, &facts.certificate) {
        facts.stored = Some(stored(store, name, c));
    }
    facts
}

/// A future's output and how long it took.
async fn timed<F: std::future::Future>(f: F) -> (F::Output, std::time::Duration) {
    let start = Instant::now();
    let out = f.await;
    (out, start.elapsed())
}

/// A version outcome for the debug log.
fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Accepted => "accepted".into(),
        Outcome::NotAccepted(why) => format!("not accepted: {}", why.message),
        Outcome::Failed(e) => format!("failed ({:?}): {}", e.kind, e.message),
        Outcome::Untested => "not tested".into(),
    }
}

fn stored(store: &Store, name: &str, served: &CertInfo) -> Stored {
    match store.current(name) {
        Ok(Some(cur)) => Stored {
            certificate: name.to_string(),
            version: Some(cur.lineage.version),
            serial: Some(cur.leaf.serial.clone()),
            matches: cur.leaf.fingerprint == served.fingerprint_sha256,
            error: None,
            live_since: store
                .live_since(name)
                .map_err(|e| tracing::debug!(certificate = name, error = %e, "no live time"))
                .ok()
                .map(OffsetDateTime::from),
        },
        Ok(None) => Stored {
            certificate: name.to_string(),
            version: None,
            serial: None,
            matches: false,
            error: None,
            live_since: None,
        },
        Err(e) => Stored {
            certificate: name.to_string(),
            version: None,
            serial: None,
            matches: false,
            error: Some(e.to_string()),
            live_since: None,
        },
    }
}

/// Certificate facts from a captured chain (leaf first), judged at `now`.
pub fn cert_info(
    tls: &tls::Tls,
    chain: &[rustls::pki_types::CertificateDer<'static>],
    host: &str,
    now: OffsetDateTime,
) -> Result<CertInfo, ProbeError> {
    let mut parsed = Vec::with_capacity(chain.len());
    for (i, der) in chain.iter().enumerate() {
        let what = if i == 0 {
            "the server certificate".to_string()
        } else {
            format!("certificate {} of the served chain", i + 1)
        };
        let f = crate::cert::facts(der, &what).map_err(|e| {
            tracing::debug!(host, error = %e, "cannot parse {what}");
            ProbeError::new(
                ErrorKind::Garbage,
                format!("{what} is not a valid X.509 certificate (it cannot be parsed)"),
            )
        })?;
        parsed.push(f);
    }
    let Some(leaf) = parsed.first() else {
        return Err(ProbeError::new(
            ErrorKind::Tls,
            "the server sent no certificate".into(),
        ));
    };
    let list: Vec<facts::ChainCert> = parsed
        .iter()
        .enumerate()
        .map(|(i, f)| facts::ChainCert {
            subject: f.subject.clone(),
            issuer: f.issuer.clone(),
            serial: f.serial.clone(),
            not_before: f.not_before,
            not_after: f.not_after,
            signature_algorithm: f.signature_algorithm.clone(),
            key_type: f.key_type.clone(),
            is_ca: f.is_ca,
            self_issued: f.self_issued,
            is_root: i > 0 && f.is_ca && f.self_issued,
        })
        .collect();
    // The first to expire among the leaf and the intermediates (a root sent
    // needlessly does not count); the leaf on a tie.
    let (first, earliest) = list
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.is_root)
        .min_by_key(|(i, c)| (c.not_after, *i))
        .map(|(i, c)| (i, c.not_after))
        .unwrap_or((0, leaf.not_after));
    let check = tls.verify(chain, &list, host, now);
    Ok(CertInfo {
        subject: leaf.subject.clone(),
        sans: leaf.sans.clone(),
        issuer: leaf.issuer.clone(),
        serial: leaf.serial.clone(),
        not_before: leaf.not_before,
        not_after: leaf.not_after,
        days_left: grade::days_left(earliest, now),
        expires_first: if first == 0 { "leaf" } else { "intermediate" }.to_string(),
        leaf_days_left: grade::days_left(leaf.not_after, now),
        lifetime_days: leaf.lifetime_seconds().div_euclid(86_400),
        chain_valid: check.chain_valid,
        chain_error: check.problem.as_ref().map(reasons::ChainProblem::words),
        chain_problem: check.problem,
        hostname_valid: crate::cert::host_matches(&leaf.sans, &leaf.ip_sans, host),
        key_type: leaf.key_type.clone(),
        signature_algorithm: leaf.signature_algorithm.clone(),
        fingerprint_sha256: leaf.fingerprint.clone(),
        earliest_expiry: earliest,
        earliest_expiry_subject: list
            .get(first)
            .map(|c| c.subject.clone())
            .unwrap_or_default(),
        chain: list,
    })
}

#[cfg(test)]
mod tests;
