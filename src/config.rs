//! The TOML configuration: schema, defaults and validation.
//!
//! Every value that can be wrong is checked while it is deserialized, so the
//! error carries the position of the offending value (`file:line:column`).
//! Checks that span several values (duplicate names, a domain without a
//! webroot) point at the certificate's `name`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_spanned::Spanned;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/certkeep/certkeep.toml";
pub const LETSENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
pub const LETSENCRYPT_STAGING_DIRECTORY: &str =
    "https://acme-staging-v02.api.letsencrypt.org/directory";

/// A configuration error with the place it was found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source} (pass another file with --config)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Root of the certificate store (certbot layout). `/etc/letsencrypt` adopts certbot's tree.
    #[serde(default = "default_store")]
    pub store: PathBuf,
    #[serde(default)]
    pub acme: AcmeConfig,
    #[serde(default)]
    pub http01: Http01Config,
    #[serde(default)]
    pub nginx: NginxConfig,
    #[serde(default)]
    pub renewal: RenewalConfig,
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default)]
    pub daemon: crate::daemon::config::DaemonConfig,
    #[serde(default, rename = "certificate")]
    pub certificates: Vec<CertificateConfig>,
    #[serde(default)]
    pub alert: crate::alert::config::AlertConfig,
    #[serde(default, rename = "endpoint")]
    pub endpoints: Vec<crate::probe::config::EndpointConfig>,
    #[serde(default)]
    pub probe: crate::probe::config::ProbeConfig,
    /// Cluster mode (docs/cluster.md); absent on a single host.
    pub cluster: Option<crate::cluster::config::ClusterConfig>,
}

fn default_store() -> PathBuf {
    PathBuf::from("/var/lib/certkeep")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// ACME directory URL of the CA.
    #[serde(default = "default_directory")]
    pub directory: Url,
    /// Directory used by `renew --dry-run`.
    #[serde(default = "default_staging_directory")]
    pub staging_directory: Url,
    /// Extra trust anchor (PEM) for the CA's API, for private or test CAs.
    pub ca_bundle: Option<PathBuf>,
    /// Contact email given to the CA when the account is created.
    pub email: Option<Email>,
    /// External account binding, for CAs that require it.
    pub eab: Option<EabConfig>,
    /// How long to wait for the CA to validate and issue one order.
    #[serde(default = "default_order_timeout")]
    pub order_timeout: HumanDuration,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            directory: default_directory(),
            staging_directory: default_staging_directory(),
            ca_bundle: None,
            email: None,
            eab: None,
            order_timeout: default_order_timeout(),
        }
    }
}

fn default_directory() -> Url {
    Url(LETSENCRYPT_DIRECTORY.to_string())
}
fn default_staging_directory() -> Url {
    Url(LETSENCRYPT_STAGING_DIRECTORY.to_string())
}
fn default_order_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(120))
}

/// External account binding. The HMAC key is a secret: it is read from a file
/// or an environment variable, never written in this file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EabConfig {
    pub key_id: String,
    pub hmac_key_file: Option<PathBuf>,
    pub hmac_key_env: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http01Config {
    /// Fetch a probe file through nginx before asking the CA to validate.
    #[serde(default = "yes")]
    pub self_check: bool,
    /// Port the self-check fetches on (the CA always uses 80).
    #[serde(default = "default_http_port")]
    pub self_check_port: u16,
    /// Address the self-check connects to instead of resolving the domain.
    pub self_check_connect: Option<String>,
}

