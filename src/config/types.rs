//! Value types shared by the config sections. Each one checks its value when
//! it is deserialized (so the error carries the value's position) and keeps
//! its field private, so a value that exists is a valid one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// An ACME profile name as the CA's directory lists it: 1 to 64 visible
/// ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileName(String);

impl ProfileName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ProfileName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(serde::de::Error::custom(format!(
                "profile {s:?} is not a profile name (1 to 64 visible ASCII characters, as the \
                 CA's directory lists them: run `certkeep profiles`)"
            )));
        }
        Ok(ProfileName(s))
    }
}

/// A duration written like "90s", "15m", "24h", "30d".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    pub const fn new(d: Duration) -> Self {
        Self(d)
    }

    pub const fn from_secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    pub const fn get(self) -> Duration {
        self.0
    }
}

impl From<HumanDuration> for Duration {
    fn from(h: HumanDuration) -> Duration {
        h.0
    }
}

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

/// Time left before a certificate expires: a fixed duration ("30d") or a
/// fraction of the certificate's lifetime ("1/3"). Used for renewal points,
/// probe verdicts and alert thresholds alike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeLeft(Left);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Left {
    Duration(Duration),
    Fraction(f64),
}

impl TimeLeft {
    /// A fixed time before expiry (more than zero).
    pub fn duration(d: Duration) -> Result<TimeLeft, String> {
        if d.is_zero() {
            return Err("the time left before expiry must be more than 0, e.g. \"30d\"".into());
        }
        Ok(TimeLeft(Left::Duration(d)))
    }

    /// Whether this is a share of the lifetime rather than a fixed time.
    pub fn is_fraction(&self) -> bool {
        matches!(self.0, Left::Fraction(_))
    }

    /// A fraction of the lifetime, strictly between 0 and 1.
    pub fn fraction(f: f64) -> Result<TimeLeft, String> {
        if f > 0.0 && f < 1.0 {
            Ok(TimeLeft(Left::Fraction(f)))
        } else {
            Err(format!(
                "fraction {f} must be between 0 and 1 (exclusive), e.g. 0.33 or \"1/3\""
            ))
        }
    }

    /// One `n`th of the lifetime (`n` of at least 2).
    pub fn one_in(n: u32) -> TimeLeft {
        TimeLeft(Left::Fraction(1.0 / f64::from(n.max(2))))
    }

    /// `Some` for a fixed duration.
    pub fn as_duration(self) -> Option<Duration> {
        match self.0 {
            Left::Duration(d) => Some(d),
            Left::Fraction(_) => None,
        }
    }

    /// `Some` for a fraction of the lifetime.
    pub fn as_fraction(self) -> Option<f64> {
        match self.0 {
            Left::Duration(_) => None,
            Left::Fraction(f) => Some(f),
        }
    }

    /// Seconds before expiry for a certificate living `lifetime` seconds.
    pub fn seconds_of(self, lifetime: i64) -> i64 {
        match self.0 {
            Left::Duration(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Left::Fraction(f) => (lifetime.max(0) as f64 * f) as i64,
        }
    }

    /// Whole days (rounded up) for a certificate living `lifetime_days`.
    pub fn days_of(self, lifetime_days: i64) -> u32 {
        match self.0 {
            Left::Duration(d) => u32::try_from(d.as_secs().div_ceil(86_400)).unwrap_or(u32::MAX),
            Left::Fraction(f) => (lifetime_days.max(0) as f64 * f).ceil() as u32,
        }
    }

    /// Parses "30d", "12h", "1/3" or "0.33".
    pub fn parse(s: &str) -> Result<TimeLeft, String> {
        let t = s.trim();
        if let Some((n, d)) = t.split_once('/') {
            return match (n.trim().parse::<f64>(), d.trim().parse::<f64>()) {
                (Ok(n), Ok(d)) if d != 0.0 => Self::fraction(n / d),
                _ => Err(format!("{s:?} is not a fraction; write e.g. \"1/3\"")),
            };
        }
        if let Ok(f) = t.parse::<f64>() {
            return Self::fraction(f);
        }
        let d = parse_duration(t).map_err(|_| {
            format!(
                "{s:?} is neither a duration (\"30d\") nor a fraction of the lifetime (\"1/3\")"
            )
        })?;
        Self::duration(d)
    }
}

impl fmt::Display for TimeLeft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Left::Duration(d) => write!(f, "{}", humantime::format_duration(d)),
            Left::Fraction(x) => write!(f, "{x} of the lifetime"),
        }
    }
}

