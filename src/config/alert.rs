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

use super::resolve::{Located, Seg};
pub use super::types::Secret;
use super::types::{HumanDuration, TimeLeft};
use crate::alert::state::{Policy, Severity};

/// `[alert]`, resolved.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    pub repeat_interval: Duration,
    pub repeat_warnings: bool,
    pub resolve_after_checks: u32,
    pub resolve_after: Duration,
    pub refire_after_checks: u32,
    pub expiry_thresholds: Vec<TimeLeft>,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub max_delivery_age: Duration,
    pub channels: Vec<Channel>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        // An empty table is valid by construction.
        match resolve(RawAlertConfig::default()) {
            Ok(c) => c,
            Err(_) => unreachable!("the default [alert] table is valid"),
        }
    }
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
    ///
    /// A fixed threshold of half the lifetime or more is left out: every
    /// new certificate of that lifetime would cross it before its normal
    /// renewal (the default 7 days against a 6-day certificate), an alert
    /// after each renewal that says nothing. Fractions always apply.
    pub fn expiry_threshold(&self, days_left: i64, lifetime_days: i64) -> Option<u32> {
        self.expiry_thresholds
            .iter()
            .filter(|t| t.is_fraction() || 2 * i64::from(t.days_of(lifetime_days)) < lifetime_days)
            .map(|t| t.days_of(lifetime_days))
            .filter(|&t| days_left <= i64::from(t))
            .min()
    }

    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// `(name, minimum severity, resend interval in seconds)` of every
    /// channel that forgets alerts not re-sent in time (Alertmanager), for
    /// [`crate::alert::state::AlertState::refresh`].
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlertConfig {
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
    expiry_thresholds: Vec<TimeLeft>,
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
    HumanDuration::from_secs(24 * 3600)
}
fn two() -> u32 {
    2
}
fn zero() -> HumanDuration {
    HumanDuration::default()
}
fn default_thresholds() -> Vec<TimeLeft> {
    [14, 7, 3, 1]
        .into_iter()
        .filter_map(|d| TimeLeft::duration(Duration::from_secs(d * 86_400)).ok())
        .collect()
}
fn default_retry_initial() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_retry_max() -> HumanDuration {
    HumanDuration::from_secs(6 * 3600)
}
fn default_max_delivery_age() -> HumanDuration {
    HumanDuration::from_secs(3 * 24 * 3600)
}

/// Checks `[alert]` and its channels; errors name the offending key.
pub(crate) fn resolve(r: RawAlertConfig) -> Result<AlertConfig, Located> {
    let at = |key: &str, m: &str| Located::new(["alert", key], m);
    if r.resolve_after_checks == 0 {
        return Err(at(
            "resolve_after_checks",
            "[alert] resolve_after_checks must be at least 1",
        ));
    }
    if r.refire_after_checks == 0 {
        return Err(at(
            "refire_after_checks",
            "[alert] refire_after_checks must be at least 1",
        ));
    }
    if r.repeat_interval.get() < Duration::from_secs(60) {
        return Err(at(
            "repeat_interval",
            "[alert] repeat_interval must be at least \"1m\"",
        ));
    }
    if r.max_delivery_age.get().is_zero() {
        return Err(at(
            "max_delivery_age",
            "[alert] max_delivery_age must be more than 0, e.g. \"3d\"",
        ));
    }
    for (i, t) in r.expiry_thresholds.iter().enumerate() {
        if let Some(d) = t.as_duration() {
            if d.as_secs() % 86_400 != 0 {
                return Err(Located::new(
                    [Seg::from("alert"), "expiry_thresholds".into(), i.into()],
                    &format!("expiry threshold {t} is neither whole days (\"7d\") nor a fraction of the lifetime (\"1/3\")"),
                ));
            }
        }
    }
    let mut names = BTreeSet::new();
    let mut channels = Vec::new();
    for (i, c) in r.channels.into_iter().enumerate() {
        let c = resolve_channel(c, i)?;
        if !names.insert(c.name.clone()) {
            return Err(Located::new(
                [Seg::from("alert"), "channel".into(), i.into(), "name".into()],
                &format!(
                    "alert channel name {:?} is used twice; every [[alert.channel]] needs its own name",
                    c.name
                ),
            ));
        }
        channels.push(c);
    }
    Ok(AlertConfig {
        repeat_interval: r.repeat_interval.get(),
        repeat_warnings: r.repeat_warnings,
        resolve_after_checks: r.resolve_after_checks,
        resolve_after: r.resolve_after.get(),
        refire_after_checks: r.refire_after_checks,
        expiry_thresholds: r.expiry_thresholds,
        retry_initial: r.retry_initial.get(),
        retry_max: r.retry_max.get(),
        max_delivery_age: r.max_delivery_age.get(),
        channels,
    })
}

