//! The TOML configuration: schema, defaults and the checks done at load.
//!
//! [`Settings::load`] reads the file into its raw sections (sections.rs and
//! one file per subsystem section), whose value types (types.rs) check every
//! value as it is deserialized; resolve.rs then checks what spans values
//! (references between sections, addresses, paths). Every error carries the
//! position of the offending value (`file:line:column`). `check-config`, the
//! daemon's start and its SIGHUP all load through here, so a file that loads
//! cannot fail later for a reason visible in it.

pub mod alert;
pub mod daemon;
pub mod probe;
mod resolve;
pub mod sections;
mod slices;
pub mod types;

use std::path::{Path, PathBuf};

pub use sections::{
    AcmeConfig, CertificateConfig, EabConfig, Hooks, Http01Config, NginxConfig, RenewalConfig,
};
pub use slices::AlertSettings;
pub use types::{
    parse_domain, parse_duration, parse_identifier, url_host, validate_lineage_name, Command,
    Domain, Email, HostName, HostPort, HumanDuration, KeyType, LineageName, ProfileName,
    RenewBefore, Secret, TimeLeft, Url,
};

pub(crate) use resolve::{is_letsencrypt, SHORTLIVED};

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

/// The configuration as loaded and resolved: every reference checked, every
/// address parsed, every path absolute (and present where it must be).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Root of the certificate store (certbot layout). `/etc/letsencrypt` adopts certbot's tree.
    pub store: PathBuf,
    pub acme: AcmeConfig,
    pub http01: Http01Config,
    pub nginx: NginxConfig,
    pub renewal: RenewalConfig,
    pub hooks: Hooks,
    pub daemon: daemon::DaemonConfig,
    pub certificates: Vec<CertificateConfig>,
    pub alert: alert::AlertConfig,
    pub endpoints: Vec<probe::EndpointConfig>,
    pub probe: probe::ProbeConfig,
    /// Cluster mode (docs/cluster.md); absent on a single host.
    pub cluster: Option<crate::cluster::config::ClusterConfig>,
    /// What a probe round probes: the `[[endpoint]]`s, then the managed
    /// certificates (see `[probe] managed_certificates`).
    pub probe_targets: Vec<crate::probe::Target>,
    /// `file:line:column: message` for what is allowed but unwise.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Reads and resolves the file at `path`.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and resolves `text`; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        let from_toml = |e: toml::de::Error| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            invalid_at(text, path, offset, e.message().trim_end().to_string())
        };
        let doc = toml::de::DeTable::parse(text).map_err(from_toml)?;
        let raw: sections::RawConfig = toml::from_str(text).map_err(from_toml)?;
        let place = |l: &resolve::Located| {
            let offset = l.start(doc.get_ref());
            let (line, column) = line_column(text, offset);
            (line, column)
        };
        let (mut settings, warnings) = resolve::resolve(raw).map_err(|l| {
            let (line, column) = place(&l);
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: l.message,
            }
        })?;
        settings.warnings = warnings
            .iter()
            .map(|w| {
                let (line, column) = place(w);
                format!("{}:{line}:{column}: {}", path.display(), w.message)
            })
            .collect();
        Ok(settings)
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
