//! HTTP-01 challenge files under `<webroot>/.well-known/acme-challenge/`, and
//! the pre-flight self-check that nginx really serves them.

use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const CHALLENGE_DIR: &str = ".well-known/acme-challenge";

#[derive(Debug, thiserror::Error)]
pub enum WebrootError {
    #[error("refusing challenge token {token:?}: tokens may only use A-Z a-z 0-9 - _ (base64url), 1 to 256 characters")]
    BadToken { token: String },
    #[error("cannot {action} {path}: {source} (the webroot must be writable by certkeep and readable by nginx)")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("self-check failed for {domain}: fetched {url} and {outcome}. The CA would fail the same way. Make nginx serve the webroot on port 80 for {domain}{listen}: in its server block add `location /.well-known/acme-challenge/ {{ root {webroot}; }}` (see config/nginx-acme-challenge.conf), reload nginx, and try again")]
    SelfCheck {
        domain: String,
        url: String,
        outcome: String,
        webroot: String,
        /// For an IP address: how nginx must listen (the CA connects to
        /// the address itself); empty for a DNS name.
        listen: String,
    },
}

/// Checks a token against the base64url alphabet, so it cannot name another path.
pub fn validate_token(token: &str) -> Result<(), WebrootError> {
    let ok = !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(WebrootError::BadToken {
            token: token.chars().take(80).collect(),
        })
    }
}

/// A challenge file; removed when dropped, whatever happened.
#[derive(Debug)]
pub struct ChallengeFile {
    path: PathBuf,
}

impl ChallengeFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ChallengeFile {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), "cannot remove challenge file: {e}");
            }
        }
    }
}

/// Writes `content` as `<webroot>/.well-known/acme-challenge/<token>`, world-readable,
/// creating the directories (0755) as needed.
pub fn write_challenge(
    webroot: &Path,
    token: &str,
    content: &str,
) -> Result<ChallengeFile, WebrootError> {
    validate_token(token)?;
    let dir = webroot.join(CHALLENGE_DIR);
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| WebrootError::Io {
            action,
            path,
            source,
        }
    };
    // Create each missing level with 0755 so nginx workers (often `nobody`) can traverse.
    let mut missing = Vec::new();
    let mut cur = Some(dir.as_path());
    while let Some(p) = cur {
        if p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    for p in missing.iter().rev() {
        match fs::create_dir(p) {
            Ok(()) => fs::set_permissions(p, fs::Permissions::from_mode(0o755))
                .map_err(io("set permissions on", p))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("create", p)(e)),
        }
    }
    let path = dir.join(token);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&path)
        .map_err(io("write", &path))?;
    let file = ChallengeFile { path: path.clone() };
    f.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io("set permissions on", &path))?;
    io::Write::write_all(&mut f, content.as_bytes()).map_err(io("write", &path))?;
    Ok(file)
}

/// How the self-check reaches nginx.
#[derive(Debug, Clone)]
pub struct SelfCheck {
    pub port: u16,
    /// Connect here instead of resolving the domain (tests, split DNS).
    pub connect: Option<std::net::IpAddr>,
    pub ca_bundle: Option<PathBuf>,
}

/// The longest a self-check may take, redirects included.
pub const SELF_CHECK_TOTAL: Duration = Duration::from_secs(20);

/// The URL the self-check fetches for `domain` (a DNS name or an IP
/// address; IPv6 in brackets) on `port`.
pub fn self_check_url(domain: &str, port: u16, token: &str) -> String {
    let host = crate::config::url_host(domain);
    if port == 80 {
        format!("http://{host}/{CHALLENGE_DIR}/{token}")
    } else {
        format!("http://{host}:{port}/{CHALLENGE_DIR}/{token}")
    }
}

