//! `[alert]` and `[[alert.channel]]` in the config file.
//!
//! Secrets (SMTP password, webhook URLs, header values such as bearer
//! tokens) can be read from a file or an environment variable at send time,
//! so a config file can be world-readable and a missing secret is a delivery
//! failure of that channel, not a failed renewal.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::state::{Policy, Severity};
use crate::config::HumanDuration;

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawAlertConfig")]
pub struct AlertConfig {
    pub repeat_interval: Duration,
    pub repeat_warnings: bool,
    pub resolve_after_checks: u32,
    pub resolve_after: Duration,
    pub refire_after_checks: u32,
    pub expiry_thresholds: Vec<Threshold>,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub max_delivery_age: Duration,
    pub channels: Vec<Channel>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        // An empty table is valid by construction.
        match AlertConfig::try_from(RawAlertConfig::default()) {
            Ok(c) => c,
            Err(_) => unreachable!("the default [alert] table is valid"),
        }
    }
}

/// An expiry threshold: days left, or a fraction of the certificate's lifetime.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Days(u32),
    Fraction(f64),
}

impl Threshold {
    /// The threshold in days for a certificate of `lifetime_days`.
    pub fn days(self, lifetime_days: i64) -> u32 {
        match self {
            Threshold::Days(d) => d,
            Threshold::Fraction(f) => (lifetime_days.max(0) as f64 * f).ceil() as u32,
        }
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_threshold(&s).map_err(serde::de::Error::custom)
    }
}

fn parse_threshold(s: &str) -> Result<Threshold, String> {
    let bad = || {
        format!("expiry threshold {s:?} is neither whole days (\"7d\") nor a fraction of the lifetime (\"1/3\")")
    };
    let t = s.trim();
    if let Some((n, d)) = t.split_once('/') {
        let (n, d) = (n.trim().parse::<f64>(), d.trim().parse::<f64>());
        return match (n, d) {
            (Ok(n), Ok(d)) if d > 0.0 && n > 0.0 && n < d => Ok(Threshold::Fraction(n / d)),
            _ => Err(bad()),
        };
    }
    let secs = crate::config::parse_duration(t)
        .map_err(|_| bad())?
        .as_secs();
    if secs == 0 || secs % 86_400 != 0 {
        return Err(bad());
    }
    u32::try_from(secs / 86_400)
        .map(Threshold::Days)
        .map_err(|_| bad())
}

impl AlertConfig {
    /// The timing rules of the state machine.
    pub fn policy(&self) -> Policy {
        Policy {
            repeat_interval: self.repeat_interval.as_secs(),
            repeat_warnings: self.repeat_warnings,
            resolve_after_checks: self.resolve_after_checks,
            resolve_after: self.resolve_after.as_secs(),
            refire_after_checks: self.refire_after_checks,
            retry_initial: self.retry_initial.as_secs().max(1),
            retry_max: self.retry_max.as_secs().max(1),
            max_delivery_age: self.max_delivery_age.as_secs(),
            ..Policy::default()
        }
    }

    /// The smallest configured threshold (in days) that `days_left` has
    /// reached, for a certificate valid `lifetime_days` in total; `None` when
    /// no threshold is reached yet. Put it in [`super::Problem::threshold`].
    pub fn expiry_threshold(&self, days_left: i64, lifetime_days: i64) -> Option<u32> {
        self.expiry_thresholds
            .iter()
            .map(|t| t.days(lifetime_days))
            .filter(|&t| days_left <= i64::from(t))
            .min()
    }

    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// `(name, minimum severity, resend interval in seconds)` of every
    /// channel that forgets alerts not re-sent in time (Alertmanager), for
    /// [`super::state::AlertState::refresh`].
    pub fn refresh_routes(&self) -> Vec<(String, Severity, u64)> {
        self.channels
            .iter()
            .filter_map(|c| match &c.kind {
                ChannelKind::Alertmanager(a) => Some((
                    c.name.clone(),
                    c.min_severity,
                    a.resend_interval.as_secs().max(1),
                )),
                _ => None,
            })
            .collect()
    }

