//! From the file as read to [`Settings`]: every check that spans values
//! (names that refer to other sections, addresses, paths that must be
//! absolute or exist), so that a file that loads cannot fail later for a
//! reason visible in it. Errors name the offending value by its key path;
//! `locate` turns the path into a position in the file.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::probe::ProbeConfig;
use super::sections::{self, AcmeConfig, EabConfig, RawAcme, RawConfig};
use super::types::{HostName, HumanDuration, Secret};
use super::{Settings, LETSENCRYPT_DIRECTORY};
use crate::probe::Target;

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(k: &str) -> Seg {
        Seg::Key(k.to_string())
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Seg {
        Seg::Index(i)
    }
}

/// A message about the value at `path` (or at byte `offset`, for a check
/// that knows its value's span).
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub path: Vec<Seg>,
    pub message: String,
    pub offset: Option<usize>,
}

impl Located {
    pub(crate) fn new<S: Into<Seg>>(path: impl IntoIterator<Item = S>, message: &str) -> Located {
        Located {
            path: path.into_iter().map(Into::into).collect(),
            message: message.to_string(),
            offset: None,
        }
    }

    /// Where the message points in the file.
    pub(crate) fn start(&self, doc: &DeTable<'_>) -> usize {
        self.offset.unwrap_or_else(|| locate(doc, &self.path).start)
    }
}

/// Byte range of the value at `path`, or of the deepest table on the way
/// that exists (a missing key is reported at its table).
pub(crate) fn locate(doc: &DeTable<'_>, path: &[Seg]) -> Range<usize> {
    let mut best = 0..0;
    let mut table = Some(doc);
    let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    for seg in path {
        let value = match (seg, table, array) {
            (Seg::Key(k), Some(t), _) => t
                .iter()
                .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                .map(|(key, v)| (key.span(), v)),
            (Seg::Index(i), _, Some(a)) => a.get(*i).map(|v| (v.span(), v)),
            _ => None,
        };
        let Some((key_span, v)) = value else { break };
        // A table opened by a header `[a.b]` spans the header; an implicit
        // parent table (`a` of `[a.b]`) has no span of its own: use the key.
        best = if v.span().is_empty() {
            key_span
        } else {
            v.span()
        };
        table = None;
        array = None;
        match v.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a),
            _ => {}
        }
    }
    best
}

/// A path that must be absolute.
pub(crate) fn check_absolute(p: &Path, what: &str) -> Result<(), String> {
    if p.as_os_str().is_empty() {
        return Err(format!("{what} is empty; write an absolute path"));
    }
    if !p.is_absolute() {
        return Err(format!(
            "{what} {} is a relative path; write the absolute path (certkeep runs from any directory)",
            p.display()
        ));
    }
    Ok(())
}

/// Largest CA file read at load (a bundle of every public root is ~250 KiB).
const MAX_CA_FILE: u64 = 4 << 20;

/// A PEM file of certificates that must exist, be readable and parse. Only
/// regular files are read (a FIFO or a device would block or never end).
pub(crate) fn check_pem_file(p: &Path) -> Result<(), String> {
    use std::io::Read;
    check_absolute(p, "CA file")?;
    let cannot = |e: &dyn std::fmt::Display| {
        format!(
            "cannot read CA file {}: {e} (create it or fix the path)",
            p.display()
        )
    };
    let meta = std::fs::metadata(p).map_err(|e| cannot(&e))?;
    if !meta.is_file() {
        return Err(cannot(&"not a regular file"));
    }
    if meta.len() > MAX_CA_FILE {
        return Err(cannot(&format!(
            "larger than {} MiB, not a CA bundle",
            MAX_CA_FILE >> 20
        )));
    }
    let mut pem = Vec::new();
    std::fs::File::open(p)
        .and_then(|f| f.take(MAX_CA_FILE).read_to_end(&mut pem))
        .map_err(|e| cannot(&e))?;
    crate::cert::parse_pem_chain(&pem, &p.display().to_string())
        .map(|_| ())
        .map_err(|e| format!("{e} (the file must hold PEM certificates)"))
}

