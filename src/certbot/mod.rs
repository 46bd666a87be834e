//! Taking over from certbot: read its configuration directory, work out a
//! complete plan (config entries, account file, what cannot be imported),
//! and only then write. certbot's own files are never modified; the store is
//! set to certbot's directory so lineages are adopted in place.

pub mod account;
mod edit;
pub mod ini;
pub mod renewal;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{self, KeyType, Settings, LETSENCRYPT_DIRECTORY};
use crate::store::{atomic, Store};
use account::AccountKey;
use renewal::{Blocker, Renewal};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path} has no renewal/ directory, so it is not a certbot configuration directory ({source}); pass the right one with --from")]
    NotCertbot {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source} (run the import as the user that owns the certbot directory, usually root)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("{path}: {detail}")]
    Toml { path: PathBuf, detail: String },
    #[error("no renewal/{0}.conf in the certbot directory; the lineages there are: {1}")]
    UnknownCert(String, String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Account(#[from] account::AccountError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// certbot's configuration directory (`/etc/letsencrypt`).
    pub from: PathBuf,
    /// certkeep's configuration file, read if present and written by [`apply`].
    pub config: PathBuf,
    /// Replace `[[certificate]]` entries that already have the same name.
    pub force: bool,
    /// Only these lineages (all when empty).
    pub only: Vec<String>,
}

/// One lineage certkeep will take over.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub domains: Vec<String>,
    pub key_type: KeyType,
    pub webroot: Option<PathBuf>,
    pub webroot_map: BTreeMap<String, PathBuf>,
    pub reuse_key: bool,
    pub renew_before: Option<String>,
    pub pre_hook: Option<String>,
    pub deploy_hook: Option<String>,
    pub post_hook: Option<String>,
    /// certbot's `required_profile` or `preferred_profile`.
    pub profile: Option<crate::acme::profile::WantedProfile>,
    /// The live version; certkeep's next one is the archive's highest + 1.
    pub version: u32,
    pub next_version: u32,
    /// An entry with this name exists and will be replaced (--force).
    pub replaces: bool,
}

/// A lineage certkeep cannot take over.
#[derive(Debug, Clone)]
pub struct Refused {
    pub name: String,
    pub reason: String,
    pub todo: String,
}

/// What happens to the ACME account.
#[derive(Debug)]
pub enum AccountPlan {
    /// Write certkeep's account file from certbot's EC P-256 account.
    Convert {
        source: PathBuf,
        dest: PathBuf,
        uri: String,
        json: Vec<u8>,
    },
    /// certkeep's account file already holds this account.
    AlreadyThere { dest: PathBuf, uri: String },
    /// certkeep will register a new account on first use; `why` says why.
    New { why: String },
}

/// Everything the import will do, worked out before anything is written.
#[derive(Debug)]
pub struct Plan {
    pub from: PathBuf,
    pub config_path: PathBuf,
    pub certbot_version: Option<String>,
    pub directory: String,
    pub entries: Vec<Entry>,
    pub refused: Vec<Refused>,
    pub warnings: Vec<String>,
    pub account: AccountPlan,
    /// The configuration file as it will be written.
    pub config_text: String,
    /// Mode for a new config file, or the existing file's mode.
    config_mode: u32,
}

impl Plan {
    /// Nothing may be written: some selected lineage cannot be imported.
    pub fn blocked(&self) -> bool {
        !self.refused.is_empty()
    }
}