impl<'de> Deserialize<'de> for TimeLeft {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(f) => TimeLeft::fraction(f),
            Raw::Str(s) => TimeLeft::parse(&s),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// The name used before "time left" had one type; kept for readers.
pub type RenewBefore = TimeLeft;

/// A lineage name: safe as a single path component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineageName(String);

impl LineageName {
    pub fn new(s: &str) -> Result<LineageName, String> {
        validate_lineage_name(s)?;
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LineageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LineageName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LineageName::new(&s).map_err(serde::de::Error::custom)
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

/// An identifier to certify, as the CA will see it: a DNS name (lowercase,
/// no trailing dot) or an IP address (RFC 8738) in its canonical text form
/// ("127.0.0.1", "::1", "2001:db8::1"). The type keeps the name `Domain`
/// because both are listed under `domains`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    pub fn new(s: &str) -> Result<Domain, String> {
        parse_identifier(s).map(Domain)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address, when this identifier is an IP address.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.0.parse().ok()
    }

    /// The identifier as a URL host: IPv6 addresses in brackets.
    pub fn url_host(&self) -> String {
        url_host(&self.0)
    }
}

/// `host` as written in a URL or a `host:port`: IPv6 addresses in brackets.
pub fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Domain::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Checks an identifier for HTTP-01 use and returns it normalised: a DNS
/// name (see [`parse_domain`]) or an IP address, written back in its
/// canonical form (IPv6 compressed and lowercase, RFC 5952), which is how
/// the CA and the certificate spell it. What looks like an address but is
/// not one ("256.1.1.1", "1.2.3", "::zz", "[::1]") is refused rather than
/// taken as a DNS name.
pub fn parse_identifier(s: &str) -> Result<String, String> {
    let t = s.trim();
    if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return match inner.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => Err(format!(
                "{s:?}: write the IPv6 address without brackets, e.g. \"{ip}\""
            )),
            Err(_) => Err(format!("{s:?} is not a valid IPv6 address")),
        };
    }
    if t.matches(':').count() == 1 {
        return Err(format!(
            "{s:?} has a port: list the name or address alone (a certificate's port is its `endpoint`)"
        ));
    }
    if t.contains(':') {
        if t.contains('%') {
            return Err(format!(
                "{s:?} has a zone (%...): a certificate can name only a global address; list the address without it"
            ));
        }
        return t
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| {
                format!(
                    "{s:?} is not a valid IPv6 address (eight groups of up to 4 hex digits, \"::\" for a run of zeros, e.g. \"2001:db8::1\")"
                )
            });
    }
    let d = t.trim_end_matches('.');
    if !d.is_empty()
        && d.split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
    {
        return d
            .parse::<std::net::Ipv4Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| {
                format!(
                    "{s:?} is not a valid IPv4 address (four numbers from 0 to 255 without leading zeros, e.g. \"192.0.2.10\"), and a DNS name cannot be all digits"
                )
            });
    }
    parse_domain(s)
}

/// Checks a DNS name for HTTP-01 use and returns it normalised; IP addresses
/// are refused (see [`parse_identifier`] for names and addresses).
pub fn parse_domain(s: &str) -> Result<String, String> {
    let d = s.trim_end_matches('.').to_ascii_lowercase();
    if d.starts_with("*.") {
        return Err(format!(
            "{s:?} is a wildcard: HTTP-01 cannot validate wildcards; list the names instead"
        ));
    }
    if d.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!("{s:?} is an IP address, not a DNS name"));
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
    if d.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!(
            "{s:?} is not a valid DNS name (all digits) nor a valid IPv4 address"
        ));
    }
    Ok(d)
}

/// An `https://` or `http://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url(String);

