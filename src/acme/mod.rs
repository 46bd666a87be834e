//! ACME through instant-acme: the account (created once, stored 0600, reused),
//! orders with HTTP-01 through the webroot, ARI look-ups, and retries.

pub mod http;
pub mod keys;
pub mod order;
pub mod profile;
pub mod retry;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};

use crate::config::{AcmeConfig, EabConfig};
use crate::net::{error_chain, HttpSetupError};
use crate::store::{atomic, Store, StoreError};
use http::{AcmeHttp, RetryAfter};

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("{what} failed at the CA ({directory}): {source}")]
    Ca {
        what: String,
        directory: String,
        #[source]
        source: Box<instant_acme::Error>,
    },
    #[error(transparent)]
    Setup(#[from] HttpSetupError),
    #[error("EAB HMAC key: {0}")]
    Eab(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "account file {path} is unreadable ({detail}); move it away to register a new account"
    )]
    AccountFile { path: PathBuf, detail: String },
    #[error("cannot fetch the ACME directory {directory}: {detail}; check [acme] directory and ca_bundle")]
    Directory { directory: String, detail: String },
    #[error(transparent)]
    Webroot(#[from] crate::webroot::WebrootError),
    #[error("the CA could not validate {domain}: {detail}")]
    Validation { domain: String, detail: String },
    #[error("{0}")]
    Order(String),
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    #[error(transparent)]
    Profile(#[from] profile::ProfileUnavailable),
    #[error("{what} at the CA ({directory}) was not retried: {source}")]
    Cancelled {
        what: String,
        directory: String,
        source: crate::shutdown::Cancelled,
    },
}

/// A connected ACME account plus what we learned about the CA.
pub struct AcmeClient {
    pub account: Account,
    pub directory: String,
    /// The CA advertises `renewalInfo` (RFC 9773).
    pub supports_ari: bool,
    pub http: reqwest::Client,
    retry_after: RetryAfter,
    retry_budget: Duration,
}

impl AcmeClient {
    /// The profiles the CA's directory offers (`meta.profiles`), by name.
    pub fn offered_profiles(&self) -> Vec<profile::Offered> {
        let mut v: Vec<profile::Offered> = self
            .account
            .profiles()
            .map(|p| profile::Offered {
                name: p.name.to_string(),
                description: p.description.to_string(),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The profile to order for `certificate` (None: the CA's default),
    /// logging a warning when a preferred profile is not offered.
    pub fn choose_profile(
        &self,
        certificate: &str,
        wanted: Option<&profile::WantedProfile>,
    ) -> Result<Option<String>, AcmeError> {
        let c = profile::choose(
            certificate,
            wanted,
            &self.offered_profiles(),
            &self.directory,
        )?;
        if let Some(w) = &c.warning {
            tracing::warn!("{w}");
        }
        Ok(c.profile)
    }

    /// Loads the stored account for `directory`, or registers one. With
    /// `persist == false` (dry runs) a new account is kept in memory only.
    pub async fn connect(
        cfg: &AcmeConfig,
        directory: &str,
        store: &Store,
        persist: bool,
        retry_budget: Duration,
    ) -> Result<AcmeClient, AcmeError> {
        // ACME never redirects: a redirect on the directory means the URL is
        // not the CA's (a captive portal, a moved host, a typo), so it is
        // reported with its target instead of being followed.
        let http = crate::net::client_builder(cfg.ca_bundle.as_deref())?
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(HttpSetupError::from)?;
        if plain_http(directory) {
            tracing::warn!(
                "the ACME directory {directory} is plain http://: anyone on the path can \
                 read and change what the CA says; use https:// unless this is a test CA on this host"
            );
        }
        let supports_ari = fetch_directory_retrying(&http, directory, retry_budget)
            .await?
            .ari;
        let retry_after = RetryAfter::default();
        let path = account_path(store, directory);
        let mut retrier = Retrier::new(retry_budget, retry_after.clone());
        let account = if path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| AcmeError::AccountFile {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            loop {
                let creds: AccountCredentials =
                    serde_json::from_str(&text).map_err(|e| AcmeError::AccountFile {
                        path: path.clone(),
                        detail: format!("not an account file: {}", e.classify_name()),
                    })?;
                let builder = Account::builder_with_http(Box::new(AcmeHttp::new(
                    http.clone(),
                    retry_after.clone(),
                )));
                match builder.from_credentials(creds).await {
                    Ok(a) => break a,
                    Err(e) => {
                        retrier
                            .wait(e, "loading the ACME account", directory)
                            .await?
                    }
                }
            }
        } else {
            let eab = cfg.eab.as_ref().map(eab_key).transpose()?;
            let contact: Vec<String> = cfg.email.iter().map(|e| format!("mailto:{e}")).collect();
            let contact_refs: Vec<&str> = contact.iter().map(String::as_str).collect();
            let new_account = NewAccount {
                contact: &contact_refs,
                terms_of_service_agreed: true,
                only_return_existing: false,
            };
            let (account, creds) = loop {
                let builder = Account::builder_with_http(Box::new(AcmeHttp::new(
                    http.clone(),
                    retry_after.clone(),
                )));
                match builder
                    .create(&new_account, directory.to_string(), eab.as_ref())
                    .await
                {
                    Ok(r) => break r,
                    Err(e) => {
                        retrier
                            .wait(e, "registering an ACME account", directory)
                            .await?
                    }
                }
            };
            tracing::info!(
                directory,
                account = account.id(),
                "registered a new ACME account"
            );
            if persist {
                save_account(&path, &creds)?;
            }
            account
        };
        Ok(AcmeClient {
            account,
            directory: directory.to_string(),
            supports_ari,
            http,
            retry_after,
            retry_budget,
        })
    }

    pub(crate) fn retrier(&self) -> Retrier {
        Retrier::new(self.retry_budget, self.retry_after.clone())
    }
}

/// [`fetch_directory`], retried like every other ACME request: a 5xx or a
/// connection failure backs off, a 429 waits for Retry-After, all within
/// `budget`.
async fn fetch_directory_retrying(
    http: &reqwest::Client,
    directory: &str,
    budget: Duration,
) -> Result<DirectoryInfo, AcmeError> {
    let deadline = Instant::now() + budget;
    let mut attempt = 0;
    loop {
        let (e, retry) = match fetch_directory(http, directory).await {
            Ok(ari) => return Ok(ari),
            Err(failure) => failure,
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let wait = retry.and_then(|(class, ra)| {
            retry::delay(class, attempt, ra, remaining, rand::random::<f64>())
        });
        let Some(wait) = wait else {
            return Err(e);
        };
        attempt += 1;
        tracing::warn!(wait = ?wait, "{e}; retrying");
        crate::shutdown::global()
            .sleep(wait)
            .await
            .map_err(|source| AcmeError::Cancelled {
                what: "fetching the directory".into(),
                directory: directory.to_string(),
                source,
            })?;
    }
}

/// Whether `url` uses plain http:// (the scheme is case-insensitive).
pub fn plain_http(url: &str) -> bool {
    url.get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
}

/// How a failed directory fetch may be retried (None: it may not).
type DirectoryRetry = Option<(retry::Class, Option<Duration>)>;

/// What certkeep reads from an ACME directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryInfo {
    /// It advertises `renewalInfo` (RFC 9773).
    pub ari: bool,
    /// `meta.profiles`, sorted by name.
    pub profiles: Vec<profile::Offered>,
}

/// Fetches the directory at `directory` (retrying within `retry_budget`)
/// without touching the account: `certkeep profiles`.
pub async fn directory_info(
    cfg: &AcmeConfig,
    directory: &str,
    retry_budget: Duration,
) -> Result<DirectoryInfo, AcmeError> {
    let http = crate::net::client_builder(cfg.ca_bundle.as_deref())?
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(HttpSetupError::from)?;
    fetch_directory_retrying(&http, directory, retry_budget).await
}

/// GETs the directory.
async fn fetch_directory(
    http: &reqwest::Client,
    directory: &str,
) -> Result<DirectoryInfo, (AcmeError, DirectoryRetry)> {
    let err = |detail: String| AcmeError::Directory {
        directory: directory.to_string(),
        detail,
    };
    let rsp = http.get(directory).send().await.map_err(|e| {
        let class = retry::transport(&e);
        (
            err(error_chain(&e)),
            (class != retry::Class::Fatal).then_some((class, None)),
        )
    })?;
    let status = rsp.status();
    if status.is_redirection() {
        let target = rsp
            .headers()
            .get(::http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| {
                reqwest::Url::parse(directory)
                    .and_then(|base| base.join(l))
                    .map(|u| u.to_string())
                    .unwrap_or_else(|_| l.to_string())
            })
            .unwrap_or_else(|| "nowhere (no Location header)".into());
        return Err((
            err(format!(
                "it redirects (HTTP {status}) to {target}; certkeep does not follow \
                 redirects on the ACME directory: if that is your CA, set [acme] directory \
                 to it"
            )),
            None,
        ));
    }
    if !status.is_success() {
        let retry_after = rsp
            .headers()
            .get(::http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::net::parse_retry_after(v, std::time::SystemTime::now()));
        let class = if status.as_u16() == 429 {
            Some((retry::Class::RateLimited, retry_after))
        } else if status.is_server_error() {
            Some((retry::Class::Transient, retry_after))
        } else {
            None
        };
        return Err((err(format!("HTTP {status}")), class));
    }
    // A body cut off is worth another try; a page that is not JSON is not.
    let body = rsp
        .bytes()
        .await
        .map_err(|e| (err(error_chain(&e)), Some((retry::Class::Transient, None))))?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| (err(format!("not a JSON directory: {e}")), None))?;
    if v.get("newOrder").is_none() {
        return Err((
            err("the document has no newOrder: is this an ACME directory URL?".into()),
            None,
        ));
    }
    Ok(DirectoryInfo {
        ari: v.get("renewalInfo").and_then(|u| u.as_str()).is_some(),
        profiles: profile::from_meta(&v),
    })
}

/// `<store>/accounts/<host[:port]>/<path>/account.json`, like certbot's
/// `accounts/<host>/directory/`.
pub fn account_path(store: &Store, directory: &str) -> PathBuf {
    let (host, path) = match reqwest::Url::parse(directory) {
        Ok(u) => {
            let host = match (u.host_str(), u.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_string(),
                _ => "unknown".into(),
            };
            (host, u.path().trim_matches('/').to_string())
        }
        Err(_) => ("unknown".into(), String::new()),
    };
    let mut p = store.accounts_dir().join(sanitize(&host));
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        p.push(sanitize(seg));
    }
    p.join("account.json")
}

fn sanitize(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

fn save_account(path: &Path, creds: &AccountCredentials) -> Result<(), AcmeError> {
    let json = serde_json::to_vec_pretty(creds).map_err(|e| AcmeError::AccountFile {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let mut dirs = Vec::new();
    let mut d = path.parent();
    while let Some(dir) = d {
        if dir.exists() {
            break;
        }
        dirs.push(dir.to_path_buf());
        d = dir.parent();
    }
    for dir in dirs.iter().rev() {
        atomic::ensure_dir(dir, 0o700).map_err(crate::store::io_err("create", dir))?;
    }
    atomic::write_file(path, &json, 0o600).map_err(crate::store::io_err("write", path))?;
    Ok(())
}

fn eab_key(eab: &EabConfig) -> Result<ExternalAccountKey, AcmeError> {
    let raw = eab.hmac_key.read().map_err(AcmeError::Eab)?;
    let raw = raw.trim();
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
        .map_err(|_| AcmeError::Eab("the key is not base64url (as CAs hand it out)".into()))?;
    Ok(ExternalAccountKey::new(eab.key_id.clone(), &key))
}

/// Retries one ACME operation by [`retry::delay`], within the run's budget.
pub(crate) struct Retrier {
    deadline: Instant,
    attempts: u32,
    retry_after: RetryAfter,
}

impl Retrier {
    fn new(budget: Duration, retry_after: RetryAfter) -> Self {
        Self {
            deadline: Instant::now() + budget,
            attempts: 0,
            retry_after,
        }
    }

    /// Sleeps before the next attempt, or turns `e` into the final error.
    pub(crate) async fn wait(
        &mut self,
        e: instant_acme::Error,
        what: &str,
        directory: &str,
    ) -> Result<(), AcmeError> {
        let class = retry::classify_with_status(&e, self.retry_after.take_status());
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let ra = self.retry_after.take();
        match retry::delay(class, self.attempts, ra, remaining, rand::random::<f64>()) {
            Some(d) => {
                self.attempts += 1;
                tracing::debug!(what, ?class, attempt = self.attempts, wait = ?d, error = %error_chain(&e), "retrying");
                if class != retry::Class::BadNonce {
                    tracing::warn!(what, wait = ?d, "the CA answered {}; retrying", error_chain(&e));
                }
                crate::shutdown::global()
                    .sleep(d)
                    .await
                    .map_err(|source| AcmeError::Cancelled {
                        what: what.to_string(),
                        directory: directory.to_string(),
                        source,
                    })
            }
            None => Err(AcmeError::Ca {
                what: what.to_string(),
                directory: directory.to_string(),
                source: Box::new(e),
            }),
        }
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        // Never echo the content: the file holds the account key.
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "unexpected fields",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}