impl Default for Http01Config {
    fn default() -> Self {
        Self {
            self_check: true,
            self_check_port: 80,
            self_check_connect: None,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_http_port() -> u16 {
    80
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NginxConfig {
    /// Command that checks the nginx configuration (argv, no shell).
    #[serde(default = "default_test_command")]
    pub test_command: Command,
    /// Command that reloads nginx (argv, no shell).
    #[serde(default = "default_reload_command")]
    pub reload_command: Command,
    /// Set to false to never touch nginx (deploy by hooks only).
    #[serde(default = "yes")]
    pub reload: bool,
    /// How long to keep checking that nginx serves the new certificate.
    #[serde(default = "default_confirm_timeout")]
    pub confirm_timeout: HumanDuration,
}

impl Default for NginxConfig {
    fn default() -> Self {
        Self {
            test_command: default_test_command(),
            reload_command: default_reload_command(),
            reload: true,
            confirm_timeout: default_confirm_timeout(),
        }
    }
}

fn default_test_command() -> Command {
    Command(vec!["nginx".into(), "-t".into()])
}
fn default_reload_command() -> Command {
    Command(vec!["nginx".into(), "-s".into(), "reload".into()])
}
fn default_confirm_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalConfig {
    /// How long a run waits for another run holding the store lock.
    #[serde(default = "default_lock_wait")]
    pub lock_wait: HumanDuration,
    /// Upper bound on concurrent ARI look-ups.
    #[serde(default = "default_ari_concurrency")]
    pub ari_concurrency: usize,
    /// Total time budget for retrying a CA that is down or rate limiting.
    #[serde(default = "default_retry_budget")]
    pub retry_budget: HumanDuration,
    /// Default for certificates that do not set `renew_before`.
    pub renew_before: Option<RenewBefore>,
    /// Alert when the CA has been unreachable for this long.
    #[serde(default = "default_ca_unreachable_after")]
    pub ca_unreachable_after: HumanDuration,
}

impl Default for RenewalConfig {
    fn default() -> Self {
        Self {
            lock_wait: default_lock_wait(),
            ari_concurrency: default_ari_concurrency(),
            retry_budget: default_retry_budget(),
            renew_before: None,
            ca_unreachable_after: default_ca_unreachable_after(),
        }
    }
}

fn default_ca_unreachable_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(6 * 3600))
}

fn default_lock_wait() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_ari_concurrency() -> usize {
    8
}
fn default_retry_budget() -> HumanDuration {
    HumanDuration(Duration::from_secs(120))
}

/// Commands run around renewals. Global ones run once per run, per-certificate
/// ones for that certificate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    pub pre_hook: Option<Command>,
    pub deploy_hook: Option<Command>,
    pub post_hook: Option<Command>,
    /// Time limit for one hook.
    pub timeout: Option<HumanDuration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// Lineage name: the directory under live/ and archive/.
    pub name: Spanned<LineageName>,
    /// DNS names, the first one is the subject.
    pub domains: Vec<Domain>,
    /// Webroot for every domain that `webroot_map` does not list.
    pub webroot: Option<PathBuf>,
    /// Per-domain webroots.
    #[serde(default)]
    pub webroot_map: BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub key_type: KeyType,
    /// Keep the private key across renewals.
    #[serde(default)]
    pub reuse_key: bool,
    /// Renew when this much lifetime is left ("30d", or a fraction "1/3").
    pub renew_before: Option<RenewBefore>,
    /// `host:port` to confirm the served certificate after a reload.
    pub endpoint: Option<String>,
    /// TLS name to send when confirming; the first domain by default.
    pub endpoint_sni: Option<String>,
    /// Check after a reload that the endpoint serves the new certificate.
    #[serde(default = "yes")]
    pub confirm: bool,
    /// Hooks for this certificate only (run in addition to the global ones).
    pub pre_hook: Option<Command>,
    pub deploy_hook: Option<Command>,
    pub post_hook: Option<Command>,
}

impl CertificateConfig {
    pub fn name(&self) -> &str {
        &self.name.get_ref().0
    }

    pub fn domain_names(&self) -> Vec<String> {
        self.domains.iter().map(|d| d.0.clone()).collect()
    }

    /// The webroot serving `domain`'s challenges.
    pub fn webroot_for(&self, domain: &str) -> Option<&Path> {
        self.webroot_map
            .get(domain)
            .map(PathBuf::as_path)
            .or(self.webroot.as_deref())
    }

    /// TLS name sent when confirming: `endpoint_sni`, or the first domain.
    pub fn confirm_sni(&self) -> String {
        self.endpoint_sni
            .clone()
            .unwrap_or_else(|| self.domains[0].0.clone())
    }

    /// `host:port` to confirm after reload; the first domain on 443 by default.
    pub fn confirm_endpoint(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("{}:443", self.domains[0].0))
    }
}

/// A lineage name: safe as a single path component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageName(pub String);

impl<'de> Deserialize<'de> for LineageName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        validate_lineage_name(&s).map_err(serde::de::Error::custom)?;
        Ok(Self(s))
    }
}

pub fn validate_lineage_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid certificate name {s:?}: use letters, digits, '.', '-' and '_' only, not starting with '.' (it becomes a directory name under live/ and archive/)"
        ))
    }
}

/// A DNS name as the CA will see it (lowercase, no trailing dot).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Domain(pub String);

impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_domain(&s)
            .map(Domain)
            .map_err(serde::de::Error::custom)
    }
}

/// Checks a DNS name for HTTP-01 use and returns it normalised.
pub fn parse_domain(s: &str) -> Result<String, String> {
    let d = s.trim_end_matches('.').to_ascii_lowercase();
    if d.starts_with("*.") {
        return Err(format!(
            "{s:?} is a wildcard: HTTP-01 cannot validate wildcards; list the names instead"
        ));
    }
    let labels_ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !labels_ok {
        return Err(format!(
            "{s:?} is not a valid DNS name (letters, digits and '-' in dot-separated labels)"
        ));
    }
    if d.parse::<std::net::IpAddr>().is_ok() || d.split('.').all(|l| l.parse::<u8>().is_ok()) {
        return Err(format!("{s:?} is an IP address: list DNS names only"));
    }
    Ok(d)
}

/// A URL (only `https://` and `http://` are accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url(pub String);

impl<'de> Deserialize<'de> for Url {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match reqwest::Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(Url(s)),
            _ => Err(serde::de::Error::custom(format!(
                "{s:?} is not an http(s) URL; write e.g. \"https://ca.example/directory\""
            ))),
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(pub String);

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let s = s.trim_start_matches("mailto:").to_string();
        match s.split_once('@') {
            Some((l, h))
                if !l.is_empty() && h.contains('.') && !s.contains(char::is_whitespace) =>
            {
                Ok(Email(s))
            }
            _ => Err(serde::de::Error::custom(format!(
                "{s:?} is not an email address; write e.g. \"admin@example.com\""
            ))),
        }
    }
}

