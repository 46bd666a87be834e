//! The sections of the file as serde reads them: `[acme]`, `[http01]`,
//! `[nginx]`, `[renewal]`, `[hooks]` and `[[certificate]]`. (`[alert]`,
//! `[probe]`/`[[endpoint]]` and `[daemon]` have their own files.) Values are
//! checked by their types; checks across values are in resolve.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_spanned::Spanned;

use super::types::{
    Command, Domain, Email, HostName, HostPort, HumanDuration, KeyType, LineageName, ProfileName,
    Secret, TimeLeft, Url,
};
use super::{LETSENCRYPT_DIRECTORY, LETSENCRYPT_STAGING_DIRECTORY};
pub use crate::acme::profile::{ProfileMode, WantedProfile};

/// The whole file, before resolution.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default = "default_store")]
    pub store: PathBuf,
    #[serde(default)]
    pub acme: RawAcme,
    #[serde(default)]
    pub http01: Http01Config,
    #[serde(default)]
    pub nginx: NginxConfig,
    #[serde(default)]
    pub renewal: RenewalConfig,
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default)]
    pub daemon: super::daemon::DaemonConfig,
    #[serde(default, rename = "certificate")]
    pub certificates: Vec<CertificateConfig>,
    #[serde(default)]
    pub alert: super::alert::RawAlertConfig,
    #[serde(default, rename = "endpoint")]
    pub endpoints: Vec<super::probe::EndpointConfig>,
    #[serde(default)]
    pub probe: super::probe::ProbeConfig,
    /// Cluster mode (docs/cluster.md); absent on a single host.
    pub cluster: Option<crate::cluster::config::ClusterConfig>,
}

fn default_store() -> PathBuf {
    PathBuf::from("/var/lib/certkeep")
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAcme {
    pub directory: Option<Url>,
    pub staging_directory: Option<Url>,
    pub ca_bundle: Option<PathBuf>,
    pub email: Option<Email>,
    pub eab: Option<RawEab>,
    pub order_timeout: Option<HumanDuration>,
    pub profile: Option<ProfileName>,
    pub profile_mode: Option<ProfileMode>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEab {
    pub key_id: String,
    pub hmac_key_file: Option<PathBuf>,
    pub hmac_key_env: Option<String>,
}

/// `[acme]`, resolved.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// ACME directory URL of the CA.
    pub directory: Url,
    /// Directory used by `renew --dry-run`: as written, or Let's Encrypt
    /// staging when `directory` is Let's Encrypt; `None` for another CA
    /// without one (then a dry run stops and says so).
    pub staging_directory: Option<Url>,
    /// Extra trust anchor (PEM) for the CA's API; exists and parses.
    pub ca_bundle: Option<PathBuf>,
    /// Contact email given to the CA when the account is created.
    pub email: Option<Email>,
    /// External account binding, for CAs that require it.
    pub eab: Option<EabConfig>,
    /// How long to wait for the CA to validate and issue one order.
    pub order_timeout: HumanDuration,
    /// ACME profile for every certificate without its own `profile`.
    pub profile: Option<ProfileName>,
    /// Whether `profile` is "preferred" (default) or "required".
    pub profile_mode: Option<ProfileMode>,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            directory: letsencrypt(),
            staging_directory: Some(letsencrypt_staging()),
            ca_bundle: None,
            email: None,
            eab: None,
            order_timeout: HumanDuration::from_secs(120),
            profile: None,
            profile_mode: None,
        }
    }
}

pub(crate) fn letsencrypt() -> Url {
    Url::new(LETSENCRYPT_DIRECTORY).unwrap_or_else(|e| unreachable!("{e}"))
}

pub(crate) fn letsencrypt_staging() -> Url {
    Url::new(LETSENCRYPT_STAGING_DIRECTORY).unwrap_or_else(|e| unreachable!("{e}"))
}

impl AcmeConfig {
    /// The directory `renew --dry-run` uses, or what to set when there is none.
    pub fn dry_run_directory(&self) -> Result<&Url, String> {
        self.staging_directory.as_ref().ok_or_else(|| {
            format!(
                "--dry-run needs a test CA: [acme] directory is {} (not Let's Encrypt), so set [acme] staging_directory to that CA's staging or test directory",
                self.directory
            )
        })
    }
}

/// External account binding. The HMAC key is a secret: it is read from a file
/// or an environment variable, never written in this file.
#[derive(Debug, Clone)]
pub struct EabConfig {
    pub key_id: String,
    pub hmac_key: Secret,
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
    /// IP address the self-check connects to instead of resolving the domain.
    #[serde(default, deserialize_with = "ip_address")]
    pub self_check_connect: Option<std::net::IpAddr>,
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

fn ip_address<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::net::IpAddr>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "{s:?} is not an IP address; write e.g. \"127.0.0.1\" or \"::1\""
        ))
    })
}