fn at<const N: usize>(path: [Seg; N], message: String) -> Located {
    Located {
        path: path.into(),
        message,
        offset: None,
    }
}

fn k(s: &str) -> Seg {
    Seg::from(s)
}

fn i(n: usize) -> Seg {
    Seg::from(n)
}

/// The resolved settings, plus warnings (with the path they are about).
pub(crate) fn resolve(raw: RawConfig) -> Result<(Settings, Vec<Located>), Located> {
    let mut warnings = Vec::new();
    check_absolute(&raw.store, "store").map_err(|m| at([k("store")], m))?;
    let acme = resolve_acme(raw.acme.clone(), &mut warnings)?;
    if raw.renewal.ari_concurrency == 0 {
        return Err(at(
            [k("renewal"), k("ari_concurrency")],
            "[renewal] ari_concurrency must be at least 1".into(),
        ));
    }
    if raw.http01.self_check_port == 0 {
        return Err(at(
            [k("http01"), k("self_check_port")],
            "[http01] self_check_port must be from 1 to 65535".into(),
        ));
    }
    let mut raw = raw;
    parse_domains(&mut raw.certificates)?;
    check_certificates(&raw.certificates)?;
    check_ip_profiles(&raw.certificates, &acme, &mut warnings)?;
    check_profile_modes(&acme, &raw.certificates)?;
    check_probe(&raw.probe)?;
    if let Some(c) = &raw.cluster {
        // The cluster checks know their values' spans; a value left at its
        // default has none, then the message points at [cluster].
        c.validate().map_err(|(offset, message)| Located {
            path: vec![k("cluster")],
            message,
            offset: (offset > 0).then_some(offset),
        })?;
    }
    let probe_targets = resolve_targets(&raw)?;
    let alert = super::alert::resolve(raw.alert)?;
    let settings = Settings {
        store: raw.store,
        acme,
        http01: raw.http01,
        nginx: raw.nginx,
        renewal: raw.renewal,
        hooks: raw.hooks,
        daemon: raw.daemon,
        certificates: raw.certificates,
        alert,
        endpoints: raw.endpoints,
        probe: raw.probe,
        cluster: raw.cluster,
        probe_targets,
        warnings: Vec::new(),
    };
    Ok((settings, warnings))
}

fn resolve_acme(r: RawAcme, warnings: &mut Vec<Located>) -> Result<AcmeConfig, Located> {
    let directory = r.directory.unwrap_or_else(sections::letsencrypt);
    for (key, url) in [
        ("directory", Some(&directory)),
        ("staging_directory", r.staging_directory.as_ref()),
    ] {
        if url.is_some_and(|u| u.is_plain_http()) {
            warnings.push(at(
                [k("acme"), k(key)],
                format!("[acme] {key} uses plain http://: the CA's answers can be read and changed on the way; use https:// unless this is a local test CA"),
            ));
        }
    }
    let staging_directory = match r.staging_directory {
        Some(s) => Some(s),
        None if directory.as_str() == LETSENCRYPT_DIRECTORY => {
            Some(sections::letsencrypt_staging())
        }
        None => None,
    };
    if let Some(p) = &r.ca_bundle {
        check_pem_file(p).map_err(|m| at([k("acme"), k("ca_bundle")], m))?;
    }
    let eab = match r.eab {
        None => None,
        Some(e) => {
            let key = if e.hmac_key_file.is_some() {
                "hmac_key_file"
            } else {
                "hmac_key_env"
            };
            let path = [k("acme"), k("eab"), k(key)];
            if e.hmac_key_file.is_some() && e.hmac_key_env.is_some() {
                return Err(at(
                    [k("acme"), k("eab"), k("hmac_key_env")],
                    "[acme.eab] set only one of hmac_key_file and hmac_key_env".into(),
                ));
            }
            if e.key_id.trim().is_empty() {
                return Err(at(
                    [k("acme"), k("eab"), k("key_id")],
                    "[acme.eab] key_id is empty; write the key id the CA gave you".into(),
                ));
            }
            let secret = Secret::from_parts("hmac_key", None, e.hmac_key_file, e.hmac_key_env)
                .map_err(|m| at(path.clone(), format!("[acme.eab] {m}")))?
                .ok_or_else(|| {
                    at(
                        [k("acme"), k("eab")],
                        "[acme.eab] needs exactly one of hmac_key_file or hmac_key_env (the HMAC key is a secret and is not written in this file)".into(),
                    )
                })?;
            Some(EabConfig {
                key_id: e.key_id,
                hmac_key: secret,
            })
        }
    };
    Ok(AcmeConfig {
        directory,
        staging_directory,
        ca_bundle: r.ca_bundle,
        email: r.email,
        eab,
        order_timeout: r.order_timeout.unwrap_or(HumanDuration::from_secs(120)),
        profile: r.profile,
        profile_mode: r.profile_mode,
    })
}