/// Reads everything and decides; writes nothing.
pub fn plan(opts: &Options) -> Result<Plan, ImportError> {
    let from = &opts.from;
    let store = Store::new(from);
    let renewals = read_renewals(from, &opts.only)?;
    let (config_text, existing, config_mode) = read_config(&opts.config)?;
    let mut doc = edit::Doc::parse(&config_text, &opts.config)?;

    let mut warnings = Vec::new();
    let mut refused = Vec::new();
    let mut accepted: Vec<(Renewal, Entry)> = Vec::new();
    let mut certbot_version = None;
    for r in renewals {
        let r = match r {
            Ok(r) => r,
            Err(refusal) => {
                refused.push(refusal);
                continue;
            }
        };
        certbot_version = certbot_version.or(r.version.clone());
        let in_config = existing
            .as_ref()
            .is_some_and(|c| c.certificate(&r.name).is_some());
        match entry(&store, &r, in_config, opts.force, &mut warnings) {
            Ok(e) => accepted.push((r, e)),
            Err(b) => refused.push(Refused {
                name: r.name.clone(),
                reason: b.reason,
                todo: b.todo,
            }),
        }
    }

    // One CA per config: the configured one, or the one certbot used.
    let configured = doc.acme_directory();
    let directory = configured.clone().unwrap_or_else(|| {
        most_common(accepted.iter().map(|(r, _)| server_of(r)))
            .unwrap_or_else(|| LETSENCRYPT_DIRECTORY.to_string())
    });
    let mut entries = Vec::new();
    let mut account_ids = Vec::new();
    for (r, e) in accepted {
        if server_of(&r) != directory {
            refused.push(Refused {
                name: r.name.clone(),
                reason: format!(
                    "it was issued by {} while the config uses {directory}",
                    server_of(&r)
                ),
                todo: "certkeep uses one CA per configuration file: import it into a separate config (--config) or leave it out with --cert".into(),
            });
            continue;
        }
        account_ids.extend(r.account.clone());
        entries.push(e);
    }

    let account = account_plan(&store, from, &directory, &account_ids, &mut warnings)?;
    check_store(&doc, existing.as_ref(), from, &entries)?;
    doc.set_store(from);
    if configured.is_none() && directory != LETSENCRYPT_DIRECTORY {
        doc.set_acme_directory(&directory);
        // Only Let's Encrypt has a known staging CA; `certbot --dry-run`
        // with another server tests against that same server, and so does
        // the imported config (change it to the CA's test directory if it has one).
        doc.set_acme_staging_directory(
            &directory,
            "renew --dry-run orders here, as certbot --dry-run did; use this CA's test directory if it has one",
        );
    }
    for e in &entries {
        doc.put_certificate(e);
    }
    let config_text = doc.to_string();
    if refused.is_empty() {
        // Whatever is written must load.
        Settings::parse(&config_text, &opts.config)?;
    }
    hook_dir_warnings(from, &mut warnings);
    Ok(Plan {
        from: from.clone(),
        config_path: opts.config.clone(),
        certbot_version,
        directory,
        entries,
        refused,
        warnings,
        account,
        config_text,
        config_mode,
    })
}

/// Writes the account file (if any) and the configuration file.
pub fn apply(plan: &Plan) -> Result<(), ImportError> {
    if plan.blocked() {
        return Err(ImportError::Conflict(
            "some lineages cannot be imported; nothing was written".into(),
        ));
    }
    if let AccountPlan::Convert { dest, json, .. } = &plan.account {
        let mut missing = Vec::new();
        let mut d = dest.parent();
        while let Some(dir) = d.filter(|d| !d.exists()) {
            missing.push(dir.to_path_buf());
            d = dir.parent();
        }
        for dir in missing.iter().rev() {
            atomic::ensure_dir(dir, 0o700).map_err(|source| ImportError::Write {
                path: dir.clone(),
                source,
            })?;
        }
        atomic::write_file(dest, json, 0o600).map_err(|source| ImportError::Write {
            path: dest.clone(),
            source,
        })?;
    }
    if let Some(parent) = plan
        .config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|source| ImportError::Write {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    atomic::write_file(
        &plan.config_path,
        plan.config_text.as_bytes(),
        plan.config_mode,
    )
    .map_err(|source| ImportError::Write {
        path: plan.config_path.clone(),
        source,
    })
}

fn server_of(r: &Renewal) -> String {
    r.server
        .clone()
        .unwrap_or_else(|| LETSENCRYPT_DIRECTORY.to_string())
}

fn most_common(items: impl Iterator<Item = String>) -> Option<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for i in items {
        *counts.entry(i).or_default() += 1;
    }
    // Ties go to the first in sort order, so the choice is stable.
    let max = counts.values().copied().max()?;
    counts.into_iter().find(|(_, n)| *n == max).map(|(s, _)| s)
}