/// A command as an argv array; it runs without a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command(pub Vec<String>);

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        if v.is_empty() || v[0].is_empty() {
            return Err(serde::de::Error::custom(
                "a command must be a non-empty array, e.g. [\"nginx\", \"-s\", \"reload\"]",
            ));
        }
        Ok(Command(v))
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// A duration written like "90s", "15m", "24h", "30d".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("{s:?} is not a duration ({e}); write e.g. \"90s\", \"15m\", \"24h\" or \"30d\"")
    })
}

/// When to renew: a fixed time before expiry, or a fraction of the lifetime left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RenewBefore {
    Remaining(Duration),
    Fraction(f64),
}

impl<'de> Deserialize<'de> for RenewBefore {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Str(String),
        }
        let raw = Raw::deserialize(d)?;
        match raw {
            Raw::Num(f) => parse_fraction_value(f),
            Raw::Str(s) => parse_renew_before(&s),
        }
        .map_err(serde::de::Error::custom)
    }
}

fn parse_fraction_value(f: f64) -> Result<RenewBefore, String> {
    if f > 0.0 && f < 1.0 {
        Ok(RenewBefore::Fraction(f))
    } else {
        Err(format!(
            "renew_before fraction {f} must be between 0 and 1 (exclusive), e.g. 0.33 or \"1/3\""
        ))
    }
}

pub fn parse_renew_before(s: &str) -> Result<RenewBefore, String> {
    let s = s.trim();
    if let Some((n, d)) = s.split_once('/') {
        let (n, d) = (n.trim().parse::<f64>(), d.trim().parse::<f64>());
        return match (n, d) {
            (Ok(n), Ok(d)) if d != 0.0 => parse_fraction_value(n / d),
            _ => Err(format!(
                "renew_before {s:?} is not a fraction; write e.g. \"1/3\""
            )),
        };
    }
    if let Ok(f) = s.parse::<f64>() {
        return parse_fraction_value(f);
    }
    parse_duration(s).map(RenewBefore::Remaining).map_err(|_| {
        format!("renew_before {s:?} is neither a duration (\"30d\") nor a fraction (\"1/3\")")
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
pub enum KeyType {
    #[default]
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    #[serde(rename = "rsa2048")]
    Rsa2048,
    #[serde(rename = "rsa3072")]
    Rsa3072,
    #[serde(rename = "rsa4096")]
    Rsa4096,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa3072 => "rsa3072",
            KeyType::Rsa4096 => "rsa4096",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            invalid_at(text, path, offset, e.message().trim_end().to_string())
        })?;
        config
            .validate()
            .map_err(|(offset, message)| invalid_at(text, path, offset, message))?;
        Ok(config)
    }

    /// Cross-field checks; the error carries the byte offset to report.
    fn validate(&self) -> Result<(), (usize, String)> {
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.certificates {
            let at = c.name.span().start;
            if !seen.insert(c.name()) {
                return Err((
                    at,
                    format!(
                    "certificate name {:?} is used twice; every [[certificate]] needs its own name",
                    c.name()
                ),
                ));
            }
            if c.domains.is_empty() {
                return Err((
                    at,
                    format!(
                        "certificate {:?} has no domains; add domains = [\"example.com\"]",
                        c.name()
                    ),
                ));
            }
            let mut names = std::collections::BTreeSet::new();
            for d in &c.domains {
                if !names.insert(&d.0) {
                    return Err((
                        at,
                        format!("certificate {:?} lists domain {:?} twice", c.name(), d.0),
                    ));
                }
                if c.webroot_for(&d.0).is_none() {
                    return Err((at, format!(
                        "certificate {:?}: domain {:?} has no webroot; set webroot = \"/var/www/certbot\" or add it to webroot_map",
                        c.name(),
                        d.0
                    )));
                }
            }
            for k in c.webroot_map.keys() {
                if !c.domains.iter().any(|d| &d.0 == k) {
                    return Err((
                        at,
                        format!(
                            "certificate {:?}: webroot_map names {k:?}, which is not in domains",
                            c.name()
                        ),
                    ));
                }
            }
        }
        if let Some(eab) = &self.acme.eab {
            if eab.hmac_key_file.is_none() == eab.hmac_key_env.is_none() {
                return Err((0, "[acme.eab] needs exactly one of hmac_key_file or hmac_key_env (the HMAC key is a secret and is not written in this file)".into()));
            }
        }
        if let Some(c) = &self.cluster {
            c.validate()?;
        }
        if self.renewal.ari_concurrency == 0 {
            return Err((0, "[renewal] ari_concurrency must be at least 1".into()));
        }
        Ok(())
    }

    pub fn certificate(&self, name: &str) -> Option<&CertificateConfig> {
        self.certificates.iter().find(|c| c.name() == name)
    }
}

fn invalid_at(text: &str, path: &Path, offset: usize, message: String) -> ConfigError {
    let (line, column) = line_column(text, offset);
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