/// Each certificate's `domains` as identifiers; an entry that is neither a
/// DNS name nor an IP address is reported at its own position.
fn parse_domains(certs: &mut [sections::CertificateConfig]) -> Result<(), Located> {
    for (n, c) in certs.iter_mut().enumerate() {
        c.domains = c
            .written_domains
            .iter()
            .map(|d| {
                super::types::Domain::new(d.get_ref()).map_err(|m| Located {
                    path: vec![k("certificate"), i(n), k("domains")],
                    message: m,
                    offset: Some(d.span().start),
                })
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}

fn check_certificates(certs: &[sections::CertificateConfig]) -> Result<(), Located> {
    let mut seen = BTreeSet::new();
    for (n, c) in certs.iter().enumerate() {
        let here = |rest: &[Seg], m: String| {
            let mut path = vec![k("certificate"), i(n)];
            path.extend_from_slice(rest);
            Located {
                path,
                message: m,
                offset: None,
            }
        };
        if !seen.insert(c.name()) {
            return Err(here(
                &[k("name")],
                format!(
                    "certificate name {:?} is used twice; every [[certificate]] needs its own name",
                    c.name()
                ),
            ));
        }
        if c.domains.is_empty() {
            return Err(here(
                &[k("domains")],
                format!(
                    "certificate {:?} has no domains; add domains = [\"example.com\"]",
                    c.name()
                ),
            ));
        }
        if let Some(w) = &c.webroot {
            check_absolute(w, "webroot")
                .map_err(|m| here(&[k("webroot")], format!("certificate {:?}: {m}", c.name())))?;
        }
        for (d, w) in &c.webroot_map {
            check_absolute(w, &format!("webroot_map {d:?}")).map_err(|m| {
                here(
                    &[k("webroot_map"), k(d)],
                    format!("certificate {:?}: {m}", c.name()),
                )
            })?;
        }
        for key in c.webroot_map.keys() {
            if !c.domains.iter().any(|d| d.as_str() == key) {
                let hint = match super::types::parse_identifier(key) {
                    Ok(canon) if canon != *key && c.domains.iter().any(|d| d.as_str() == canon) => {
                        format!("; write it as {canon:?}, as domains has it")
                    }
                    _ => String::new(),
                };
                return Err(here(
                    &[k("webroot_map"), k(key)],
                    format!(
                        "certificate {:?}: webroot_map names {key:?}, which is not in domains{hint}",
                        c.name()
                    ),
                ));
            }
        }
        let mut names = BTreeSet::new();
        for (j, d) in c.domains.iter().enumerate() {
            if !names.insert(d.as_str()) {
                return Err(here(
                    &[k("domains"), i(j)],
                    format!(
                        "certificate {:?} lists domain {:?} twice",
                        c.name(),
                        d.as_str()
                    ),
                ));
            }
            if c.webroot_for(d.as_str()).is_none() {
                return Err(here(&[k("domains"), i(j)], format!(
                    "certificate {:?}: domain {:?} has no webroot; set webroot = \"/var/www/certbot\" or add it to webroot_map",
                    c.name(),
                    d.as_str()
                )));
            }
        }
    }
    Ok(())
}

/// The name of "shortlived", the only profile under which Let's Encrypt
/// issues IP address certificates.
pub(crate) const SHORTLIVED: &str = "shortlived";

/// What the load makes of a certificate with IP address identifiers and the
/// profile it orders with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IpProfile {
    Fine,
    /// Loads, with this warning.
    Warn(String),
    /// Does not load: the CA is known to refuse every such order.
    Refuse(String),
}

/// Let's Encrypt issues IP address certificates only under the
/// "shortlived" profile: against its directories (production or staging) an
/// IP certificate without that profile is an error at load, since every
/// order would fail. Another CA may have other rules (Pebble has no profiles
/// and issues them anyway): no profile is fine there, and a profile other
/// than "shortlived" is only a warning.
pub(crate) fn ip_profile(
    certificate: &str,
    ip: &str,
    wanted: Option<&crate::acme::profile::WantedProfile>,
    from_acme: bool,
    ca_is_letsencrypt: bool,
) -> IpProfile {
    let fix = format!(
        "set profile = \"{SHORTLIVED}\" in this [[certificate]] (6-day certificates; see docs/renewal.md)"
    );
    let whence = if from_acme {
        " (from [acme] profile)"
    } else {
        ""
    };
    match (wanted, ca_is_letsencrypt) {
        (Some(w), _) if w.name == SHORTLIVED => IpProfile::Fine,
        (None, false) => IpProfile::Fine,
        (None, true) => IpProfile::Refuse(format!(
            "certificate {certificate:?} lists the IP address {ip}, and Let's Encrypt issues IP address certificates only under the {SHORTLIVED:?} profile; {fix}"
        )),
        (Some(w), true) => IpProfile::Refuse(format!(
            "certificate {certificate:?} lists the IP address {ip} but orders profile {:?}{whence}, and Let's Encrypt issues IP address certificates only under {SHORTLIVED:?}; {fix}",
            w.name
        )),
        (Some(w), false) => IpProfile::Warn(format!(
            "certificate {certificate:?} lists the IP address {ip} but orders profile {:?} ({}){whence}; Let's Encrypt issues IP address certificates only under {SHORTLIVED:?}, and if this CA does the same its orders fail: {fix}",
            w.name, w.mode
        )),
    }
}

/// Whether `directory` is one of Let's Encrypt's (production or staging).
pub(crate) fn is_letsencrypt(directory: &str) -> bool {
    reqwest::Url::parse(directory)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|h| h.ends_with(".api.letsencrypt.org"))
}

fn check_ip_profiles(
    certs: &[sections::CertificateConfig],
    acme: &AcmeConfig,
    warnings: &mut Vec<Located>,
) -> Result<(), Located> {
    let le = is_letsencrypt(acme.directory.as_str());
    for (n, c) in certs.iter().enumerate() {
        let Some((j, ip)) = c.domains.iter().enumerate().find(|(_, d)| d.ip().is_some()) else {
            continue;
        };
        let wanted = c.wanted_profile(acme);
        let from_acme = c.profile.is_none() && acme.profile.is_some();
        // Point at what to change: the certificate's profile when it has
        // one, else its first IP address.
        let path = if c.profile.is_some() {
            vec![k("certificate"), i(n), k("profile")]
        } else {
            vec![k("certificate"), i(n), k("domains"), i(j)]
        };
        let located = |message: String| Located {
            path: path.clone(),
            message,
            offset: None,
        };
        match ip_profile(c.name(), ip.as_str(), wanted.as_ref(), from_acme, le) {
            IpProfile::Fine => {}
            IpProfile::Warn(m) => warnings.push(located(m)),
            IpProfile::Refuse(m) => return Err(located(m)),
        }
    }
    Ok(())
}

/// A `profile_mode` that applies to no `profile` is an error: a
/// `"required"` that silently requires nothing would order the CA's default
/// certificate while the file promises otherwise.
fn check_profile_modes(
    acme: &AcmeConfig,
    certs: &[sections::CertificateConfig],
) -> Result<(), Located> {
    if acme.profile_mode.is_some()
        && acme.profile.is_none()
        && !certs.iter().any(|c| c.profile.is_some())
    {
        return Err(at(
            [k("acme"), k("profile_mode")],
            "[acme] profile_mode is set but no profile is: add profile = \"NAME\" to [acme] (or to a [[certificate]]), or remove profile_mode".into(),
        ));
    }
    for (n, c) in certs.iter().enumerate() {
        if c.profile_mode.is_some() && c.profile.is_none() && acme.profile.is_none() {
            return Err(Located {
                path: vec![k("certificate"), i(n), k("profile_mode")],
                message: format!(
                    "certificate {:?}: profile_mode is set but no profile is (neither here nor in [acme]): add profile = \"NAME\", or remove profile_mode",
                    c.name()
                ),
                offset: None,
            });
        }
    }
    Ok(())
}

fn check_probe(p: &ProbeConfig) -> Result<(), Located> {
    if let Some(f) = &p.ca_file {
        check_pem_file(f).map_err(|m| at([k("probe"), k("ca_file")], m))?;
    }
    Ok(())
}

/// `[[endpoint]]`s, then (with `[probe] managed_certificates`, the default)
/// the first domain of every `[[certificate]]` not already named by an
/// endpoint's `certificate`.
fn resolve_targets(cfg: &RawConfig) -> Result<Vec<Target>, Located> {
    let mut out = Vec::new();
    for (n, e) in cfg.endpoints.iter().enumerate() {
        let here = |key: &str, m: String| at([k("endpoint"), i(n), k(key)], m);
        let mut t =
            Target::parse(&e.url).map_err(|err| here("url", format!("[[endpoint]] {err}")))?;
        if let Some(c) = &e.connect {
            t.connect = Some(c.clone());
            let (host, _) = t.connect_address().map_err(|err| {
                here(
                    "connect",
                    format!("[[endpoint]] {:?}: connect: {err}", e.url),
                )
            })?;
            HostName::parse(&host).map_err(|err| {
                here(
                    "connect",
                    format!("[[endpoint]] {:?}: connect: {err}", e.url),
                )
            })?;
        }
        if let Some(p) = &e.policy {
            if p != "default" && !cfg.probe.policy.contains_key(p) {
                return Err(here(
                    "policy",
                    format!(
                        "[[endpoint]] {:?} names policy {p:?}, which is not defined; add [probe.policy.{p}] or fix the name",
                        e.url
                    ),
                ));
            }
            t.policy = p.clone();
        }
        if let Some(c) = &e.certificate {
            if !cfg.certificates.iter().any(|x| x.name() == c) {
                return Err(here(
                    "certificate",
                    format!(
                        "[[endpoint]] {:?} names certificate {c:?}, which is not a [[certificate]] name",
                        e.url
                    ),
                ));
            }
        }
        t.certificate = e.certificate.clone();
        out.push(t);
    }
    if cfg.probe.managed_certificates {
        for (n, c) in cfg.certificates.iter().enumerate() {
            if cfg
                .endpoints
                .iter()
                .any(|e| e.certificate.as_deref() == Some(c.name()))
            {
                continue;
            }
            let mut t =
                Target::parse(&super::types::url_host(c.first_domain())).map_err(|err| {
                    at(
                        [k("certificate"), i(n), k("domains"), i(0)],
                        format!("certificate {:?}: {err}", c.name()),
                    )
                })?;
            if let Some(ep) = &c.endpoint {
                t.port = ep.port();
                t.connect = Some(ep.to_string());
            }
            t.target = format!("https://{}", t.authority());
            t.certificate = Some(c.name().to_string());
            out.push(t);
        }
    }
    Ok(out)
}