/// Parses every selected `renewal/*.conf`; a file that does not parse is a refusal.
fn read_renewals(
    from: &Path,
    only: &[String],
) -> Result<Vec<Result<Renewal, Refused>>, ImportError> {
    let dir = from.join("renewal");
    let rd = std::fs::read_dir(&dir).map_err(|source| ImportError::NotCertbot {
        path: from.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for e in rd {
        let e = e.map_err(|source| ImportError::Read {
            path: dir.clone(),
            source,
        })?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".conf").filter(|s| !s.is_empty()) {
            files.push((stem.to_string(), e.path()));
        }
    }
    files.sort();
    for want in only {
        if !files.iter().any(|(n, _)| n == want) {
            let known: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
            return Err(ImportError::UnknownCert(want.clone(), known.join(", ")));
        }
    }
    let mut out = Vec::new();
    for (name, path) in files {
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ImportError::Read {
            path: path.clone(),
            source,
        })?;
        let refuse = |reason: String| Refused {
            name: name.clone(),
            reason,
            todo: "fix the file (certbot would refuse it too) and import again".into(),
        };
        out.push(
            ini::parse(&text, &path)
                .and_then(|ini| renewal::interpret(&ini, &name, &path))
                .map_err(|e| refuse(e.to_string())),
        );
    }
    Ok(out)
}

/// The config text (empty when there is no file yet), its parsed form, its mode.
fn read_config(path: &Path) -> Result<(String, Option<Settings>, u32), ImportError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let config = Settings::parse(&text, path)?;
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(path)
                    .map_err(|source| ImportError::Read {
                        path: path.to_path_buf(),
                        source,
                    })?
                    .permissions(),
            ) & 0o7777;
            Ok((text, Some(config), mode))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((String::new(), None, 0o644)),
        Err(source) => Err(ImportError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The certkeep entry for one renewal file, or why there cannot be one.
fn entry(
    store: &Store,
    r: &Renewal,
    in_config: bool,
    force: bool,
    warnings: &mut Vec<String>,
) -> Result<Entry, Blocker> {
    let name = &r.name;
    let fail = |reason: String, todo: &str| Blocker {
        reason,
        todo: todo.to_string(),
    };
    config::validate_lineage_name(name).map_err(|e| {
        fail(
            e,
            "rename the lineage with certbot (certbot rename is not available: re-issue with --cert-name) or leave it out with --cert",
        )
    })?;
    r.check_authenticator()?;
    if in_config && !force {
        return Err(fail(
            format!("the config already has a [[certificate]] named {name:?}"),
            "pass --force to replace it with the imported settings, or leave it out with --cert",
        ));
    }
    let current = match store.current(name) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(fail(
                format!("live/{name} does not exist"),
                "certbot has no certificate for it: remove the stale renewal file with certbot delete --cert-name <name>, or leave it out with --cert",
            ))
        }
        Err(e) => {
            return Err(fail(
                format!("its live certificate cannot be read: {e}"),
                "repair live/<name> (its links must point into ../../archive/<name>/) or leave it out with --cert",
            ))
        }
    };
    let domains = ordered_domains(&current.leaf.subject, &current.leaf.sans);
    // DNS names and IP addresses (RFC 8738) both validate over HTTP-01;
    // a wildcard needs DNS-01.
    let domains = domains
        .iter()
        .map(|d| {
            config::parse_identifier(d).map_err(|e| {
                fail(
                    format!("its certificate names {d}: {e}"),
                    "keep certbot (or another DNS-01 client) for this lineage and leave it out with --cert",
                )
            })
        })
        .collect::<Result<Vec<String>, Blocker>>()?;
    let key_type = r.key_type(&current.leaf.key_type)?;
    let (webroot, webroot_map) = r.webroots(&domains)?;
    let renew_before = r.renew_before()?;
    let version = current.lineage.version;
    let next_version = store.max_archive_version(name).map_err(|e| {
        fail(
            e.to_string(),
            "repair archive/<name> or leave it out with --cert",
        )
    })? + 1;
    let expected_archive = store.archive_dir(name);
    if let Some(a) = &r.archive_dir {
        if !same_path(a, &expected_archive) {
            warnings.push(format!(
                "{name}: archive_dir is {} but certkeep writes new versions to {}",
                a.display(),
                expected_archive.display()
            ));
        }
    }
    if !r.autorenew {
        warnings.push(format!(
            "{name}: autorenew = False in certbot, but certkeep will renew it"
        ));
    }
    let mut profile = profile_of(name, r, warnings);
    if let Some(ip) = domains
        .iter()
        .find(|d| d.parse::<std::net::IpAddr>().is_ok())
    {
        profile = ip_lineage_profile(name, ip, &server_of(r), profile, warnings);
    }
    if let Some(c) = &r.preferred_chain {
        warnings.push(format!(
            "{name}: preferred_chain = {c:?} is not carried over (certkeep keeps the CA's default chain)"
        ));
    }
    if r.must_staple {
        warnings.push(format!(
            "{name}: must_staple is not carried over (Let's Encrypt no longer runs OCSP)"
        ));
    }
    if let Some(i) = r
        .installer
        .as_deref()
        .filter(|i| *i != "None" && *i != "null")
    {
        warnings.push(format!(
            "{name}: certbot's {i} installer is not needed: nginx keeps using live/{name}/ and certkeep reloads it"
        ));
    }
    Ok(Entry {
        name: name.clone(),
        domains,
        key_type,
        webroot,
        webroot_map,
        reuse_key: r.reuse_key,
        renew_before,
        pre_hook: r.pre_hook.clone(),
        deploy_hook: r.deploy_hook.clone(),
        post_hook: r.post_hook.clone(),
        profile,
        version,
        next_version,
        replaces: in_config,
    })
}