pub(crate) fn yes() -> bool {
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
    Command::new(["nginx", "-t"]).unwrap_or_else(|e| unreachable!("{e}"))
}
fn default_reload_command() -> Command {
    Command::new(["nginx", "-s", "reload"]).unwrap_or_else(|e| unreachable!("{e}"))
}
fn default_confirm_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalConfig {
    /// How long a run waits for another run holding the store lock.
    #[serde(default = "default_lock_wait")]
    pub lock_wait: HumanDuration,
    /// Upper bound on concurrent ARI look-ups (at least 1).
    #[serde(default = "default_ari_concurrency")]
    pub ari_concurrency: usize,
    /// Ask the CA for renewal windows (ARI) when it offers them; false:
    /// the lifetime threshold (`renew_before`) alone plans renewals.
    #[serde(default = "default_ari")]
    pub ari: bool,
    /// Total time budget for retrying a CA that is down or rate limiting.
    #[serde(default = "default_retry_budget")]
    pub retry_budget: HumanDuration,
    /// Default for certificates that do not set `renew_before`.
    pub renew_before: Option<TimeLeft>,
    /// Alert when the CA has been unreachable for this long.
    #[serde(default = "default_ca_unreachable_after")]
    pub ca_unreachable_after: HumanDuration,
}

impl Default for RenewalConfig {
    fn default() -> Self {
        Self {
            lock_wait: default_lock_wait(),
            ari_concurrency: default_ari_concurrency(),
            ari: default_ari(),
            retry_budget: default_retry_budget(),
            renew_before: None,
            ca_unreachable_after: default_ca_unreachable_after(),
        }
    }
}

fn default_ca_unreachable_after() -> HumanDuration {
    HumanDuration::from_secs(6 * 3600)
}
fn default_lock_wait() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_ari() -> bool {
    true
}
fn default_ari_concurrency() -> usize {
    8
}
fn default_retry_budget() -> HumanDuration {
    HumanDuration::from_secs(120)
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

impl Hooks {
    /// The time limit of one hook: `timeout`, else five minutes.
    pub fn time_limit(&self) -> std::time::Duration {
        self.timeout
            .map(|t| t.get())
            .unwrap_or(crate::hooks::DEFAULT_TIMEOUT)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// Lineage name: the directory under live/ and archive/.
    pub name: Spanned<LineageName>,
    /// DNS names and IP addresses (RFC 8738), the first one is the subject
    /// (never empty once loaded). Filled from `domains` as written when the
    /// file is resolved, so a bad entry is reported at its own position.
    #[serde(skip)]
    pub domains: Vec<Domain>,
    /// `domains` as written.
    #[serde(rename = "domains")]
    pub(crate) written_domains: Vec<Spanned<String>>,
    /// Webroot for every domain that `webroot_map` does not list (absolute).
    pub webroot: Option<PathBuf>,
    /// Per-domain webroots (absolute).
    #[serde(default)]
    pub webroot_map: BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub key_type: KeyType,
    /// Keep the private key across renewals.
    #[serde(default)]
    pub reuse_key: bool,
    /// Renew when this much lifetime is left ("30d", or a fraction "1/3").
    pub renew_before: Option<TimeLeft>,
    /// `host:port` to confirm the served certificate after a reload.
    pub endpoint: Option<HostPort>,
    /// TLS name to send when confirming; the first domain by default.
    pub endpoint_sni: Option<HostName>,
    /// Check after a reload that the endpoint serves the new certificate.
    #[serde(default = "yes")]
    pub confirm: bool,
    /// Hooks for this certificate only (run in addition to the global ones).
    pub pre_hook: Option<Command>,
    pub deploy_hook: Option<Command>,
    pub post_hook: Option<Command>,
    /// ACME profile to order with (default: `[acme] profile`).
    pub profile: Option<ProfileName>,
    /// "preferred" or "required" (default: `[acme] profile_mode`, else
    /// "preferred").
    pub profile_mode: Option<ProfileMode>,
}

impl CertificateConfig {
    /// The profile this certificate's orders ask for: its own `profile`, or
    /// `[acme] profile`; its own `profile_mode`, or `[acme] profile_mode`,
    /// or preferred.
    pub fn wanted_profile(&self, acme: &AcmeConfig) -> Option<WantedProfile> {
        let name = self.profile.as_ref().or(acme.profile.as_ref())?;
        Some(WantedProfile {
            name: name.as_str().to_string(),
            mode: self.profile_mode.or(acme.profile_mode).unwrap_or_default(),
        })
    }

    pub fn name(&self) -> &str {
        self.name.get_ref().as_str()
    }

    pub fn domain_names(&self) -> Vec<String> {
        self.domains
            .iter()
            .map(|d| d.as_str().to_string())
            .collect()
    }

    /// The first domain (the subject); loaded certificates always have one.
    pub fn first_domain(&self) -> &str {
        self.domains.first().map(Domain::as_str).unwrap_or_default()
    }

    /// The webroot serving `domain`'s challenges.
    pub fn webroot_for(&self, domain: &str) -> Option<&Path> {
        self.webroot_map
            .get(domain)
            .map(PathBuf::as_path)
            .or(self.webroot.as_deref())
    }

    /// TLS name sent when confirming: `endpoint_sni`, or the first domain
    /// (for an IP address no SNI is sent; the address is the name checked).
    pub fn confirm_sni(&self) -> String {
        self.endpoint_sni
            .as_ref()
            .map_or(self.first_domain(), HostName::as_str)
            .to_string()
    }

    /// `host:port` to confirm after reload; the first domain on 443 by
    /// default (`[::1]:443` for an IPv6 address).
    pub fn confirm_endpoint(&self) -> String {
        match &self.endpoint {
            Some(e) => e.to_string(),
            None => format!("{}:443", super::types::url_host(self.first_domain())),
        }
    }

    /// Whether any identifier is an IP address.
    pub fn has_ip(&self) -> bool {
        self.domains.iter().any(|d| d.ip().is_some())
    }
}