impl Url {
    pub fn new(s: &str) -> Result<Url, String> {
        match reqwest::Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {
                Ok(Url(s.to_string()))
            }
            _ => Err(format!(
                "{s:?} is not an http(s) URL; write e.g. \"https://ca.example/directory\""
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `http://` (no TLS).
    pub fn is_plain_http(&self) -> bool {
        self.0
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Url {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Url::new(&s).map_err(serde::de::Error::custom)
    }
}

/// An email address (a leading `mailto:` is removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn new(s: &str) -> Result<Email, String> {
        let s = s.trim_start_matches("mailto:");
        match s.split_once('@') {
            Some((l, h))
                if !l.is_empty() && h.contains('.') && !s.contains(char::is_whitespace) =>
            {
                Ok(Email(s.to_string()))
            }
            _ => Err(format!(
                "{s:?} is not an email address; write e.g. \"admin@example.com\""
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Email::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A command as an argv array (at least the program); it runs without a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command(Vec<String>);

impl Command {
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Result<Command, String> {
        let v: Vec<String> = argv.into_iter().map(Into::into).collect();
        if v.first().is_none_or(|p| p.is_empty()) {
            return Err(
                "a command must be a non-empty array, e.g. [\"nginx\", \"-s\", \"reload\"]".into(),
            );
        }
        Ok(Command(v))
    }

    /// The program and its arguments.
    pub fn argv(&self) -> &[String] {
        &self.0
    }

    pub fn program(&self) -> &str {
        &self.0[0]
    }

    pub fn args(&self) -> &[String] {
        &self.0[1..]
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        Command::new(v).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// A value that is a secret: given inline, in a file, or in an environment
/// variable. It is read at use time (a missing secret fails that use only);
/// the value is never shown in messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(SecretSource);

#[derive(Clone, PartialEq, Eq)]
enum SecretSource {
    Inline(String),
    File(PathBuf),
    Env(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            SecretSource::Inline(_) => f.write_str("Inline(<redacted>)"),
            SecretSource::File(p) => write!(f, "File({})", p.display()),
            SecretSource::Env(v) => write!(f, "Env({v})"),
        }
    }
}

impl Secret {
    pub fn inline(v: String) -> Secret {
        Secret(SecretSource::Inline(v))
    }

    /// A secret in a file; the path must be absolute.
    pub fn file(p: PathBuf) -> Result<Secret, String> {
        if !p.is_absolute() {
            return Err(format!(
                "secret file {} is a relative path; write the absolute path",
                p.display()
            ));
        }
        Ok(Secret(SecretSource::File(p)))
    }

    /// A secret in an environment variable (a non-empty name).
    pub fn env(name: String) -> Result<Secret, String> {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(format!("{name:?} is not an environment variable name"));
        }
        Ok(Secret(SecretSource::Env(name)))
    }

    /// One of `what`, `what_file`, `what_env`, or none; two at once is an error.
    pub fn from_parts(
        what: &str,
        inline: Option<String>,
        file: Option<PathBuf>,
        env: Option<String>,
    ) -> Result<Option<Secret>, String> {
        match (inline, file, env) {
            (None, None, None) => Ok(None),
            (Some(v), None, None) => Ok(Some(Secret::inline(v))),
            (None, Some(p), None) => Secret::file(p).map(Some),
            (None, None, Some(v)) => Secret::env(v).map(Some),
            _ => Err(format!(
                "set only one of {what}, {what}_file and {what}_env"
            )),
        }
    }

    /// The file it is read from, if any.
    pub fn path(&self) -> Option<&Path> {
        match &self.0 {
            SecretSource::File(p) => Some(p),
            _ => None,
        }
    }

    /// Reads the secret (trailing newline removed). The error names where it
    /// was looked for, never the value.
    pub fn read(&self) -> Result<String, String> {
        let v = match &self.0 {
            SecretSource::Inline(v) => v.clone(),
            SecretSource::File(p) => std::fs::read_to_string(p).map_err(|e| {
                format!(
                    "cannot read secret file {}: {e} (create it, mode 0600)",
                    p.display()
                )
            })?,
            SecretSource::Env(name) => std::env::var(name).map_err(|_| {
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
        match &self.0 {
            SecretSource::Inline(_) => "(inline in the config)".into(),
            SecretSource::File(p) => format!("file {}", p.display()),
            SecretSource::Env(v) => format!("environment variable {v}"),
        }
    }
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

/// A host named in TLS or connected to: a DNS name or an IP address, as
/// rustls accepts it for SNI (checked at load, not when first used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostName(String);

impl HostName {
    pub fn parse(s: &str) -> Result<HostName, String> {
        rustls_pki_types::ServerName::try_from(s).map_err(|_| {
            format!("{s:?} is neither a DNS name nor an IP address; write e.g. \"www.example.com\" or \"127.0.0.1\"")
        })?;
        Ok(HostName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for HostName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HostName::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `host:port` with a port from 1 to 65535 (IPv6 in brackets: `[::1]:443`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    /// Parses `host:port`; the port is required.
    pub fn parse(s: &str) -> Result<HostPort, String> {
        let (host, port) = crate::probe::target::split_host_port(s.trim())?;
        let port = port.ok_or_else(|| {
            format!("{s:?} has no port; write host:port, e.g. \"127.0.0.1:443\" or \"[::1]:443\"")
        })?;
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        HostName::parse(host)?;
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HostPort::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::probe::target::join_host_port(&self.host, self.port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_parses_durations_and_fractions() {
        let d = TimeLeft::parse("30d").unwrap();
        assert_eq!(d.as_duration(), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(d.days_of(90), 30);
        assert_eq!(d.seconds_of(1000), 30 * 86_400);
        let f = TimeLeft::parse("1/4").unwrap();
        assert_eq!(f.as_fraction(), Some(0.25));
        assert_eq!(f.days_of(90), 23);
        assert_eq!(f.seconds_of(100), 25);
        assert_eq!(f.seconds_of(-5), 0);
        assert_eq!(TimeLeft::parse("0.5").unwrap().as_fraction(), Some(0.5));
        assert_eq!(
            TimeLeft::parse("12h").unwrap().days_of(90),
            1,
            "part of a day counts as a day"
        );
    }

    #[test]
    fn time_left_rejects_zero_and_out_of_range() {
        for bad in ["0s", "0", "1", "3/2", "1/0", "-1/3", "soon", ""] {
            assert!(TimeLeft::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(TimeLeft::duration(Duration::ZERO).is_err());
        assert!(TimeLeft::fraction(1.0).is_err());
        let huge = TimeLeft::duration(Duration::from_secs(u64::MAX)).unwrap();
        assert_eq!(huge.seconds_of(1), i64::MAX);
        assert_eq!(huge.days_of(1), u32::MAX);
    }

    #[test]
    fn names_and_addresses() {
        assert_eq!(
            Domain::new("WWW.Example.com.").unwrap().as_str(),
            "www.example.com"
        );
        assert!(Domain::new("*.example.com").is_err());
        assert!(parse_domain("10.0.0.1").is_err());
        assert!(LineageName::new("../x").is_err());
        assert_eq!(LineageName::new("a.b-c_d").unwrap().as_str(), "a.b-c_d");
        assert_eq!(
            Email::new("mailto:ops@example.com").unwrap().as_str(),
            "ops@example.com"
        );
        assert!(Email::new("ops").is_err());
        assert!(Url::new("ftp://x.example/").is_err());
        assert!(Url::new("http://x.example/").unwrap().is_plain_http());
        assert!(!Url::new("https://x.example/").unwrap().is_plain_http());
        assert!(Command::new(Vec::<String>::new()).is_err());
        assert!(Command::new([""]).is_err());
        let c = Command::new(["nginx", "-t"]).unwrap();
        assert_eq!((c.program(), c.args()), ("nginx", &["-t".to_string()][..]));
    }

    #[test]
    fn identifiers_are_names_or_canonical_addresses() {
        let ok = |s: &str| Domain::new(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        let v4 = ok("127.0.0.1");
        assert_eq!(v4.as_str(), "127.0.0.1");
        assert_eq!(v4.ip(), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(v4.url_host(), "127.0.0.1");
        let v6 = ok("0:0:0:0:0:0:0:1");
        assert_eq!(v6.as_str(), "::1");
        assert_eq!(v6.url_host(), "[::1]");
        assert_eq!(ok("2001:DB8:0:0::A").as_str(), "2001:db8::a");
        assert_eq!(ok("192.0.2.10.").as_str(), "192.0.2.10");
        let name = ok("Www.Example.COM");
        assert_eq!((name.as_str(), name.ip()), ("www.example.com", None));
        assert_eq!(ok("1example.com").as_str(), "1example.com");
        assert_eq!(ok("a.123").as_str(), "a.123");
    }

    #[test]
    fn malformed_addresses_are_refused_not_taken_as_names() {
        for (bad, says) in [
            ("256.1.1.1", "not a valid IPv4 address"),
            ("1.2.3", "not a valid IPv4 address"),
            ("1.2.3.4.5", "not a valid IPv4 address"),
            ("01.2.3.4", "not a valid IPv4 address"),
            ("123", "not a valid IPv4 address"),
            ("::zz", "not a valid IPv6 address"),
            ("1:2:3:4:5:6:7:8:9", "not a valid IPv6 address"),
            ("fe80::1%eth0", "zone"),
            ("[::1]", "without brackets, e.g. \"::1\""),
            ("[nope]", "not a valid IPv6 address"),
            ("127.0.0.1:80", "has a port"),
            ("example.com:443", "has a port"),
            ("*.example.com", "wildcard"),
        ] {
            let e = Domain::new(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        assert!(parse_domain("::1").is_err());
        assert!(parse_domain("256.1.1.1").is_err());
    }

    #[test]
    fn host_port_needs_a_valid_port() {
        let h = HostPort::parse("[::1]:443").unwrap();
        assert_eq!((h.host(), h.port()), ("::1", 443));
        assert_eq!(h.to_string(), "[::1]:443");
        assert_eq!(HostPort::parse("127.0.0.1:8443").unwrap().port(), 8443);
        for bad in [
            "127.0.0.1",
            "host:99999",
            "host:0",
            "host:x",
            ":443",
            "[::1",
        ] {
            assert!(HostPort::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn secrets_need_absolute_files_and_never_show_inline_values() {
        assert!(Secret::file(PathBuf::from("rel/key")).is_err());
        assert!(Secret::env(String::new()).is_err());
        let s = Secret::inline("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!s.place().contains("hunter2"));
        assert!(Secret::from_parts("url", Some("a".into()), None, Some("B".into())).is_err());
    }
}