/// certbot's profile settings as certkeep's: `required_profile` (certbot
/// fails the order without it) wins over `preferred_profile` (certbot falls
/// back to the CA's default), as in certbot.
fn profile_of(
    name: &str,
    r: &renewal::Renewal,
    warnings: &mut Vec<String>,
) -> Option<crate::acme::profile::WantedProfile> {
    use crate::acme::profile::{ProfileMode, WantedProfile};
    match (&r.required_profile, &r.preferred_profile) {
        (Some(req), pref) => {
            if let Some(p) = pref.as_ref().filter(|p| *p != req) {
                warnings.push(format!(
                    "{name}: both required_profile = {req} and preferred_profile = {p} are set; \
                     certkeep requires {req}, as certbot does"
                ));
            }
            Some(WantedProfile {
                name: req.clone(),
                mode: ProfileMode::Required,
            })
        }
        (None, Some(p)) => Some(WantedProfile {
            name: p.clone(),
            mode: ProfileMode::Preferred,
        }),
        (None, None) => None,
    }
}

/// The profile of a lineage with an IP address: Let's Encrypt issues those
/// only under "shortlived", so a lineage from Let's Encrypt without it gets
/// it (preferred, or required if certbot required another), with a warning;
/// for another CA certbot's setting stays as it was.
fn ip_lineage_profile(
    name: &str,
    ip: &str,
    server: &str,
    profile: Option<crate::acme::profile::WantedProfile>,
    warnings: &mut Vec<String>,
) -> Option<crate::acme::profile::WantedProfile> {
    use crate::acme::profile::WantedProfile;
    if !config::is_letsencrypt(server)
        || profile
            .as_ref()
            .is_some_and(|p| p.name == config::SHORTLIVED)
    {
        return profile;
    }
    let was = match &profile {
        Some(p) => format!("profile {:?} ({})", p.name, p.mode),
        None => "no profile".to_string(),
    };
    warnings.push(format!(
        "{name}: its certificate names the IP address {ip}, which Let's Encrypt certifies only under the {:?} profile; certbot had {was}, certkeep orders {:?}",
        config::SHORTLIVED,
        config::SHORTLIVED
    ));
    Some(WantedProfile {
        name: config::SHORTLIVED.to_string(),
        mode: profile.map(|p| p.mode).unwrap_or_default(),
    })
}