    /// `(name, minimum severity)` of every channel, for routing.
    pub fn routes(&self) -> Vec<(String, Severity)> {
        self.channels
            .iter()
            .map(|c| (c.name.clone(), c.min_severity))
            .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertConfig {
    #[serde(default = "default_repeat_interval")]
    repeat_interval: HumanDuration,
    #[serde(default)]
    repeat_warnings: bool,
    #[serde(default = "two")]
    resolve_after_checks: u32,
    #[serde(default = "zero")]
    resolve_after: HumanDuration,
    #[serde(default = "two")]
    refire_after_checks: u32,
    #[serde(default = "default_thresholds")]
    expiry_thresholds: Vec<Threshold>,
    #[serde(default = "default_retry_initial")]
    retry_initial: HumanDuration,
    #[serde(default = "default_retry_max")]
    retry_max: HumanDuration,
    #[serde(default = "default_max_delivery_age")]
    max_delivery_age: HumanDuration,
    #[serde(default, rename = "channel")]
    channels: Vec<RawChannel>,
}

impl Default for RawAlertConfig {
    fn default() -> Self {
        Self {
            repeat_interval: default_repeat_interval(),
            repeat_warnings: false,
            resolve_after_checks: 2,
            resolve_after: zero(),
            refire_after_checks: 2,
            expiry_thresholds: default_thresholds(),
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            max_delivery_age: default_max_delivery_age(),
            channels: Vec::new(),
        }
    }
}

fn default_repeat_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(24 * 3600))
}
fn two() -> u32 {
    2
}
fn zero() -> HumanDuration {
    HumanDuration(Duration::ZERO)
}
fn default_thresholds() -> Vec<Threshold> {
    [14, 7, 3, 1].into_iter().map(Threshold::Days).collect()
}
fn default_retry_initial() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_retry_max() -> HumanDuration {
    HumanDuration(Duration::from_secs(6 * 3600))
}
fn default_max_delivery_age() -> HumanDuration {
    HumanDuration(Duration::from_secs(3 * 24 * 3600))
}

impl TryFrom<RawAlertConfig> for AlertConfig {
    type Error = String;

    fn try_from(r: RawAlertConfig) -> Result<Self, String> {
        if r.resolve_after_checks == 0 || r.refire_after_checks == 0 {
            return Err(
                "[alert] resolve_after_checks and refire_after_checks must be at least 1".into(),
            );
        }
        if r.repeat_interval.0 < Duration::from_secs(60) {
            return Err("[alert] repeat_interval must be at least \"1m\"".into());
        }
        if r.max_delivery_age.0.is_zero() {
            return Err("[alert] max_delivery_age must be more than 0, e.g. \"3d\"".into());
        }
        let mut names = BTreeSet::new();
        let mut channels = Vec::new();
        for c in r.channels {
            let c = Channel::try_from(c)?;
            if !names.insert(c.name.clone()) {
                return Err(format!(
                    "alert channel name {:?} is used twice; every [[alert.channel]] needs its own name",
                    c.name
                ));
            }
            channels.push(c);
        }
        Ok(AlertConfig {
            repeat_interval: r.repeat_interval.0,
            repeat_warnings: r.repeat_warnings,
            resolve_after_checks: r.resolve_after_checks,
            resolve_after: r.resolve_after.0,
            refire_after_checks: r.refire_after_checks,
            expiry_thresholds: r.expiry_thresholds,
            retry_initial: r.retry_initial.0,
            retry_max: r.retry_max.0,
            max_delivery_age: r.max_delivery_age.0,
            channels,
        })
    }
}

/// One destination for alerts.
#[derive(Debug, Clone)]
pub struct Channel {
    pub name: String,
    /// Alerts below this severity are not sent here.
    pub min_severity: Severity,
    pub kind: ChannelKind,
    /// Longest one send may take (connect, TLS, every exchange); a slower
    /// send counts as failed and stays queued.
    pub timeout: Duration,
}

/// `[[alert.channel]] timeout` when unset.
pub const DEFAULT_CHANNEL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub enum ChannelKind {
    Email(EmailChannel),
    Slack(SlackChannel),
    Webhook(WebhookChannel),
    Alertmanager(AlertmanagerChannel),
}