fn resolve_channel(r: RawChannel, i: usize) -> Result<Channel, Located> {
    let name = r.name.clone();
    // An error at `key` of this channel (the channel's header when the key is absent).
    let at_path = |path: &[Seg], m: String| {
        let mut p = vec![Seg::from("alert"), "channel".into(), i.into()];
        p.extend_from_slice(path);
        Located {
            path: p,
            message: format!("alert channel {name:?}: {m}"),
            offset: None,
        }
    };
    let at = |key: &str, m: String| at_path(&[key.into()], m);
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid_name {
        return Err(at(
            "name",
            "use letters, digits, '-', '_' and '.' only in the name".into(),
        ));
    }
    let only = |kind: &str, fields: &[(&str, bool)]| -> Result<(), Located> {
        for (f, set) in fields {
            if *set {
                return Err(at(f, format!("{f} does not apply to type = \"{kind}\"")));
            }
        }
        Ok(())
    };
    if let Some(p) = &r.ca_bundle {
        super::resolve::check_pem_file(p).map_err(|m| at("ca_bundle", m))?;
    }
    let timeout = r
        .timeout
        .map(HumanDuration::get)
        .unwrap_or(DEFAULT_CHANNEL_TIMEOUT);
    if timeout.is_zero() {
        return Err(at("timeout", "timeout must be longer than 0s".into()));
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
    let url_set = r.url.is_some() || r.url_file.is_some() || r.url_env.is_some();
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
            if url_set {
                let key = if r.url.is_some() {
                    "url"
                } else if r.url_file.is_some() {
                    "url_file"
                } else {
                    "url_env"
                };
                return Err(at(
                    key,
                    format!("{key} (use urls = [...]) does not apply to type = \"alertmanager\""),
                ));
            }
            only(
                "alertmanager",
                &[
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
                return Err(at(
                    "urls",
                    "needs urls = [\"http://alertmanager.example:9093\"] (every URL gets every alert)"
                        .into(),
                ));
            }
            for (j, u) in r.urls.iter().enumerate() {
                check_url(u).map_err(|_| {
                    at_path(
                        &["urls".into(), j.into()],
                        format!("urls: {u:?} is not an http(s) URL"),
                    )
                })?;
            }
            if let Some(g) = &r.generator_url {
                check_url(g).map_err(|_| {
                    at(
                        "generator_url",
                        format!("generator_url: {g:?} is not an http(s) URL"),
                    )
                })?;
            }
            let pw_key = if r.password_file.is_some() {
                "password_file"
            } else {
                "password_env"
            };
            let password = Secret::from_parts("password", None, r.password_file, r.password_env)
                .map_err(|m| at(pw_key, m))?;
            if password.is_some() != r.username.is_some() {
                let key = if password.is_some() {
                    pw_key
                } else {
                    "username"
                };
                return Err(at(
                    key,
                    "username and one of password_file / password_env go together".into(),
                ));
            }
            if password.is_some() && r.bearer_token_file.is_some() {
                return Err(at(
                    "bearer_token_file",
                    "set either username and password_file (basic auth) or bearer_token_file, not both"
                        .into(),
                ));
            }
            let resend_interval = r
                .resend_interval
                .map(HumanDuration::get)
                .unwrap_or(DEFAULT_RESEND_INTERVAL);
            if resend_interval < Duration::from_secs(1) {
                return Err(at(
                    "resend_interval",
                    "resend_interval must be at least \"1s\"".into(),
                ));
            }
            let instance = match r.instance {
                Some(i) if i.trim().is_empty() => {
                    return Err(at(
                        "instance",
                        "instance must not be empty (leave it out for this host's name)".into(),
                    ))
                }
                Some(i) => i,
                None => crate::alert::message::hostname(),
            };
            let bearer_token = match r.bearer_token_file {
                Some(p) => Some(Secret::file(p).map_err(|m| at("bearer_token_file", m))?),
                None => None,
            };
            ChannelKind::Alertmanager(AlertmanagerChannel {
                urls: r.urls,
                instance,
                generator_url: r.generator_url,
                resend_interval,
                username: r.username,
                password,
                bearer_token,
                ca_bundle: r.ca_bundle,
            })
        }
        RawKind::Email => {
            only(
                "email",
                &[
                    ("url", r.url.is_some()),
                    ("url_file", r.url_file.is_some()),
                    ("url_env", r.url_env.is_some()),
                    ("headers", !r.headers.is_empty()),
                    ("headers_from_files", !r.headers_from_files.is_empty()),
                ],
            )?;
            let from = r
                .from
                .ok_or_else(|| at("from", "needs from = \"certkeep@example.com\"".into()))?;
            check_mailbox(&from).map_err(|m| at("from", m))?;
            if r.to.is_empty() {
                return Err(at("to", "needs to = [\"ops@example.com\"]".into()));
            }
            for (j, t) in r.to.iter().enumerate() {
                check_mailbox(t).map_err(|m| at_path(&["to".into(), j.into()], m))?;
            }
            let host = r
                .smtp_host
                .ok_or_else(|| at("smtp_host", "needs smtp_host = \"smtp.example.com\"".into()))?;
            if r.smtp_port == Some(0) {
                return Err(at("smtp_port", "smtp_port must be from 1 to 65535".into()));
            }
            let tls = r.tls.unwrap_or(SmtpTls::Starttls);
            let port = r.smtp_port.unwrap_or(match tls {
                SmtpTls::None => 25,
                SmtpTls::Starttls => 587,
                SmtpTls::Tls => 465,
            });
            let pw_key = if r.password_file.is_some() {
                "password_file"
            } else {
                "password_env"
            };
            let password = Secret::from_parts("password", None, r.password_file, r.password_env)
                .map_err(|m| at(pw_key, m))?;
            if password.is_some() != r.username.is_some() {
                let key = if password.is_some() {
                    pw_key
                } else {
                    "username"
                };
                return Err(at(
                    key,
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
                check_url(u).map_err(|m| at("url", m))?;
            }
            let url_key = if r.url_file.is_some() {
                "url_file"
            } else if r.url_env.is_some() {
                "url_env"
            } else {
                "url"
            };
            let url = Secret::from_parts("url", r.url, r.url_file, r.url_env)
                .map_err(|m| at(url_key, m))?
                .ok_or_else(|| {
                    at(
                        "url",
                        "needs url, url_file or url_env (the URL is a secret: prefer url_file)"
                            .into(),
                    )
                })?;
            for h in r.headers.keys() {
                if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    return Err(at(
                        "headers",
                        format!("{h:?} is not a valid HTTP header name"),
                    ));
                }
            }
            for (h, p) in &r.headers_from_files {
                if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    return Err(at(
                        "headers_from_files",
                        format!("{h:?} is not a valid HTTP header name"),
                    ));
                }
                if !p.is_absolute() {
                    return Err(at(
                        "headers_from_files",
                        format!(
                            "header {h:?}: {} is a relative path; write the absolute path",
                            p.display()
                        ),
                    ));
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChannel {
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
pub(crate) enum RawKind {
    Email,
    Slack,
    Webhook,
    Alertmanager,
}

fn warning() -> Severity {
    Severity::Warning
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
#[path = "alert_tests.rs"]
mod tests;