/// The certificate's names with the subject's common name first, as certbot
/// orders them (Pebble leaves the subject empty: then SAN order).
pub fn ordered_domains(subject: &str, sans: &[String]) -> Vec<String> {
    let cn = subject
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("CN="))
        .next()
        .map(str::to_ascii_lowercase);
    let mut out: Vec<String> = Vec::new();
    if let Some(cn) = cn.filter(|cn| sans.iter().any(|s| s.eq_ignore_ascii_case(cn))) {
        out.push(cn);
    }
    for s in sans {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(s)) {
            out.push(s.clone());
        }
    }
    out
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Decides the account: convert certbot's, keep certkeep's, or register anew.
fn account_plan(
    store: &Store,
    from: &Path,
    directory: &str,
    ids: &[String],
    warnings: &mut Vec<String>,
) -> Result<AccountPlan, ImportError> {
    let dest = crate::acme::account_path(store, directory);
    let Some(id) = most_common(ids.iter().cloned()) else {
        return Ok(AccountPlan::New {
            why: "no imported renewal file names a certbot account".into(),
        });
    };
    let others: Vec<&String> = ids.iter().filter(|i| **i != id).collect();
    if !others.is_empty() {
        warnings.push(format!(
            "certbot used several ACME accounts; certkeep uses one per CA and takes {id} (the most used)"
        ));
    }
    let source = account::certbot_account_dir(from, directory, &id);
    let acct = match account::read(&source) {
        Ok(a) => a,
        Err(account::AccountError::Read { source: e, .. })
            if e.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(AccountPlan::New {
                why: format!(
                    "certbot's account directory {} is missing; certkeep will register a new account on first use",
                    source.display()
                ),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let pkcs8 = match acct.key {
        AccountKey::P256(der) => der,
        AccountKey::Rsa => {
            return Ok(AccountPlan::New {
                why: format!(
                    "certbot's account {} has an RSA key, and certkeep's ACME library signs with ECDSA P-256 (ES256) only; certkeep will register a new account on first use (your certificates are not tied to the account)",
                    acct.uri
                ),
            })
        }
        AccountKey::Other(kind) => {
            return Ok(AccountPlan::New {
                why: format!(
                    "certbot's account {} has a {kind} key, and certkeep signs with ECDSA P-256 only; certkeep will register a new account on first use",
                    acct.uri
                ),
            })
        }
    };
    if dest.exists() {
        return match account::existing_id(&dest) {
            Some(existing) if existing == acct.uri => Ok(AccountPlan::AlreadyThere {
                dest,
                uri: existing,
            }),
            other => Err(ImportError::Conflict(format!(
                "{} already holds another certkeep account ({}); move it away to use certbot's account {}, or keep it and import with a separate store",
                dest.display(),
                other.unwrap_or_else(|| "unreadable".into()),
                acct.uri
            ))),
        };
    }
    let json = account::credentials_json(&acct.uri, &pkcs8, directory).map_err(|detail| {
        account::AccountError::Invalid {
            path: source.join("private_key.json"),
            detail,
        }
    })?;
    Ok(AccountPlan::Convert {
        source,
        dest,
        uri: acct.uri,
        json,
    })
}

/// The store moves to certbot's directory; certificates already configured
/// for another store would lose their lineages.
fn check_store(
    doc: &edit::Doc,
    existing: Option<&Settings>,
    from: &Path,
    entries: &[Entry],
) -> Result<(), ImportError> {
    let Some(config) = existing else {
        return Ok(());
    };
    if !doc.has_store() || same_path(&config.store, from) {
        return Ok(());
    }
    let stranded: Vec<&str> = config
        .certificates
        .iter()
        .map(|c| c.name())
        .filter(|n| !entries.iter().any(|e| e.name == *n))
        .filter(|n| Store::new(&config.store).live_dir(n).exists())
        .collect();
    if stranded.is_empty() {
        return Ok(());
    }
    Err(ImportError::Conflict(format!(
        "the config's store is {} and holds {}; the import sets store = {:?} to adopt certbot's lineages in place; move those lineages there first, or import into a separate config with --config",
        config.store.display(),
        stranded.join(", "),
        from.display().to_string()
    )))
}

/// certbot runs executables in renewal-hooks/{pre,deploy,post}/; certkeep does not.
fn hook_dir_warnings(from: &Path, warnings: &mut Vec<String>) {
    for (dir, key) in [
        ("pre", "pre_hook"),
        ("deploy", "deploy_hook"),
        ("post", "post_hook"),
    ] {
        let path = from.join("renewal-hooks").join(dir);
        let Ok(rd) = std::fs::read_dir(&path) else {
            continue;
        };
        for e in rd.flatten() {
            warnings.push(format!(
                "{} is a certbot {dir} hook; certkeep does not run hook directories: add it as {key} = [{:?}] under [hooks]",
                e.path().display(),
                e.path().display().to_string()
            ));
        }
    }
}

#[cfg(test)]
mod tests;