impl ChannelKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Email(_) => "email",
            ChannelKind::Slack(_) => "slack",
            ChannelKind::Webhook(_) => "webhook",
            ChannelKind::Alertmanager(_) => "alertmanager",
        }
    }
}

/// A value that is a secret: given inline, in a file, or in an environment variable.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Inline(String),
    File(PathBuf),
    Env(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Inline(<redacted>)"),
            Secret::File(p) => write!(f, "File({})", p.display()),
            Secret::Env(v) => write!(f, "Env({v})"),
        }
    }
}

impl Secret {
    fn from_parts(
        what: &str,
        inline: Option<String>,
        file: Option<PathBuf>,
        env: Option<String>,
    ) -> Result<Option<Secret>, String> {
        match (inline, file, env) {
            (None, None, None) => Ok(None),
            (Some(v), None, None) => Ok(Some(Secret::Inline(v))),
            (None, Some(p), None) => Ok(Some(Secret::File(p))),
            (None, None, Some(v)) => Ok(Some(Secret::Env(v))),
            _ => Err(format!(
                "set only one of {what}, {what}_file and {what}_env"
            )),
        }
    }

    /// Reads the secret (trailing newline removed). The error names where it
    /// was looked for, never the value.
    pub fn read(&self) -> Result<String, String> {
        let v = match self {
            Secret::Inline(v) => v.clone(),
            Secret::File(p) => std::fs::read_to_string(p).map_err(|e| {
                format!(
                    "cannot read secret file {}: {e} (create it, mode 0600)",
                    p.display()
                )
            })?,
            Secret::Env(name) => std::env::var(name).map_err(|_| {
                format!(
                    "environment variable {name} is not set (set it in the service's environment)"
                )
            })?,
        };
        let v = v.trim_end_matches(['\r', '\n']).to_string();
        if v.is_empty() {
            return Err(format!("secret {} is empty", self.place()));
        }
        Ok(v)
    }

    /// Where the secret comes from, for messages.
    pub fn place(&self) -> String {
        match self {
            Secret::Inline(_) => "(inline in the config)".into(),
            Secret::File(p) => format!("file {}", p.display()),
            Secret::Env(v) => format!("environment variable {v}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP, for a relay on localhost only.
    None,
    /// STARTTLS, required (port 587).
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
}

#[derive(Debug, Clone)]
pub struct EmailChannel {
    pub from: String,
    pub to: Vec<String>,
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub ca_bundle: Option<PathBuf>,
    pub subject_prefix: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct SlackChannel {
    pub url: Secret,
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Clone)]
pub struct WebhookChannel {
    pub url: Secret,
    pub headers: BTreeMap<String, String>,
    pub headers_from_files: BTreeMap<String, PathBuf>,
    pub ca_bundle: Option<PathBuf>,
}

/// Header values may be credentials: only their names are shown.
impl std::fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("headers_from_files", &self.headers_from_files)
            .field("ca_bundle", &self.ca_bundle)
            .finish()
    }
}

/// `[[alert.channel]] resend_interval` when unset: well under
/// Alertmanager's default `resolve_timeout` of 5m.
pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(60);

/// Prometheus Alertmanager (API v2): every URL gets every alert.
#[derive(Debug, Clone)]
pub struct AlertmanagerChannel {
    /// Base URLs (`http://am.example:9093`, or with a path prefix), not secrets.
    pub urls: Vec<String>,
    /// The `instance` label: this host unless configured.
    pub instance: String,
    /// `generatorURL` of every alert, e.g. this host's status page.
    pub generator_url: Option<String>,
    /// Open alerts are re-sent this often, and each says it ends after four
    /// of these unless re-sent, as Prometheus does.
    pub resend_interval: Duration,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub bearer_token: Option<Secret>,
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: String,
    #[serde(rename = "type")]
    kind: RawKind,
    #[serde(default = "warning")]
    min_severity: Severity,
    ca_bundle: Option<PathBuf>,
    // email
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    tls: Option<SmtpTls>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    subject_prefix: Option<String>,
    timeout: Option<HumanDuration>,
    // slack, webhook
    url: Option<String>,
    url_file: Option<PathBuf>,
    url_env: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    headers_from_files: BTreeMap<String, PathBuf>,
    // alertmanager
    #[serde(default)]
    urls: Vec<String>,
    instance: Option<String>,
    generator_url: Option<String>,
    resend_interval: Option<HumanDuration>,
    bearer_token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Email,
    Slack,
    Webhook,
    Alertmanager,
}

fn warning() -> Severity {
    Severity::Warning
}

impl TryFrom<RawChannel> for Channel {
    type Error = String;