/// Writes a random probe file and fetches it over plain HTTP as the CA would
/// (following redirects). Fails with what was fetched and what came back.
/// An IP address identifier is fetched from the address itself, as the CA
/// validates it (RFC 8738); `connect` applies to DNS names only.
pub async fn self_check(domain: &str, webroot: &Path, how: &SelfCheck) -> Result<(), WebrootError> {
    let token = format!("certkeep-selfcheck-{:016x}", rand::random::<u64>());
    let content = format!("certkeep self-check {}", rand::random::<u64>());
    let _file = write_challenge(webroot, &token, &content)?;
    let url = self_check_url(domain, how.port, &token);
    let listen = if domain.parse::<std::net::IpAddr>().is_ok() {
        format!(
            " on that address itself (the CA connects to {domain}, not to a name: a server block with `listen {}:80;`)",
            crate::config::url_host(domain)
        )
    } else {
        String::new()
    };
    let fail = |outcome: String| WebrootError::SelfCheck {
        domain: domain.to_string(),
        url: url.clone(),
        outcome,
        webroot: webroot.display().to_string(),
        listen: listen.clone(),
    };
    let mut builder = crate::net::client_builder(how.ca_bundle.as_deref())
        .map_err(|e| fail(format!("the HTTP client could not be set up: {e}")))?
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ip) = how
        .connect
        .filter(|_| domain.parse::<std::net::IpAddr>().is_err())
    {
        builder = builder.resolve(domain, std::net::SocketAddr::new(ip, 0));
    }
    let client = builder
        .build()
        .map_err(|e| fail(format!("the HTTP client could not be set up: {e}")))?;
    // Follow redirects by hand (as the CA does, up to 10) to say where it went.
    let mut current = url.clone();
    let mut hops: Vec<String> = Vec::new();
    let via = |hops: &[String]| {
        if hops.is_empty() {
            String::new()
        } else {
            format!(" (redirected: {})", hops.join(" -> "))
        }
    };
    // Each request ends after 10 s, the whole check (redirects included)
    // after SELF_CHECK_TOTAL: a chain of slow redirects cannot hold a run.
    let deadline = std::time::Instant::now() + SELF_CHECK_TOTAL;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(fail(format!(
                "no complete answer within {SELF_CHECK_TOTAL:?}{}",
                via(&hops)
            )));
        }
        let request = client
            .get(&current)
            .timeout(left.min(Duration::from_secs(10)));
        let rsp = request.send().await.map_err(|e| {
            fail(format!(
                "the request{} failed: {}",
                via(&hops),
                crate::net::error_chain(&e)
            ))
        })?;
        let status = rsp.status();
        if status.is_redirection() {
            let location = rsp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| rsp.url().join(l).ok());
            match location {
                Some(next) if hops.len() < 10 => {
                    hops.push(format!("HTTP {} to {next}", status.as_u16()));
                    current = next.to_string();
                    continue;
                }
                _ => {
                    return Err(fail(format!(
                        "got HTTP {status}{} without a usable Location",
                        via(&hops)
                    )))
                }
            }
        }
        let body = rsp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(fail(format!("got HTTP {status}{}", via(&hops))));
        }
        if body.trim() != content {
            let shown: String = body.chars().take(60).collect();
            return Err(fail(format!(
                "got HTTP {status}{} with other content ({shown:?}); that location serves a different directory than {}",
                via(&hops),
                webroot.display()
            )));
        }
        break;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_outside_base64url_are_refused() {
        for bad in [
            "../etc/passwd",
            "a/b",
            "",
            "a.b",
            "tok en",
            "..",
            "%2e%2e",
            &"a".repeat(257),
        ] {
            assert!(validate_token(bad).is_err(), "{bad:?}");
        }
        validate_token("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0").unwrap();
        validate_token("a-b_c").unwrap();
    }

    #[test]
    fn self_check_urls_put_ipv6_in_brackets() {
        assert_eq!(
            self_check_url("a.test", 80, "t"),
            "http://a.test/.well-known/acme-challenge/t"
        );
        assert_eq!(
            self_check_url("127.0.0.1", 5002, "t"),
            "http://127.0.0.1:5002/.well-known/acme-challenge/t"
        );
        assert_eq!(
            self_check_url("::1", 80, "t"),
            "http://[::1]/.well-known/acme-challenge/t"
        );
        assert_eq!(
            self_check_url("2001:db8::1", 8080, "t"),
            "http://[2001:db8::1]:8080/.well-known/acme-challenge/t"
        );
    }

    #[test]
    fn challenge_file_is_world_readable_and_removed_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("www");
        let f = write_challenge(&root, "tok", "tok.thumb").unwrap();
        let p = f.path().to_path_buf();
        assert_eq!(fs::read_to_string(&p).unwrap(), "tok.thumb");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let dir_mode = fs::metadata(root.join(CHALLENGE_DIR))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o755);
        drop(f);
        assert!(!p.exists());
    }

    #[test]
    fn traversal_token_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let e = write_challenge(d.path(), "../../evil", "x").unwrap_err();
        assert!(matches!(e, WebrootError::BadToken { .. }));
        assert!(!d.path().join(CHALLENGE_DIR).exists());
        assert!(!d.path().parent().unwrap().join("evil").exists());
    }
}