    fn try_from(r: RawChannel) -> Result<Self, String> {
        let name = r.name.clone();
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            return Err(format!(
                "alert channel name {name:?}: use letters, digits, '-', '_' and '.' only"
            ));
        }
        let ctx = |m: String| format!("alert channel {name:?}: {m}");
        let only = |kind: &str, fields: &[(&str, bool)]| -> Result<(), String> {
            for (f, set) in fields {
                if *set {
                    return Err(ctx(format!("{f} does not apply to type = \"{kind}\"")));
                }
            }
            Ok(())
        };
        let url_set = r.url.is_some() || r.url_file.is_some() || r.url_env.is_some();
        let timeout = r.timeout.map(|t| t.0).unwrap_or(DEFAULT_CHANNEL_TIMEOUT);
        if timeout.is_zero() {
            return Err(ctx("timeout must be longer than 0s".into()));
        }
        let email_set = [
            ("from", r.from.is_some()),
            ("to", !r.to.is_empty()),
            ("smtp_host", r.smtp_host.is_some()),
            ("smtp_port", r.smtp_port.is_some()),
            ("tls", r.tls.is_some()),
            ("username", r.username.is_some()),
            ("password_file", r.password_file.is_some()),
            ("password_env", r.password_env.is_some()),
            ("subject_prefix", r.subject_prefix.is_some()),
        ];
        let am_set = [
            ("urls", !r.urls.is_empty()),
            ("instance", r.instance.is_some()),
            ("generator_url", r.generator_url.is_some()),
            ("resend_interval", r.resend_interval.is_some()),
            ("bearer_token_file", r.bearer_token_file.is_some()),
        ];
        if !matches!(r.kind, RawKind::Alertmanager) {
            let kind = match r.kind {
                RawKind::Email => "email",
                RawKind::Slack => "slack",
                _ => "webhook",
            };
            only(kind, &am_set)?;
        }
        let kind = match r.kind {
            RawKind::Alertmanager => {
                only(
                    "alertmanager",
                    &[
                        ("url (use urls = [...])", url_set),
                        ("headers", !r.headers.is_empty()),
                        ("headers_from_files", !r.headers_from_files.is_empty()),
                        ("from", r.from.is_some()),
                        ("to", !r.to.is_empty()),
                        ("smtp_host", r.smtp_host.is_some()),
                        ("smtp_port", r.smtp_port.is_some()),
                        ("tls", r.tls.is_some()),
                        ("subject_prefix", r.subject_prefix.is_some()),
                    ],
                )?;
                if r.urls.is_empty() {
                    return Err(ctx(
                        "needs urls = [\"http://alertmanager.example:9093\"] (every URL gets every alert)"
                            .into(),
                    ));
                }
                for u in &r.urls {
                    check_url(u).map_err(|_| ctx(format!("urls: {u:?} is not an http(s) URL")))?;
                }
                if let Some(g) = &r.generator_url {
                    check_url(g)
                        .map_err(|_| ctx(format!("generator_url: {g:?} is not an http(s) URL")))?;
                }
                let password =
                    Secret::from_parts("password", None, r.password_file, r.password_env)
                        .map_err(&ctx)?;
                if password.is_some() != r.username.is_some() {
                    return Err(ctx(
                        "username and one of password_file / password_env go together".into(),
                    ));
                }
                if password.is_some() && r.bearer_token_file.is_some() {
                    return Err(ctx(
                        "set either username and password_file (basic auth) or bearer_token_file, not both"
                            .into(),
                    ));
                }
                let resend_interval = r
                    .resend_interval
                    .map(|d| d.0)
                    .unwrap_or(DEFAULT_RESEND_INTERVAL);
                if resend_interval < Duration::from_secs(1) {
                    return Err(ctx("resend_interval must be at least \"1s\"".into()));
                }
                let instance = match r.instance {
                    Some(i) if i.trim().is_empty() => {
                        return Err(ctx(
                            "instance must not be empty (leave it out for this host's name)".into(),
                        ))
                    }
                    Some(i) => i,
                    None => super::message::hostname(),
                };
                ChannelKind::Alertmanager(AlertmanagerChannel {
                    urls: r.urls,
                    instance,
                    generator_url: r.generator_url,
                    resend_interval,
                    username: r.username,
                    password,
                    bearer_token: r.bearer_token_file.map(Secret::File),
                    ca_bundle: r.ca_bundle,
                })
            }
            RawKind::Email => {
                only(
                    "email",
                    &[
                        ("url", url_set),
                        ("headers", !r.headers.is_empty()),
                        ("headers_from_files", !r.headers_from_files.is_empty()),
                    ],
                )?;
                let from = r
                    .from
                    .ok_or_else(|| ctx("needs from = \"certkeep@example.com\"".into()))?;
                check_mailbox(&from).map_err(&ctx)?;
                if r.to.is_empty() {
                    return Err(ctx("needs to = [\"ops@example.com\"]".into()));
                }
                for t in &r.to {
                    check_mailbox(t).map_err(&ctx)?;
                }
                let host = r
                    .smtp_host
                    .ok_or_else(|| ctx("needs smtp_host = \"smtp.example.com\"".into()))?;
                let tls = r.tls.unwrap_or(SmtpTls::Starttls);
                let port = r.smtp_port.unwrap_or(match tls {
                    SmtpTls::None => 25,
                    SmtpTls::Starttls => 587,
                    SmtpTls::Tls => 465,
                });
                let password =
                    Secret::from_parts("password", None, r.password_file, r.password_env)
                        .map_err(&ctx)?;
                if password.is_some() != r.username.is_some() {
                    return Err(ctx(
                        "username and one of password_file / password_env go together".into(),
                    ));
                }
                ChannelKind::Email(EmailChannel {
                    from,
                    to: r.to,
                    host,
                    port,
                    tls,
                    username: r.username,
                    password,
                    ca_bundle: r.ca_bundle,
                    subject_prefix: r.subject_prefix.unwrap_or_else(|| "[certkeep]".into()),
                    timeout,
                })
            }
            RawKind::Slack | RawKind::Webhook => {
                let kind = if matches!(r.kind, RawKind::Slack) {
                    "slack"
                } else {
                    "webhook"
                };
                only(kind, &email_set)?;
                if let Some(u) = &r.url {
                    check_url(u).map_err(&ctx)?;
                }
                let url = Secret::from_parts("url", r.url, r.url_file, r.url_env)
                    .map_err(&ctx)?
                    .ok_or_else(|| {
                        ctx(
                            "needs url, url_file or url_env (the URL is a secret: prefer url_file)"
                                .into(),
                        )
                    })?;
                for h in r.headers.keys().chain(r.headers_from_files.keys()) {
                    if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                        return Err(ctx(format!("{h:?} is not a valid HTTP header name")));
                    }
                }
                if matches!(r.kind, RawKind::Slack) {
                    only(
                        "slack",
                        &[
                            ("headers", !r.headers.is_empty()),
                            ("headers_from_files", !r.headers_from_files.is_empty()),
                        ],
                    )?;
                    ChannelKind::Slack(SlackChannel {
                        url,
                        ca_bundle: r.ca_bundle,
                    })
                } else {
                    ChannelKind::Webhook(WebhookChannel {
                        url,
                        headers: r.headers,
                        headers_from_files: r.headers_from_files,
                        ca_bundle: r.ca_bundle,
                    })
                }
            }
        };
        Ok(Channel {
            name,
            min_severity: r.min_severity,
            kind,
            timeout,
        })
    }
}

fn check_mailbox(s: &str) -> Result<(), String> {
    s.parse::<lettre::message::Mailbox>().map(|_| ()).map_err(|e| {
        format!("{s:?} is not an email address ({e}); write e.g. \"ops@example.com\" or \"Ops <ops@example.com>\"")
    })
}

/// Checks an inline URL without echoing it (it is a secret).
pub(crate) fn check_url(s: &str) -> Result<(), String> {
    match reqwest::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(()),
        _ => Err("url is not an http(s) URL".into()),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
